"""Rate gates (selection rate, TPR, FPR, precision, accuracy) per slice, and the error rate.

A rate is bounded absolutely (``min``/``max``: the candidate's rate, Wilson on a single look)
or against stable (candidate minus stable, Newcombe on a single look).
"""

from __future__ import annotations

from fairshift.api.analysis import Gate
from fairshift.engine.counts import OVERALL, BinaryCounts, SliceKey
from fairshift.engine.measures.base import (
    FixedLook,
    Measurement,
    Versions,
    difference,
    is_relative,
    region,
)
from fairshift.engine.rates import Proportion, rate
from fairshift.engine.sequential import proportion_variance


def rate_measurement(
    gate: Gate, key: SliceKey, stable: Proportion | None, candidate: Proportion
) -> Measurement:
    """A rate (or the error rate) bounded absolutely or against stable."""
    relative = is_relative(gate)
    c_value, c_var = candidate.value, proportion_variance(candidate)
    s_value = stable.value if stable else None
    s_var = proportion_variance(stable) if stable else None
    if relative:
        estimate, variance = difference(c_value, c_var, s_value, s_var)
        fixed = FixedLook("newcombe", (candidate, stable)) if stable else FixedLook("wald")
    else:
        estimate, variance = c_value, c_var
        fixed = FixedLook("wilson", (candidate,))
    return Measurement(
        gate=gate,
        slice=key,
        reference=None,
        stable_value=s_value,
        candidate_value=c_value,
        estimate=estimate,
        variance=variance,
        acceptable=region(gate),
        stable_samples=stable.trials if stable else 0.0,
        candidate_samples=candidate.trials,
        needs_stable=relative,
        fixed=fixed,
        margin_scale=max(gate.threshold if relative else 0.0, 0.01),
        stable_estimate=None if relative else s_value,
        stable_variance=None if relative else s_var,
    )


def slice_counts(
    versions: Versions,
) -> list[tuple[SliceKey, BinaryCounts | None, BinaryCounts]]:
    """The overall population and every group the candidate has, with stable's counts."""
    s, c = versions.stable, versions.candidate
    pairs: list[tuple[SliceKey, BinaryCounts | None, BinaryCounts]] = [
        (OVERALL, s.overall, c.overall)
    ]
    for grouping, groups in c.groups.items():
        stable_groups = s.groups.get(grouping, {})
        pairs.extend((key, stable_groups.get(key), groups[key]) for key in sorted(groups))
    return pairs


class RateMeasure:
    """Per slice: a rate of the classifier's decisions."""

    def measure(self, gate: Gate, versions: Versions) -> list[Measurement]:
        metric = str(gate.metric)
        return [
            rate_measurement(
                gate, key, rate(metric, s_counts) if s_counts else None, rate(metric, c_counts)
            )
            for key, s_counts, c_counts in slice_counts(versions)
        ]


class ErrorRateMeasure:
    """Overall: errors per request."""

    def measure(self, gate: Gate, versions: Versions) -> list[Measurement]:
        stable, candidate = versions.stable.counts, versions.candidate.counts
        errors = Proportion(candidate.errors, candidate.requests)
        stable_errors = Proportion(stable.errors, stable.requests) if stable.requests else None
        return [rate_measurement(gate, OVERALL, stable_errors, errors)]
