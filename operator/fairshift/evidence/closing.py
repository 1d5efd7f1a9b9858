"""What a run gets when its rollout ends: the whole audit chain and the report.

Built from what the operator already stores: the audit chain (``<rollout>-audit``) and the
ModelRollout. The report is ``fairshift report``'s page, charts embedded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from fairshift.k8s.auditstore import encode_record
from fairshift.report.building import build_charts
from fairshift.report.page import render_page
from fairshift.report.timeline import from_records, rollout_facts

ReadRecords = Callable[[str, str], list[dict[str, Any]]]
ReadRollout = Callable[[str, str], dict[str, Any] | None]

RECORDS_ARTIFACT = "audit/records.jsonl"
REPORT_ARTIFACT = "report/report.html"


def closing_artifacts(
    read_records: ReadRecords,
    read_rollout: ReadRollout,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Callable[[str, str, Mapping[str, Any]], dict[str, str]]:
    """``artifacts(namespace, rollout, last record)`` -> ``{path in the run: text}``."""

    def artifacts(namespace: str, rollout: str, last: Mapping[str, Any]) -> dict[str, str]:
        records = read_records(namespace, rollout)
        if not any(r.get("hash") == last.get("hash") for r in records):
            records = [*records, dict(last)]  # the store was off, or trimmed past it
        obj = read_rollout(namespace, rollout) or {}
        revision = last.get("candidateRevision")
        own = [r for r in records if r.get("candidateRevision") == revision]
        data = from_records(f"{namespace}/{rollout} {revision}", own, rollout_facts(obj))
        return {
            RECORDS_ARTIFACT: "".join(encode_record(r) + "\n" for r in records),
            REPORT_ARTIFACT: render_page(data, build_charts(data), clock()),
        }

    return artifacts
