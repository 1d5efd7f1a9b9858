"""The runs: a year of a fair model (false alarms), drifts after a day (detection delays).

Every run is seeded by ``(seed, run number)``; replications are vectorised, so a run's cost
is one numpy pass per look whatever the number of replications.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import norm

from bench.guard.simulate import (
    GuardRule,
    WindowRule,
    differences,
    gaps,
    guard_plan,
    sample_look,
    sample_reference,
)
from bench.guard.world import (
    BASE_RATE,
    LABELLED,
    MARGIN,
    REFERENCE,
    SLICES,
    TPR,
    Scenario,
    Traffic,
)

FloatArray = npt.NDArray[np.float64]
DRIFT_START = 288  # the drift begins one day after promotion
DRIFT_HORIZON = 576  # and is followed for two days


@dataclass(frozen=True)
class NullResult:
    """Alarms raised on a model that never changes."""

    traffic: Traffic
    scenario: Scenario
    model_years: float
    breaches: int
    warnings: int
    window_alerts: int

    def per_year(self, count: int) -> float:
        return count / self.model_years


def run_null(traffic: Traffic, scenario: Scenario, reps: int, looks: int, seed: int) -> NullResult:
    """``reps`` fair models for ``looks`` looks; the guard restarts after each breach."""
    rng = np.random.default_rng(seed)
    reference = sample_reference(rng, traffic, scenario, reps)
    reference_gaps = gaps(reference)
    guard = GuardRule(reps, guard_plan(traffic, reference[0]))
    window = WindowRule(reps)
    warned = np.zeros(reps, dtype=bool)
    breaches = warnings = alerts = 0
    for look in range(looks):
        live = sample_look(rng, traffic, scenario, look, False, reps)
        breached, warning = guard.step(differences(live, reference_gaps, SLICES.min_samples))
        breaches += int(breached.sum())
        warnings += int((warning & ~warned).sum())
        warned = warning & ~breached
        guard.restart(breached)
        alerts += int(window.step(live, reference_gaps).sum())
    years = reps * looks / traffic.looks_per_year
    return NullResult(traffic, scenario, years, breaches, warnings, alerts)


@dataclass(frozen=True)
class DriftResult:
    """Minutes from the first drifted decision to each rule's first alarm (nan: missed)."""

    traffic: Traffic
    scenario: Scenario
    breach: FloatArray
    warning: FloatArray
    window: FloatArray
    oracle_minutes: float


def run_drift(traffic: Traffic, scenario: Scenario, reps: int, seed: int) -> DriftResult:
    """A day of the fair model, then group B's TPR drop, followed for two days."""
    rng = np.random.default_rng(seed)
    reference = sample_reference(rng, traffic, scenario, reps)
    reference_gaps = gaps(reference)
    guard = GuardRule(reps, guard_plan(traffic, reference[0]))
    window = WindowRule(reps)
    policy = guard.plan.policy
    first = {name: np.full(reps, np.nan) for name in ("breach", "warning", "window")}
    minutes = traffic.look_seconds / 60.0
    for look in range(DRIFT_START + DRIFT_HORIZON):
        drifted = look - traffic.label_delay_looks >= DRIFT_START
        live = sample_look(rng, traffic, scenario, look, drifted, reps)
        breached, warning = guard.step(differences(live, reference_gaps, SLICES.min_samples))
        alerted = window.step(live, reference_gaps)
        if look < DRIFT_START:
            guard.restart(breached)  # a false alarm before the drift: handled, guard restarted
            continue
        delay = (look - DRIFT_START + 1) * minutes
        for name, fired in (("breach", breached), ("warning", warning), ("window", alerted)):
            first[name] = np.where(np.isnan(first[name]) & fired, delay, first[name])
        if all(not np.isnan(values).any() for values in first.values()):
            break
    return DriftResult(
        traffic,
        scenario,
        first["breach"],
        first["warning"],
        first["window"],
        oracle_minutes(traffic, scenario, policy.looks_in(policy.breach_days)),
    )


def oracle_minutes(traffic: Traffic, scenario: Scenario, run_length_looks: float) -> float:
    """The one-look oracle: it knows the drift's start, its cell and the rates before it.

    It pools the drifted evidence of group B's TPR gap over ``n`` looks and runs one
    one-sided z-test at level ``1 / A`` (the chance of a false alarm the declared run length
    ``A`` allows a single look) against the true gap before the drift (no reference noise);
    its median time is the smallest ``n`` whose expected excess reaches the critical value,
    plus the label delay. Counts are the expected ones at the average mix.
    """
    positives_per_look = traffic.per_look * LABELLED * BASE_RATE * scenario.base_shares()
    drifted_tpr = TPR - scenario.tpr_drop
    z = float(norm.isf(1.0 / run_length_looks))
    excess = scenario.tpr_drop - MARGIN
    if excess <= 0:
        return math.inf
    for n in range(1, DRIFT_HORIZON + 1):
        variance = drifted_tpr * (1 - drifted_tpr) / (n * positives_per_look[1]) + TPR * (
            1 - TPR
        ) / (n * positives_per_look[REFERENCE])
        if excess >= z * math.sqrt(variance):
            return (traffic.label_delay_looks + n) * traffic.look_seconds / 60.0
    return math.inf
