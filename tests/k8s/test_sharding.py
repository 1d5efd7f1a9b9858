"""Sharding rollouts across replicas with Leases: acquire, renew, expire, take over, fence,
share fairly, on an in-memory Lease API with the API server's optimistic concurrency."""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from fairshift.k8s.errors import Unreachable
from fairshift.k8s.sharding import ShardCoordinator, ShardSettings, lease_name_part, shard_of
from tests.k8s.lease_fakes import FakeLeases


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Recorder:
    changes: list[tuple[str, int]] = field(default_factory=list)
    held: list[int] = field(default_factory=list)

    def shard_changed(self, change: str, shard: int) -> None:
        self.changes.append((change, shard))

    def shards_held(self, count: int) -> None:
        self.held.append(count)


SHARDS = 8


def replica(
    store: FakeLeases, clock: Clock, identity: str, shards: int = SHARDS
) -> ShardCoordinator:
    settings = ShardSettings(
        shards=shards,
        namespace="fairshift-system",
        identity=identity,
        lease_duration=20.0,
        renew_deadline=12.0,
        retry=4.0,
    )
    return ShardCoordinator(
        settings,
        store.api_for(identity),
        clock=clock,
        wall=lambda: datetime(2026, 12, 3, tzinfo=UTC),
        events=Recorder(),
    )


def run(clock: Clock, replicas: list[ShardCoordinator], seconds: float, dead: set[str]) -> None:
    """Every live replica steps every ``retry`` seconds; after every second, no shard may be
    worked by two replicas."""
    for _ in range(int(seconds)):
        clock.now += 1.0
        for member in replicas:
            if member.settings.identity in dead:
                continue
            if int(clock.now) % int(member.settings.retry) == 0:
                with contextlib.suppress(Unreachable):
                    member.step()
        assert_no_shard_worked_twice(replicas)


def assert_no_shard_worked_twice(replicas: list[ShardCoordinator]) -> None:
    workers = Counter(shard for member in replicas for shard in member.held())
    assert all(count == 1 for count in workers.values()), workers


def test_a_rollouts_shard_is_a_stable_hash_of_namespace_and_name() -> None:
    assert shard_of("lending", "credit-scorer", 16) == shard_of("lending", "credit-scorer", 16)
    assert shard_of("lending", "credit-scorer", 16) == 14  # the same in every process
    spread = Counter(shard_of("ns", f"m{i:04d}", 4) for i in range(1000))
    assert set(spread) == {0, 1, 2, 3}
    assert min(spread.values()) > 200


def test_a_lone_replica_takes_every_shard_at_its_first_round() -> None:
    store, clock = FakeLeases(), Clock()
    alone = replica(store, clock, "a")
    alone.step()
    assert alone.held() == list(range(SHARDS))
    assert {store.leases[f"fairshift-shard-{i}"].holder for i in range(SHARDS)} == {"a"}
    assert store.leases["fairshift-member-a"].holder == "a"
    assert isinstance(alone.events, Recorder)
    assert Counter(change for change, _ in alone.events.changes) == {"acquired": SHARDS}
    assert alone.owns("lending", "credit-scorer")


def test_renewals_keep_the_shards_and_move_the_lease_versions() -> None:
    store, clock = FakeLeases(), Clock()
    alone = replica(store, clock, "a")
    alone.step()
    before = store.leases["fairshift-shard-0"].version
    run(clock, [alone], 60, dead=set())
    assert store.leases["fairshift-shard-0"].version != before
    assert alone.held() == list(range(SHARDS))


def test_two_replicas_split_the_shards_fairly() -> None:
    store, clock = FakeLeases(), Clock()
    first, second = replica(store, clock, "a"), replica(store, clock, "b")
    first.step()
    run(clock, [first, second], 60, dead=set())
    assert len(first.held()) == len(second.held()) == SHARDS // 2
    assert sorted(first.held() + second.held()) == list(range(SHARDS))


def test_a_survivor_takes_a_dead_replicas_share_after_the_lease_expires() -> None:
    store, clock = FakeLeases(), Clock()
    first, second = replica(store, clock, "a"), replica(store, clock, "b")
    first.step()
    run(clock, [first, second], 60, dead=set())
    killed_at, share = clock.now, first.held()
    assert isinstance(second.events, Recorder)
    seen = len(second.events.changes)
    run(clock, [first, second], 10, dead={"a"})
    assert len(second.held()) == SHARDS // 2  # not before the Leases expired
    while len(second.held()) < SHARDS:
        run(clock, [first, second], 1, dead={"a"})
        assert clock.now - killed_at < 60, "the survivor did not take over within a minute"
    # lease duration (20 s) + one round (4 s) at most
    assert clock.now - killed_at <= 24
    taken = [shard for change, shard in second.events.changes[seen:] if change == "taken"]
    assert sorted(taken) == share


