"""Calibration gates per slice, from score histograms split by ground-truth label.

``calibration`` is calibration-in-the-large (mean score minus the observed positive rate);
``ece`` the expected calibration error. Both come with an approximate variance: the score's
spread plus the positive rate's (plus-four) variance for the former, the bucket-weighted
variances of the buckets' positive rates for the latter.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fairshift.api.analysis import Gate
from fairshift.engine import distributions, fairness
from fairshift.engine.counts import Histogram
from fairshift.engine.measures.base import (
    Measurement,
    Versions,
    difference,
    is_relative,
    margin_scale,
    region,
)

Scores = Mapping[int, Histogram]


def calibration_value(metric: str, scores: Scores) -> tuple[float | None, float | None, float]:
    """The calibration metric of one slice, an approximate variance, and the labelled count."""
    labelled = sum(h.total for h in scores.values())
    if labelled <= 0:
        return None, None, 0.0
    if metric == "calibration":
        value = fairness.calibration_in_the_large(scores)
        positives = scores.get(1)
        p = (positives.total if positives else 0.0) / labelled
        p_tilde = (p * labelled + 2.0) / (labelled + 4.0)  # plus-four: never zero
        return value, (score_variance(scores) + p_tilde * (1 - p_tilde)) / labelled, labelled
    return fairness.expected_calibration_error(scores), ece_variance(scores), labelled


def score_variance(scores: Scores) -> float:
    """The spread of the labelled scores (every score at its bucket's midpoint)."""
    histograms = list(scores.values())
    total = sum(histograms[1:], histograms[0])
    mids = distributions.bucket_midpoints(total.bounds, cap=1.0)
    weights = np.asarray(total.counts, dtype=float)
    mean = float(np.average(mids, weights=weights))
    return float(np.average((mids - mean) ** 2, weights=weights))


def ece_variance(scores: Scores) -> float:
    """Sum over buckets of (share of bucket)^2 times the variance of its positive rate."""
    bounds = next(iter(scores.values())).bounds
    zero = Histogram(bounds, (0.0,) * len(bounds))
    neg = np.asarray(scores.get(0, zero).counts, dtype=float)
    pos = np.asarray(scores.get(1, zero).counts, dtype=float)
    n = neg + pos
    total = float(n.sum())
    occupied = n > 0
    p = (pos[occupied] + 1) / (n[occupied] + 2)
    return float(np.sum((n[occupied] / total) ** 2 * p * (1 - p) / (n[occupied] + 2)))


class CalibrationMeasure:
    """Per slice: calibration of the candidate, bounded absolutely or against stable."""

    def measure(self, gate: Gate, versions: Versions) -> list[Measurement]:
        metric, relative = str(gate.metric), is_relative(gate)
        stable, candidate = versions.stable.labelled, versions.candidate.labelled
        found: list[Measurement] = []
        for key in versions.slice_keys():
            c_value, c_var, c_n = calibration_value(metric, candidate.get(key, {}))
            s_value, s_var, s_n = calibration_value(metric, stable.get(key, {}))
            if relative:
                estimate, variance = difference(c_value, c_var, s_value, s_var)
            else:
                estimate, variance = c_value, c_var
            found.append(
                Measurement(
                    gate=gate,
                    slice=key,
                    reference=None,
                    stable_value=s_value,
                    candidate_value=c_value,
                    estimate=estimate,
                    variance=variance,
                    acceptable=region(gate),
                    stable_samples=s_n,
                    candidate_samples=c_n,
                    needs_stable=relative,
                    margin_scale=margin_scale(gate),
                    stable_estimate=None if relative else s_value,
                    stable_variance=None if relative else s_var,
                )
            )
        return found
