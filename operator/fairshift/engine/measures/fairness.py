"""Fairness gates: per group, a metric against the reference group of the same version.

Each metric is a ``Gap`` function of (group counts, reference counts): selection-rate
difference, the opportunity gaps (reference minus group), equalized odds (the larger absolute
gap) and disparate impact (a ratio, tested as a log ratio by Katz when bounded absolutely).
Relative bounds compare the candidate's gap with stable's (a difference-in-differences) and
hold for every pair of groups in both roles, so a harm to the reference group is caught as
surely as a harm to any other (``either_role_region``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from fairshift.api.analysis import Gate
from fairshift.engine import intervals
from fairshift.engine.counts import BinaryCounts, SliceKey
from fairshift.engine.measures.base import (
    INF,
    FixedLook,
    Measurement,
    Population,
    Versions,
    absolute_region,
    difference,
    is_relative,
    margin_scale,
    relative_region,
)
from fairshift.engine.rates import Proportion, rate
from fairshift.engine.sequential import proportion_variance
from fairshift.engine.slices import Grouping, ReferencePolicy


@dataclass(frozen=True)
class GroupGap:
    """A fairness value of one group in one version, with its variance and sample size."""

    value: float | None
    variance: float | None
    samples: float
    log_value: float | None = None
    log_variance: float | None = None


Gap = Callable[[BinaryCounts, BinaryCounts], GroupGap]


def rate_gap(name: str, group_minus_reference: bool) -> Gap:
    """A difference of one rate between a group and the reference (either order)."""

    def gap(group: BinaryCounts, reference: BinaryCounts) -> GroupGap:
        g, r = rate(name, group), rate(name, reference)
        if g.value is None or r.value is None:
            return GroupGap(None, None, g.trials)
        value = g.value - r.value if group_minus_reference else r.value - g.value
        g_var, r_var = proportion_variance(g), proportion_variance(r)
        variance = None if g_var is None or r_var is None else g_var + r_var
        return GroupGap(value, variance, g.trials)

    return gap


def equalized_odds_gap(group: BinaryCounts, reference: BinaryCounts) -> GroupGap:
    """The larger in size of the TPR and FPR gaps."""
    tpr = GAPS["tpr_gap"](group, reference)
    fpr = GAPS["fpr_gap"](group, reference)
    larger = max((tpr, fpr), key=lambda g: -1.0 if g.value is None else abs(g.value))
    value = None if larger.value is None else abs(larger.value)
    return GroupGap(value, larger.variance, min(tpr.samples, fpr.samples))


def disparate_impact_gap(group: BinaryCounts, reference: BinaryCounts) -> GroupGap:
    """Selection-rate ratio; its log by Katz, with a variance that never claims certainty.

    The log variance is the larger of Katz's ``1/x1 - 1/n1 + 1/x2 - 1/n2`` and the delta-method
    variance of the plus-four rates, ``(1 - p~) / (n~ p~)`` per group, which stays positive when
    a group's selection rate is 0 or 1. The ratio's variance scales it by the larger of the
    ratio and the plus-four ratio, so a group never selected still has a positive variance.
    """
    g, r = rate("selection_rate", group), rate("selection_rate", reference)
    katz = intervals.katz_log_ratio(g, r)
    if katz is None or g.value is None or r.value is None or r.value == 0:
        return GroupGap(None, None, g.trials)
    log_variance = max(katz.variance, log_rate_variance(g) + log_rate_variance(r))
    value = g.value / r.value
    ratio_scale = max(value, plus_four_rate(g) / plus_four_rate(r))
    variance = ratio_scale * ratio_scale * log_variance
    return GroupGap(value, variance, g.trials, katz.estimate, log_variance)


def plus_four_rate(p: Proportion) -> float:
    """The rate with two pseudo-successes and two pseudo-failures (Agresti-Coull)."""
    return (p.successes + 2.0) / (p.trials + 4.0)


def log_rate_variance(p: Proportion) -> float:
    """Delta-method variance of ``log p`` from the plus-four rate (Agresti-Coull)."""
    p_tilde = plus_four_rate(p)
    return (1.0 - p_tilde) / ((p.trials + 4.0) * p_tilde)


GAPS: dict[str, Gap] = {
    "statistical_parity_difference": rate_gap("selection_rate", group_minus_reference=True),
    "tpr_gap": rate_gap("tpr", group_minus_reference=False),
    "fpr_gap": rate_gap("fpr", group_minus_reference=False),
    "equalized_odds": equalized_odds_gap,
    "disparate_impact": disparate_impact_gap,
}

SIGNED_GAPS = ("tpr_gap", "fpr_gap", "statistical_parity_difference")
"""Gaps whose sign only says which group is behind: fairness is about their magnitude."""


def references(
    stable: Population, candidate: Population, policy: ReferencePolicy
) -> dict[Grouping, SliceKey | None]:
    """One reference group per grouping, chosen on both versions' counts together."""
    chosen: dict[Grouping, SliceKey | None] = {}
    for grouping in candidate.groups:
        combined = dict(stable.groups.get(grouping, {}))
        for key, counts in candidate.groups[grouping].items():
            combined[key] = combined[key] + counts if key in combined else counts
        chosen[grouping] = policy.choose(
            combined, grouping, score=lambda c: rate("selection_rate", c).value
        )
    return chosen


