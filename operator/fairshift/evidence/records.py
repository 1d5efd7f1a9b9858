"""What an audit record becomes in MLflow: metric points, run tags, and the rollout's outcome.

Pure functions of one record (the audit chain's JSON, as the executor appends it). A run
belongs to one candidate revision of one rollout; each record's evidence (the worst cells of
that look) becomes ``<gate>/<slice>/estimate``, ``.../lower`` and ``.../upper`` at step
``seq``, so MLflow charts every gate and slice over the rollout. After the promotion the
guard's records (phase ``Guarding``) go to the same run: its worst cells become
``guard/<gate>/<slice>/level`` (the detector's level, 1 = breach) and ``.../estimate``. Keys
are made of the characters MLflow accepts on every platform (word characters, ``_.- /``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fairshift.api.times import parse_time

TAG_PREFIX = "fairshift.io/"
ROLLOUT_TAG = TAG_PREFIX + "rollout"
REVISION_TAG = TAG_PREFIX + "revision"
OUTCOME_TAG = TAG_PREFIX + "outcome"
AUDIT_HEAD_TAG = TAG_PREFIX + "audit-head"
AUDIT_SEQ_TAG = TAG_PREFIX + "audit-seq"
MAX_TAG_VALUE = 5000  # MLflow keeps at most 8000 (5000 on older servers)
MAX_KEY = 250  # MLflow's limit on a metric key

EVIDENCE_FIELDS = ("estimate", "lower", "upper")
OUTCOMES: Mapping[str, str] = {
    "Succeeded": "promoted",
    "RolledBack": "rolled-back",
    "Failed": "failed",
}
"""The phases that end a candidate's rollout, and the outcome the run and model version get."""
REVERTED = "reverted"  # the target went back to the stable revision: the candidate is gone
BREACHED = "breached"  # the guard found the promoted model breached a gate
BREACH_ACTIONS = ("guard-breached", "guard-alert", "guard-fallback")  # back, alerted, degraded
GUARD_PHASES = ("Guarding", "Restoring", "Fallback")  # the promoted revision, judged live
GUARD_FIELDS = ("level", "estimate")

RUN_STATUS: Mapping[str, str] = {
    "promoted": "FINISHED",
    "rolled-back": "FAILED",
    "failed": "FAILED",
    REVERTED: "KILLED",
    BREACHED: "FAILED",
}


@dataclass(frozen=True)
class MetricPoint:
    """One value of one MLflow metric: at ``step`` (the audit seq), ``timestamp_ms``."""

    key: str
    value: float
    timestamp_ms: int
    step: int


@dataclass(frozen=True)
class RunKey:
    """The run of one candidate revision of one rollout."""

    namespace: str
    rollout: str
    revision: str

    @property
    def name(self) -> str:
        return f"{self.rollout}-{self.revision}"

    @property
    def tags(self) -> dict[str, str]:
        return {ROLLOUT_TAG: f"{self.namespace}/{self.rollout}", REVISION_TAG: self.revision}


def run_key(
    namespace: str, rollout: str, record: Mapping[str, Any], previous: str | None = None
) -> RunKey | None:
    """The run a record belongs to: its candidate's, or for a record that no longer names the
    candidate because it was promoted (the promotion itself, the guard's records, a switch
    back), the ``previous`` candidate's. None for records about no candidate."""
    revision = record.get("candidateRevision") or (previous if follows_candidate(record) else None)
    if not revision:
        return None
    return RunKey(namespace, rollout, str(revision))


def follows_candidate(record: Mapping[str, Any]) -> bool:
    """Whether a record without a candidate is about the one before it."""
    return outcome(record) is not None or str(record.get("phase")) in GUARD_PHASES


def key_part(text: str) -> str:
    """``sex=female,age=young`` -> ``sex.female.age.young``: MLflow's portable characters."""
    mapped = str(text).replace("=", ".").replace(",", ".")
    return re.sub(r"[^\w.\- ]", "_", mapped).strip(" .") or "_"


def metric_key(*parts: str) -> str:
    """A metric key from parts joined by ``/`` (MLflow groups charts by the first part)."""
    return "/".join(key_part(part) for part in parts)[:MAX_KEY]


def timestamp_ms(record: Mapping[str, Any]) -> int:
    """The record's ``time`` in milliseconds since the epoch (0 when it has none)."""
    text = str(record.get("time") or "")
    if not text:
        return 0
    parsed = parse_time(text)
    return 0 if parsed is None else int(parsed.timestamp() * 1000)


def number(value: Any) -> float | None:
    """A finite float, or None for anything else (missing bounds are not metrics)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def record_metrics(record: Mapping[str, Any]) -> list[MetricPoint]:
    """The traffic shares and every evidence cell's estimate and bounds, at step ``seq``."""
    step, when = int(record["seq"]), timestamp_ms(record)
    points = [
        MetricPoint(key, value, when, step)
        for key, value in (
            ("traffic/canary_weight", number(record.get("canaryWeight"))),
            ("traffic/mirror_percent", number(record.get("mirrorPercent"))),
        )
        if value is not None
    ]
    for cell in record.get("evidence") or []:
        for field in EVIDENCE_FIELDS:
            value = number(cell.get(field))
            if value is not None:
                key = metric_key(str(cell.get("gate")), str(cell.get("slice")), field)
                points.append(MetricPoint(key, value, when, step))
    for cell in (record.get("guard") or {}).get("worst") or []:
        for field in GUARD_FIELDS:
            value = number(cell.get(field))
            if value is not None:
                key = metric_key("guard", str(cell.get("gate")), str(cell.get("slice")), field)
                points.append(MetricPoint(key, value, when, step))
    return points


def outcome(record: Mapping[str, Any]) -> str | None:
    """What the record settles about its revision: ``promoted``, ``rolled-back``, ``failed``,
    ``reverted``, or ``breached`` when the guard finds the promoted model breached a gate;
    else None. A guarded promotion is a promotion; the guard's other records settle nothing."""
    action = record.get("action")
    if action == "promotion-done-guarded":
        return "promoted"
    if action == REVERTED:
        return REVERTED
    if action in BREACH_ACTIONS:
        return BREACHED
    return OUTCOMES.get(str(record.get("phase")))


def record_tags(record: Mapping[str, Any]) -> dict[str, str]:
    """The run's tags after this record: the last decision and the audit chain's head."""
    tags = {
        TAG_PREFIX + "phase": str(record.get("phase") or ""),
        TAG_PREFIX + "verdict": str(record.get("verdict") or ""),
        TAG_PREFIX + "last-decision": str(record.get("action") or ""),
        TAG_PREFIX + "last-reason": str(record.get("reason") or ""),
        TAG_PREFIX + "last-message": str(record.get("message") or ""),
        AUDIT_SEQ_TAG: str(record.get("seq")),
        AUDIT_HEAD_TAG: str(record.get("hash")),
    }
    ended = outcome(record)
    if ended is not None:
        tags[OUTCOME_TAG] = ended
    guard = record.get("guard") or {}
    if guard.get("health"):
        tags[TAG_PREFIX + "guard-health"] = str(guard["health"])
    return {key: value[:MAX_TAG_VALUE] for key, value in tags.items()}


def is_routine(record: Mapping[str, Any]) -> bool:
    """An analysis hold: its evidence is in the metrics, no artifact of its own."""
    return str(record.get("action")) == "hold"


def record_artifact_path(record: Mapping[str, Any]) -> str:
    """Where a decision record is kept in the run: ``decisions/000042-step-done.json``."""
    return f"decisions/{int(record['seq']):06d}-{key_part(str(record.get('action')))}.json"
