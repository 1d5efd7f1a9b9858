"""Sharding rollouts across operator replicas with coordination.k8s.io Leases.

A rollout belongs to one of ``shards`` shards by a stable hash of its namespace and name
(:func:`shard_of`). Each shard has a Lease (``<group>-shard-<i>``); the replica that holds it
works the shard's rollouts, the others skip them. Each replica also renews a member Lease
(``<group>-member-<identity>``), so every replica knows how many are alive and takes its fair
share, ``ceil(shards / live replicas)``: two replicas split the shards, a lone survivor takes
them all. The API server's optimistic concurrency (``resourceVersion`` on every write, see
``k8s.leases``) decides every race; nothing else does.

Timing (as client-go's leader election does it): a Lease counts as expired when its
``resourceVersion`` has not changed for its ``leaseDurationSeconds`` by this replica's own
monotonic clock, so clocks of different machines need not agree. A replica renews its Leases
every ``retry`` seconds and works a shard only until ``renew_deadline`` after it sent its last
successful renewal of that shard's Lease (the fence); ``renew_deadline < lease_duration``, so
a replica that cannot renew (dead, partitioned, stalled) has stopped working a shard before
any other replica may take it. A replica above its fair share stops working the surplus at
once and lets those Leases expire for the others; on a clean shutdown it releases what it
holds.

:class:`ShardCoordinator` is pure logic over a :class:`~fairshift.k8s.leases.LeaseApi` and a
clock (``step`` is one round); :meth:`ShardCoordinator.run_in_background` runs the rounds in a
thread of their own.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from fairshift.k8s.errors import KubeError
from fairshift.k8s.leases import LeaseApi, LeaseRecord

log = logging.getLogger("fairshift.sharding")

MAX_SHARDS = 1024
# Member Leases of replicas gone for this many lease durations are deleted (pods get new names).
FORGET_AFTER_DURATIONS = 10


def shard_of(namespace: str, name: str, shards: int) -> int:
    """The shard of the rollout ``namespace/name``: stable across processes, versions and
    restarts (SHA-256, not Python's salted ``hash``)."""
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


@dataclass(frozen=True)
class ShardSettings:
    """How many shards, where their Leases live, who this replica is, and the timing."""

    shards: int
    namespace: str
    identity: str
    group: str = "fairshift"
    lease_duration: float = 20.0
    renew_deadline: float = 12.0
    retry: float = 4.0

    def __post_init__(self) -> None:
        if not 1 <= self.shards <= MAX_SHARDS:
            raise ValueError(f"shards must be between 1 and {MAX_SHARDS}, got {self.shards}")
        if not 0 < self.retry < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "shard timing must satisfy 0 < retry < renew deadline < lease duration, got "
                f"{self.retry} / {self.renew_deadline} / {self.lease_duration} seconds"
            )
        if not self.identity:
            raise ValueError("a sharded replica needs an identity (its pod name)")

    def shard_lease(self, shard: int) -> str:
        return f"{self.group}-shard-{shard}"

    @property
    def member_lease(self) -> str:
        return f"{self.group}-member-{lease_name_part(self.identity)}"

    @property
    def member_prefix(self) -> str:
        return f"{self.group}-member-"


