"""When an analysis is due, and what its result means for the step.

``due_window`` is asked twice with the same answer: by the executor before planning (should
it collect metrics now, and for which window?) and by the planner, which uses a result only
for the window it was collected for. ``judge`` turns a result into the step's decision.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from fairshift.api.durations import parse_duration
from fairshift.api.spec import ModelRolloutSpec
from fairshift.api.status import AlphaLedger, ModelRolloutStatus, Phase, Verdict
from fairshift.api.times import seconds_between
from fairshift.engine.decision import Action, Decision, StepClock, decide
from fairshift.engine.gates import Evaluation, evidence
from fairshift.engine.machine import DESIRED, Event
from fairshift.planning.draft import Draft
from fairshift.planning.observation import (
    AnalysisResult,
    AnalysisWindow,
    DeploymentState,
    Observation,
)
from fairshift.planning.transitions import Happening, record

MAX_CONSECUTIVE_ERRORS = 5
KEPT_EVIDENCE = 12
CANDIDATE_RECHECK = 5.0


class Readiness(Enum):
    READY = "ready"
    WAITING = "waiting"
    DEADLINE_PASSED = "deadline-passed"


def candidate_readiness(
    spec: ModelRolloutSpec, status: ModelRolloutStatus, target: DeploymentState | None, now_s: float
) -> Readiness:
    """Whether the candidate runs; ``now_s`` is the seconds since the step started."""
    if target is None:
        return Readiness.WAITING
    if spec.routing.kind == "replicas" and status.canary_weight == 0:
        return Readiness.READY
    if target.available:
        return Readiness.READY
    if now_s > parse_duration(spec.strategy.progress_deadline):
        return Readiness.DEADLINE_PASSED
    return Readiness.WAITING


def analysing_step(spec: ModelRolloutSpec, status: ModelRolloutStatus) -> bool:
    """The current phase and step analyse metrics (shadow, or a canary ``analyze`` step)."""
    if spec.analysis is None:
        return False
    if status.phase is Phase.SHADOW:
        return True
    steps = spec.strategy.canary.steps
    index = status.current_step or 0
    return status.phase is Phase.CANARY and index < len(steps) and steps[index].analyze is not None


def due_window(
    spec: ModelRolloutSpec, status: ModelRolloutStatus, observed: Observation, now: datetime
) -> AnalysisWindow | None:
    """The window to analyse now, or None when no analysis is due."""
    if not analysing_step(spec, status) or status.analysis_started_at is None:
        return None
    assert spec.analysis is not None
    since_last = seconds_between(status.last_analysis_at, now)
    if status.last_analysis_at is not None and since_last < spec.analysis.interval_seconds:
        return None
    since_step = seconds_between(status.step_started_at, now)
    if candidate_readiness(spec, status, observed.target, since_step) is not Readiness.READY:
        return None
    if not DESIRED[status.phase].analyse:
        return None
    return AnalysisWindow(status.current_step, status.analysis_started_at, now)


def analysis_progress(
    draft: Draft,
    result: AnalysisResult | None,
    minimum: float,
    budget: float,
    last: bool,
    on_advance: Event,
) -> Happening | None:
    """The step's analysis: wait for the interval, judge a fresh result, or count an error."""
    analysis, status, now = draft.spec.analysis, draft.status, draft.now
    if analysis is None:
        if seconds_between(status.step_started_at, now) >= minimum:
            return Happening(on_advance)
        draft.check_within(minimum - seconds_between(status.step_started_at, now))
        return None
    since_last = seconds_between(status.last_analysis_at, now)
    if status.last_analysis_at is not None and since_last < analysis.interval_seconds:
        draft.check_within(analysis.interval_seconds - since_last)
        return None
    fresh = result is not None and result.window.start == status.analysis_started_at
    if result is None or not fresh or result.window.step != status.current_step:
        draft.check_within(1.0)  # due now; the executor analyses on the next look
        return None
    if result.evaluation is None:
        return error_happening(draft, result)
    draft.set(consecutive_errors=0, last_analysis_at=now)
    draft.condition("Degraded", "False", "MetricsHealthy", "")
    elapsed = seconds_between(status.analysis_started_at, now)
    decision = decide(
        result.evaluation,
        StepClock(elapsed, minimum, budget),
        on_failure=draft.spec.on_failure,
        on_inconclusive=draft.spec.on_inconclusive,
        last_step=last,
    )
    note(draft, result.evaluation, decision)
    draft.check_within(analysis.interval_seconds)
    return decision_happening(draft, decision, on_advance)


def error_happening(draft: Draft, result: AnalysisResult) -> Happening | None:
    """Metrics could not be read (or judged): retry with back-off, pause after five in a row."""
    prefix = {
        "metrics": "metrics unavailable",
        "invalid-query": "a query cannot run as written",
        "engine": "the analysis could not judge the metrics",
    }[result.error_kind]
    reason = {"metrics": "MetricsError", "invalid-query": "InvalidQuery", "engine": "EngineError"}
    draft.say(f"{prefix}: {result.error}", reason[result.error_kind])
    errors = draft.status.consecutive_errors + 1
    if result.error_kind == "invalid-query":
        errors = MAX_CONSECUTIVE_ERRORS  # a person must fix the query: no point in retrying
    draft.set(consecutive_errors=errors, verdict=Verdict.ERROR)
    draft.check_within(min(10.0 * errors, 60.0))
    if result.error_kind == "engine":
        draft.event("Warning", "EngineError", draft.status.message)
    if errors < MAX_CONSECUTIVE_ERRORS:
        return None
    message = f"{errors} analyses in a row could not read metrics: {draft.status.message}"
    draft.condition("Degraded", "True", "AnalysisErrors", message)
    draft.set(paused_reason="errors")
    draft.say(message, "AnalysisErrors")
    return Happening(Event.HALT, message, "AnalysisErrors")


def note(draft: Draft, evaluation: Evaluation, decision: Decision) -> None:
    """The verdict, the worst evidence, the budget and a hold record: every look is on the
    chain."""
    worst = [evidence(c) for c in evaluation.worst(KEPT_EVIDENCE)]
    draft.set(verdict=decision.verdict, evidence=worst, alpha_ledger=spent(draft, evaluation))
    draft.say(decision.message, decision.reason)
    draft.condition("Analysed", "True", decision.reason, decision.message)
    if decision.action is Action.HOLD:
        record(draft, decision.action.value, decision.reason, decision.message)


def spent(draft: Draft, evaluation: Evaluation) -> AlphaLedger:
    """The revision's budget after this look (carried from closed windows, plus this one)."""
    before = draft.status.alpha_ledger
    same = before is not None and before.revision == draft.status.candidate_revision
    return AlphaLedger(
        revision=draft.status.candidate_revision,
        windows=before.windows if same and before is not None else 0,
        carried=dict(before.carried) if same and before is not None else {},
        current=evaluation.budget.folded(),
        budget_used=min(max(evaluation.budget.used, 0.0), 1.0),
    )


def decision_happening(draft: Draft, decision: Decision, on_advance: Event) -> Happening | None:
    action = decision.action
    cause, reason = decision.message, decision.reason
    if action in (Action.ADVANCE, Action.PROMOTE):
        return Happening(on_advance, cause, reason)
    if action is Action.PAUSE:
        draft.set(paused_reason="analysis")
        return Happening(Event.HALT, cause, reason)
    if action is Action.ROLLBACK:
        failed = decision.verdict is Verdict.FAILED
        return Happening(
            Event.ANALYSIS_FAILED if failed else Event.INCONCLUSIVE_ROLLBACK, cause, reason
        )
    return None
