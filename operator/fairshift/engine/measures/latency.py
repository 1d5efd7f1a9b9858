"""Latency gates, overall: the share of candidate requests slower than the bound.

A quantile bound ``q`` at ``L`` seconds is tested as "at most ``1 - q`` of requests are slower
than ``L``" (a proportion, with its variance); ``maxIncrease`` puts ``L`` at stable's quantile
plus the margin.
"""

from __future__ import annotations

from fairshift.api.analysis import Gate
from fairshift.api.catalog import latency_quantile
from fairshift.engine import distributions
from fairshift.engine.counts import OVERALL
from fairshift.engine.measures.base import INF, FixedLook, Measurement, Versions
from fairshift.engine.sequential import proportion_variance


class LatencyMeasure:
    """Overall: request latency against a bound or against stable."""

    def measure(self, gate: Gate, versions: Versions) -> list[Measurement]:
        stable, candidate = versions.stable.counts.latency, versions.candidate.counts.latency
        if candidate is None:
            return []
        q = latency_quantile(str(gate.metric))
        s_quantile = distributions.quantile(stable, q) if stable is not None else None
        limit: float | None = gate.threshold
        if gate.bound_kind == "maxIncrease":
            limit = None if s_quantile is None else s_quantile + gate.threshold
        slow = distributions.exceedance(candidate, limit) if limit is not None else None
        stable_slow = None
        if stable is not None and limit is not None and gate.bound_kind == "max":
            stable_slow = distributions.exceedance(stable, limit)
        allowed = 1.0 - q
        note = "stable latency unknown"
        if limit is not None:
            note = f"share of requests slower than {limit:.4g}s; at most {allowed:.4g} allowed"
        return [
            Measurement(
                gate=gate,
                slice=OVERALL,
                reference=None,
                stable_value=s_quantile,
                candidate_value=distributions.quantile(candidate, q),
                estimate=slow.value if slow else None,
                variance=proportion_variance(slow) if slow else None,
                acceptable=(-INF, allowed),
                stable_samples=stable.total if stable is not None else 0.0,
                candidate_samples=candidate.total,
                needs_stable=gate.bound_kind == "maxIncrease",
                fixed=FixedLook("wilson", (slow,)) if slow else FixedLook("wald"),
                margin_scale=allowed,
                note=note,
                stable_estimate=stable_slow.value if stable_slow else None,
                stable_variance=proportion_variance(stable_slow) if stable_slow else None,
            )
        ]
