"""The metric-source protocol: what the reconciler asks for each analysis tick.

Both versions are read together, so that a source can answer both with the same queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from fairshift.api.analysis import Analysis
from fairshift.engine.counts import VersionCounts

Version = Literal["stable", "candidate"]
Instant = Literal["start", "end"]


@dataclass(frozen=True)
class QueryContext:
    """What to read: one version's identity (the ``{{name}}`` values of the ``selector`` and
    custom queries) and the analysis' time span; counts are what happened from ``start`` to
    ``end`` (both timezone-aware)."""

    namespace: str
    rollout: str
    deployment: str  # the Deployment serving this version (``<target>-primary`` or target)
    version: Version
    service: str
    start: datetime  # the analysis start (the step's ``analysisStartedAt``)
    end: datetime  # now

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("QueryContext needs timezone-aware start and end")
        if self.end < self.start:
            raise ValueError(f"QueryContext ends ({self.end}) before it starts ({self.start})")

    @property
    def window_seconds(self) -> int:
        """The analysis' age in whole seconds, at least 1 (``{{window}}`` in custom queries)."""
        return max(1, int((self.end - self.start).total_seconds()))


class MetricsError(RuntimeError):
    """The source could not answer (unreachable, timeout, malformed); a temporary error."""


@dataclass(frozen=True)
class VersionPair:
    """The counts of both versions over the same span."""

    stable: VersionCounts
    candidate: VersionCounts


class MetricSource(Protocol):
    """Collects the counts of both model versions over the analysis' span."""

    def collect(
        self, analysis: Analysis, stable: QueryContext, candidate: QueryContext
    ) -> VersionPair:
        """Counts per finest slice cell, score and latency histograms, errors, custom gates."""


class InvalidQueryError(MetricsError):
    """A query that cannot run as written: an unknown ``{{variable}}``, an unusable slice
    attribute, or PromQL the server refused. Retrying does not help; the spec must change."""
