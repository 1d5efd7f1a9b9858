"""Counts per look, the guard's statistic and today's sliding-window alert, vectorised.

Each look draws, per replication and group, the labelled decisions that arrive in it
(Poisson), their labels and the model's decisions (binomials): no per-request simulation.
The guard rule uses the engine's own statistic (``engine.guard``: e-values, the
Shiryaev-Roberts step, the mixture and the thresholds of the engine's plan for this world);
``engine_check`` replays one replication through ``GuardPlan.look`` on real counts and
requires the same state, so the benchmark measures the engine, not a copy of it.

The sliding-window rule is what teams run today (Fiddler, Arize or TrustyAI metrics with a
Prometheus/Alertmanager rule): the gap over the last hour of labelled decisions, compared
with the same acceptable region, alerting after it has held ``for: 15m`` (four consecutive
five-minute evaluations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench.guard.world import (
    ATTRIBUTE,
    BASE_RATE,
    GATES,
    GROUPS,
    LABELLED,
    MARGIN,
    REFERENCE,
    SLICES,
    Scenario,
    Traffic,
    rates,
    shares,
)
from fairshift.engine.counts import BinaryCounts, VersionCounts, slice_key
from fairshift.engine.guard import (
    GuardPlan,
    GuardPolicy,
    log_e_values,
    mixture_log1p,
    plan_guard,
    shift_key,
    shiryaev_roberts_step,
)
from fairshift.engine.sequential import proportion_variances

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
TP, FN, FP, TN = range(4)
OTHERS = [g for g in range(len(GROUPS)) if g != REFERENCE]
SIDES = ("upper", "lower")
WINDOW_LOOKS = 12  # one hour of five-minute looks
FOR_LOOKS = 3  # "for: 15m": true now and at the three evaluations before


def sample_look(
    rng: np.random.Generator,
    traffic: Traffic,
    scenario: Scenario,
    look: int,
    drifted: bool,
    reps: int,
) -> FloatArray:
    """Labelled (tp, fn, fp, tn) per replication and group arriving at ``look``: shape (R, G, 4).

    The labels belong to decisions made ``label_delay_looks`` earlier, at that time's mix.
    """
    decided = look - traffic.label_delay_looks
    expected = traffic.per_look * LABELLED * shares(scenario, decided)
    labelled = rng.poisson(expected, size=(reps, len(GROUPS)))
    positives = rng.binomial(labelled, BASE_RATE)
    tpr, fpr = rates(scenario, drifted)
    tp = rng.binomial(positives, tpr)
    fp = rng.binomial(labelled - positives, fpr)
    counts = np.stack([tp, positives - tp, fp, labelled - positives - fp], axis=-1)
    return counts.astype(np.float64)


def sample_reference(
    rng: np.random.Generator, traffic: Traffic, scenario: Scenario, reps: int
) -> FloatArray:
    """The stable model's labelled counts over the hour before promotion: shape (R, G, 4)."""
    looks = [
        sample_look(rng, traffic, scenario, look, False, reps)
        for look in range(-traffic.reference_looks, 0)
    ]
    total: FloatArray = np.sum(looks, axis=0)
    return total


# --- the measurement of the two gaps (what engine.harm computes for these gates) ------------


@dataclass(frozen=True)
class Gaps:
    """Reference-group-minus-group gaps per (R, gate, non-reference group), with variances and
    the group's trials (the engine's sample size for the cell; 0 when the reference group has
    none, where the gap is undefined)."""

    value: FloatArray
    variance: FloatArray
    trials: FloatArray


def gaps(counts: FloatArray) -> Gaps:
    """TPR and FPR gaps of groups B and C against A, as ``engine.harm.group_gap`` defines them."""
    values, variances, trials = [], [], []
    for successes, failures in ((TP, FN), (FP, TN)):
        x = counts[..., successes]
        n = x + counts[..., failures]
        safe_n = np.maximum(n, 1.0)
        rate = x / safe_n
        variance = proportion_variances(np.minimum(x, safe_n), safe_n)
        values.append(rate[..., [REFERENCE]] - rate[..., OTHERS])
        variances.append(variance[..., [REFERENCE]] + variance[..., OTHERS])
        trials.append(np.where(n[..., [REFERENCE]] > 0, n[..., OTHERS], 0.0))
    return Gaps(np.stack(values, 1), np.stack(variances, 1), np.stack(trials, 1))


