"""Times on the wire: one format for status, audit records, Events and the CLI.

Kubernetes writes RFC 3339 timestamps in UTC with a ``Z`` suffix and whole seconds
(``2026-11-22T12:00:00Z``); fairshift does the same everywhere. Inside the program times are
timezone-aware ``datetime`` objects; they are turned into text only at the edge, by
``format_time`` or the ``Timestamp`` type of the API models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_time(when: datetime) -> str:
    """``when`` as Kubernetes writes it: UTC, whole seconds, ``Z``."""
    return when.astimezone(UTC).strftime(TIME_FORMAT)


def format_micro_time(when: datetime) -> str:
    """``when`` as a Kubernetes MicroTime (an Event's ``eventTime``): microseconds, ``Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | datetime | None) -> datetime | None:
    """A timestamp written by ``format_time`` (or any RFC 3339 time) as an aware datetime."""
    if text is None or text == "":
        return None
    if isinstance(text, datetime):
        return text if text.tzinfo else text.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def seconds_between(start: datetime | None, end: datetime) -> float:
    """Seconds from ``start`` to ``end``; 0 when ``start`` is unknown or in the future."""
    return 0.0 if start is None else max(0.0, (end - start).total_seconds())


Timestamp = Annotated[
    datetime,
    BeforeValidator(parse_time),
    PlainSerializer(format_time, return_type=str, when_used="json"),
]
"""A datetime in the API models, written as ``2026-11-22T12:00:00Z`` on the wire."""
