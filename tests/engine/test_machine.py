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
    accepts,
    transition,
)

# The whole lifecycle, written out by hand from the design (not derived from the table):
# source phase, event, target phase, effect. Every pair not listed must be refused.
LIFECYCLE = """
Initializing  initialized               Idle         none

Idle          new-revision              Canary       start
Idle          new-revision-with-shadow  Shadow       start
Succeeded     new-revision              Canary       start
Succeeded     new-revision-with-shadow  Shadow       start
RolledBack    new-revision              Canary       start
RolledBack    new-revision-with-shadow  Shadow       start
RolledBack    retry                     Canary       start
Failed        new-revision              Canary       start
Failed        new-revision-with-shadow  Shadow       start
Failed        retry                     Canary       start
Guarding      new-revision              Canary       start
Guarding      new-revision-with-shadow  Shadow       start

Shadow        new-revision              Canary       start
Shadow        new-revision-with-shadow  Shadow       start
Shadow        shadow-done               Canary       next-step
Shadow        promote                   Canary       next-step
Shadow        promote-full              Promoting    skip-to-end
Shadow        halt                      Paused       none
Shadow        analysis-failed           RollingBack  none
Shadow        inconclusive-rollback     RollingBack  none
Shadow        abort                     RollingBack  none
Shadow        candidate-unavailable     RollingBack  none
Shadow        target-lost               RollingBack  none
Shadow        reverted                  Idle         forget-candidate

Canary        new-revision              Canary       start
Canary        new-revision-with-shadow  Shadow       start
Canary        step-done                 Canary       next-step
Canary        steps-done                Promoting    none
Canary        promote                   Canary       next-step
Canary        promote-full              Promoting    skip-to-end
Canary        halt                      Paused       none
Canary        analysis-failed           RollingBack  none
Canary        inconclusive-rollback     RollingBack  none
Canary        abort                     RollingBack  none
Canary        candidate-unavailable     RollingBack  none
Canary        target-lost               RollingBack  none
Canary        reverted                  Idle         forget-candidate

Paused        new-revision              Canary       start
Paused        new-revision-with-shadow  Shadow       start
Paused        resume                    Canary       restart-step
Paused        resume-shadow             Shadow       restart-step
Paused        promote                   Canary       next-step
Paused        promote-full              Promoting    skip-to-end
Paused        analysis-failed           RollingBack  none
Paused        inconclusive-rollback     RollingBack  none
Paused        abort                     RollingBack  none
Paused        candidate-unavailable     RollingBack  none
Paused        target-lost               RollingBack  none
Paused        reverted                  Idle         forget-candidate

Promoting     promotion-done            Succeeded    record-stable
Promoting     promotion-done-guarded    Guarding     start-guard
Promoting     target-lost               RollingBack  none
Promoting     candidate-unavailable     Failed       none

RollingBack   rollback-done             RolledBack   none

Guarding      guard-breached            Restoring    none
Guarding      abort                     Restoring    none
Restoring     restored                  RolledBack   record-restored

Idle          kill                      Killed       none
Succeeded     kill                      Killed       none
RolledBack    kill                      Killed       none
Failed        kill                      Killed       none
Guarding      kill                      Killed       none
Killed        revive                    Idle         none
Killed        revive-guarded            Guarding     resume-guard
Guarding      acknowledge               Guarding     clear-escalation

Guarding      guard-fallback            Fallback     none
Fallback      revive-guarded            Guarding     resume-guard
Fallback      abort                     Restoring    none
Fallback      new-revision              Canary       start
Fallback      new-revision-with-shadow  Shadow       start
Fallback      kill                      Killed       none
RolledBack    revive-guarded            Guarding     resume-guard
"""


def lifecycle() -> dict[tuple[Phase, Event], tuple[Phase, Effect]]:
    rows = [line.split() for line in LIFECYCLE.splitlines() if line.strip()]
    table = {(Phase(s), Event(e)): (Phase(t), Effect(f)) for s, e, t, f in rows}
    assert len(table) == len(rows), "a (phase, event) pair is listed twice"
    return table


EXPECTED_ROWS = lifecycle()
REFUSED = [(p, e) for p in Phase for e in Event if (p, e) not in EXPECTED_ROWS]


def test_the_table_is_exactly_the_written_lifecycle() -> None:
    actual = {key: (row.target, row.effect) for key, row in TRANSITIONS.items()}

    assert set(actual) - set(EXPECTED_ROWS) == set(), "rows the lifecycle does not have"
    assert set(EXPECTED_ROWS) - set(actual) == set(), "lifecycle rows the table lacks"
    assert actual == EXPECTED_ROWS


@pytest.mark.parametrize(("source", "event"), list(EXPECTED_ROWS), ids=str)
def test_each_lifecycle_row(source: Phase, event: Event) -> None:
    row = transition(source, event)
    assert (row.source, row.event) == (source, event)
    assert (row.target, row.effect) == EXPECTED_ROWS[(source, event)]


@pytest.mark.parametrize(("source", "event"), REFUSED, ids=str)
def test_every_other_pair_is_refused(source: Phase, event: Event) -> None:
    assert not accepts(source, event)
    with pytest.raises(InvalidTransitionError):
        transition(source, event)


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


# What each phase wants of the world, written out by hand: route canary traffic, mirror,
# run the candidate, analyse, terminal, keep the primary serving.
DESIRED_BY_HAND = {
    Phase.INITIALIZING: (False, False, False, False, False, True),
    Phase.IDLE: (False, False, False, False, True, True),
    Phase.SHADOW: (False, True, True, True, False, True),
    Phase.CANARY: (True, False, True, True, False, True),
    Phase.PAUSED: (True, True, True, False, False, True),
    Phase.PROMOTING: (False, False, True, False, False, True),
    Phase.SUCCEEDED: (False, False, False, False, True, True),
    Phase.ROLLING_BACK: (False, False, False, False, False, True),
    Phase.ROLLED_BACK: (False, False, False, False, True, True),
    Phase.FAILED: (False, False, False, False, True, True),
    Phase.GUARDING: (False, False, False, False, True, True),  # promoted; the guard keeps judging
    Phase.RESTORING: (False, False, False, False, False, True),
    Phase.FALLBACK: (False, False, False, False, True, True),  # a share on the fallback
    Phase.KILLED: (False, False, False, False, True, False),  # out of the path until revived
    Phase.TERMINATING: (False, False, False, False, True, True),  # serving handed back to the user
}


def test_each_phase_wants_what_the_design_says() -> None:
    actual = {
        phase: (
            d.route_canary,
            d.mirror,
            d.candidate_scaled,
            d.analyse,
            d.terminal,
            d.primary_serving,
        )
        for phase, d in DESIRED.items()
    }
    assert actual == DESIRED_BY_HAND


def test_rolling_back_never_routes_to_the_candidate() -> None:
    for phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK, Phase.IDLE, Phase.SUCCEEDED):
        assert not DESIRED[phase].route_canary and not DESIRED[phase].mirror
