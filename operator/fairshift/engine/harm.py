"""Harm measurements: for one gate, per slice, the estimate the statistics test and its margin.

Each ``Measurement`` puts a gate on a *test scale*: an ``estimate`` with a ``variance`` and the
``acceptable`` region the gate allows. ``min``/``max`` bound the candidate's own value;
``maxIncrease``/``maxDecrease``/``maxChange`` bound candidate minus stable (a
difference-in-differences for gaps). Disparate impact with ``min``/``max`` is tested as a log
ratio (Katz); latency quantiles as the share of requests slower than the bound; drift as a
bias-corrected divergence, or for KS with a time-uniform DKW band.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from fairshift.api.catalog import MetricFamily, latency_quantile, metric_info
from fairshift.api.spec import Gate, Slices
from fairshift.engine import distributions, fairness, intervals
from fairshift.engine.counts import (
    OVERALL,
    BinaryCounts,
    Histogram,
    SliceKey,
    VersionCounts,
    grouping_of,
)
from fairshift.engine.rates import Proportion, rate
from fairshift.engine.sequential import proportion_variance
from fairshift.engine.slices import Grouping, ReferencePolicy, aggregate, groupings

INF = math.inf
FixedMethod = Literal["wilson", "newcombe", "katz", "wald"]


@dataclass(frozen=True)
class FixedLook:
    """How a single look computes its exact interval: method and the proportions it needs."""

    method: FixedMethod
    proportions: tuple[Proportion, ...] = ()


@dataclass(frozen=True)
class Measurement:
    """One gate on one slice, ready for inference."""

    gate: Gate
    slice: SliceKey
    reference: SliceKey | None
    stable_value: float | None
    candidate_value: float | None
    estimate: float | None
    variance: float | None
    acceptable: tuple[float, float]
    stable_samples: float
    candidate_samples: float
    needs_stable: bool = True
    fixed: FixedLook = field(default_factory=lambda: FixedLook("wald"))
    log_scale: bool = False
    margin_scale: float = 0.01
    note: str = ""
    uniform_band: Callable[[float], float] | None = None  # alpha -> half-width (KS)
    point_only: bool = False  # a PromQL gate: a value without a variance

    @property
    def threshold(self) -> float:
        return self.gate.threshold


@dataclass(frozen=True)
class Population:
    """One version's counts summed into every analysed group, with the overall total."""

    groups: Mapping[Grouping, Mapping[SliceKey, BinaryCounts]]
    overall: BinaryCounts


def population(counts: VersionCounts, slices: Slices) -> Population:
    """Sum the finest cells into the marginal and intersection groups the spec asks for."""
    grouped = {
        g: aggregate(counts.cells, g) for g in groupings(slices.attributes, slices.intersections)
    }
    overall = sum(counts.cells.values(), BinaryCounts())
    return Population(grouped, overall)


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


# --- acceptable regions ---------------------------------------------------------------------


def relative_region(gate: Gate) -> tuple[float, float]:
    """Acceptable candidate-minus-stable region for a relative bound."""
    t = gate.threshold
    return {
        "maxIncrease": (-INF, t),
        "maxDecrease": (-t, INF),
        "maxChange": (-t, t),
    }[gate.bound_kind]


def absolute_region(gate: Gate) -> tuple[float, float]:
    return (gate.threshold, INF) if gate.bound_kind == "min" else (-INF, gate.threshold)


def is_relative(gate: Gate) -> bool:
    return gate.bound_kind in ("maxIncrease", "maxDecrease", "maxChange")


# --- rates of one slice ---------------------------------------------------------------------


def rate_measurement(
    gate: Gate, key: SliceKey, stable: Proportion | None, candidate: Proportion
) -> Measurement:
    """A rate (or the error rate) bounded absolutely or against stable."""
    s_value = stable.value if stable else None
    c_value = candidate.value
    c_var = proportion_variance(candidate)
    if is_relative(gate):
        s_var = proportion_variance(stable) if stable else None
        estimate = None if c_value is None or s_value is None else c_value - s_value
        variance = None if c_var is None or s_var is None else c_var + s_var
        fixed = FixedLook("newcombe", (candidate, stable)) if stable else FixedLook("wald")
        region = relative_region(gate)
    else:
        estimate, variance, region = c_value, c_var, absolute_region(gate)
        fixed = FixedLook("wilson", (candidate,))
    return Measurement(
        gate=gate,
        slice=key,
        reference=None,
        stable_value=s_value,
        candidate_value=c_value,
        estimate=estimate,
        variance=variance,
        acceptable=region,
        stable_samples=stable.trials if stable else 0.0,
        candidate_samples=candidate.trials,
        needs_stable=is_relative(gate),
        fixed=fixed,
        margin_scale=max(gate.threshold if is_relative(gate) else 0.0, 0.01),
    )


