"""The files a run gets: the model card at every decision; the whole audit chain and the
report as well when the rollout ends.

Built from what the operator already stores: the audit chain (``<rollout>-audit``) and the
ModelRollout. The card is ``fairshift card``'s (``model-card.md``, ``model-card.html``);
the report is ``fairshift report``'s page with its charts embedded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from fairshift.engine.audit import verify_chain
from fairshift.k8s.auditstore import encode_record
from fairshift.report.building import build_charts
from fairshift.report.card import build_card, card_files, chain_note
from fairshift.report.page import render_page
from fairshift.report.timeline import from_records, rollout_facts

ReadRecords = Callable[[str, str], list[dict[str, Any]]]
ReadRollout = Callable[[str, str], dict[str, Any] | None]
Artifacts = Callable[[str, str, Mapping[str, Any]], dict[str, str]]
"""``artifacts(namespace, rollout, last record)`` -> ``{path in the run: text}``."""

RECORDS_ARTIFACT = "audit/records.jsonl"
REPORT_ARTIFACT = "report/report.html"


def candidate_before(records: Sequence[Mapping[str, Any]], seq: int) -> str | None:
    """The candidate revision the newest record before ``seq`` names (a promotion's own
    record names none: its candidate has become the stable revision)."""
    for record in reversed(records):
        if int(record.get("seq") or 0) < seq and record.get("candidateRevision"):
            return str(record["candidateRevision"])
    return None


class EvidenceFiles:
    """Reads the chain and the rollout, and renders the card and the report."""

    def __init__(
        self,
        read_records: ReadRecords,
        read_rollout: ReadRollout,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._read_records = read_records
        self._read_rollout = read_rollout
        self._clock = clock

    def chain(self, namespace: str, rollout: str, last: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The stored chain, ending with ``last`` even when the store lacks it."""
        records = self._read_records(namespace, rollout)
        if not any(r.get("hash") == last.get("hash") for r in records):
            records = [*records, dict(last)]  # the store was off, or trimmed past it
        return records

    def candidate_before(self, namespace: str, rollout: str, seq: int) -> str | None:
        """The candidate revision the newest stored record before ``seq`` names."""
        return candidate_before(self._read_records(namespace, rollout), seq)

    def card(self, namespace: str, rollout: str, last: Mapping[str, Any]) -> dict[str, str]:
        """The model card as it stands after ``last``."""
        return self.render_card(namespace, rollout, last, self.chain(namespace, rollout, last))

    def closing(self, namespace: str, rollout: str, last: Mapping[str, Any]) -> dict[str, str]:
        """The card, the whole chain, and the report of ``last``'s candidate revision."""
        records = self.chain(namespace, rollout, last)
        obj = self._read_rollout(namespace, rollout) or {}
        seq = int(last.get("seq") or 0)
        revision = last.get("candidateRevision") or candidate_before(records, seq)
        own = [
            r
            for r in records
            if r.get("candidateRevision") == revision or r.get("hash") == last.get("hash")
        ]
        data = from_records(f"{namespace}/{rollout} {revision}", own, rollout_facts(obj))
        return {
            **self.render_card(namespace, rollout, last, records, obj),
            RECORDS_ARTIFACT: "".join(encode_record(r) + "\n" for r in records),
            REPORT_ARTIFACT: render_page(data, build_charts(data), self._clock()),
        }

    def render_card(
        self,
        namespace: str,
        rollout: str,
        last: Mapping[str, Any],
        records: list[dict[str, Any]],
        obj: Mapping[str, Any] | None = None,
    ) -> dict[str, str]:
        if obj is None:
            obj = self._read_rollout(namespace, rollout) or {}
        first_prev = records[0].get("prev_hash") if records else None
        check = verify_chain(records, str(last.get("hash")), str(first_prev))
        note = chain_note(list(check.problems), len(records))
        card = build_card(f"{namespace}/{rollout}", obj, records, note, self._clock())
        return card_files(card)
