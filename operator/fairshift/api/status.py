"""The ModelRollout status: phase, message, conditions, weights, and the evidence of decisions.

The operator keeps everything it needs to resume in status, so a restarted operator rebuilds
its state from the resource alone.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from fairshift.api.schema import Model
from fairshift.api.times import Timestamp


class Phase(StrEnum):
    """Where a rollout is. Terminal phases wait for a new target revision (or a retry)."""

    INITIALIZING = "Initializing"
    IDLE = "Idle"
    SHADOW = "Shadow"
    CANARY = "Canary"
    PAUSED = "Paused"
    PROMOTING = "Promoting"
    SUCCEEDED = "Succeeded"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"
    GUARDING = "Guarding"  # promoted; the live model is still judged by the rollout's gates
    RESTORING = "Restoring"  # a guard breach: switching back to the last known good revision
    FALLBACK = "Fallback"  # a guard breach sent a declared share of traffic to the fallback
    KILLED = "Killed"  # a person took the model out of the path; only revive undoes it
    TERMINATING = "Terminating"  # deleted: handing traffic and serving back to the target


class Verdict(StrEnum):
    """The latest analysis verdict, in Argo Rollouts' vocabulary."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


class Outcome(StrEnum):
    """The outcome of one gate on one slice."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    PENDING = "pending"  # enough data to judge, not yet conclusive
    INCONCLUSIVE = "inconclusive"  # step budget spent without a conclusion
    INSUFFICIENT = "insufficient"  # fewer than minSamples, or too few events
    NO_DATA = "no-data"  # the metric source returned nothing usable
    SKIPPED = "skipped"  # cannot be evaluated here (e.g. a PromQL gate offline)


OUTCOME_RANK: dict[Outcome, int] = {
    outcome: rank
    for rank, outcome in enumerate(
        (
            Outcome.FAIL,
            Outcome.WARN,
            Outcome.NO_DATA,
            Outcome.INCONCLUSIVE,
            Outcome.PENDING,
            Outcome.INSUFFICIENT,
            Outcome.SKIPPED,
            Outcome.PASS,
        )
    )
}
"""Outcomes from the most to the least alarming: status, Events and messages sort by it."""


class Health(StrEnum):
    """How a guarded model is doing (``status.guard.health``)."""

    HEALTHY = "Healthy"  # every guarded gate within its bounds so far
    WARNING = "Warning"  # a gate drifts (the warning detector alarmed): look at it
    BREACHED = "Breached"  # a gate is breached (the declared false-alarm rate's detector)
    DEGRADED = "Degraded"  # the guard cannot look (metrics unavailable); nothing is done


class GuardCell(Model):
    """One guarded gate on one slice after the latest look."""

    gate: str
    slice: str
    grade: str
    level: float  # log detector statistic over the breach threshold: 1 or more is a breach
    estimate: float | None = None
    samples: float = 0
    reason: str = ""


class PersonsAct(Model):
    """Who asked for a kill or acknowledged a breach, why, and when."""

    by: str = ""
    reason: str = ""
    at: Timestamp | None = None


class Kill(PersonsAct):
    """A kill in force: the primary's replicas before it, to serve again on revive.
    ``fallback``: all traffic goes to ``spec.fallbackRef`` and the model stays deployed."""

    replicas: int = 1
    fallback: bool = False


class FallbackShare(Model):
    """A degrade in force: ``percent`` of the traffic goes to ``spec.fallbackRef``.

    Set by a guard breach whose response is ``degrade``; it ends when a person revives the
    model (``kubectl fairshift revive``) or when a new revision is promoted. ``gate`` and
    ``message`` say which breach caused it.
    """

    percent: int = Field(ge=1, le=100)
    fallback: str  # the Deployment traffic goes to
    gate: str = ""
    message: str = ""
    at: Timestamp | None = None


class Escalation(Model):
    """A breach whose response is ``escalate``: the next rollout waits for a person."""

    message: str
    at: Timestamp | None = None


class GuardStatus(Model):
    """The continuous guard's memory: it survives a restart of the operator."""

    health: Health = Health.HEALTHY
    since: Timestamp | None = None  # guarding began (the promotion)
    looked_until: Timestamp | None = None  # the end of the latest look's window
    reference_start: Timestamp | None = None  # the stable model's evidence frozen at promotion
    reference_end: Timestamp | None = None
    looks: int = 0
    breaches: int = 0
    consecutive_errors: int = 0
    attested_at: Timestamp | None = None  # the latest diligence record
    looks_since_attestation: int = 0
    state: dict[str, dict[str, float]] = Field(default_factory=dict)
    worst: list[GuardCell] = Field(default_factory=list)
    message: str = ""
    escalation: Escalation | None = None