class FairnessMeasure:
    """Per group: a fairness metric against the reference group of its grouping."""

    def measure(self, gate: Gate, versions: Versions) -> list[Measurement]:
        gap = GAPS[str(gate.metric)]
        refs = references(versions.stable, versions.candidate, versions.policy)
        found: list[Measurement] = []
        for grouping, groups in versions.candidate.groups.items():
            ref = refs.get(grouping)
            if ref is None or ref not in groups:
                continue
            stable_groups = versions.stable.groups.get(grouping, {})
            for key in sorted(groups):
                if key == ref:
                    continue
                c_gap = gap(groups[key], groups[ref])
                s_gap = None
                if key in stable_groups and ref in stable_groups:
                    s_gap = gap(stable_groups[key], stable_groups[ref])
                found.append(fairness_measurement(gate, key, ref, s_gap, c_gap, groups[key]))
        return found


def fairness_measurement(
    gate: Gate,
    key: SliceKey,
    ref: SliceKey,
    stable: GroupGap | None,
    candidate: GroupGap,
    candidate_counts: BinaryCounts,
) -> Measurement:
    common = Measurement(
        gate=gate,
        slice=key,
        reference=ref,
        stable_value=stable.value if stable else None,
        candidate_value=candidate.value,
        estimate=None,
        variance=None,
        acceptable=(-INF, INF),
        stable_samples=stable.samples if stable else 0.0,
        candidate_samples=candidate.samples,
        margin_scale=margin_scale(gate),
    )
    if is_relative(gate):
        s_value = stable.value if stable else None
        estimate, variance = difference(
            candidate.value, candidate.variance, s_value, stable.variance if stable else None
        )
        acceptable, note = either_role_region(gate, s_value)
        return replace(
            common, estimate=estimate, variance=variance, acceptable=acceptable, note=note
        )
    if gate.metric == "disparate_impact":
        return replace(
            common,
            estimate=candidate.log_value,
            variance=candidate.log_variance,
            acceptable=log_ratio_region(gate),
            needs_stable=False,
            log_scale=True,
            fixed=FixedLook("katz", (rate("selection_rate", candidate_counts),)),
            margin_scale=log_margin_scale(gate.threshold),
            stable_estimate=stable.log_value if stable else None,
            stable_variance=stable.log_variance if stable else None,
        )
    acceptable = absolute_region(gate)
    if gate.metric in SIGNED_GAPS and gate.bound_kind == "max":
        acceptable = (-gate.threshold, gate.threshold)  # a gap either way is a gap
    return replace(
        common,
        estimate=candidate.value,
        variance=candidate.variance,
        acceptable=acceptable,
        needs_stable=False,
        stable_estimate=stable.value if stable else None,
        stable_variance=stable.variance if stable else None,
    )


