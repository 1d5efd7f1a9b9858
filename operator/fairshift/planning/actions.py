"""Manual actions: the words a person uses, and the machine events they become.

One home for the vocabulary that the kubectl plugin writes and the planner reads: the CLI
refuses what the rollout's phase does not accept by the same function the planner uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from fairshift.api.status import Phase
from fairshift.engine.machine import Event, accepts


class ManualAction(StrEnum):
    PROMOTE = "promote"
    PROMOTE_FULL = "promote-full"
    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"
    RETRY = "retry"


# Each action and the machine events it may become (resume re-enters shadow or canary).
ACTION_EVENTS: Mapping[ManualAction, tuple[Event, ...]] = {
    ManualAction.PROMOTE: (Event.PROMOTE,),
    ManualAction.PROMOTE_FULL: (Event.PROMOTE_FULL,),
    ManualAction.PAUSE: (Event.HALT,),
    ManualAction.RESUME: (Event.RESUME, Event.RESUME_SHADOW, Event.PROMOTE),
    ManualAction.ABORT: (Event.ABORT,),
    ManualAction.RETRY: (Event.RETRY,),
}


def resume_event(current_step: int | None) -> Event:
    """Back to where the pause happened: shadow (no step yet) or the canary step."""
    return Event.RESUME_SHADOW if current_step is None else Event.RESUME


def action_event(
    action: str, phase: Phase, paused_reason: str | None, current_step: int | None
) -> Event | None:
    """The event ``action`` becomes in this state, or None when it means nothing here.

    ``resume`` at a manual gate (a ``pause: {}`` step) continues to the next step, as
    ``promote`` does; elsewhere it returns to the paused step or to shadow.
    """
    try:
        manual = ManualAction(action)
    except ValueError:
        return None
    if manual is ManualAction.RESUME:
        if phase is Phase.PAUSED and paused_reason == "step":
            return Event.PROMOTE
        return resume_event(current_step)
    return ACTION_EVENTS[manual][0]


def allowed(action: str, phase: Phase, paused_reason: str | None, current_step: int | None) -> bool:
    """Whether the rollout in this state accepts ``action`` now."""
    event = action_event(action, phase, paused_reason, current_step)
    return event is not None and accepts(phase, event)
