"""When each rollout is looked at next, and what the operator owes and has done.

A rollout's plan says when it wants its next look (``Plan.next_check``: the next analysis or
guard look, a route to read back, a resting rollout's slower look). A look is due when that
time has come, when a person changed the rollout (its generation or its action annotation)
since the plan was made, or when this process has no plan for it yet (new, after a restart,
or taken over from another replica); it never waits longer than ``ceiling`` seconds.

:class:`Schedule` keeps those times in memory (a hint: a restarted process looks at every
rollout once), the stale-body guard (the audit seq of our last status write, so a body older
than it is not acted on), and one wake-up per rollout that its loop sleeps on: a person's
change, a body catching up with our write, or a shard gained sets it. Its counts are the
operator's lag: looks that came due (counted when their time passes, even when nothing has
looked yet) against looks done, the oldest overdue look, and how late each look started.

The schedule is read by the event loop and by Prometheus' scrape thread: a lock guards it.
The wake-ups are asyncio events: set them on the loop that waits on them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

STALE_BODY_WAIT = timedelta(seconds=30)
"""How long a body older than our last status write is held back. Acting on it would be safe
(the audit log is replayed) but would repeat the replay's Events; a write that never arrives
(a failed patch) must not stall the rollout."""


class LatenessObserver(Protocol):
    """Where a look's lateness goes (``metrics.operator_metrics.OperatorMetrics``)."""

    def observe_lateness(self, seconds: float) -> None: ...


@dataclass
class Due:
    """When a rollout wants its next look, what a person had set when it said so, and whether
    it has been counted as come due (a look started for it)."""

    at: datetime
    generation: int
    action: str | None
    counted: bool = False


@dataclass
class Watched:
    """One rollout's place in the schedule: who it is and what wakes its loop."""

    namespace: str
    name: str
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    held_back: bool = False  # its body is older than our last write: wait for the watch


@dataclass(frozen=True)
class Person:
    """What a person can change that makes a look due at once."""

    generation: int
    action: str | None


