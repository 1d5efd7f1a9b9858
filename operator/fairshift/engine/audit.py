"""The tamper-evident audit trail: an append-only hash chain of decision records.

Each record holds ``seq``, its payload (aggregates and metadata only, never request content),
the previous record's hash and its own hash: SHA-256 over the canonical JSON of everything but
``hash``. Editing a record breaks its hash; removing or reordering one breaks the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    """The byte-stable JSON the hashes are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 of a record without its own ``hash`` field."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def chain_record(payload: Mapping[str, Any], seq: int, prev_hash: str) -> dict[str, Any]:
    """A new record following ``prev_hash`` at position ``seq``."""
    if "hash" in payload or "prev_hash" in payload or "seq" in payload:
        raise ValueError("a payload may not set seq, prev_hash or hash")
    record: dict[str, Any] = {**payload, "seq": seq, "prev_hash": prev_hash}
    record["hash"] = record_hash(record)
    return record


@dataclass(frozen=True)
class ChainCheck:
    """The result of verifying a chain: ``ok`` and one line per problem found."""

    records: int
    problems: tuple[str, ...] = field(default_factory=tuple)
    head: str = GENESIS_HASH

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(
    records: Sequence[Mapping[str, Any]],
    expected_head: str | None = None,
    first_prev_hash: str = GENESIS_HASH,
) -> ChainCheck:
    """Check hashes, links and sequence numbers; ``expected_head`` catches a cut tail.

    ``first_prev_hash`` lets a verifier start from a known record when older records were
    trimmed (the trim itself is then recorded by that record's ``prev_hash``).
    """
    problems: list[str] = []
    previous_hash = first_prev_hash
    previous_seq: int | None = None
    for index, record in enumerate(records):
        seq = record.get("seq")
        where = f"record {index} (seq {seq})"
        if record.get("hash") != record_hash(record):
            problems.append(f"{where}: content does not match its hash (edited)")
        if record.get("prev_hash") != previous_hash:
            problems.append(f"{where}: does not follow the previous record (removed or reordered)")
        if previous_seq is not None and seq != previous_seq + 1:
            problems.append(f"{where}: sequence jumps from {previous_seq} (records removed)")
        previous_hash = str(record.get("hash"))
        previous_seq = seq if isinstance(seq, int) else previous_seq
    if expected_head is not None and records and previous_hash != expected_head:
        problems.append("the last record is not the head the rollout recorded (records removed)")
    return ChainCheck(len(records), tuple(problems), previous_hash)


# --- the trimmed span's summary -------------------------------------------------------------

BREACH_ACTIONS = frozenset({"guard-breached", "guard-alert", "guard-escalated", "guard-fallback"})
ATTESTATION_ACTIONS = frozenset({"guard-attest"})
SUMMARY_KEYS = ("records", "firstSeq", "lastSeq", "firstTime", "lastTime", "lastHash")


def summarize(
    previous: Mapping[str, Any] | None, dropped: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The summary of every trimmed record: ``previous`` (the span trimmed before) extended by
    ``dropped`` (oldest first). It counts the records of each action, the guard's breaches
    (any response), attestations and persons' requests, spans first to last seq and time, and
    ends in the hash the oldest kept record must follow, so a verifier ties it to the chain.
    """
    summary: dict[str, Any] = dict(previous or {})
    summary.setdefault("records", 0)
    actions: dict[str, int] = dict(summary.get("actions") or {})
    for record in dropped:
        action = str(record.get("action", "unreadable"))
        actions[action] = actions.get(action, 0) + 1
        summary["records"] += 1
        summary["breaches"] = summary.get("breaches", 0) + (action in BREACH_ACTIONS)
        summary["attestations"] = summary.get("attestations", 0) + (action in ATTESTATION_ACTIONS)
        summary["requests"] = summary.get("requests", 0) + ("request" in record)
        summary.setdefault("firstSeq", record.get("seq"))
        summary.setdefault("firstTime", record.get("time"))
        summary["lastSeq"] = record.get("seq")
        summary["lastTime"] = record.get("time", summary.get("lastTime"))
        summary["lastHash"] = record.get("hash")
    summary["actions"] = dict(sorted(actions.items()))
    return summary


def summary_problems(
    summary: Mapping[str, Any] | None, dropped: int, first_kept: Mapping[str, Any] | None
) -> list[str]:
    """Where the trimmed span's summary disagrees with the chain it precedes (none: agrees)."""
    if summary is None:
        return []
    problems = []
    if summary.get("records") != dropped:
        problems.append(
            f"the trimmed summary covers {summary.get('records')} records, "
            f"but {dropped} were trimmed"
        )
    if first_kept is not None and first_kept.get("prev_hash") != summary.get("lastHash"):
        problems.append("the oldest kept record does not follow the trimmed summary's last hash")
    seq = first_kept.get("seq") if first_kept is not None else None
    last = summary.get("lastSeq")
    if isinstance(seq, int) and isinstance(last, int) and seq != last + 1:
        problems.append(f"the trimmed summary ends at seq {last}, the chain resumes at {seq}")
    return problems


def describe_summary(summary: Mapping[str, Any]) -> str:
    """One line on a trimmed span, for a person."""
    return (
        f"seq {summary.get('firstSeq')}..{summary.get('lastSeq')} "
        f"({summary.get('firstTime')} to {summary.get('lastTime')}): "
        f"{summary.get('records', 0)} records, {summary.get('breaches', 0)} guard breaches, "
        f"{summary.get('attestations', 0)} attestations, "
        f"{summary.get('requests', 0)} persons' requests"
    )