def log_ratio_region(gate: Gate) -> tuple[float, float]:
    """An absolute ratio bound on the log scale; ``min t <= 1`` (or ``max t >= 1``) holds
    in either direction: ``t <= ratio <= 1/t``, whichever group is the reference."""
    t = gate.threshold
    if gate.bound_kind == "min" and 0 < t <= 1:
        return (safe_log(t), -safe_log(t))
    if gate.bound_kind == "max" and t >= 1:
        return (-safe_log(t), safe_log(t))
    low, high = absolute_region(gate)
    return (safe_log(low), safe_log(high))


def either_role_region(gate: Gate, stable_value: float | None) -> tuple[tuple[float, float], str]:
    """The acceptable change of a group's fairness value, whichever group is the reference.

    A harm to the reference group shows up as the other groups moving the "wrong" way: their
    ratio to it rises, their gap to it turns negative. So a relative bound holds for every
    pair of groups in both roles: a signed gap's size may grow by at most the margin
    (``magnitude_region``), or, under ``maxDecrease``/``maxChange``, move by at most the
    margin either way; a ratio ``c`` to the reference may fall by at most ``t`` and so may the
    reference's ratio to the group, ``1/c``.
    """
    t = gate.threshold
    if gate.metric in SIGNED_GAPS:
        if gate.bound_kind == "maxIncrease":
            note = f"the gap's size may grow by at most {t:g}, in either direction"
            return magnitude_region(stable_value, t), note
        return (-t, t), f"the gap may move by at most {t:g}, whichever group is the reference"
    if gate.metric == "disparate_impact" and stable_value:
        note = f"the ratio may move by at most {t:g} with either group as the reference"
        return ratio_region(gate.bound_kind, stable_value, t), note
    return relative_region(gate), ""


def ratio_region(kind: str, s: float, t: float) -> tuple[float, float]:
    """Allowed ``c - s`` for a ratio ``s -> c`` with both ``c`` and ``1/c`` within ``kind``."""
    low, high = -INF, INF
    if kind in ("maxDecrease", "maxChange"):
        low = -t
        high = 1.0 / (1.0 / s - t) - s if 1.0 / s > t else INF
    if kind in ("maxIncrease", "maxChange"):
        high = min(high, t)
        low = max(low, 1.0 / (1.0 / s + t) - s)
    return low, high


def magnitude_region(stable_gap: float | None, margin: float) -> tuple[float, float]:
    """Acceptable candidate-minus-stable change of a signed gap under ``maxIncrease``.

    The gap's *magnitude* may grow by at most ``margin``: ``|c| <= |s| + margin``. For
    ``s >= 0`` that is ``-(2s + margin) <= c - s <= margin`` (mirrored for ``s < 0``); a
    stable gap near 0 gives ``|c - s| <= margin``. So a drop for the reference group, which
    shows up as a negative gap of the others, is caught as surely as a drop for a group.
    """
    s = abs(stable_gap or 0.0)
    if (stable_gap or 0.0) >= 0:
        return (-(2 * s + margin), margin)
    return (-margin, 2 * s + margin)


def log_margin_scale(threshold: float) -> float:
    """The scale of a ratio bound on the log scale; a bound of 0 (log -inf) gets one e-fold."""
    log_threshold = abs(safe_log(threshold))
    return max(log_threshold, 0.05) if math.isfinite(log_threshold) else 1.0


def safe_log(x: float) -> float:
    if x == INF:
        return INF
    if x == -INF or x <= 0:
        return -INF
    return math.log(x)
