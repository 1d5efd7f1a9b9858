"""What a report is drawn from: looks over time and one snapshot of gate evidence.

Three sources give a ``ReportData``:

- audit records (the operator's chain): every record is a ``Look`` with its time, action,
  weights and the evidence of that decision;
- a saved ModelRollout (``kubectl get mro X -o yaml``): ``status.decisions`` become looks
  without evidence (the canary weight follows from the spec's steps), and ``status.evidence``
  is the snapshot;
- a ``fairshift gate --format json`` document: a snapshot only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from fairshift.api import times
from fairshift.api.status import GateEvidence


class ReportInputError(ValueError):
    """An input document a report cannot be drawn from."""


@dataclass(frozen=True)
class Look:
    """One decision on the timeline (an audit record, or a status decision)."""

    time: datetime
    action: str
    reason: str = ""
    phase: str = ""
    step: int | None = None
    canary_weight: int | None = None
    mirror_percent: int | None = None
    evidence: tuple[GateEvidence, ...] = ()
    guard_health: str | None = None  # the guard's records: its health at this moment
    guard_level: float | None = None  # the worst detector, as a fraction of its breach level


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows."""

    title: str
    looks: tuple[Look, ...] = ()
    snapshot: tuple[GateEvidence, ...] = ()
    snapshot_label: str = ""
    facts: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    timeline_note: str = ""  # how the timeline was obtained, when it is not the audit chain


# --- parsing pieces ---------------------------------------------------------------------------


def parse_time(value: Any) -> datetime:
    """An RFC 3339 time (``Z`` or an offset); naive times are taken as UTC."""
    try:
        parsed = times.parse_time(value)
    except (ValueError, TypeError):
        raise ReportInputError(f"not an RFC 3339 time: {value!r}") from None
    if parsed is None:
        raise ReportInputError(f"not an RFC 3339 time: {value!r}")
    return parsed


def parse_evidence(items: Any, where: str) -> tuple[GateEvidence, ...]:
    """GateEvidence dicts (camelCase, as the operator and ``gate`` write them)."""
    if items is None:
        return ()
    if not isinstance(items, list):
        raise ReportInputError(f"{where}: evidence is not a list")
    names = {f.alias or n for n, f in GateEvidence.model_fields.items()}
    try:
        return tuple(
            GateEvidence.model_validate({k: v for k, v in item.items() if k in names})
            for item in items
        )
    except (ValidationError, AttributeError) as error:
        raise ReportInputError(f"{where}: unreadable gate evidence ({error})") from None


def optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


# --- audit records ----------------------------------------------------------------------------


def look_from_record(record: Mapping[str, Any]) -> Look:
    """One audit record (the operator's shape) as a look."""
    where = f"audit record {record.get('seq', '?')}"
    if "time" not in record or "action" not in record:
        raise ReportInputError(f"{where}: has no time or action")
    return Look(
        time=parse_time(record["time"]),
        action=str(record["action"]),
        reason=str(record.get("reason") or ""),
        phase=str(record.get("phase") or ""),
        step=optional_int(record.get("step")),
        canary_weight=optional_int(record.get("canaryWeight")),
        mirror_percent=optional_int(record.get("mirrorPercent")),
        evidence=parse_evidence(record.get("evidence"), where),
        guard_health=guard_of(record).get("health"),
        guard_level=worst_level(guard_of(record)),
    )


