"""Fixtures for the CLI and report tests: a rollout with a rich status, and an audit chain.

The chain follows the operator's record shape: shadow for 30 minutes, canary steps at 5% and
25%, then the equal-opportunity gate fails for women aged 60+ and the rollout rolls back.
"""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from fairshift.api import API_VERSION, KIND
from fairshift.engine.audit import GENESIS_HASH, chain_record
from fairshift.k8s.auditstore import RECORDS_KEY, audit_configmap_name, encode_record

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=2)
NAMESPACE = "lending"
NAME = "credit-scorer"

GATES = {
    # gate: (metric, severity, bound, threshold)
    "equal-opportunity": ("tpr_gap", "critical", "maxIncrease", 0.05),
    "four-fifths": ("disparate_impact", "critical", "min", 0.8),
    "accuracy": ("accuracy", "critical", "maxDecrease", 0.02),
    "latency": ("latency_p99", "critical", "max", 0.5),
}
SLICES = ("sex=F", "age_band=60+", "sex=F,age_band=60+")


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def evidence_item(
    gate: str, slice_: str, estimate: float, half_width: float, samples: float
) -> dict[str, Any]:
    """One GateEvidence dict (camelCase), outcome decided as the gate's bound says."""
    metric, severity, bound, threshold = GATES[gate]
    lower, upper = estimate - half_width, estimate + half_width
    if bound in ("maxIncrease", "max"):
        outcome = "fail" if lower > threshold else "pass" if upper < threshold else "pending"
    elif bound == "min":
        outcome = "fail" if upper < threshold else "pass" if lower > threshold else "pending"
    else:  # maxDecrease
        outcome = "fail" if upper < -threshold else "pass" if lower > -threshold else "pending"
    return {
        "gate": gate,
        "metric": metric,
        "severity": severity,
        "slice": slice_,
        "reference": "sex=M" if slice_.startswith("sex") else "age_band=30-59",
        "stable": 0.71,
        "candidate": round(0.71 - estimate, 6) if metric == "tpr_gap" else None,
        "estimate": round(estimate, 6),
        "lower": round(lower, 6),
        "upper": round(upper, 6),
        "bound": bound,
        "threshold": threshold,
        "stableSamples": samples,
        "candidateSamples": samples,
        "outcome": outcome,
        "reason": "",
    }


def evidence_at(look: int, failing: bool) -> list[dict[str, Any]]:
    """The evidence of the ``look``-th analysis: bounds narrow as samples grow."""
    samples = 150.0 * (look + 1)
    width = 0.6 / math.sqrt(look + 1)
    items = []
    for index, slice_ in enumerate(SLICES):
        harm = 0.01 * index + (0.11 if failing and slice_ == SLICES[2] else 0.0)
        items.append(evidence_item("equal-opportunity", slice_, harm, 0.25 * width, samples))
        items.append(
            evidence_item("four-fifths", slice_, 0.95 - 0.02 * index, 0.4 * width, samples)
        )
    items.append(evidence_item("accuracy", "overall", -0.004, 0.05 * width, samples * 3))
    items.append(evidence_item("latency", "overall", 0.004, 0.01 * width, samples * 3))
    return items


def payload(
    moment: datetime,
    action: str,
    phase: str,
    step: int | None,
    weight: int,
    mirror: int,
    evidence: list[dict[str, Any]],
    verdict: str = "Running",
) -> dict[str, Any]:
    return {
        "time": stamp(moment),
        "rollout": f"{NAMESPACE}/{NAME}",
        "action": action,
        "reason": action,
        "message": f"{phase} after {action}",
        "phase": phase,
        "step": step,
        "canaryWeight": weight,
        "mirrorPercent": mirror,
        "candidateRevision": "7f9c2d41ab",
        "verdict": verdict,
        "evidence": evidence,
    }