def lease_name_part(identity: str) -> str:
    """``identity`` as a DNS label fragment: lower case, ``[a-z0-9-]``, at most 40 characters
    (plus a short hash when anything had to change, so two identities never collide)."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", identity.lower()).strip("-")[:40].strip("-")
    if cleaned == identity:
        return cleaned
    return f"{cleaned}-{hashlib.sha256(identity.encode()).hexdigest()[:8]}".strip("-")


class ShardEvents(Protocol):
    """What a coordinator reports; the operator counts these in its metrics."""

    def shard_changed(self, change: str, shard: int) -> None:
        """``change``: ``acquired`` (free), ``taken`` (expired from another replica),
        ``lost`` (a renewal failed or came too late) or ``released``."""

    def shards_held(self, count: int) -> None:
        """The number of shards this replica works now."""


class NoShardEvents:
    """Reports nowhere."""

    def shard_changed(self, change: str, shard: int) -> None:
        """Nothing to count."""

    def shards_held(self, count: int) -> None:
        """Nothing to show."""


@dataclass
class Observed:
    """A Lease as this replica last saw it, and when (monotonic) its version last changed."""

    lease: LeaseRecord
    since: float


@dataclass
class ShardCoordinator:
    """Holds this replica's fair share of the shard Leases; :meth:`owns` is the fence."""

    settings: ShardSettings
    api: LeaseApi
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = lambda: datetime.now(UTC)
    events: ShardEvents = field(default_factory=NoShardEvents)
    _observed: dict[str, Observed] = field(default_factory=dict)
    _fence: dict[int, float] = field(default_factory=dict)  # shard -> works it until (monotonic)
    _rollouts: dict[tuple[str, str], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    # -- what the handlers ask ---------------------------------------------------------------

    def shard(self, namespace: str, name: str) -> int:
        return shard_of(namespace, name, self.settings.shards)

    def owns(self, namespace: str, name: str) -> bool:
        """Whether this replica may work the rollout now: it holds the rollout's shard and
        renewed it less than ``renew_deadline`` ago."""
        return self.works(self.shard(namespace, name))

    def claims(self, namespace: str, name: str) -> bool:
        """:meth:`owns`, and remember the rollout for :meth:`owned_count`."""
        shard = self.shard(namespace, name)
        with self._lock:
            self._rollouts[(namespace, name)] = shard
        return self.works(shard)

    def forget(self, namespace: str, name: str) -> None:
        """The rollout is gone."""
        with self._lock:
            self._rollouts.pop((namespace, name), None)

    def owned_count(self) -> int:
        """How many of the rollouts seen so far this replica works now."""
        working = set(self.held())
        with self._lock:
            return sum(1 for shard in self._rollouts.values() if shard in working)

    def works(self, shard: int) -> bool:
        with self._lock:
            until = self._fence.get(shard)
        return until is not None and self.clock() < until

    def held(self) -> list[int]:
        """The shards this replica works now."""
        now = self.clock()
        with self._lock:
            return sorted(shard for shard, until in self._fence.items() if now < until)

    # -- one round ---------------------------------------------------------------------------

    def step(self) -> None:
        """One round: renew the member Lease, count live replicas, renew the fair share,
        let go of the surplus, take free or expired shards up to the fair share."""
        started = self.clock()
        self._expire_fences(started)
        leases = {lease.name: lease for lease in self.api.list()}
        self._observe(leases, started)
        self._renew_member(leases.get(self.settings.member_lease), started)
        fair = math.ceil(self.settings.shards / self._live_members(started))
        keep = self._renew_held(leases, fair)
        self._acquire(leases, fair - keep, started)
        self._forget_gone_members(started)
        self.events.shards_held(len(self.held()))

    def release_all(self) -> None:
        """Stop working every shard, then hand the Leases back (a clean shutdown)."""
        with self._lock:
            shards = sorted(self._fence)
            self._fence.clear()
        self.events.shards_held(0)
        now = self.wall()
        for shard in shards:
            lease = self._mine(self.settings.shard_lease(shard))
            if lease is not None and self.api.update(lease, None, now) is not None:
                self.events.shard_changed("released", shard)
        member = self._mine(self.settings.member_lease)
        if member is not None:
            self.api.update(member, None, now)

    # -- running -----------------------------------------------------------------------------

    def run_in_background(self) -> None:
        """Rounds every ``retry`` seconds in a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._loop, name="fairshift-shards", daemon=True)
        self._thread.start()

    def stop(self, release: bool = True) -> None:
        """End the rounds; hand the Leases back when ``release``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.retry + 10.0)
        if release:
            try:
                self.release_all()
            except KubeError as error:
                log.warning("could not release the shard Leases: %s", error)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except KubeError as error:
                log.warning("shard round failed (the fence stops work in time): %s", error)
            except Exception:  # the rounds must go on; the fence keeps work safe meanwhile
                log.exception("shard round failed unexpectedly (the fence stops work in time)")
            self._stop.wait(self.settings.retry)

    # -- the parts of a round ----------------------------------------------------------------

    def _observe(self, leases: dict[str, LeaseRecord], now: float) -> None:
        for name, lease in leases.items():
            seen = self._observed.get(name)
            if seen is None or seen.lease.version != lease.version:
                self._observed[name] = Observed(lease, now)
            else:
                seen.lease = lease
        for name in set(self._observed) - set(leases):
            del self._observed[name]

    def _expired(self, name: str, now: float) -> bool:
        seen = self._observed.get(name)
        if seen is None or seen.lease.holder is None:
            return True
        return now - seen.since >= seen.lease.duration_seconds

    def _live_members(self, now: float) -> int:
        prefix = self.settings.member_prefix
        others = {
            seen.lease.holder
            for name, seen in self._observed.items()
            if name.startswith(prefix) and not self._expired(name, now)
        }
        return len(others | {self.settings.identity})

    def _renew_member(self, lease: LeaseRecord | None, started: float) -> None:
        name = self.settings.member_lease
        identity = self.settings.identity
        duration = math.ceil(self.settings.lease_duration)
        if lease is None:
            written = self.api.create(name, identity, duration, self.wall())
        else:
            written = self.api.update(lease, identity, self.wall())
        if written is not None:
            self._observed[name] = Observed(written, started)

    def _renew_held(self, leases: dict[str, LeaseRecord], fair: int) -> int:
        """Renew up to ``fair`` of the shards this replica works; stop working the rest."""
        held = self.held()
        keep, surplus = held[:fair], held[fair:]
        for shard in surplus:
            self._unfence(shard)
            self.events.shard_changed("released", shard)
            log.info("shard %d: above the fair share of %d, left to expire for others", shard, fair)
        renewed = 0
        for shard in keep:
            lease = leases.get(self.settings.shard_lease(shard))
            written, sent = None, self.clock()
            if lease is not None and lease.holder == self.settings.identity:
                written = self.api.update(lease, self.settings.identity, self.wall())
            if written is None:
                self._unfence(shard)
                self.events.shard_changed("lost", shard)
                log.warning("shard %d: lost its Lease (another replica wrote it)", shard)
                continue
            self._hold(shard, written, sent)
            renewed += 1
        return renewed

    def _acquire(self, leases: dict[str, LeaseRecord], wanted: int, started: float) -> None:
        """Take up to ``wanted`` shards whose Lease is missing, free or expired."""
        for shard in self._candidates():
            if wanted <= 0:
                return
            name = self.settings.shard_lease(shard)
            lease, sent = leases.get(name), self.clock()
            if lease is None:
                duration = math.ceil(self.settings.lease_duration)
                written = self.api.create(name, self.settings.identity, duration, self.wall())
            elif self._expired(name, started):
                written = self.api.update(lease, self.settings.identity, self.wall())
            else:
                continue
            if written is None:
                continue  # another replica came first
            change = "taken" if lease is not None and lease.holder else "acquired"
            self._hold(shard, written, sent)
            self.events.shard_changed(change, shard)
            log.info("shard %d: %s", shard, change)
            wanted -= 1

    def _candidates(self) -> list[int]:
        """Shards not worked here, starting at an offset of this replica's own (two replicas
        starting together reach for different shards first)."""
        count = self.settings.shards
        offset = shard_of("", self.settings.identity, count)
        working = set(self.held())
        order = [(offset + step) % count for step in range(count)]
        return [shard for shard in order if shard not in working]

    def _forget_gone_members(self, now: float) -> None:
        """Delete member Leases whose replica has been gone for a long time."""
        prefix = self.settings.member_prefix
        for name, seen in list(self._observed.items()):
            gone_for = now - seen.since
            limit = FORGET_AFTER_DURATIONS * max(1, seen.lease.duration_seconds)
            if name.startswith(prefix) and name != self.settings.member_lease and gone_for > limit:
                self.api.delete(seen.lease)
                del self._observed[name]

    # -- the fence ---------------------------------------------------------------------------

    def _hold(self, shard: int, lease: LeaseRecord, sent: float) -> None:
        self._observed[lease.name] = Observed(lease, sent)
        with self._lock:
            self._fence[shard] = sent + self.settings.renew_deadline

    def _unfence(self, shard: int) -> None:
        with self._lock:
            self._fence.pop(shard, None)

    def _expire_fences(self, now: float) -> None:
        with self._lock:
            late = [shard for shard, until in self._fence.items() if now >= until]
            for shard in late:
                del self._fence[shard]
        for shard in late:
            self.events.shard_changed("lost", shard)
            log.warning("shard %d: not renewed in time, no longer worked here", shard)

    def _mine(self, name: str) -> LeaseRecord | None:
        seen = self._observed.get(name)
        if seen is None or seen.lease.holder != self.settings.identity:
            return None
        return seen.lease