def rate_measurements(gate: Gate, stable: Population, candidate: Population) -> list[Measurement]:
    metric = str(gate.metric)
    found: list[Measurement] = []
    for key, s_counts, c_counts in slice_pairs(stable, candidate):
        found.append(
            rate_measurement(
                gate, key, rate(metric, s_counts) if s_counts else None, rate(metric, c_counts)
            )
        )
    return found


def slice_pairs(
    stable: Population, candidate: Population
) -> list[tuple[SliceKey, BinaryCounts | None, BinaryCounts]]:
    """The overall population and every group the candidate has, with stable's counts."""
    pairs: list[tuple[SliceKey, BinaryCounts | None, BinaryCounts]] = [
        (OVERALL, stable.overall, candidate.overall)
    ]
    for grouping, groups in candidate.groups.items():
        stable_groups = stable.groups.get(grouping, {})
        for key in sorted(groups):
            pairs.append((key, stable_groups.get(key), groups[key]))
    return pairs


# --- fairness: a group against the reference group of the same version ----------------------


@dataclass(frozen=True)
class GroupGap:
    """A fairness value of one group in one version, with its variance and sample size."""

    value: float | None
    variance: float | None
    samples: float
    log_value: float | None = None
    log_variance: float | None = None


def group_gap(metric: str, group: BinaryCounts, reference: BinaryCounts) -> GroupGap:
    """The fairness metric of ``group`` against ``reference`` (independent groups)."""
    if metric == "disparate_impact":
        return disparate_impact_gap(group, reference)
    if metric == "equalized_odds":
        tpr = group_gap("tpr_gap", group, reference)
        fpr = group_gap("fpr_gap", group, reference)
        larger = max((tpr, fpr), key=lambda g: -1.0 if g.value is None else abs(g.value))
        value = None if larger.value is None else abs(larger.value)
        return GroupGap(value, larger.variance, min(tpr.samples, fpr.samples))
    base = {"statistical_parity_difference": "selection_rate", "tpr_gap": "tpr", "fpr_gap": "fpr"}
    name = base[metric]
    g, r = rate(name, group), rate(name, reference)
    if g.value is None or r.value is None:
        return GroupGap(None, None, g.trials)
    value = g.value - r.value if metric == "statistical_parity_difference" else r.value - g.value
    g_var, r_var = proportion_variance(g), proportion_variance(r)
    variance = None if g_var is None or r_var is None else g_var + r_var
    return GroupGap(value, variance, g.trials)


def disparate_impact_gap(group: BinaryCounts, reference: BinaryCounts) -> GroupGap:
    """Selection-rate ratio; its log by Katz, with a variance that never claims certainty.

    The log variance is the larger of Katz's ``1/x1 - 1/n1 + 1/x2 - 1/n2`` and the delta-method
    variance of the plus-four rates, ``(1 - p~) / (n~ p~)`` per group, which stays positive when
    a group's selection rate is 0 or 1.
    """
    g, r = rate("selection_rate", group), rate("selection_rate", reference)
    katz = intervals.katz_log_ratio(g, r)
    if katz is None or g.value is None or r.value is None or r.value == 0:
        return GroupGap(None, None, g.trials)
    log_variance = max(katz.variance, log_rate_variance(g) + log_rate_variance(r))
    value = g.value / r.value
    ratio_scale = max(value, plus_four_rate(g) / plus_four_rate(r))  # never 0: no certainty
    variance = ratio_scale * ratio_scale * log_variance
    return GroupGap(value, variance, g.trials, katz.estimate, log_variance)


def plus_four_rate(p: Proportion) -> float:
    """The rate with two pseudo-successes and two pseudo-failures (Agresti-Coull)."""
    return (p.successes + 2.0) / (p.trials + 4.0)


def log_rate_variance(p: Proportion) -> float:
    """Delta-method variance of ``log p`` from the plus-four rate (Agresti-Coull)."""
    p_tilde = plus_four_rate(p)
    return (1.0 - p_tilde) / ((p.trials + 4.0) * p_tilde)


