"""A real-shaped audit chain of one rollout: a candidate analysed, then promoted or rolled
back, built with the engine's own ``chain_record`` (so hashes and links are genuine)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fairshift.engine.audit import GENESIS_HASH, chain_record

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SLICES = ("sex=female", "sex=male", "sex=female,age=young")


def cell(gate: str, slice_: str, estimate: float, outcome: str = "pending") -> dict[str, Any]:
    """One evidence cell as status and the audit chain hold it."""
    return {
        "gate": gate,
        "metric": "tpr_gap" if gate == "equal-opportunity" else "accuracy",
        "severity": "critical",
        "slice": slice_,
        "reference": "sex=male",
        "estimate": estimate,
        "lower": round(estimate - 0.05, 6),
        "upper": round(estimate + 0.05, 6),
        "bound": "maxIncrease" if gate == "equal-opportunity" else "min",
        "threshold": 0.05 if gate == "equal-opportunity" else 0.8,
        "stableSamples": 1000.0,
        "candidateSamples": 400.0,
        "outcome": outcome,
        "reason": "",
    }


def payload(
    minute: int, action: str, phase: str, revision: str | None, **extra: Any
) -> dict[str, Any]:
    return {
        "time": (START + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z"),
        "rollout": "lending/credit-scorer",
        "action": action,
        "reason": extra.pop("reason", action),
        "message": extra.pop("message", f"{action} at minute {minute}"),
        "phase": phase,
        "step": extra.pop("step", 0),
        "canaryWeight": extra.pop("canaryWeight", 0),
        "mirrorPercent": 0,
        "candidateRevision": revision,
        "verdict": extra.pop("verdict", "Running"),
        "evidence": extra.pop("evidence", []),
        **extra,
    }


def rollout_payloads(revision: str = "7d9f8c6b5", end: str = "promoted") -> list[dict[str, Any]]:
    """initialized, new-revision, three analysis holds, step-done, then promotion (or a
    failed analysis and its rollback), shaped as the planner records them."""
    looks = [
        [cell("equal-opportunity", s, 0.01 * (i + 1) + 0.002 * k) for k, s in enumerate(SLICES)]
        + [cell("accuracy", "all", 0.9 - 0.01 * i)]
        for i in range(3)
    ]
    items = [
        payload(0, "initialized", "Idle", None, verdict="Pending"),
        payload(1, "new-revision", "Canary", revision, canaryWeight=10),
    ]
    items += [
        payload(2 + i, "hold", "Canary", revision, canaryWeight=10, evidence=look)
        for i, look in enumerate(looks)
    ]
    items.append(payload(5, "step-done", "Canary", revision, canaryWeight=50, step=1))
    if end == "promoted":
        items += [
            payload(6, "steps-done", "Promoting", revision, canaryWeight=100, step=1),
            # the candidate became the stable revision: the record names no candidate
            payload(7, "promotion-done", "Succeeded", None, verdict="Successful"),
        ]
    else:
        failed = {"evidence": [cell("equal-opportunity", "sex=female", 0.12, "fail")]}
        items += [
            payload(6, "analysis-failed", "RollingBack", revision, verdict="Failed", **failed),
            payload(7, "rollback-done", "RolledBack", revision, verdict="Failed", **failed),
        ]
    return items


def guard_cell(gate: str, slice_: str, grade: str, level: float) -> dict[str, Any]:
    """One of the guard's worst cells, as its records carry them."""
    return {
        "gate": gate,
        "slice": slice_,
        "grade": grade,
        "level": level,
        "estimate": round(0.1 * level, 6),
        "samples": 5000.0,
        "reason": "",
    }


def guarded_payloads(revision: str = "7d9f8c6b5") -> list[dict[str, Any]]:
    """A guarded promotion, then the guard: an hourly attestation, a warning, a breach that
    switches back, and the restored revision."""
    items = rollout_payloads(revision)[:-1]  # up to steps-done
    promoted = {"health": "Healthy", "looks": 0, "breaches": 0, "worst": []}
    items.append(
        payload(7, "promotion-done-guarded", "Guarding", None, verdict="Successful", guard=promoted)
    )
    for minute, action, health, grade, level in (
        (67, "guard-attest", "Healthy", "healthy", 0.1),
        (90, "guard-warning", "Warning", "warning", 0.6),
    ):
        cells = [guard_cell("equal-opportunity", "sex=female", grade, level)]
        detail = {"health": health, "looks": minute // 5, "breaches": 0, "worst": cells}
        items.append(payload(minute, action, "Guarding", None, guard=detail))
    breach = {
        "health": "Breached",
        "looks": 20,
        "breaches": 1,
        "worst": [guard_cell("equal-opportunity", "sex=female", "breached", 1.2)],
    }
    items.append(payload(100, "guard-breached", "Restoring", None, guard=breach))
    items.append(payload(101, "restored", "RolledBack", None))
    return items


def chained(
    payloads: list[dict[str, Any]], first_seq: int = 1, prev: str = GENESIS_HASH
) -> list[dict[str, Any]]:
    """The payloads as a hash chain."""
    records = []
    for offset, item in enumerate(payloads):
        record = chain_record(item, first_seq + offset, prev)
        records.append(record)
        prev = record["hash"]
    return records


def rollout_records(revision: str = "7d9f8c6b5", end: str = "promoted") -> list[dict[str, Any]]:
    return chained(rollout_payloads(revision, end))
