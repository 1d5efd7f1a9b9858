"""Peers' rules on per-interval point estimates, vectorised over rollouts.

Every peer is handed the same per-slice metrics as fairshift (peers do not slice natively;
this is a generous comparison) and rolls back when any slice of any critical gate trips.
An undefined value (0/0 in an interval) is skipped, never counted as a failure (also
generous: Flagger counts a query without data as a failed check).

- Flagger: each interval is a check; it fails when any critical slice's point estimate is
  outside the gate's bound; rollback when failed checks reach ``threshold`` = 5 (Flagger's
  default; the count is not reset by passing checks).
- Argo Rollouts: each (gate, slice) is a metric with ``successCondition`` = within bound;
  rollback when any metric's failed measurements exceed ``failureLimit`` = 2 (Argo's
  default is 0: the first failure; 2 is a common, more tolerant setting).
- Kayenta: the judge's Mann-Whitney classifier at the end of every 10-interval window, on
  the window's 10 per-interval values of candidate against stable: the Hodges-Lehmann shift
  (candidate minus stable) with a 98% confidence interval (normal approximation of the
  rank-sum distribution); "High" when the lower bound exceeds 0.25 times the absolute
  shift estimate, "Low" when the upper bound is below minus that (Kayenta's ``tolerance``
  of 0.25 of the estimate); a metric fails in its harmful direction. Kayenta compares with
  stable only: the bounds of the user's gates do not enter. Fewer than 3 defined values on
  a side is "no data" (not a failure).

Drift (a warning gate) is scored separately: the same rule applied to the drift cells alone
gives the time the rule would flag drift. For Kayenta the drift metric is the mean score
(a Prometheus histogram's ``_sum / _count``), either direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench.decisions.points import Points

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

FLAGGER_THRESHOLD = 5
ARGO_FAILURE_LIMIT = 2
KAYENTA_WINDOW = 10
KAYENTA_Z = 2.3263478740408408  # two-sided 98%
KAYENTA_TOLERANCE = 0.25
NEVER = -1


def gate_failures(p: Points) -> tuple[BoolArray, BoolArray]:
    """Per interval, (critical cells failing, drift cells failing): shapes (R, T, 37), (R, T, 12).

    The bounds are the user's gates (``world.GATES``); NaN comparisons are False (skipped).
    """
    with np.errstate(invalid="ignore"):
        eo = (p.tpr_gap[:, :, 1] - p.tpr_gap[:, :, 0]) > 0.02
        four_fifths = p.impact[:, :, 1] < 0.8
        impact_change = (p.impact[:, :, 1] - p.impact[:, :, 0]) < -0.05
        accuracy = (p.accuracy[:, :, 1] - p.accuracy[:, :, 0]) < -0.02
        latency = p.p99[:, :, 1] > 0.5
        drift = p.psi > 0.1
    critical = np.concatenate([eo, four_fifths, impact_change, accuracy, latency], axis=-1)
    return critical, drift


def first_tick(flags: BoolArray) -> IntArray:
    """Index of the first True along axis 1 (intervals), NEVER when none."""
    found = flags.any(axis=1)
    result: IntArray = np.where(found, np.argmax(flags, axis=1), NEVER)
    return result


def flagger(failing: BoolArray) -> IntArray:
    """Rollback at the interval the count of failed checks reaches the threshold."""
    failed_checks = np.cumsum(failing.any(axis=-1), axis=1)
    return first_tick(failed_checks >= FLAGGER_THRESHOLD)


def argo(failing: BoolArray) -> IntArray:
    """Rollback at the interval some metric's failed measurements exceed the failure limit."""
    failures = np.cumsum(failing, axis=1)
    return first_tick((failures > ARGO_FAILURE_LIMIT).any(axis=-1))


@dataclass(frozen=True)
class Shift:
    """Hodges-Lehmann shift (candidate minus stable) and its confidence bounds."""

    estimate: FloatArray
    lower: FloatArray
    upper: FloatArray
    enough: BoolArray


def hodges_lehmann(stable: FloatArray, candidate: FloatArray) -> Shift:
    """Over the last axis (the window's values); NaN values are left out."""
    differences = candidate[..., :, None] - stable[..., None, :]
    flat = differences.reshape(*differences.shape[:-2], -1)
    ordered = np.sort(flat, axis=-1)  # NaN last
    n_c = np.sum(~np.isnan(candidate), axis=-1)
    n_s = np.sum(~np.isnan(stable), axis=-1)
    pairs = n_c * n_s
    spread = KAYENTA_Z * np.sqrt(pairs * (n_c + n_s + 1) / 12.0)
    low_rank = np.clip(np.floor(pairs / 2.0 - spread), 0, np.maximum(pairs - 1, 0)).astype(int)
    high_rank = np.maximum(pairs - 1 - low_rank, 0)
    take = lambda rank: np.take_along_axis(ordered, rank[..., None], -1)[..., 0]  # noqa: E731
    middle_low = np.maximum((pairs - 1) // 2, 0)
    middle_high = np.maximum(pairs // 2, 0)
    estimate = (take(middle_low) + take(middle_high)) / 2.0
    return Shift(estimate, take(low_rank), take(high_rank), (n_c >= 3) & (n_s >= 3))


def kayenta_cells(p: Points) -> tuple[list[tuple[FloatArray, int]], list[tuple[FloatArray, int]]]:
    """(values (R, T, 2, K), harmful direction) per metric: +1 increase, -1 decrease, 0 either."""
    critical = [(p.tpr_gap, 1), (p.impact, -1), (p.impact, -1), (p.accuracy, -1), (p.p99, 1)]
    return critical, [(p.mean_score, 0)]


def kayenta_window_fails(values: FloatArray, direction: int, end: int) -> BoolArray:
    """Which cells (R, K) the judge fails on the window ending at interval ``end``."""
    window = values[:, end - KAYENTA_WINDOW + 1 : end + 1]  # (R, W, 2, K)
    stable = np.moveaxis(window[:, :, 0], 1, -1)
    candidate = np.moveaxis(window[:, :, 1], 1, -1)
    shift = hodges_lehmann(stable, candidate)
    bound = KAYENTA_TOLERANCE * np.abs(shift.estimate)
    with np.errstate(invalid="ignore"):
        high = shift.lower > bound
        low = shift.upper < -bound
    harmful = {1: high, -1: low, 0: high | low}[direction]
    result: BoolArray = harmful & shift.enough
    return result


def kayenta(metrics: list[tuple[FloatArray, int]], horizon: int) -> IntArray:
    """Rollback at the end of the first window in which any cell of any metric fails."""
    reps = metrics[0][0].shape[0]
    flags = np.zeros((reps, horizon), dtype=bool)
    for end in range(KAYENTA_WINDOW - 1, horizon, KAYENTA_WINDOW):
        failing = [kayenta_window_fails(v, d, end).any(axis=-1) for v, d in metrics]
        flags[:, end] = np.any(failing, axis=0)
    return first_tick(flags)


def peer_times(p: Points, horizon: int) -> dict[str, dict[str, IntArray]]:
    """Per peer rule: the rollback tick and the drift-flag tick of every rollout."""
    critical, drift = gate_failures(p)
    k_critical, k_drift = kayenta_cells(p)
    return {
        "flagger": {"rollback": flagger(critical), "warn": flagger(drift)},
        "argo": {"rollback": argo(critical), "warn": argo(drift)},
        "kayenta": {"rollback": kayenta(k_critical, horizon), "warn": kayenta(k_drift, horizon)},
    }
