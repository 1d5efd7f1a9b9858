"""What happens to a rollout this tick, in priority order: a person, the target, the spec.

Each source looks at the draft and the observation and returns a ``Happening`` or None;
``planning.progress`` is the last source (the phase's own work).
"""

from __future__ import annotations

from typing import Any

from fairshift.api.names import ACTION_ANNOTATION
from fairshift.api.status import Kill, Phase
from fairshift.engine.machine import Event, accepts
from fairshift.planning.actions import action_event, needs_reason, resume_event
from fairshift.planning.draft import Draft
from fairshift.planning.observation import Observation
from fairshift.planning.transitions import Happening

ACTIVE = (Phase.SHADOW, Phase.CANARY, Phase.PAUSED)


def manual(draft: Draft, observed: Observation) -> Happening | None:
    """A person's request from the action annotation, handled once per id."""
    request = observed.request
    if request is None:
        return None
    if request.malformed:
        draft.event("Warning", "BadAction", f"ignored a malformed {ACTION_ANNOTATION}")
        return None
    if request.id == draft.status.handled_action:
        return None
    draft.set(handled_action=request.id)
    status = draft.status
    event = action_event(request.action, status)
    if event is None or not accepts(status.phase, event):
        draft.event(
            "Warning",
            "ActionRefused",
            f"{request.action} is not possible while {status.phase.value}",
        )
        return None
    if needs_reason(request.action, status) and not request.reason:
        draft.event("Warning", "ActionRefused", f"{request.action} needs a reason")
        return None
    if event is Event.KILL and (refusal := fallback_refusal(draft, observed)):
        draft.event("Warning", "ActionRefused", refusal)
        return None
    draft.set(paused_reason="manual" if event is Event.HALT else None)
    if event is Event.KILL:
        replicas = observed.primary.replicas if observed.primary is not None else 1
        draft.set(
            killed=Kill(
                by=request.by,
                reason=request.reason,
                at=draft.now,
                replicas=max(replicas, 1),
                fallback=draft.spec.fallback_ref is not None,
            )
        )
    who = f" by {request.by}" if request.by else ""
    why = f": {request.reason}" if request.reason else ""
    draft.event("Normal", "ManualAction", f"{request.action} requested{who}{why}")
    detail: dict[str, Any] = {}
    if request.by or request.reason:
        detail.update(requestedBy=request.by, requestReason=request.reason)
    if event is Event.KILL and draft.status.killed is not None:  # replayed after a crash
        detail["killed"] = draft.status.killed.model_dump(by_alias=True, mode="json")
    return Happening(
        event, f"{request.action} requested{who}{why}", "ManualAction", request.id, detail or None
    )


def fallback_refusal(draft: Draft, observed: Observation) -> str | None:
    """Why all traffic cannot go to the declared fallback now, or None when it can."""
    declared = draft.spec.fallback_ref
    if declared is None:
        return None
    state = observed.fallback
    if state is not None and state.available_replicas >= 1:
        return None
    why = "does not exist" if state is None else "has no available replica"
    return (
        f"kill refused: the fallback Deployment {declared.name} {why}, so it cannot take the "
        f"traffic; make it serve, or remove spec.fallbackRef to kill by scaling the model to zero"
    )


def revision(draft: Draft, observed: Observation) -> Happening | None:
    """The target Deployment changed: a new candidate, a revert, or it disappeared."""
    phase, status, target = draft.phase, draft.status, observed.target
    active = phase in ACTIVE
    if target is None:
        if active or phase is Phase.PROMOTING:
            name = draft.spec.target_ref.name
            return Happening(Event.TARGET_LOST, f"Deployment {name} disappeared", "TargetLost")
        return None
    if active and target.revision == status.stable_revision:
        return Happening(Event.REVERTED)
    known = (status.stable_revision, status.candidate_revision)
    if target.revision in known or phase in (Phase.PROMOTING, Phase.ROLLING_BACK, Phase.RESTORING):
        return None
    if awaiting_person(draft, target.revision):
        return None
    draft.set(candidate_revision=target.revision)
    shadow = draft.spec.strategy.shadow is not None
    return Happening(Event.NEW_REVISION_WITH_SHADOW if shadow else Event.NEW_REVISION)


def spec_pause(draft: Draft, _observed: Observation) -> Happening | None:
    """``spec.paused`` set or cleared."""
    if draft.spec.paused and draft.phase in (Phase.SHADOW, Phase.CANARY):
        draft.set(paused_reason="spec")
        draft.say("spec.paused is true", "SpecPaused")
        return Happening(Event.HALT, "spec.paused is true", "SpecPaused")
    unpaused = not draft.spec.paused and draft.phase is Phase.PAUSED
    if unpaused and draft.status.paused_reason == "spec":
        return Happening(resume_event(draft.status.current_step))
    return None


def awaiting_person(draft: Draft, revision: str) -> bool:
    """An escalated guard breach holds every new rollout until a person acknowledges it."""
    guard = draft.status.guard
    if draft.phase is not Phase.GUARDING or guard is None or guard.escalation is None:
        return False
    draft.say(
        f"revision {revision} waits: a guard breach was escalated and awaits a person "
        f"(kubectl fairshift ack {draft.name} --reason ...): {guard.escalation.message}",
        "AwaitingAcknowledgement",
    )
    return True