def test_a_replica_that_cannot_renew_stops_working_before_its_lease_can_expire() -> None:
    store, clock = FakeLeases(), Clock()
    cut_off, other = replica(store, clock, "a"), replica(store, clock, "b")
    cut_off.step()
    run(clock, [cut_off, other], 60, dead=set())
    mine = cut_off.held()
    store.down.add("a")  # a network partition: "a" still runs but cannot reach the API
    stopped = None
    taken = None
    start = clock.now
    while taken is None:
        run(clock, [cut_off, other], 1, dead=set())
        if stopped is None and not cut_off.held():
            stopped = clock.now - start
        if taken is None and set(mine) <= set(other.held()):
            taken = clock.now - start
    assert stopped is not None
    assert stopped <= 12  # the renew deadline
    assert taken >= 20  # the lease duration
    assert isinstance(cut_off.events, Recorder)
    assert ("lost", mine[0]) in cut_off.events.changes


def test_two_replicas_racing_for_one_lease_get_it_once() -> None:
    store, clock = FakeLeases(), Clock()
    first, second = replica(store, clock, "a", shards=1), replica(store, clock, "b", shards=1)
    first.step()
    second.step()
    assert first.held() == [0]
    assert second.held() == []
    assert store.leases["fairshift-shard-0"].holder == "a"


def test_a_clean_shutdown_hands_the_shards_over_at_once() -> None:
    store, clock = FakeLeases(), Clock()
    first, second = replica(store, clock, "a"), replica(store, clock, "b")
    first.step()
    run(clock, [first, second], 60, dead=set())
    first.release_all()
    assert first.held() == []
    assert store.leases["fairshift-member-a"].holder is None
    run(clock, [first, second], 8, dead={"a"})  # two rounds, far less than a lease
    assert second.held() == list(range(SHARDS))


def test_the_owned_count_follows_the_shards_held() -> None:
    store, clock = FakeLeases(), Clock()
    first, second = replica(store, clock, "a"), replica(store, clock, "b")
    first.step()
    run(clock, [first, second], 60, dead=set())
    names = [("ns", f"m{i:03d}") for i in range(40)]
    worked = [name for name in names if first.claims(*name)]
    for name in names:
        second.claims(*name)
    assert first.owned_count() == len(worked)
    assert first.owned_count() + second.owned_count() == 40
    first.forget(*worked[0])
    assert first.owned_count() == len(worked) - 1


def test_member_leases_of_long_gone_replicas_are_deleted() -> None:
    store, clock = FakeLeases(), Clock()
    first, second = replica(store, clock, "a"), replica(store, clock, "b")
    first.step()
    run(clock, [first, second], 20, dead=set())
    run(clock, [first, second], 260, dead={"a"})
    assert "fairshift-member-a" not in store.leases
    assert "fairshift-member-b" in store.leases


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"shards": 0}, "shards must be between 1 and 1024"),
        ({"renew_deadline": 25.0}, "retry < renew deadline < lease duration"),
        ({"retry": 15.0}, "retry < renew deadline < lease duration"),
        ({"identity": ""}, "needs an identity"),
    ],
)
def test_settings_that_could_let_two_replicas_work_one_shard_are_refused(
    changes: dict[str, object], message: str
) -> None:
    base: dict[str, object] = {
        "shards": 4,
        "namespace": "fairshift-system",
        "identity": "a",
        "lease_duration": 20.0,
        "renew_deadline": 12.0,
        "retry": 4.0,
    }
    with pytest.raises(ValueError, match=message):
        ShardSettings(**{**base, **changes})  # type: ignore[arg-type]


def test_identities_become_valid_lease_names() -> None:
    assert lease_name_part("fairshift-7d9f-abcde") == "fairshift-7d9f-abcde"
    odd = lease_name_part("Host_1.example:4242")
    assert odd.startswith("host-1-example-4242-")
    assert odd != lease_name_part("host-1-example-4242")


@dataclass
class SlowApi:
    """Every request takes ``seconds`` of the clock (an API server on a loaded machine);
    ``during`` is called before each, to look at the replica while its round goes on."""

    inner: Any
    clock: Clock
    seconds: float
    during: list[Any] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.inner, name)

        def slowly(*args: Any) -> Any:
            for look in self.during:
                look()
            self.clock.now += self.seconds
            return call(*args)

        return slowly


def test_a_slow_round_keeps_every_shard_it_renewed_in_time() -> None:
    """Each shard is fenced from when its own renewal was sent: in rounds of ten requests of
    half a second each, the last shard is renewed 4.5 s into its round, 9 s after its previous
    renewal (a round and a retry), so it must be worked all along, also 12 s after the
    previous round began, before this round reached it."""
    store, clock = FakeLeases(), Clock()
    alone = replica(store, clock, "a")
    slow = SlowApi(store.api_for("a"), clock, 0.5)
    alone.api = slow
    alone.step()
    seen: list[int] = []
    slow.during.append(lambda: seen.append(len(alone.held())))
    for _ in range(10):
        clock.now += alone.settings.retry
        alone.step()
    assert set(seen) == {SHARDS}
    assert isinstance(alone.events, Recorder)
    assert not [change for change in alone.events.changes if change[0] == "lost"]
