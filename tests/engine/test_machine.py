"""The rollout state machine: one test per row of the transition table, and refusals."""

from __future__ import annotations

import pytest

from fairshift.api.status import Phase
from fairshift.engine.machine import (
    DESIRED,
    TRANSITIONS,
    Effect,
    Event,
    InvalidTransitionError,
    Transition,
    accepts,
    transition,
)


@pytest.mark.parametrize(
    "row", list(TRANSITIONS.values()), ids=lambda r: f"{r.source.value}-{r.event.value}"
)
def test_every_row_is_what_transition_returns(row: Transition) -> None:
    assert transition(row.source, row.event) == row
    assert row.target in DESIRED


EXPECTED = [
    (Phase.INITIALIZING, Event.INITIALIZED, Phase.IDLE, Effect.NONE),
    (Phase.IDLE, Event.NEW_REVISION, Phase.CANARY, Effect.START),
    (Phase.IDLE, Event.NEW_REVISION_WITH_SHADOW, Phase.SHADOW, Effect.START),
    (Phase.SUCCEEDED, Event.NEW_REVISION, Phase.CANARY, Effect.START),
    (Phase.SHADOW, Event.SHADOW_DONE, Phase.CANARY, Effect.NEXT_STEP),
    (Phase.CANARY, Event.STEP_DONE, Phase.CANARY, Effect.NEXT_STEP),
    (Phase.CANARY, Event.STEPS_DONE, Phase.PROMOTING, Effect.NONE),
    (Phase.CANARY, Event.ANALYSIS_FAILED, Phase.ROLLING_BACK, Effect.NONE),
    (Phase.CANARY, Event.HALT, Phase.PAUSED, Effect.NONE),
    (Phase.PAUSED, Event.RESUME, Phase.CANARY, Effect.RESTART_STEP),
    (Phase.PAUSED, Event.RESUME_SHADOW, Phase.SHADOW, Effect.RESTART_STEP),
    (Phase.PAUSED, Event.PROMOTE, Phase.CANARY, Effect.NEXT_STEP),
    (Phase.PAUSED, Event.ABORT, Phase.ROLLING_BACK, Effect.NONE),
    (Phase.CANARY, Event.PROMOTE_FULL, Phase.PROMOTING, Effect.SKIP_TO_END),
    (Phase.PROMOTING, Event.PROMOTION_DONE, Phase.SUCCEEDED, Effect.RECORD_STABLE),
    (Phase.ROLLING_BACK, Event.ROLLBACK_DONE, Phase.ROLLED_BACK, Effect.NONE),
    (Phase.ROLLED_BACK, Event.RETRY, Phase.CANARY, Effect.START),
    (Phase.CANARY, Event.NEW_REVISION, Phase.CANARY, Effect.START),
    (Phase.SHADOW, Event.CANDIDATE_UNAVAILABLE, Phase.ROLLING_BACK, Effect.NONE),
    (Phase.CANARY, Event.TARGET_LOST, Phase.ROLLING_BACK, Effect.NONE),
    (Phase.CANARY, Event.REVERTED, Phase.IDLE, Effect.FORGET_CANDIDATE),
]


@pytest.mark.parametrize(("source", "event", "target", "effect"), EXPECTED)
def test_lifecycle_rows(source: Phase, event: Event, target: Phase, effect: Effect) -> None:
    row = transition(source, event)
    assert (row.target, row.effect) == (target, effect)


@pytest.mark.parametrize(
    ("source", "event"),
    [
        (Phase.IDLE, Event.RESUME),
        (Phase.SUCCEEDED, Event.ABORT),
        (Phase.PROMOTING, Event.HALT),
        (Phase.ROLLING_BACK, Event.PROMOTE),
        (Phase.CANARY, Event.RETRY),
        (Phase.INITIALIZING, Event.NEW_REVISION),
    ],
)
def test_refused_events_say_what_is_possible(source: Phase, event: Event) -> None:
    assert not accepts(source, event)
    with pytest.raises(InvalidTransitionError, match="possible:"):
        transition(source, event)


def test_every_phase_is_reachable_and_has_a_desired_state() -> None:
    entered_from_outside = {Phase.INITIALIZING, Phase.TERMINATING}  # creation and deletion
    reached = entered_from_outside | {row.target for row in TRANSITIONS.values()}
    assert reached == set(Phase)
    assert set(DESIRED) == set(Phase)


def test_rolling_back_never_routes_to_the_candidate() -> None:
    for phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK, Phase.IDLE, Phase.SUCCEEDED):
        assert not DESIRED[phase].route_canary and not DESIRED[phase].mirror