def fairness_measurements(
    gate: Gate,
    stable: Population,
    candidate: Population,
    refs: Mapping[Grouping, SliceKey | None],
) -> list[Measurement]:
    metric = str(gate.metric)
    found: list[Measurement] = []
    for grouping, groups in candidate.groups.items():
        ref = refs.get(grouping)
        if ref is None or ref not in groups:
            continue
        stable_groups = stable.groups.get(grouping, {})
        for key in sorted(groups):
            if key == ref:
                continue
            c_gap = group_gap(metric, groups[key], groups[ref])
            s_gap = None
            if key in stable_groups and ref in stable_groups:
                s_gap = group_gap(metric, stable_groups[key], stable_groups[ref])
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
    )
    if is_relative(gate):
        estimate, variance = difference(candidate, stable)
        region, note = either_role_region(gate, stable.value if stable else None)
        return replace(
            common,
            estimate=estimate,
            variance=variance,
            acceptable=region,
            margin_scale=max(gate.threshold, 0.01),
            note=note,
        )
    if gate.metric == "disparate_impact":
        low, high = absolute_region(gate)
        region = (safe_log(low), safe_log(high))
        if gate.bound_kind == "min" and 0 < gate.threshold <= 1:
            region = (safe_log(gate.threshold), -safe_log(gate.threshold))  # either direction
        g = rate("selection_rate", candidate_counts)
        return replace(
            common,
            estimate=candidate.log_value,
            variance=candidate.log_variance,
            acceptable=region,
            needs_stable=False,
            log_scale=True,
            fixed=FixedLook("katz", (g,)),
            margin_scale=log_margin_scale(gate.threshold),
        )
    region = absolute_region(gate)
    if gate.metric in SIGNED_GAPS and gate.bound_kind == "max":
        region = (-gate.threshold, gate.threshold)  # a gap either way is a gap
    return replace(
        common,
        estimate=candidate.value,
        variance=candidate.variance,
        acceptable=region,
        needs_stable=False,
        margin_scale=max(abs(gate.threshold), 0.01),
    )


def difference(candidate: GroupGap, stable: GroupGap | None) -> tuple[float | None, float | None]:
    """Candidate minus stable (a difference-in-differences for gaps) and its variance."""
    if stable is None or stable.value is None or candidate.value is None:
        return None, None
    variance = None
    if stable.variance is not None and candidate.variance is not None:
        variance = stable.variance + candidate.variance
    return candidate.value - stable.value, variance


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


SIGNED_GAPS = ("tpr_gap", "fpr_gap", "statistical_parity_difference")
"""Gaps whose sign only says which group is behind: fairness is about their magnitude."""


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


# --- calibration ----------------------------------------------------------------------------


def calibration_value(
    metric: str, scores: Mapping[int, Histogram]
) -> tuple[float | None, float | None, float]:
    """The calibration metric of one slice, an approximate variance, and the labelled count."""
    labelled = sum(h.total for h in scores.values())
    if labelled <= 0:
        return None, None, 0.0
    if metric == "calibration":
        value = fairness.calibration_in_the_large(scores)
        positives = scores.get(1)
        p = (positives.total if positives else 0.0) / labelled
        spread = score_variance(scores)
        p_tilde = (p * labelled + 2.0) / (labelled + 4.0)  # plus-four: never zero
        return value, (spread + p_tilde * (1 - p_tilde)) / labelled, labelled
    value = fairness.expected_calibration_error(scores)
    return value, ece_variance(scores), labelled


def score_variance(scores: Mapping[int, Histogram]) -> float:
    histograms = list(scores.values())
    total = sum(histograms[1:], histograms[0])
    mids = distributions.bucket_midpoints(total.bounds, cap=1.0)
    weights = np.asarray(total.counts, dtype=float)
    mean = float(np.average(mids, weights=weights))
    return float(np.average((mids - mean) ** 2, weights=weights))


def ece_variance(scores: Mapping[int, Histogram]) -> float:
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


def grouped_histograms(
    histograms: Mapping[SliceKey, Histogram], keys: Iterable[SliceKey]
) -> dict[SliceKey, Histogram]:
    """The histogram of every slice in ``keys`` that has one: cells summed once per grouping."""
    wanted = list(keys)
    by_grouping = {g: aggregate(histograms, g) for g in {grouping_of(k) for k in wanted}}
    return {k: h for k in wanted if (h := by_grouping[grouping_of(k)].get(k)) is not None}