class AlphaLedger(Model):
    """One false-rollback budget per candidate revision, across its analysis windows.

    Keyed ``gate/slice/side``: the natural log of each critical cell's fail-side e-value.
    ``carried`` holds the closed windows' evidence (passed to the engine as ``carried``),
    ``current`` the latest look's (``Evaluation.budget.folded()``); when the analysis window
    restarts, ``current`` becomes ``carried``; a new candidate revision starts empty.
    """

    revision: str | None = None
    windows: int = 0  # closed analysis windows folded into carried
    carried: dict[str, float] = Field(default_factory=dict)
    current: dict[str, float] = Field(default_factory=dict)
    budget_used: float = Field(default=0.0, ge=0.0, le=1.0)  # of the rollback threshold


class GateEvidence(Model):
    """The numbers behind one gate on one slice."""

    gate: str
    metric: str
    severity: Literal["critical", "warning"]
    slice: str
    reference: str | None = None
    stable: float | None = None
    candidate: float | None = None
    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None
    bound: str
    threshold: float
    stable_samples: float = 0
    candidate_samples: float = 0
    outcome: Outcome
    reason: str = ""


ConditionType = Literal[
    "Progressing",
    "Analysed",
    "Paused",
    "Completed",
    "InvalidSpec",
    "Degraded",
    "Blocked",
    "EvidenceSink",
]
"""``Blocked``: a write needs a person (RBAC, a missing CRD, an object fairshift does not own).
``EvidenceSink``: whether the rollout's evidence reaches the sinks it names (MLflow)."""


class Condition(Model):
    """A Kubernetes-style condition."""

    type: ConditionType
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: Timestamp | None = None


class DecisionRecord(Model):
    """One decision as the audit chain holds it (aggregates only, never request content)."""

    seq: int
    time: str
    action: str
    reason: str
    phase: str
    step: int | None = None
    candidate_revision: str | None = None
    prev_hash: str
    hash: str


class ModelRolloutStatus(Model):
    """Everything a person, the CLI or a restarted operator needs to know about a rollout."""

    phase: Phase = Phase.INITIALIZING
    message: str = ""
    reason: str = ""
    observed_generation: int | None = None
    stable_revision: str | None = None
    candidate_revision: str | None = None
    current_step: int | None = None
    step_count: int | None = None
    canary_weight: int = 0
    mirror_percent: int = 0
    fallback_weight: int = 0  # percent of traffic on spec.fallbackRef (a degrade or a kill)
    verdict: Verdict = Verdict.PENDING
    phase_started_at: Timestamp | None = None
    step_started_at: Timestamp | None = None
    analysis_started_at: Timestamp | None = None
    last_analysis_at: Timestamp | None = None
    consecutive_errors: int = 0
    paused_reason: str | None = None
    handled_action: str | None = None
    evidence: list[GateEvidence] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)
    decisions: list[DecisionRecord] = Field(default_factory=list)
    audit_head: str | None = None
    audit_seq: int = 0
    guard: GuardStatus | None = None
    alpha_ledger: AlphaLedger | None = None
    killed: Kill | None = None
    fallback: FallbackShare | None = None
