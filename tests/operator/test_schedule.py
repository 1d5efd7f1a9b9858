"""The schedule of looks: when a rollout is due, the stale-body guard, and the lag counts
(looks due counted when their time passes, looks done, the oldest overdue look, lateness)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fairshift.executing.schedule import Person, Schedule
from fairshift.metrics.operator_metrics import OperatorMetrics

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PERSON = Person(3, None)


def after(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def looked_at(schedule: Schedule, uid: str = "uid-1", next_in: float = 30.0) -> None:
    schedule.start(uid, PERSON, NOW)
    schedule.done(uid, PERSON, 0, after(next_in), NOW)


def test_a_look_is_due_when_the_plan_asked_or_a_person_changed_something() -> None:
    schedule = Schedule(60)
    assert schedule.is_due("uid-1", PERSON, NOW)  # never looked at: look now
    looked_at(schedule)
    assert not schedule.is_due("uid-1", PERSON, after(10))
    assert schedule.is_due("uid-1", Person(4, None), after(10))  # the spec changed
    assert schedule.is_due("uid-1", Person(3, '{"action": "promote"}'), after(10))  # an action
    assert schedule.is_due("uid-1", PERSON, after(30))


def test_a_rollout_sleeps_until_its_next_check_and_never_longer_than_the_ceiling() -> None:
    schedule = Schedule(20)
    assert schedule.wait_seconds("uid-1", NOW) == 0  # nothing planned here: look now
    looked_at(schedule, next_in=15)
    assert schedule.wait_seconds("uid-1", after(5)) == 10
    assert schedule.wait_seconds("uid-1", after(16)) == 0  # overdue: now
    looked_at(schedule, next_in=3600)
    assert schedule.wait_seconds("uid-1", NOW) == 20
    assert schedule.wait_seconds("uid-2", NOW, works_here=False) == 20  # another replica's


def test_the_ceiling_must_be_positive() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        Schedule(0)


def test_a_body_older_than_our_last_status_write_is_held_back_until_the_watch_delivers_it() -> None:
    schedule = Schedule(60)
    schedule.watch("uid-1", "lending", "credit-scorer")
    assert not schedule.is_stale("uid-1", 5, NOW)  # nothing written yet (a restart): take it
    schedule.start("uid-1", PERSON, NOW)
    schedule.done("uid-1", PERSON, 6, after(1), NOW)
    assert schedule.is_stale("uid-1", 5, after(2))  # the watch lags behind
    assert schedule.wait_seconds("uid-1", after(2)) == 28  # wait for it, not for the plan
    assert not schedule.is_stale("uid-1", 6, after(2))
    assert not schedule.is_stale("uid-1", 5, after(60))  # a lost write never stalls


def test_a_watch_event_wakes_a_loop_only_for_a_persons_change_or_our_write_arriving() -> None:
    schedule = Schedule(60)
    wake = schedule.watch("uid-1", "lending", "credit-scorer")
    looked_at(schedule)
    schedule.noticed("uid-1", PERSON, 0)  # our own status write, nothing held back
    assert not wake.is_set()
    schedule.noticed("uid-1", Person(4, None), 0)
    assert wake.is_set()
    wake.clear()
    schedule.start("uid-1", Person(4, None), after(1))
    schedule.done("uid-1", Person(4, None), 7, after(31), after(1))
    assert schedule.is_stale("uid-1", 6, after(2))
    schedule.noticed("uid-1", Person(4, None), 6)
    assert not wake.is_set()
    schedule.noticed("uid-1", Person(4, None), 7)  # our write arrived
    assert wake.is_set()


def test_looks_count_as_due_when_their_time_passes_and_as_done_when_they_succeed() -> None:
    metrics = OperatorMetrics()
    schedule = Schedule(60, metrics)
    looked_at(schedule, "uid-1", next_in=10)
    looked_at(schedule, "uid-2", next_in=20)
    assert (schedule.looks_due(NOW), schedule.looks_done()) == (2, 2)  # the first looks
    assert schedule.looks_due(after(15)) == 3  # uid-1's second look is owed, not started
    assert schedule.oldest_overdue(after(15)) == 5
    schedule.start("uid-1", PERSON, after(17))  # 7 s late
    assert schedule.looks_due(after(17)) == 3  # started: counted once, not twice
    schedule.start("uid-1", PERSON, after(19))  # the retry of a failed look
    assert (schedule.looks_due(after(19)), schedule.looks_done()) == (3, 2)
    assert schedule.oldest_overdue(after(19)) == 9  # still owed since its time
    schedule.done("uid-1", PERSON, 0, after(49), after(19))
    assert (schedule.looks_due(after(19)), schedule.looks_done()) == (3, 3)
    assert schedule.looks_due(after(25)) == 4  # uid-2's
    assert schedule.forget("uid-2", after(25))  # handed over while overdue: stays counted
    assert schedule.looks_due(after(25)) == 4
    value = metrics.registry.get_sample_value
    assert value("fairshift_schedule_lateness_seconds_count") == 1
    assert value("fairshift_schedule_lateness_seconds_sum") == 7


def test_the_operator_publishes_the_schedules_counts() -> None:
    metrics = OperatorMetrics()
    schedule = Schedule(60)
    metrics.track_looks(lambda: schedule.looks_due(after(15)), schedule.looks_done)
    looked_at(schedule, next_in=10)
    value = metrics.registry.get_sample_value
    assert value("fairshift_looks_due_total") == 2
    assert value("fairshift_looks_done_total") == 1