def grouped_scores(
    labelled: Mapping[SliceKey, Mapping[int, Histogram]], keys: Iterable[SliceKey]
) -> dict[SliceKey, dict[int, Histogram]]:
    """Labelled score histograms of every slice in ``keys``, summed once per grouping."""
    wanted = list(keys)
    result: dict[SliceKey, dict[int, Histogram]] = {key: {} for key in wanted}
    for label in sorted({label for by_label in labelled.values() for label in by_label}):
        of_label = {
            cell: by_label[label] for cell, by_label in labelled.items() if label in by_label
        }
        for key, histogram in grouped_histograms(of_label, wanted).items():
            result[key][label] = histogram
    return result


def calibration_measurements(
    gate: Gate, stable: VersionCounts, candidate: VersionCounts, keys: list[SliceKey]
) -> list[Measurement]:
    metric = str(gate.metric)
    found: list[Measurement] = []
    s_scores = grouped_scores(stable.labelled_scores, keys)
    c_scores = grouped_scores(candidate.labelled_scores, keys)
    for key in keys:
        c_value, c_var, c_n = calibration_value(metric, c_scores[key])
        s_value, s_var, s_n = calibration_value(metric, s_scores[key])
        if is_relative(gate):
            estimate, variance = difference(
                GroupGap(c_value, c_var, c_n), GroupGap(s_value, s_var, s_n)
            )
            region = relative_region(gate)
        else:
            estimate, variance, region = c_value, c_var, absolute_region(gate)
        found.append(
            Measurement(
                gate=gate,
                slice=key,
                reference=None,
                stable_value=s_value,
                candidate_value=c_value,
                estimate=estimate,
                variance=variance,
                acceptable=region,
                stable_samples=s_n,
                candidate_samples=c_n,
                needs_stable=is_relative(gate),
                margin_scale=max(abs(gate.threshold), 0.01),
            )
        )
    return found


# --- drift: candidate's score distribution against stable's --------------------------------


def time_uniform_dkw(samples: float, alpha: float) -> float:
    """Half-width of a time-uniform DKW band for an empirical CDF (Howard & Ramdas, 2022)."""
    if samples <= 0:
        return INF
    n = max(samples, 1.0)
    return 0.85 * math.sqrt((math.log(math.log(math.e * n)) + 0.8 * math.log(1612 / alpha)) / n)


def divergence_measurement(
    gate: Gate, key: SliceKey, stable: Histogram, candidate: Histogram
) -> Measurement:
    """PSI/JS bias-corrected against its no-drift expectation; KS with a DKW band."""
    n_s, n_c = stable.total, candidate.total
    common = Measurement(
        gate=gate,
        slice=key,
        reference=None,
        stable_value=0.0,
        candidate_value=None,
        estimate=None,
        variance=None,
        acceptable=(-INF, gate.threshold),
        stable_samples=n_s,
        candidate_samples=n_c,
        margin_scale=max(gate.threshold, 0.01),
    )
    if gate.metric == "score_ks":
        value = distributions.ks_bound(stable, candidate)
        return replace(
            common,
            candidate_value=value,
            estimate=value,
            variance=None,
            uniform_band=lambda alpha: (
                time_uniform_dkw(n_s, alpha / 2) + time_uniform_dkw(n_c, alpha / 2)
            ),
            note="time-uniform DKW band",
        )
    occupied = sum(1 for a, b in zip(stable.counts, candidate.counts, strict=True) if a + b > 0)
    dof = max(occupied - 1, 1)
    inverse_n = (1 / n_s + 1 / n_c) if n_s > 0 and n_c > 0 else INF
    scale = 1.0 if gate.metric == "score_psi" else 1.0 / 8.0
    raw = (
        distributions.psi(stable, candidate)
        if gate.metric == "score_psi"
        else distributions.jensen_shannon(stable, candidate)
    )
    estimate = None if raw is None else raw - scale * dof * inverse_n
    variance = None
    if raw is not None and inverse_n < INF:
        variance = scale * scale * (2 * dof * inverse_n**2 + 4 * raw * inverse_n)
    return replace(
        common,
        candidate_value=raw,
        estimate=estimate,
        variance=variance,
        note="bias-corrected against the no-drift expectation",
    )


