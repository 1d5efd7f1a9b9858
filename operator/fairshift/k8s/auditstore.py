"""The audit trail of a rollout, as JSON lines in a ConfigMap ``<rollout>-audit``.

The ConfigMap is owned by the ModelRollout (it goes when the rollout goes). Appends are
optimistic: read, add a line, write with ``metadata.resourceVersion`` as a precondition, and on
a 409 start again from a fresh read. The record is built by a function of the newest stored
record, so a record that chains to its predecessor (the audit hash chain) is rebuilt on every
retry and always chains to what is really stored.

The store is bounded: when the lines exceed ``max_bytes`` the oldest are dropped. The number
dropped so far is kept under ``dropped``, the last dropped line under ``dropped-last.json``,
so a verifier can still check that the oldest kept record chains to it, and a summary of the
whole trimmed span under ``trimmed-summary.json`` (``engine.audit.summarize``: records per
action, breaches, attestations, persons' requests, first and last seq and time), a few hundred
bytes however long the trail grows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fairshift.api.names import audit_configmap_name
from fairshift.engine.audit import GENESIS_HASH, summarize
from fairshift.k8s.errors import Conflict
from fairshift.k8s.store import CONFLICT_ATTEMPTS, ObjectStore, require_owned

RECORDS_KEY = "records.jsonl"
DROPPED_KEY = "dropped"
DROPPED_LAST_KEY = "dropped-last.json"
SUMMARY_KEY = "trimmed-summary.json"
DEFAULT_MAX_BYTES = 512 * 1024  # a ConfigMap holds at most 1 MiB

Record = dict[str, Any]
RecordBuilder = Callable[[Record | None], Record]


def encode_record(record: Mapping[str, Any]) -> str:
    """One record as one canonical JSON line (sorted keys, no spaces, no newline)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


UNREADABLE = "unreadable"  # the key of a stored line that is not a JSON object


@dataclass(frozen=True)
class AuditTrail:
    """A rollout's stored audit records, oldest first, and what was trimmed before them."""

    records: list[dict[str, Any]]
    dropped: int = 0
    dropped_last: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None  # of the trimmed span (None: nothing trimmed)

    @property
    def unreadable(self) -> list[int]:
        """Positions of stored lines that were not JSON objects (see ``parse_record``)."""
        return [i for i, record in enumerate(self.records) if set(record) == {UNREADABLE}]

    @property
    def first_prev_hash(self) -> str:
        """The hash the oldest kept record must follow (genesis when nothing was trimmed)."""
        if self.dropped_last is None:
            return GENESIS_HASH
        return str(self.dropped_last.get("hash"))


def parse_record(line: str) -> dict[str, Any]:
    """One stored record; a line that is not a JSON object becomes ``{"unreadable": line}``,
    so a verifier reports it in place instead of failing to read the rest."""
    try:
        record = json.loads(line)
    except ValueError:
        return {UNREADABLE: line}
    return record if isinstance(record, dict) else {UNREADABLE: line}


def parse_records(text: str) -> list[dict[str, Any]]:
    """The records of the store's JSON lines, oldest first (blank lines skipped)."""
    return [parse_record(line) for line in text.splitlines() if line.strip()]


def bounded(lines: Sequence[str], max_bytes: int) -> tuple[list[str], list[str]]:
    """Split ``lines`` into (dropped oldest, kept newest) so the kept ones fit ``max_bytes``."""
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        size += len(line.encode()) + 1
        if size > max_bytes and kept:
            break
        kept.append(line)
    kept.reverse()
    return list(lines[: len(lines) - len(kept)]), kept


class AuditStore:
    """Appends audit records to, and reads them from, a rollout's audit ConfigMap."""

    def __init__(self, objects: ObjectStore, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._objects = objects
        self._max_bytes = max_bytes

    def append(
        self,
        namespace: str,
        rollout: str,
        build: RecordBuilder,
        owner_references: Sequence[Mapping[str, Any]] = (),
    ) -> Record:
        """Append ``build(newest stored record or None)``; returns the record stored."""
        for _ in range(CONFLICT_ATTEMPTS):
            try:
                return self._append_once(namespace, rollout, build, owner_references)
            except Conflict:
                continue
        raise Conflict(
            f"the audit trail of {namespace}/{rollout} kept changing; "
            f"gave up after {CONFLICT_ATTEMPTS} tries",
            409,
        )

    def read_records(self, namespace: str, rollout: str) -> list[Record]:
        """The stored records, oldest first (after any truncation)."""
        return self.trail(namespace, rollout).records

    def trail(self, namespace: str, rollout: str) -> AuditTrail:
        """One read of the ConfigMap: the records and what was trimmed before them."""
        found = self._objects.get("v1", "ConfigMap", namespace, audit_configmap_name(rollout))
        data = (found or {}).get("data") or {}
        last = data.get(DROPPED_LAST_KEY)
        summary = data.get(SUMMARY_KEY)
        return AuditTrail(
            records=parse_records(data.get(RECORDS_KEY, "")),
            dropped=int(data.get(DROPPED_KEY) or 0),
            dropped_last=parse_record(last) if last else None,
            summary=parse_record(summary) if summary else None,
        )

    def _append_once(
        self,
        namespace: str,
        rollout: str,
        build: RecordBuilder,
        owner_references: Sequence[Mapping[str, Any]],
    ) -> Record:
        name = audit_configmap_name(rollout)
        found = self._objects.get("v1", "ConfigMap", namespace, name)
        if found is None:
            record = build(None)
            self._objects.create(
                "v1", "ConfigMap", namespace, self._new(namespace, name, record, owner_references)
            )
            return record
        require_owned(found, owner_references, f"ConfigMap {namespace}/{name}")
        data = found.get("data") or {}
        lines = [line for line in data.get(RECORDS_KEY, "").splitlines() if line.strip()]
        record = build(json.loads(lines[-1]) if lines else None)
        dropped, kept = bounded([*lines, self._checked_line(record)], self._max_bytes)
        patch_data = {RECORDS_KEY: "\n".join(kept) + "\n"}
        if dropped:
            patch_data[DROPPED_KEY] = str(int(data.get(DROPPED_KEY) or 0) + len(dropped))
            patch_data[DROPPED_LAST_KEY] = dropped[-1]
            previous = data.get(SUMMARY_KEY)
            summary = summarize(
                parse_record(previous) if previous else None, [parse_record(d) for d in dropped]
            )
            patch_data[SUMMARY_KEY] = encode_record(summary)
        version = found.get("metadata", {}).get("resourceVersion")
        patch = {"metadata": {"resourceVersion": version}, "data": patch_data}
        self._objects.patch("v1", "ConfigMap", namespace, name, patch)
        return record

    def _checked_line(self, record: Record) -> str:
        line = encode_record(record)
        if len(line.encode()) + 1 > self._max_bytes:
            raise ValueError(
                f"an audit record of {len(line.encode())} bytes exceeds the store's bound "
                f"of {self._max_bytes} bytes"
            )
        return line

    def _new(
        self,
        namespace: str,
        name: str,
        record: Record,
        owner_references: Sequence[Mapping[str, Any]],
    ) -> dict[str, Any]:
        line = self._checked_line(record)
        metadata: dict[str, Any] = {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "fairshift"},
        }
        if owner_references:
            metadata["ownerReferences"] = [dict(reference) for reference in owner_references]
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "data": {RECORDS_KEY: line + "\n"},
        }