class Schedule:
    """Every rollout's next look, the stale-body guard, the wake-ups and the lag counts."""

    def __init__(self, ceiling: float, lateness: LatenessObserver | None = None) -> None:
        if ceiling <= 0:
            raise ValueError(f"the longest wait between looks must be positive, got {ceiling}")
        self.ceiling = ceiling
        self._lateness = lateness
        self._lock = threading.Lock()
        self._due: dict[str, Due] = {}
        self._written: dict[str, tuple[int, datetime]] = {}
        self._watched: dict[str, Watched] = {}
        self._came_due = 0
        self._done = 0

    # -- the loops ----------------------------------------------------------------------------

    def watch(self, uid: str, namespace: str, name: str) -> asyncio.Event:
        """The wake-up of the rollout's loop (made on first call)."""
        watched = self._watched.get(uid)
        if watched is None:
            watched = self._watched[uid] = Watched(namespace, name)
        return watched.wake

    def noticed(self, uid: str, person: Person, audit_seq: int) -> None:
        """A watch event of the rollout: wake its loop when a person changed it since its plan,
        or when its body has caught up with our last write."""
        watched = self._watched.get(uid)
        if watched is None:
            return
        with self._lock:
            due = self._due.get(uid)
            written = self._written.get(uid)
        changed = due is not None and Person(due.generation, due.action) != person
        caught_up = watched.held_back and (written is None or audit_seq >= written[0])
        if changed or caught_up:
            watched.wake.set()

    def unwatch(self, uid: str) -> None:
        """The rollout's loop has ended for good."""
        self._watched.pop(uid, None)

    def wake_where(self, wanted: Callable[[str, str], bool]) -> int:
        """Wake the loops of the rollouts ``wanted(namespace, name)`` picks (a shard gained);
        returns how many."""
        woken = 0
        for watched in list(self._watched.values()):
            if wanted(watched.namespace, watched.name):
                watched.wake.set()
                woken += 1
        return woken

    def wait_seconds(self, uid: str, now: datetime, *, works_here: bool = True) -> float:
        """How long the rollout's loop may sleep before its next look (0: look now)."""
        if not works_here:
            return self.ceiling
        with self._lock:
            due = self._due.get(uid)
            written = self._written.get(uid)
        watched = self._watched.get(uid)
        if watched is not None and watched.held_back and written is not None:
            return clamp((written[1] + STALE_BODY_WAIT - now).total_seconds(), self.ceiling)
        if due is None:
            return 0.0
        return clamp((due.at - now).total_seconds(), self.ceiling)

    # -- one look -----------------------------------------------------------------------------

    def is_due(self, uid: str, person: Person, now: datetime) -> bool:
        """Whether to look now: the plan's time has come, a person changed something, or there
        is no plan for the rollout here yet."""
        with self._lock:
            due = self._due.get(uid)
        if due is None or now >= due.at:
            return True
        return Person(due.generation, due.action) != person

    def is_stale(self, uid: str, audit_seq: int, now: datetime) -> bool:
        """Whether the body predates a status this process wrote less than
        ``STALE_BODY_WAIT`` ago (its audit seq is older); such a body is held back until the
        watch delivers ours. After a restart every body is taken."""
        with self._lock:
            written = self._written.get(uid)
        stale = (
            written is not None and now - written[1] < STALE_BODY_WAIT and audit_seq < written[0]
        )
        watched = self._watched.get(uid)
        if watched is not None:
            watched.held_back = stale
        return stale

    def start(self, uid: str, person: Person, now: datetime) -> None:
        """A look begins: it is counted as come due once (a retry after a failure is not
        counted again), and its lateness observed. Until it succeeds the rollout stays due."""
        with self._lock:
            due = self._due.get(uid)
            if due is not None and due.counted and Person(due.generation, due.action) == person:
                return  # a retry of a look already counted
            late = due is not None and due.at <= now
            self._came_due += 1
            at = due.at if due is not None and late else now
            self._due[uid] = Due(at, person.generation, person.action, counted=True)
        if late and due is not None and self._lateness is not None:
            self._lateness.observe_lateness((now - due.at).total_seconds())

    def done(
        self, uid: str, person: Person, written_seq: int, next_check: datetime | None, now: datetime
    ) -> None:
        """A look succeeded: its status (with ``written_seq``) was written at ``now``; the
        next look is at the plan's ``next_check`` (None: at the ceiling)."""
        at = next_check if next_check is not None else now + timedelta(seconds=self.ceiling)
        with self._lock:
            self._done += 1
            self._written[uid] = (written_seq, now)
            self._due[uid] = Due(at, person.generation, person.action)

    def forget(self, uid: str, now: datetime) -> bool:
        """The rollout is gone or worked by another replica: drop it (a look that came due and
        never started still counts as come due). Returns whether this process had worked it."""
        with self._lock:
            due = self._due.pop(uid, None)
            worked = self._written.pop(uid, None) is not None
            if due is not None and not due.counted and due.at <= now:
                self._came_due += 1
        return worked

    # -- the lag ------------------------------------------------------------------------------

    def looks_due(self, now: datetime) -> int:
        """Looks that came due: started ones, and overdue ones not started yet."""
        with self._lock:
            waiting = sum(1 for due in self._due.values() if not due.counted and due.at <= now)
            return self._came_due + waiting

    def looks_done(self) -> int:
        with self._lock:
            return self._done

    def oldest_overdue(self, now: datetime) -> float:
        """Seconds since the oldest look that is due and has not happened (0 when none is)."""
        with self._lock:
            late = [(now - due.at).total_seconds() for due in self._due.values() if due.at <= now]
        return max(late, default=0.0)

    def knows(self, uid: str) -> bool:
        with self._lock:
            return uid in self._due


def clamp(seconds: float, ceiling: float) -> float:
    return min(max(seconds, 0.0), ceiling)
