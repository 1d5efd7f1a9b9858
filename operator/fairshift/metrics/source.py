"""The metric-source protocol: what the reconciler asks for each analysis tick."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from fairshift.api.spec import Analysis
from fairshift.engine.counts import VersionCounts

Version = Literal["stable", "candidate"]


@dataclass(frozen=True)
class QueryContext:
    """Values the ``selector`` and custom queries may use as ``{{name}}``."""

    namespace: str
    rollout: str
    deployment: str  # the Deployment serving this version (``<target>-primary`` or target)
    version: Version
    service: str
    window_seconds: int  # counts are cumulative over the last window (the step's analysis age)


class MetricsError(RuntimeError):
    """The source could not answer (unreachable, timeout, malformed); a temporary error."""


class MetricSource(Protocol):
    """Collects the counts of one model version over a window."""

    def collect(self, analysis: Analysis, context: QueryContext) -> VersionCounts:
        """Counts per finest slice cell, score and latency histograms, errors, custom gates."""


class InvalidQueryError(MetricsError):
    """A query that cannot run as written: an unknown ``{{variable}}``, an unusable slice
    attribute, or PromQL the server refused. Retrying does not help; the spec must change."""
