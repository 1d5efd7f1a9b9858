"""PromQL gates: the candidate's value of the user's own query, compared as a point value."""

from __future__ import annotations

from fairshift.api.analysis import Gate
from fairshift.engine.counts import OVERALL
from fairshift.engine.measures.base import INF, Measurement, Versions, absolute_region


class QueryMeasure:
    """Overall: the query's single number, against ``min`` or ``max``."""

    def measure(self, gate: Gate, versions: Versions) -> list[Measurement]:
        value = versions.candidate.counts.custom.get(gate.name)
        return [
            Measurement(
                gate=gate,
                slice=OVERALL,
                reference=None,
                stable_value=None,
                candidate_value=value,
                estimate=value,
                variance=None,
                acceptable=absolute_region(gate),
                stable_samples=0.0,
                candidate_samples=0.0 if value is None else INF,
                needs_stable=False,
                point_only=True,
                note="PromQL gate: compared as a point value",
            )
        ]
