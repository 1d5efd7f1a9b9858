"""Manual actions: the words a person uses, and the machine events they become.

One home for the vocabulary that the kubectl plugin writes and the planner reads: the CLI
refuses what the rollout's state does not accept by the same function the planner uses.
"""

from __future__ import annotations

from enum import StrEnum

from fairshift.api.status import ModelRolloutStatus, Phase
from fairshift.engine.machine import Event, accepts


class ManualAction(StrEnum):
    PROMOTE = "promote"
    PROMOTE_FULL = "promote-full"
    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"
    RETRY = "retry"
    KILL = "kill"
    REVIVE = "revive"
    ACK = "ack"


NEEDS_REASON = (ManualAction.KILL, ManualAction.ACK)
"""Actions the audit trail must explain: who asked and why are recorded with them."""


def needs_reason(action: str, status: ModelRolloutStatus) -> bool:
    """Whether ``action`` needs a reason now: always for kill and ack, and for a revive that
    ends a degrade (traffic goes back from the fallback to the breached model)."""
    if action in NEEDS_REASON:
        return True
    return action == ManualAction.REVIVE and status.fallback is not None


SIMPLE: dict[ManualAction, Event] = {
    ManualAction.PROMOTE: Event.PROMOTE,
    ManualAction.PROMOTE_FULL: Event.PROMOTE_FULL,
    ManualAction.PAUSE: Event.HALT,
    ManualAction.ABORT: Event.ABORT,
    ManualAction.RETRY: Event.RETRY,
    ManualAction.KILL: Event.KILL,
    ManualAction.ACK: Event.ACKNOWLEDGE,
}


def resume_event(current_step: int | None) -> Event:
    """Back to where the pause happened: shadow (no step yet) or the canary step."""
    return Event.RESUME_SHADOW if current_step is None else Event.RESUME


def action_event(action: str, status: ModelRolloutStatus) -> Event | None:
    """The event ``action`` becomes in this state, or None when it means nothing here.

    ``resume`` at a manual gate (a ``pause: {}`` step) continues to the next step, as
    ``promote`` does; elsewhere it returns to the paused step or to shadow. ``revive``
    returns to guarding when the model was guarded; it also ends a degrade (traffic on the
    fallback), in any phase a degrade outlives. ``ack`` means something only while an
    escalated breach waits.
    """
    try:
        manual = ManualAction(action)
    except ValueError:
        return None
    if manual is ManualAction.RESUME:
        if status.phase is Phase.PAUSED and status.paused_reason == "step":
            return Event.PROMOTE
        return resume_event(status.current_step)
    if manual is ManualAction.REVIVE:
        if status.phase is not Phase.KILLED and status.fallback is None:
            return None  # nothing to revive: not killed, no traffic on the fallback
        return Event.REVIVE_GUARDED if status.guard is not None else Event.REVIVE
    if manual is ManualAction.ACK and (status.guard is None or status.guard.escalation is None):
        return None
    return SIMPLE[manual]


def allowed(action: str, status: ModelRolloutStatus) -> bool:
    """Whether the rollout in this state accepts ``action`` now."""
    event = action_event(action, status)
    return event is not None and accepts(status.phase, event)


def possible(status: ModelRolloutStatus) -> list[ManualAction]:
    """The actions a person can ask for now."""
    return [a for a in ManualAction if allowed(a, status)]
