"""The phase's own work: waiting for the candidate, steps, promotion and rollback.

The last trigger source: when nobody asked for anything and the target did not change, the
phase moves on by itself (a passed analysis, a finished step, a promoted primary).
"""

from __future__ import annotations

from fairshift.api.durations import parse_duration
from fairshift.api.spec import Step
from fairshift.api.status import Phase
from fairshift.api.times import seconds_between
from fairshift.engine.machine import Event
from fairshift.planning import guard
from fairshift.planning.analysis import (
    CANDIDATE_RECHECK,
    Readiness,
    analysis_progress,
    candidate_readiness,
)
from fairshift.planning.draft import Draft
from fairshift.planning.observation import AnalysisResult, GuardResult, Observation
from fairshift.planning.plan import PromoteTemplate
from fairshift.planning.traffic import scale_candidate, traffic_shown
from fairshift.planning.transitions import Happening

SHADOW_BUDGET_FACTOR = 3


def progress(
    draft: Draft, observed: Observation, result: AnalysisResult | GuardResult | None
) -> Happening | None:
    if draft.phase is Phase.GUARDING:
        return guard.guarding(draft, observed, result if isinstance(result, GuardResult) else None)
    if draft.phase is Phase.RESTORING:
        return guard.restoring(draft, observed)
    if draft.phase is Phase.FALLBACK:
        guard.on_fallback(draft)
        return None
    if not isinstance(result, AnalysisResult):
        result = None
    if draft.phase is Phase.SHADOW:
        return shadow(draft, observed, result)
    if draft.phase is Phase.CANARY:
        return canary(draft, observed, result)
    if draft.phase is Phase.PROMOTING:
        return promotion(draft, observed)
    if draft.phase is Phase.ROLLING_BACK:
        return rollback(draft, observed)
    return None


def candidate_readiness_now(draft: Draft, observed: Observation) -> Readiness:
    """Whether the candidate runs; says so in status while it does not."""
    since_step = seconds_between(draft.status.step_started_at, draft.now)
    readiness = candidate_readiness(draft.spec, draft.status, observed.target, since_step)
    if readiness is Readiness.WAITING:
        draft.say("waiting for the candidate to become available", "WaitingForCandidate")
        draft.check_within(CANDIDATE_RECHECK)
    return readiness


def deadline_passed(draft: Draft) -> Happening:
    message = f"the candidate was not available within {draft.spec.strategy.progress_deadline}"
    draft.say(message, "ProgressDeadlineExceeded")
    return Happening(Event.CANDIDATE_UNAVAILABLE, message, "ProgressDeadlineExceeded")


def shadow(draft: Draft, observed: Observation, result: AnalysisResult | None) -> Happening | None:
    readiness = candidate_readiness_now(draft, observed)
    if readiness is Readiness.DEADLINE_PASSED:
        return deadline_passed(draft)
    if readiness is Readiness.WAITING:
        return None
    if not traffic_shown(draft, observed):
        return None
    assert draft.spec.strategy.shadow is not None
    minimum = parse_duration(draft.spec.strategy.shadow.duration)
    budget = SHADOW_BUDGET_FACTOR * minimum
    return analysis_progress(draft, result, minimum, budget, False, Event.SHADOW_DONE)


def canary(draft: Draft, observed: Observation, result: AnalysisResult | None) -> Happening | None:
    readiness = candidate_readiness_now(draft, observed)
    if readiness is Readiness.DEADLINE_PASSED:
        return deadline_passed(draft)
    if readiness is Readiness.WAITING:
        return None
    steps = draft.spec.strategy.canary.steps
    index = draft.status.current_step or 0
    if index >= len(steps):
        return Happening(Event.STEPS_DONE)
    last = index == len(steps) - 1
    done = Event.STEPS_DONE if last else Event.STEP_DONE
    step = steps[index]
    if step.set_weight is not None:
        return Happening(done) if traffic_shown(draft, observed) else None
    if step.pause is not None:
        return pause_step(draft, step, done)
    if not traffic_shown(draft, observed):
        return None
    assert step.analyze is not None
    minimum = parse_duration(step.analyze.duration)
    return analysis_progress(draft, result, minimum, step.analyze.budget_seconds, last, done)


def pause_step(draft: Draft, step: Step, done: Event) -> Happening | None:
    assert step.pause is not None
    if step.pause.duration is None:
        draft.set(paused_reason="step")
        message = "paused at a manual gate: `kubectl fairshift promote` continues"
        draft.say(message, "ManualGate")
        return Happening(Event.HALT, message, "ManualGate")
    waited = seconds_between(draft.status.step_started_at, draft.now)
    wanted = parse_duration(step.pause.duration)
    if waited >= wanted:
        return Happening(done)
    draft.say(f"pausing for {step.pause.duration}", "PauseStep")
    draft.check_within(wanted - waited)
    return None


def promotion(draft: Draft, observed: Observation) -> Happening | None:
    target, primary = observed.target, observed.primary
    if target is None:
        return Happening(Event.TARGET_LOST)
    if primary is None or primary.revision != draft.status.candidate_revision:
        draft.write(PromoteTemplate(target.template))
        draft.say("copying the candidate into the primary Deployment", "Promoting")
        draft.check_within(CANDIDATE_RECHECK)
        return None
    if not primary.available:
        deadline = parse_duration(draft.spec.strategy.progress_deadline)
        if seconds_between(draft.status.phase_started_at, draft.now) > deadline:
            message = "the promoted primary did not become available"
            draft.say(message, "PromotionFailed")
            return Happening(Event.CANDIDATE_UNAVAILABLE, message, "PromotionFailed")
        draft.say("waiting for the promoted primary to become available", "Promoting")
        draft.check_within(CANDIDATE_RECHECK)
        return None
    if not traffic_shown(draft, observed):
        return None
    scale_candidate(draft, observed, 0)
    draft.say("promoted: the primary runs the candidate and takes all traffic", "Promoted")
    return Happening(Event.PROMOTION_DONE_GUARDED if draft.spec.guarded else Event.PROMOTION_DONE)


def rollback(draft: Draft, observed: Observation) -> Happening | None:
    """Traffic back to primary first; then the candidate (if it still exists) to zero."""
    if not traffic_shown(draft, observed, explain=False):
        return None
    if observed.target is not None:
        scale_candidate(draft, observed, 0)
    draft.say(f"rolled back: {draft.status.message}".strip(), draft.status.reason)
    return Happening(Event.ROLLBACK_DONE)
