"""Kubernetes Events about a rollout, as ``kubectl describe`` shows them (core/v1 Events).

Each event has a fresh name (``<object>.<hex time>``, as kubectl's recorder does), the
involved object's reference, ``source.component: fairshift`` and the time from the clock the
poster was given. Messages longer than the API accepts are cut.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from fairshift.api.times import format_micro_time, format_time
from fairshift.k8s.store import ObjectStore

COMPONENT = "fairshift"
MAX_MESSAGE = 1024
MAX_REASON = 128

EventType = Literal["Normal", "Warning"]


def now_utc() -> datetime:
    """The wall clock, timezone-aware (the default clock of ``EventPoster``)."""
    return datetime.now(UTC)


class EventPoster:
    """Posts core/v1 Events about objects (usually the ModelRollout)."""

    def __init__(
        self,
        objects: ObjectStore,
        clock: Callable[[], datetime] = now_utc,
        instance: str = "",
    ) -> None:
        self._objects = objects
        self._clock = clock
        self._instance = instance

    def post_event(
        self,
        namespace: str,
        involved_object: Mapping[str, Any],
        reason: str,
        message: str,
        type_: EventType = "Normal",
    ) -> None:
        """Record an event about ``involved_object`` (apiVersion, kind, name, uid)."""
        if type_ not in ("Normal", "Warning"):
            raise ValueError(f"event type must be Normal or Warning, not {type_!r}")
        when = self._clock()
        body = event_body(namespace, involved_object, reason, message, type_, when, self._instance)
        self._objects.create("v1", "Event", namespace, body)


def event_body(
    namespace: str,
    involved_object: Mapping[str, Any],
    reason: str,
    message: str,
    type_: EventType,
    when: datetime,
    instance: str,
) -> dict[str, Any]:
    """The core/v1 Event object."""
    stamp = format_time(when)
    micro = format_micro_time(when)
    name = f"{involved_object['name']}.{int(when.timestamp() * 1e9):x}"
    reference = {
        key: involved_object[key]
        for key in ("apiVersion", "kind", "name", "uid", "resourceVersion")
        if involved_object.get(key)
    }
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {**reference, "namespace": namespace},
        "reason": reason[:MAX_REASON],
        "message": message[:MAX_MESSAGE],
        "type": type_,
        "source": {"component": COMPONENT},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "eventTime": micro,
        "count": 1,
        "reportingComponent": COMPONENT,
        "reportingInstance": instance or COMPONENT,
        "action": reason[:MAX_REASON],
    }
    return body