def regions(reference_gap: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``engine.harm.magnitude_region``: ``|gap| <= |reference gap| + margin``, as a DiD region."""
    s = np.abs(reference_gap)
    positive = reference_gap >= 0
    low = np.where(positive, -(2 * s + MARGIN), -MARGIN)
    high = np.where(positive, MARGIN, 2 * s + MARGIN)
    return low, high


@dataclass(frozen=True)
class Differences:
    """Live gap minus reference gap per (R, gate, group), its variance and region."""

    estimate: FloatArray
    variance: FloatArray
    low: FloatArray
    high: FloatArray
    judged: BoolArray


def differences(live: FloatArray, reference: Gaps, min_samples: int) -> Differences:
    now = gaps(live)
    low, high = regions(reference.value)
    judged = (now.trials >= min_samples) & (reference.trials >= min_samples)
    return Differences(
        now.value - reference.value, now.variance + reference.variance, low, high, judged
    )


# --- the guard: the engine's statistic -------------------------------------------------------


class GuardRule:
    """``log(1 + R)`` per (R, gate, group, side, shift), stepped with the engine's functions."""

    def __init__(self, reps: int, plan: GuardPlan) -> None:
        self.plan = plan
        self.shifts = np.array(plan.policy.shifts) * MARGIN
        self.state = np.zeros((reps, len(GATES), len(OTHERS), len(SIDES), len(self.shifts)))

    def step(self, d: Differences) -> tuple[BoolArray, BoolArray]:
        """One look; returns (breached, warning or worse) per replication."""
        excess = np.stack([d.estimate - d.high, d.low - d.estimate], axis=-1)
        variance = d.variance[..., None]
        log_e = np.stack(
            [log_e_values(excess, variance, float(shift)) for shift in self.shifts], axis=-1
        )
        stepped = shiryaev_roberts_step(self.state, log_e)
        self.state = np.where(d.judged[..., None, None], stepped, self.state)
        level = mixture_log1p(self.state, axis=-1).reshape(self.state.shape[0], -1).max(axis=1)
        return level >= self.plan.breach_log_threshold, level >= self.plan.warning_log_threshold

    def restart(self, which: BoolArray) -> None:
        self.state[which] = 0.0


# --- today's rule: a threshold on a sliding window, with "for: 15m" --------------------------


class WindowRule:
    """The gap over the last hour of labelled decisions beyond the region, held for 15 min."""

    def __init__(self, reps: int) -> None:
        self.buffer = np.zeros((WINDOW_LOOKS, reps, len(GROUPS), 4))
        self.position = 0
        self.held = np.zeros((reps, len(GATES), len(OTHERS)), dtype=np.int64)
        self.firing = np.zeros(reps, dtype=bool)

    def step(self, live: FloatArray, reference: Gaps) -> BoolArray:
        """One evaluation; returns per replication whether a new alert starts firing."""
        self.buffer[self.position % WINDOW_LOOKS] = live
        self.position += 1
        window = gaps(self.buffer.sum(axis=0))
        low, high = regions(reference.value)
        difference = window.value - reference.value
        beyond = (window.trials > 0) & ((difference > high) | (difference < low))
        self.held = np.where(beyond, self.held + 1, 0)
        firing = (self.held > FOR_LOOKS).any(axis=(1, 2))
        started = firing & ~self.firing
        self.firing = firing
        return started


# --- the engine on the same counts -----------------------------------------------------------


def guard_plan(traffic: Traffic, reference: FloatArray) -> GuardPlan:
    """The engine's plan for this world (reference of one replication: shape (G, 4))."""
    return plan_guard(GATES, SLICES, version_counts(reference), GuardPolicy(traffic.look_seconds))


def version_counts(counts: FloatArray) -> VersionCounts:
    """One replication's labelled counts (G, 4) as the engine's counts (predictions = labelled)."""
    cells = {}
    for g, name in enumerate(GROUPS):
        tp, fn, fp, tn = (float(x) for x in counts[g])
        n = tp + fn + fp + tn
        cells[slice_key({ATTRIBUTE: name})] = BinaryCounts(
            predictions=n, selected=tp + fp, tp=tp, fp=fp, fn=fn, tn=tn
        )
    return VersionCounts(cells=cells)


def engine_check(traffic: Traffic, scenario: Scenario, looks: int, seed: int) -> None:
    """Replay one replication through ``GuardPlan.look`` and require the benchmark's state.

    Raises AssertionError when the vectorised statistic differs from the engine's.
    """
    rng = np.random.default_rng(seed)
    reference = sample_reference(rng, traffic, scenario, 1)
    plan = guard_plan(traffic, reference[0])
    if plan.detectors != len(GATES) * len(OTHERS) * len(SIDES):
        raise AssertionError(f"the engine guards {plan.detectors} detectors, expected 8")
    rule = GuardRule(1, plan)
    ref_gaps = gaps(reference)
    state = plan.initial_state()
    for look in range(looks):
        live = sample_look(rng, traffic, scenario, look, look >= looks // 2, 1)
        rule.step(differences(live, ref_gaps, SLICES.min_samples))
        state = plan.look(state, version_counts(live[0])).state
    for i, gate in enumerate(GATES):
        for k, g in enumerate(OTHERS):
            values = state.cells[f"{gate.name}|{ATTRIBUTE}={GROUPS[g]}"]
            for side_index, side in enumerate(SIDES):
                for j, multiple in enumerate(plan.policy.shifts):
                    engine = values[shift_key(side, multiple)]
                    bench = float(rule.state[0, i, k, side_index, j])
                    if not math.isclose(engine, bench, rel_tol=1e-9, abs_tol=1e-9):
                        raise AssertionError(
                            f"{gate.name} {GROUPS[g]} {side}@{multiple}: engine {engine}, "
                            f"benchmark {bench}"
                        )