def guard_of(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """The guard's detail of a record (its health, looks and worst cells), if it has one."""
    guard = record.get("guard")
    return guard if isinstance(guard, Mapping) else {}


def worst_level(guard: Mapping[str, Any]) -> float | None:
    worst = guard.get("worst")
    if not isinstance(worst, list) or not worst or not isinstance(worst[0], Mapping):
        return None
    level = worst[0].get("level")
    return float(level) if isinstance(level, int | float) else None


def from_records(
    title: str,
    records: Sequence[Mapping[str, Any]],
    facts: Sequence[tuple[str, str]] = (),
) -> ReportData:
    """A report of an audit chain; the snapshot is the newest record with evidence."""
    looks = tuple(sorted((look_from_record(r) for r in records), key=lambda x: x.time))
    with_evidence = [look for look in looks if look.evidence]
    latest = with_evidence[-1] if with_evidence else None
    return ReportData(
        title=title,
        looks=looks,
        snapshot=latest.evidence if latest else (),
        snapshot_label=f"evidence at {latest.time:%Y-%m-%d %H:%M:%S} UTC" if latest else "",
        facts=tuple(facts),
    )


# --- a saved ModelRollout ---------------------------------------------------------------------


def step_weights(spec: Mapping[str, Any]) -> list[int]:
    """The canary weight in force at each canary step (the latest ``setWeight`` so far)."""
    steps = ((spec.get("strategy") or {}).get("canary") or {}).get("steps") or []
    weights: list[int] = []
    current = 0
    for step in steps:
        if isinstance(step, Mapping) and step.get("setWeight") is not None:
            current = int(step["setWeight"])
        weights.append(current)
    return weights


def weight_at(step: int | None, phase: str, weights: Sequence[int]) -> int | None:
    """The canary weight of a decision taken at ``step`` in ``phase`` (None if unknown)."""
    if phase in (
        "Idle",
        "Succeeded",
        "Guarding",
        "Fallback",
        "Restoring",
        "Killed",
        "RolledBack",
        "Failed",
        "RollingBack",
        "Initializing",
    ):
        return 0
    if step is None or not weights:
        return 0 if phase == "Shadow" else None
    return weights[min(step, len(weights) - 1)]


def rollout_facts(obj: Mapping[str, Any]) -> list[tuple[str, str]]:
    status = obj.get("status") or {}
    keys = ("phase", "message", "stableRevision", "candidateRevision", "verdict", "auditHead")
    return [(key, str(status[key])) for key in keys if status.get(key) not in (None, "")]


def from_rollout(obj: Mapping[str, Any]) -> ReportData:
    """A report of a saved ModelRollout: its recent decisions and its latest evidence."""
    if not isinstance(obj.get("status"), Mapping):
        raise ReportInputError("the ModelRollout has no status (has the operator seen it?)")
    status, metadata = obj["status"], obj.get("metadata") or {}
    weights = step_weights(obj.get("spec") or {})
    looks = []
    for decision in status.get("decisions") or []:
        step, phase = optional_int(decision.get("step")), str(decision.get("phase") or "")
        looks.append(
            Look(
                time=parse_time(decision.get("time")),
                action=str(decision.get("action") or "?"),
                reason=str(decision.get("reason") or ""),
                phase=phase,
                step=step,
                canary_weight=weight_at(step, phase, weights),
            )
        )
    when = status.get("lastAnalysisAt")
    return ReportData(
        title=f"{metadata.get('namespace', '')}/{metadata.get('name', '')}",
        looks=tuple(sorted(looks, key=lambda x: x.time)),
        snapshot=parse_evidence(status.get("evidence"), "status"),
        snapshot_label=f"status evidence (last analysis {when})" if when else "status evidence",
        facts=tuple(rollout_facts(obj)),
        timeline_note="the status's last decisions; weights from the spec's steps",
    )


# --- a fairshift gate document ----------------------------------------------------------------


def from_gate(document: Mapping[str, Any], title: str) -> ReportData:
    """A report of one offline look (``fairshift gate --format json``)."""
    if "gates" not in document:
        raise ReportInputError("not a fairshift gate document (no 'gates')")
    facts = [("verdict", str(document.get("verdict", "?")))]
    if "exitCode" in document:
        facts.append(("exit code", str(document["exitCode"])))
    return ReportData(
        title=title,
        snapshot=parse_evidence(document["gates"], "gates"),
        snapshot_label="single look (fixed-sample intervals)",
        facts=tuple(facts),
    )