def drift_measurements(
    gate: Gate, stable: VersionCounts, candidate: VersionCounts, keys: list[SliceKey]
) -> list[Measurement]:
    found: list[Measurement] = []
    s_hists = grouped_histograms(stable.scores, keys)
    c_hists = grouped_histograms(candidate.scores, keys)
    for key in keys:
        s_hist, c_hist = s_hists.get(key), c_hists.get(key)
        if s_hist is None or c_hist is None or s_hist.bounds != c_hist.bounds:
            continue
        found.append(divergence_measurement(gate, key, s_hist, c_hist))
    return found


# --- latency --------------------------------------------------------------------------------


def latency_measurement(
    gate: Gate, stable: Histogram | None, candidate: Histogram | None
) -> list[Measurement]:
    """The share of candidate requests slower than the bound, against ``1 - q``."""
    if candidate is None:
        return []
    q = latency_quantile(str(gate.metric))
    s_quantile = distributions.quantile(stable, q) if stable is not None else None
    limit: float | None = gate.threshold
    if gate.bound_kind == "maxIncrease":
        limit = None if s_quantile is None else s_quantile + gate.threshold
    slow = distributions.exceedance(candidate, limit) if limit is not None else None
    allowed = 1.0 - q
    return [
        Measurement(
            gate=gate,
            slice=OVERALL,
            reference=None,
            stable_value=s_quantile,
            candidate_value=distributions.quantile(candidate, q),
            estimate=slow.value if slow else None,
            variance=proportion_variance(slow) if slow else None,
            acceptable=(-INF, allowed),
            stable_samples=stable.total if stable is not None else 0.0,
            candidate_samples=candidate.total,
            needs_stable=gate.bound_kind == "maxIncrease",
            fixed=FixedLook("wilson", (slow,)) if slow else FixedLook("wald"),
            margin_scale=allowed,
            note=f"share of requests slower than {limit:.4g}s; at most {allowed:.4g} allowed"
            if limit is not None
            else "stable latency unknown",
        )
    ]


# --- PromQL gates ---------------------------------------------------------------------------


def query_measurement(gate: Gate, candidate: VersionCounts) -> Measurement:
    value = candidate.custom.get(gate.name)
    return Measurement(
        gate=gate,
        slice=OVERALL,
        reference=None,
        stable_value=None,
        candidate_value=value,
        estimate=value,
        variance=None,
        acceptable=absolute_region(gate),
        stable_samples=0.0,
        candidate_samples=0.0 if value is None else INF,
        needs_stable=False,
        point_only=True,
        note="PromQL gate: compared as a point value",
    )


# --- all measurements of a gate -------------------------------------------------------------


def measure_gate(
    gate: Gate,
    slices: Slices,
    stable: VersionCounts,
    candidate: VersionCounts,
    policy: ReferencePolicy | None = None,
    populations: tuple[Population, Population] | None = None,
) -> list[Measurement]:
    """Every slice measurement of ``gate`` (empty when the data has none).

    ``populations`` (stable's and candidate's groups) may be passed in when several gates are
    measured on the same counts, so the groups are summed once per look.
    """
    if gate.query is not None:
        return [query_measurement(gate, candidate)]
    info = metric_info(str(gate.metric))
    s_pop, c_pop = populations or (population(stable, slices), population(candidate, slices))
    keys = [key for key, _, _ in slice_pairs(s_pop, c_pop)]
    if info.family is MetricFamily.RATE:
        return rate_measurements(gate, s_pop, c_pop)
    if info.family is MetricFamily.FAIRNESS:
        reference = policy or ReferencePolicy.parse(slices.reference, slices.min_samples)
        refs = references(s_pop, c_pop, reference)
        return fairness_measurements(gate, s_pop, c_pop, refs)
    if info.family is MetricFamily.CALIBRATION:
        return calibration_measurements(gate, stable, candidate, keys)
    if info.family is MetricFamily.DRIFT:
        return drift_measurements(gate, stable, candidate, keys)
    if info.family is MetricFamily.LATENCY:
        return latency_measurement(gate, stable.latency, candidate.latency)
    errors = Proportion(candidate.errors, candidate.requests)
    stable_errors = Proportion(stable.errors, stable.requests) if stable.requests else None
    return [rate_measurement(gate, OVERALL, stable_errors, errors)]


MeasureFunction = Callable[[Gate, Slices, VersionCounts, VersionCounts], list[Measurement]]
