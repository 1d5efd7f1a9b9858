"""Group fairness metrics of a binary classifier, computed from per-group counts.

Two families, as in the literature:

- *Group vs reference* (AIF360 style), per group: disparate impact (selection-rate ratio to
  the reference group), statistical parity difference (group minus reference), and the
  opportunity gaps ``tpr_gap`` / ``fpr_gap`` (reference minus group) with equalized odds as the
  larger absolute gap.
- *Between groups* (Fairlearn style), per grouping: the difference (max - min) and ratio
  (min / max) of a rate over all groups whose rate is defined.

Calibration (calibration-in-the-large and expected calibration error) comes from per-label
score histograms. A rate with an empty denominator is undefined (None), never 0, and
undefined inputs make every value derived from them undefined.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fairshift.engine.counts import BinaryCounts, Histogram, SliceKey
from fairshift.engine.distributions import bucket_midpoints
from fairshift.engine.rates import (
    Proportion,
    accuracy,
    false_positive_rate,
    positive_predictive_value,
    selection_rate,
    true_positive_rate,
)

RateFunction = Callable[[BinaryCounts], Proportion]
FloatArray = npt.NDArray[np.float64]

SCORE_CAP = 1.0
"""Scores are probabilities: a ``+Inf`` score bucket is taken to end at 1."""


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def _difference(minuend: float | None, subtrahend: float | None) -> float | None:
    if minuend is None or subtrahend is None:
        return None
    return minuend - subtrahend


def _larger_magnitude(first: float | None, second: float | None) -> float | None:
    if first is None or second is None:
        return None
    return max(abs(first), abs(second))


@dataclass(frozen=True)
class GroupMetrics:
    """Metrics of one group; the reference-relative ones are None without a reference.

    ``tpr_gap`` and ``fpr_gap`` are reference minus group (a positive ``tpr_gap`` means the
    group's qualified members are selected less often than the reference's);
    ``equalized_odds`` is ``max(|tpr_gap|, |fpr_gap|)``, undefined unless both gaps are.
    """

    key: SliceKey
    n: float
    selection_rate: float | None
    tpr: float | None
    fpr: float | None
    ppv: float | None
    accuracy: float | None
    disparate_impact: float | None
    statistical_parity_difference: float | None
    tpr_gap: float | None
    fpr_gap: float | None
    equalized_odds: float | None


def _metrics_against(
    key: SliceKey, counts: BinaryCounts, reference: BinaryCounts | None
) -> GroupMetrics:
    selection = selection_rate(counts).value
    tpr = true_positive_rate(counts).value
    fpr = false_positive_rate(counts).value
    ref_selection = selection_rate(reference).value if reference is not None else None
    ref_tpr = true_positive_rate(reference).value if reference is not None else None
    ref_fpr = false_positive_rate(reference).value if reference is not None else None
    tpr_gap = _difference(ref_tpr, tpr)
    fpr_gap = _difference(ref_fpr, fpr)
    return GroupMetrics(
        key=key,
        n=counts.predictions,
        selection_rate=selection,
        tpr=tpr,
        fpr=fpr,
        ppv=positive_predictive_value(counts).value,
        accuracy=accuracy(counts).value,
        disparate_impact=_ratio(selection, ref_selection),
        statistical_parity_difference=_difference(selection, ref_selection),
        tpr_gap=tpr_gap,
        fpr_gap=fpr_gap,
        equalized_odds=_larger_magnitude(tpr_gap, fpr_gap),
    )


def group_metrics(
    groups: Mapping[SliceKey, BinaryCounts], reference: SliceKey | None
) -> dict[SliceKey, GroupMetrics]:
    """Metrics of every group; relative ones against ``reference`` (None if it is absent)."""
    reference_counts = groups.get(reference) if reference is not None else None
    return {key: _metrics_against(key, counts, reference_counts) for key, counts in groups.items()}


@dataclass(frozen=True)
class Spread:
    """Between-groups spread of one rate: ``max - min`` and ``min / max`` (Fairlearn)."""

    difference: float | None
    ratio: float | None


def spread(groups: Mapping[SliceKey, BinaryCounts], rate: RateFunction) -> Spread:
    """Spread of ``rate`` over the groups where it is defined.

    A spread needs two groups to compare: with fewer than two defined values it is undefined
    (both None), never a perfect 0 / 1.
    """
    values = [v for c in groups.values() if (v := rate(c).value) is not None]
    if len(values) < 2:
        return Spread(None, None)
    low, high = min(values), max(values)
    return Spread(difference=high - low, ratio=_ratio(low, high))


@dataclass(frozen=True)
class Disparities:
    """Fairlearn's between-groups disparity metrics for one grouping.

    Equalized odds combines the TPR and FPR spreads as Fairlearn's ``worst_case``: the larger
    difference and the smaller ratio; it is undefined unless both spreads are defined.
    """

    demographic_parity_difference: float | None
    demographic_parity_ratio: float | None
    equalized_odds_difference: float | None
    equalized_odds_ratio: float | None
    equal_opportunity_difference: float | None
    equal_opportunity_ratio: float | None


def _worst_of(
    first: float | None, second: float | None, pick: Callable[[float, float], float]
) -> float | None:
    if first is None or second is None:
        return None
    return float(pick(first, second))


def disparities(groups: Mapping[SliceKey, BinaryCounts]) -> Disparities:
    """Between-groups disparities of a grouping (difference = max - min, ratio = min / max)."""
    parity = spread(groups, selection_rate)
    opportunity = spread(groups, true_positive_rate)
    false_alarms = spread(groups, false_positive_rate)
    return Disparities(
        demographic_parity_difference=parity.difference,
        demographic_parity_ratio=parity.ratio,
        equalized_odds_difference=_worst_of(opportunity.difference, false_alarms.difference, max),
        equalized_odds_ratio=_worst_of(opportunity.ratio, false_alarms.ratio, min),
        equal_opportunity_difference=opportunity.difference,
        equal_opportunity_ratio=opportunity.ratio,
    )


def _label_counts(
    scores_by_label: Mapping[int, Histogram],
) -> tuple[FloatArray, FloatArray, FloatArray] | None:
    """Bucket midpoints, counts with label 0 and counts with label 1 (None if no bounds)."""
    histograms = list(scores_by_label.values())
    if not histograms:
        return None
    bounds = histograms[0].bounds
    if any(h.bounds != bounds for h in histograms):
        raise ValueError("score histograms of both labels must share their bucket bounds")
    empty = Histogram(bounds, (0.0,) * len(bounds))
    negatives = np.asarray(scores_by_label.get(0, empty).counts, dtype=np.float64)
    positives = np.asarray(scores_by_label.get(1, empty).counts, dtype=np.float64)
    return bucket_midpoints(bounds, cap=SCORE_CAP), negatives, positives


def calibration_in_the_large(scores_by_label: Mapping[int, Histogram]) -> float | None:
    """Mean predicted score minus observed positive rate, over labelled predictions.

    Each score is approximated by its bucket's midpoint (first bucket from 0, a ``+Inf``
    bucket capped at 1), so the result is exact only up to half a bucket width. Positive means
    the model over-predicts. None without labelled scores.
    """
    split = _label_counts(scores_by_label)
    if split is None:
        return None
    midpoints, negatives, positives = split
    labelled = float(np.sum(negatives + positives))
    if labelled <= 0:
        return None
    mean_score = float(np.sum(midpoints * (negatives + positives))) / labelled
    return mean_score - float(np.sum(positives)) / labelled


def expected_calibration_error(scores_by_label: Mapping[int, Histogram]) -> float | None:
    """ECE: the bucket-weighted mean of ``|mean score - positive rate|`` over score buckets.

    The bucket's mean score is approximated by its midpoint (see
    :func:`calibration_in_the_large`); empty buckets weigh nothing. None without labelled
    scores.
    """
    split = _label_counts(scores_by_label)
    if split is None:
        return None
    midpoints, negatives, positives = split
    per_bucket = negatives + positives
    labelled = float(np.sum(per_bucket))
    if labelled <= 0:
        return None
    occupied = per_bucket > 0
    positive_rate = positives[occupied] / per_bucket[occupied]
    gaps = np.abs(midpoints[occupied] - positive_rate)
    return float(np.sum(per_bucket[occupied] * gaps)) / labelled
