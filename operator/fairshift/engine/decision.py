"""The per-tick decision: from gate outcomes and the step's clock to advance, hold, pause or
roll back, with the reason a person reads in status and Events.

Rules, in order: a critical failure applies ``onFailure``; missing data never advances; a
warning holds, then pauses when the step's budget is spent; all gates passing once the step's
minimum duration is met advances (promotes after the last step); a spent budget without a
conclusion applies ``onInconclusive``; otherwise hold and keep collecting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist

from fairshift.api.status import Outcome, Verdict
from fairshift.engine.counts import slice_name
from fairshift.engine.gates import CellResult, Evaluation


class Action(StrEnum):
    ADVANCE = "advance"
    PROMOTE = "promote"
    HOLD = "hold"
    PAUSE = "pause"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class StepClock:
    """How long the current analysis has run, its minimum and its budget (seconds)."""

    elapsed: float
    minimum: float
    budget: float

    @property
    def minimum_met(self) -> bool:
        return self.elapsed >= self.minimum

    @property
    def budget_spent(self) -> bool:
        return self.elapsed >= self.budget


@dataclass(frozen=True)
class Decision:
    action: Action
    verdict: Verdict
    reason: str  # a CamelCase word for columns and Events
    message: str  # a sentence for people


def describe(cell: CellResult) -> str:
    m = cell.measurement
    where = slice_name(m.slice)
    value = "no value" if m.candidate_value is None else f"{m.candidate_value:.4g}"
    stable = "" if m.stable_value is None else f" (stable {m.stable_value:.4g})"
    why = f"; {m.note}" if m.note else ""
    return (
        f"gate {m.gate.name} ({m.gate.metric or 'query'} {m.gate.bound_kind} "
        f"{m.gate.threshold:g}) is {cell.outcome.value} on {where}: candidate {value}{stable}{why}"
    )


def first(cells: list[CellResult]) -> CellResult:
    from fairshift.engine.gates import excess

    return max(cells, key=excess)


def decide(
    evaluation: Evaluation,
    clock: StepClock,
    *,
    on_failure: str = "rollback",
    on_inconclusive: str = "pause",
    last_step: bool = False,
) -> Decision:
    """The action for this tick. Pure: everything it needs comes in as arguments."""
    failed = [c for c in evaluation.cells if c.outcome is Outcome.FAIL]
    if failed:
        action = Action.ROLLBACK if on_failure == "rollback" else Action.PAUSE
        return Decision(action, Verdict.FAILED, "GateFailed", describe(first(failed)))
    missing = [g for g in evaluation.gates if evaluation.gate_outcome(g) is Outcome.NO_DATA]
    warned = [c for c in evaluation.cells if c.outcome is Outcome.WARN]
    open_cells = [c for c in evaluation.cells if c.outcome is not Outcome.PASS]
    if not open_cells and not missing and clock.minimum_met:
        action = Action.PROMOTE if last_step else Action.ADVANCE
        message = "every gate passed on every slice"
        return Decision(action, Verdict.SUCCESSFUL, "GatesPassed", message)
    if clock.budget_spent and not missing and not warned and settled(evaluation):
        action = Action.PROMOTE if last_step else Action.ADVANCE
        final = sum(1 for c in open_cells if c.outcome is Outcome.PENDING)
        unjudged = len(open_cells) - final
        message = (
            f"every slice passed when the step's budget was spent: {final} slice checks on a "
            f"final one-sided look at alpha {evaluation.alpha:g}, {unjudged} had fewer than "
            "minSamples and were not judged"
        )
        return Decision(action, Verdict.SUCCESSFUL, "GatesPassed", message)
    if clock.budget_spent:
        return at_budget(missing, warned, open_cells, on_inconclusive)
    if missing:
        names = ", ".join(g.name for g in missing)
        return Decision(Action.HOLD, Verdict.RUNNING, "NoData", f"no data yet for {names}")
    if warned:
        return Decision(Action.HOLD, Verdict.RUNNING, "GateWarning", describe(first(warned)))
    waiting = "the step's minimum duration" if not open_cells else f"{len(open_cells)} slice checks"
    return Decision(Action.HOLD, Verdict.RUNNING, "Analysing", f"collecting evidence: {waiting}")


def settled(evaluation: Evaluation) -> bool:
    """At the end of the step's budget: no cell is beyond its bound, every pending cell is
    within it on a final fixed-sample look, and every gate passed somewhere.

    The final look happens once, at a time fixed in advance (the budget's end), so a one-sided
    normal bound at the analysis alpha is valid for it; promotion needs every cell to pass, so
    a harmful cell is promoted with a chance of at most alpha here plus alpha on the always-
    valid bounds before (intersection-union). A slice still short of ``minSamples`` (a rare
    intersection) is reported as not judged rather than holding the rollout forever: its
    decisions are part of its marginal groups and of the whole population, which were judged.
    """
    for cell in evaluation.cells:
        if cell.outcome is Outcome.PENDING and not final_look_passes(cell, evaluation.alpha):
            return False
        if cell.outcome not in (Outcome.PASS, Outcome.PENDING, Outcome.INSUFFICIENT):
            return False
    return all(
        any(c.outcome is Outcome.PASS for c in evaluation.of_gate(g)) for g in evaluation.gates
    )


def final_look_passes(cell: CellResult, alpha: float) -> bool:
    """The cell's one-sided normal bounds at ``alpha`` lie within its acceptable region."""
    m = cell.measurement
    if m.estimate is None or m.variance is None or not m.variance > 0:
        return False
    width = NormalDist().inv_cdf(1.0 - alpha) * math.sqrt(m.variance)
    low, high = m.acceptable
    return m.estimate - width >= low and m.estimate + width <= high


def at_budget(
    missing: Sequence[object],
    warned: list[CellResult],
    open_cells: list[CellResult],
    on_inconclusive: str,
) -> Decision:
    if warned:
        return Decision(Action.PAUSE, Verdict.INCONCLUSIVE, "GateWarning", describe(first(warned)))
    action = Action.ROLLBACK if on_inconclusive == "rollback" else Action.PAUSE
    if missing:
        return Decision(
            action, Verdict.INCONCLUSIVE, "NoData", "the step's budget was spent without data"
        )
    detail = describe(open_cells[0]) if open_cells else "no evidence"
    return Decision(
        action,
        Verdict.INCONCLUSIVE,
        "Inconclusive",
        f"the step's budget was spent without a conclusion; {detail}",
    )
