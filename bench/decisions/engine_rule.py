"""fairshift's rules and the naive per-tick z-test, all on the engine's own measurements.

Every interval, the cumulative counts since the step began go through ``evaluate`` (all the
user's gates, so the Bonferroni share of ``alpha`` is the one a real rollout gets) and
``decide`` with ``StepClock(elapsed, 10 min, 60 min)``. The analysis comes from the rollout
spec a user would apply, read by the operator's parser; fairshift's second rule is the same
spec with the equal-opportunity gate declared ``primary: true`` (its cells then share 80% of
``alpha``, ``engine.gates.PRIMARY_SHARE``). fairshift rolls back when ``decide``
says ROLLBACK, promotes when it says ADVANCE, and warns at the first WARN outcome of the
drift gate. The naive rule uses the same measurements (estimate and variance of each
critical cell) and rolls back at the first look whose one-sided Wald z-test rejects
"within the margin" at 0.05, without any correction for looks or slices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

from bench.decisions.traffic import Stream
from bench.decisions.world import (
    BUDGET_SECONDS,
    CELLS,
    INTERVAL_SECONDS,
    LATENCY_BOUNDS,
    MINIMUM_SECONDS,
    PRIMARY_GATE,
    SCORE_BOUNDS,
    rollout_spec,
)
from fairshift.api.analysis import Analysis
from fairshift.api.spec import parse_spec
from fairshift.api.status import Outcome
from fairshift.engine.counts import BinaryCounts, Histogram, VersionCounts, slice_key
from fairshift.engine.decision import Action, StepClock, decide
from fairshift.engine.gates import CellResult, Evaluation, evaluate

NAIVE_Z = 1.6448536269514722  # one-sided 5%
KEYS = tuple(slice_key({"sex": s, "age_band": a}) for s, a in CELLS)


@dataclass(frozen=True)
class EngineRule:
    """One of fairshift's rules: the user's spec, with ``primary`` declared on that gate."""

    name: str
    primary: str | None = None


ENGINE_RULES = (EngineRule("fairshift"), EngineRule("fairshift, primary: tpr gate", PRIMARY_GATE))
"""The default spec, and the same spec with the gate the TPR drops regress declared primary."""


@cache
def analysis(primary: str | None = None) -> Analysis:
    """The analysis the operator would run for the spec (with ``primary`` declared)."""
    spec = parse_spec(rollout_spec(primary))
    assert spec.analysis is not None, "the benchmark's spec has an analysis"
    return spec.analysis


def version_counts(cum: Stream, tick: int, version: int) -> VersionCounts:
    """The counts of one version after ``tick + 1`` intervals of replication 0 of ``cum``."""
    cells: dict = {}
    scores: dict = {}
    for c, key in enumerate(KEYS):
        tp, fn, fp, tn = (float(x) for x in cum.labelled[0, tick, version, c])
        o = cum.outcomes[0, tick, version, c]
        cells[key] = BinaryCounts(
            predictions=float(cum.requests[0, tick, version, c]),
            selected=float(o[0] + o[2]),
            tp=tp,
            fp=fp,
            fn=fn,
            tn=tn,
        )
        scores[key] = Histogram(
            SCORE_BOUNDS, tuple(float(x) for x in cum.scores[0, tick, version, c])
        )
    latency = Histogram(LATENCY_BOUNDS, tuple(float(x) for x in cum.latency[0, tick, version]))
    requests = float(cum.requests[0, tick, version].sum())
    return VersionCounts(cells=cells, scores=scores, latency=latency, requests=requests)


def look(cum: Stream, tick: int, primary: str | None = None) -> Evaluation:
    return evaluate(analysis(primary), version_counts(cum, tick, 0), version_counts(cum, tick, 1))


def naive_rejects(cell: CellResult) -> bool:
    """One-sided Wald z-test of 'beyond the acceptable region' at 5%, on a critical cell."""
    m = cell.measurement
    if not m.gate.critical or cell.outcome is Outcome.INSUFFICIENT:
        return False
    if m.estimate is None or not m.variance or m.point_only:
        return False
    low, high = m.acceptable
    sd = math.sqrt(m.variance)
    return (m.estimate - high) / sd > NAIVE_Z or (low - m.estimate) / sd > NAIVE_Z


@dataclass
class EngineTimes:
    """Ticks (0-based) of each rule's events in one rollout; None when it never happened."""

    rollback: int | None = None
    promote: int | None = None
    warn: int | None = None
    naive_rollback: int | None = None
    naive_warn: int | None = None
    looks: int = 0


def record(times: EngineTimes, evaluation: Evaluation, tick: int, naive: bool) -> None:
    """Update fairshift's warning (and, with ``naive``, the naive rule) from one look."""
    if times.warn is None and any(c.outcome is Outcome.WARN for c in evaluation.cells):
        times.warn = tick
    if not naive:
        return
    if times.naive_rollback is None and any(naive_rejects(c) for c in evaluation.cells):
        times.naive_rollback = tick
    if times.naive_warn is None and any(
        naive_rejects_warning(c) for c in evaluation.cells if not c.critical
    ):
        times.naive_warn = tick


def naive_rejects_warning(cell: CellResult) -> bool:
    m = cell.measurement
    if cell.outcome is Outcome.INSUFFICIENT or m.estimate is None or not m.variance:
        return False
    low, high = m.acceptable
    sd = math.sqrt(m.variance)
    return (m.estimate - high) / sd > NAIVE_Z or (low - m.estimate) / sd > NAIVE_Z


def run_engine(
    cum: Stream, horizon: int, need_warn: bool = False, rule: EngineRule = ENGINE_RULES[0]
) -> EngineTimes:
    """Look at every interval until every event wanted is known or the horizon is reached.

    Drift flags are only wanted (``need_warn``) in the drift scenario. The naive z-test is
    scored beside the default rule only (its measurements do not depend on ``primary``).
    """
    times = EngineTimes()
    naive = rule.primary is None
    for tick in range(horizon):
        evaluation = look(cum, tick, rule.primary)
        times.looks += 1
        record(times, evaluation, tick, naive)
        if times.rollback is None and times.promote is None:
            clock = StepClock((tick + 1) * INTERVAL_SECONDS, MINIMUM_SECONDS, BUDGET_SECONDS)
            action = decide(evaluation, clock).action
            if action is Action.ROLLBACK:
                times.rollback = tick
            elif action in (Action.ADVANCE, Action.PROMOTE):
                times.promote = tick
        if finished(times, need_warn, naive):
            break
    return times


def finished(times: EngineTimes, need_warn: bool, naive: bool) -> bool:
    fairshift_done = times.rollback is not None or times.promote is not None
    if need_warn:
        fairshift_done = fairshift_done or times.warn is not None
        warned = times.warn is not None and (times.naive_warn is not None or not naive)
        return fairshift_done and (times.naive_rollback is not None or not naive) and warned
    return fairshift_done and (times.naive_rollback is not None or not naive)
