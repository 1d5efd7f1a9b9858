"""The rollout state machine: every phase change is one row of ``TRANSITIONS``.

The reconciler turns what it observes (a new revision, an analysis decision, a manual action,
a finished promotion) into an ``Event`` and asks ``transition`` for the next phase. Each phase
has a desired state of traffic and workloads (``DESIRED``), which the reconciler converges to,
level-triggered; handlers never branch on phase.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fairshift.api.status import Phase


class Event(StrEnum):
    """What can happen to a rollout."""

    INITIALIZED = "initialized"  # primary Deployment and Services exist
    NEW_REVISION = "new-revision"  # the target's pod template changed
    NEW_REVISION_WITH_SHADOW = "new-revision-with-shadow"
    SHADOW_DONE = "shadow-done"  # shadow analysis passed for its duration
    STEP_DONE = "step-done"  # the current canary step is complete, more remain
    STEPS_DONE = "steps-done"  # the last canary step is complete
    ANALYSIS_FAILED = "analysis-failed"  # a critical gate failed, onFailure=rollback
    INCONCLUSIVE_ROLLBACK = "inconclusive-rollback"  # budget spent, onInconclusive=rollback
    HALT = "halt"  # pause: manual, spec.paused, onFailure/onInconclusive=pause, errors
    RESUME = "resume"  # back to the canary step that was paused
    RESUME_SHADOW = "resume-shadow"  # back to shadow, when it was paused during shadow
    PROMOTE = "promote"  # manual: skip the current step (or a pause step)
    PROMOTE_FULL = "promote-full"  # manual: skip all remaining steps and analysis
    ABORT = "abort"  # manual: roll back now
    RETRY = "retry"  # manual: start the same candidate again after a rollback
    PROMOTION_DONE = "promotion-done"  # primary runs the candidate template and is available
    PROMOTION_DONE_GUARDED = "promotion-done-guarded"  # the same, and the guard takes over
    GUARD_BREACHED = "guard-breached"  # a guarded gate breached, its response is rollback
    GUARD_FALLBACK = "guard-fallback"  # a breach whose response is degrade: to the fallback
    RESTORED = "restored"  # both Deployments run the last known good template again
    KILL = "kill"  # manual: take the model out of the path at once
    REVIVE = "revive"  # manual: serve again after a kill
    REVIVE_GUARDED = "revive-guarded"  # the same, and the guard looks again
    ACKNOWLEDGE = "acknowledge"  # manual: a person has reviewed an escalated breach
    ROLLBACK_DONE = "rollback-done"  # traffic is on primary and the candidate is scaled down
    CANDIDATE_UNAVAILABLE = "candidate-unavailable"  # not available within progressDeadline
    TARGET_LOST = "target-lost"  # the target Deployment was deleted or broken mid-rollout
    REVERTED = "reverted"  # the target's template is back to the stable revision


class Effect(StrEnum):
    """What entering the next phase does first (besides converging to its desired state)."""

    NONE = "none"
    START = "start"  # record the candidate revision, reset step and analysis clocks
    NEXT_STEP = "next-step"  # move to the next canary step, restart the analysis window
    RESTART_STEP = "restart-step"  # restart the current step's analysis window
    SKIP_TO_END = "skip-to-end"
    RECORD_STABLE = "record-stable"  # the candidate revision becomes the stable revision
    FORGET_CANDIDATE = "forget-candidate"  # target reverted: nothing to roll out
    START_GUARD = "start-guard"  # record the stable revision and start guarding it
    RECORD_RESTORED = "record-restored"  # the last known good revision is stable again
    RESUME_GUARD = "resume-guard"  # the guard's next look starts now; no traffic to fallback
    CLEAR_ESCALATION = "clear-escalation"  # the escalated breach is acknowledged


@dataclass(frozen=True)
class Transition:
    """One row: in ``source``, ``event`` moves to ``target`` with ``effect``."""

    source: Phase
    event: Event
    target: Phase
    effect: Effect = Effect.NONE


P, E, F = Phase, Event, Effect
ACTIVE = (P.SHADOW, P.CANARY, P.PAUSED)
RESTING = (P.IDLE, P.SUCCEEDED, P.ROLLED_BACK, P.FAILED, P.GUARDING, P.FALLBACK)


def _rows() -> list[Transition]:
    rows = [Transition(P.INITIALIZING, E.INITIALIZED, P.IDLE)]
    for phase in RESTING:
        rows.append(Transition(phase, E.KILL, P.KILLED))
        rows.append(Transition(phase, E.NEW_REVISION, P.CANARY, F.START))
        rows.append(Transition(phase, E.NEW_REVISION_WITH_SHADOW, P.SHADOW, F.START))
    for phase in ACTIVE:
        rows.append(Transition(phase, E.NEW_REVISION, P.CANARY, F.START))
        rows.append(Transition(phase, E.NEW_REVISION_WITH_SHADOW, P.SHADOW, F.START))
        rows.append(Transition(phase, E.ANALYSIS_FAILED, P.ROLLING_BACK))
        rows.append(Transition(phase, E.INCONCLUSIVE_ROLLBACK, P.ROLLING_BACK))
        rows.append(Transition(phase, E.ABORT, P.ROLLING_BACK))
        rows.append(Transition(phase, E.CANDIDATE_UNAVAILABLE, P.ROLLING_BACK))
        rows.append(Transition(phase, E.TARGET_LOST, P.ROLLING_BACK))
        rows.append(Transition(phase, E.PROMOTE_FULL, P.PROMOTING, F.SKIP_TO_END))
        rows.append(Transition(phase, E.REVERTED, P.IDLE, F.FORGET_CANDIDATE))
    for phase in (P.SHADOW, P.CANARY):
        rows.append(Transition(phase, E.HALT, P.PAUSED))
    rows += [
        Transition(P.SHADOW, E.SHADOW_DONE, P.CANARY, F.NEXT_STEP),
        Transition(P.SHADOW, E.PROMOTE, P.CANARY, F.NEXT_STEP),
        Transition(P.CANARY, E.STEP_DONE, P.CANARY, F.NEXT_STEP),
        Transition(P.CANARY, E.PROMOTE, P.CANARY, F.NEXT_STEP),
        Transition(P.CANARY, E.STEPS_DONE, P.PROMOTING),
        Transition(P.PAUSED, E.RESUME, P.CANARY, F.RESTART_STEP),
        Transition(P.PAUSED, E.RESUME_SHADOW, P.SHADOW, F.RESTART_STEP),
        Transition(P.PAUSED, E.PROMOTE, P.CANARY, F.NEXT_STEP),
        Transition(P.PROMOTING, E.PROMOTION_DONE, P.SUCCEEDED, F.RECORD_STABLE),
        Transition(P.PROMOTING, E.PROMOTION_DONE_GUARDED, P.GUARDING, F.START_GUARD),
        Transition(P.GUARDING, E.GUARD_BREACHED, P.RESTORING),
        Transition(P.GUARDING, E.ABORT, P.RESTORING),  # a person switches back
        Transition(P.GUARDING, E.GUARD_FALLBACK, P.FALLBACK),
        Transition(P.FALLBACK, E.ABORT, P.RESTORING),
        Transition(P.FALLBACK, E.REVIVE_GUARDED, P.GUARDING, F.RESUME_GUARD),
        # a degrade outlives a rejected fix: a person ends it (revive only with a fallback)
        Transition(P.ROLLED_BACK, E.REVIVE_GUARDED, P.GUARDING, F.RESUME_GUARD),
        Transition(P.RESTORING, E.RESTORED, P.ROLLED_BACK, F.RECORD_RESTORED),
        Transition(P.GUARDING, E.ACKNOWLEDGE, P.GUARDING, F.CLEAR_ESCALATION),
        Transition(P.KILLED, E.REVIVE, P.IDLE),
        Transition(P.KILLED, E.REVIVE_GUARDED, P.GUARDING, F.RESUME_GUARD),
        Transition(P.PROMOTING, E.TARGET_LOST, P.ROLLING_BACK),
        # the primary did not become available with the promoted template: a person decides
        Transition(P.PROMOTING, E.CANDIDATE_UNAVAILABLE, P.FAILED),
        Transition(P.ROLLING_BACK, E.ROLLBACK_DONE, P.ROLLED_BACK),
        Transition(P.ROLLED_BACK, E.RETRY, P.CANARY, F.START),
        Transition(P.FAILED, E.RETRY, P.CANARY, F.START),
    ]
    return rows


TRANSITIONS: dict[tuple[Phase, Event], Transition] = {(r.source, r.event): r for r in _rows()}


class InvalidTransitionError(ValueError):
    """An event that the current phase does not accept (e.g. resume when not paused)."""


def transition(phase: Phase, event: Event) -> Transition:
    """The row for ``(phase, event)``; raises InvalidTransitionError with a readable message."""
    try:
        return TRANSITIONS[(phase, event)]
    except KeyError:
        accepted = sorted(e.value for (p, e) in TRANSITIONS if p == phase)
        raise InvalidTransitionError(
            f"{event.value} is not possible while {phase.value}; "
            f"possible: {', '.join(accepted) or 'nothing'}"
        ) from None


def accepts(phase: Phase, event: Event) -> bool:
    return (phase, event) in TRANSITIONS


@dataclass(frozen=True)
class Desired:
    """What a phase wants of the world.

    ``canary_weight`` None means "the weight of the current step" (computed from the steps);
    ``candidate_replicas`` None means "as the target Deployment asks".
    """

    route_canary: bool  # may the canary receive live traffic
    mirror: bool  # mirror to the candidate (shadow)
    candidate_scaled: bool  # should the candidate Deployment run
    analyse: bool  # run analysis ticks
    terminal: bool = False
    primary_serving: bool = True  # False only after a kill: the model is out of the path


DESIRED: dict[Phase, Desired] = {
    P.INITIALIZING: Desired(False, False, False, False),
    P.IDLE: Desired(False, False, False, False, terminal=True),
    P.SHADOW: Desired(False, True, True, True),
    P.CANARY: Desired(True, False, True, True),
    P.PAUSED: Desired(True, True, True, False),
    P.PROMOTING: Desired(False, False, True, False),
    P.SUCCEEDED: Desired(False, False, False, False, terminal=True),
    P.ROLLING_BACK: Desired(False, False, False, False),
    P.ROLLED_BACK: Desired(False, False, False, False, terminal=True),
    P.FAILED: Desired(False, False, False, False, terminal=True),
    P.GUARDING: Desired(False, False, False, False, terminal=True),
    P.RESTORING: Desired(False, False, False, False),
    P.FALLBACK: Desired(False, False, False, False, terminal=True),
    P.KILLED: Desired(False, False, False, False, terminal=True, primary_serving=False),
    # deleted: the finalizer hands serving back to the user's Deployment; the planner waits
    P.TERMINATING: Desired(False, False, False, False, terminal=True),
}
