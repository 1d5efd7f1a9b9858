"""Where a gate's estimate is acceptable, on the scale the evidence reports it.

``min``/``max`` bound the candidate's own value; ``maxIncrease``/``maxDecrease``/``maxChange``
bound candidate minus stable. Latency quantile gates are judged on the share of candidate
requests slower than the bound, which may be at most ``1 - q`` (e.g. 0.01 for p99).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fairshift.api.catalog import METRICS, MetricFamily, latency_quantile
from fairshift.api.status import GateEvidence

INF = math.inf


@dataclass(frozen=True)
class Region:
    """The acceptable interval ``[low, high]`` of a gate's estimate (infinite ends are open)."""

    low: float
    high: float
    label: str

    @property
    def limits(self) -> list[float]:
        """The finite ends: where to draw threshold lines."""
        return [x for x in (self.low, self.high) if math.isfinite(x)]

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def acceptable_region(evidence: GateEvidence) -> Region:
    """The acceptable region of ``evidence.estimate`` for its gate."""
    t = evidence.threshold
    if evidence.metric.startswith("latency_p"):
        allowed = 1.0 - latency_quantile(evidence.metric)
        return Region(-INF, allowed, f"≤ {allowed:g}")
    regions = {
        "min": Region(t, INF, f"≥ {t:g}"),
        "max": Region(-INF, t, f"≤ {t:g}"),
        "maxIncrease": Region(-INF, t, f"increase ≤ {t:g}"),
        "maxDecrease": Region(-t, INF, f"decrease ≤ {t:g}"),
        "maxChange": Region(-t, t, f"|change| ≤ {t:g}"),
    }
    if evidence.bound not in regions:
        raise ValueError(f"gate {evidence.gate}: unknown bound {evidence.bound!r}")
    return regions[evidence.bound]


def estimate_label(evidence: GateEvidence) -> str:
    """What the estimate measures, for an axis label."""
    if evidence.metric.startswith("latency_p"):
        return "share of candidate requests slower than the bound"
    if evidence.bound in ("maxIncrease", "maxDecrease", "maxChange"):
        return f"{evidence.metric}: candidate − stable"
    info = METRICS.get(evidence.metric)
    if info is not None and info.family is MetricFamily.DRIFT:
        return f"{evidence.metric}: candidate's scores against stable's"
    return f"{evidence.metric} (candidate)"