def scenario() -> list[dict[str, Any]]:
    """The payloads (unchained) of the story told in the module docstring."""
    items = [payload(T0, "new-revision-with-shadow", "Shadow", None, 0, 100, [])]
    minute, look = 0, 0
    for phase, step, weight, mirror, ticks in (
        ("Shadow", None, 0, 100, 6),
        ("Canary", 0, 5, 0, 4),
        ("Canary", 1, 5, 0, 4),
        ("Canary", 2, 25, 0, 5),
    ):
        for tick in range(ticks):
            minute += 5
            failing = step == 2 and tick >= 2
            evidence = evidence_at(look, failing)
            look += 1
            moment = T0 + timedelta(minutes=minute)
            items.append(payload(moment, "hold", phase, step, weight, mirror, evidence))
        if step == 2:
            break
        next_action = "shadow-done" if phase == "Shadow" else "step-done"
        next_step = 0 if step is None else step + 1
        next_weight = 25 if next_step == 2 else 5
        moment = T0 + timedelta(minutes=minute, seconds=30)
        items.append(payload(moment, next_action, "Canary", next_step, next_weight, 0, evidence))
    moment = T0 + timedelta(minutes=minute, seconds=30)
    items.append(
        payload(moment, "analysis-failed", "RollingBack", 2, 0, 0, evidence, verdict="Failed")
    )
    moment = T0 + timedelta(minutes=minute + 1)
    items.append(payload(moment, "rollback-done", "RolledBack", 2, 0, 0, [], verdict="Failed"))
    return items


def synthetic_chain() -> list[dict[str, Any]]:
    """The scenario as a valid audit chain."""
    records: list[dict[str, Any]] = []
    previous = GENESIS_HASH
    for seq, item in enumerate(scenario(), start=1):
        record = chain_record(item, seq, previous)
        records.append(record)
        previous = record["hash"]
    return records


def status_fixture() -> dict[str, Any]:
    """A status in Canary at step 3 of 7, with conditions, evidence and decisions."""
    chain = synthetic_chain()[:14]
    decisions = [
        {
            "seq": r["seq"],
            "time": r["time"],
            "action": r["action"],
            "reason": r["reason"],
            "phase": r["phase"],
            "step": r["step"],
            "candidateRevision": r["candidateRevision"],
            "prevHash": r["prev_hash"],
            "hash": r["hash"],
        }
        for r in chain[-5:]
    ]
    return {
        "phase": "Canary",
        "message": "step 3/7: analysing at 25%",
        "reason": "Analysing",
        "observedGeneration": 2,
        "stableRevision": "5d1e0c9b22",
        "candidateRevision": "7f9c2d41ab",
        "currentStep": 2,
        "stepCount": 7,
        "canaryWeight": 25,
        "mirrorPercent": 0,
        "verdict": "Running",
        "phaseStartedAt": stamp(T0 + timedelta(minutes=30)),
        "stepStartedAt": stamp(T0 + timedelta(minutes=100)),
        "analysisStartedAt": stamp(T0 + timedelta(minutes=100)),
        "lastAnalysisAt": stamp(NOW - timedelta(seconds=20)),
        "consecutiveErrors": 0,
        "handledAction": None,
        "evidence": chain[-1]["evidence"][:6],
        "conditions": [
            {
                "type": "Progressing",
                "status": "True",
                "reason": "Canary",
                "message": "step 3/7",
                "lastTransitionTime": stamp(T0 + timedelta(minutes=30)),
            },
            {
                "type": "Analysed",
                "status": "True",
                "reason": "Running",
                "message": "",
                "lastTransitionTime": stamp(T0 + timedelta(minutes=100)),
            },
            {
                "type": "Paused",
                "status": "False",
                "reason": "",
                "message": "",
                "lastTransitionTime": stamp(T0),
            },
        ],
        "decisions": decisions,
        "auditHead": chain[-1]["hash"],
        "auditSeq": chain[-1]["seq"],
    }


def rollout(
    status: dict[str, Any] | None = None,
    name: str = NAME,
    namespace: str = NAMESPACE,
    spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ModelRollout object (as the API returns it)."""
    obj: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": stamp(T0 - timedelta(days=3)),
        },
        "spec": copy.deepcopy(spec) if spec is not None else {},
    }
    if status is not None:
        obj["status"] = copy.deepcopy(status)
    return obj


def audit_configmap(records: list[dict[str, Any]], name: str = NAME) -> dict[str, Any]:
    """The audit ConfigMap as the operator's AuditStore writes it."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": audit_configmap_name(name), "namespace": NAMESPACE},
        "data": {RECORDS_KEY: "".join(encode_record(r) + "\n" for r in records)},
    }
