"""A plan: everything one reconcile decided, for the executor to carry out in order.

The executor appends ``records`` to the audit log first (write-ahead), then performs
``writes`` in order, then posts ``events`` and notifies. ``status`` is what the rollout's
status becomes; ``next_check`` is when the rollout wants to be looked at again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from fairshift.api.status import ModelRolloutStatus
from fairshift.api.traffic import Weights

EventKind = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class KubeEvent:
    """A Kubernetes Event to post on the rollout."""

    kind: EventKind
    reason: str
    message: str


@dataclass(frozen=True)
class EnsureServices:
    """The rollout's Services exist and select the target's pods by role."""

    selector: Mapping[str, str]
    shared: bool


@dataclass(frozen=True)
class EnsureFallbackService:
    """The ``<rollout>-fallback`` Service selects the pods of ``spec.fallbackRef``."""


@dataclass(frozen=True)
class EnsurePrimary:
    """The primary Deployment exists, made from ``template``."""

    template: Mapping[str, Any]
    replicas: int


@dataclass(frozen=True)
class LabelCandidate:
    """The target's pod template carries the candidate role label."""


@dataclass(frozen=True)
class SetTraffic:
    """The route sends ``weights``."""

    weights: Weights


@dataclass(frozen=True)
class ScaleCandidate:
    """The target (candidate) Deployment runs ``replicas`` pods."""

    replicas: int


@dataclass(frozen=True)
class ScalePrimary:
    """The primary Deployment runs ``replicas`` pods (0 only for a kill)."""

    replicas: int


@dataclass(frozen=True)
class PromoteTemplate:
    """The primary Deployment runs ``template`` (the candidate's)."""

    template: Mapping[str, Any]


@dataclass(frozen=True)
class RestoreLastGood:
    """The primary and the user's Deployment run the template kept at the last promotion."""


Write = (
    EnsureServices
    | EnsureFallbackService
    | EnsurePrimary
    | LabelCandidate
    | SetTraffic
    | ScaleCandidate
    | ScalePrimary
    | PromoteTemplate
    | RestoreLastGood
)


@dataclass(frozen=True)
class AuditEntry:
    """A record to append to the audit chain (the executor chains it after the stored tail).

    ``decision`` entries are transitions and actions; an analysis ``hold`` is an entry too,
    so the chain shows every look, not only the changes.
    """

    payload: Mapping[str, Any]


@dataclass
class Plan:
    """What the executor does with one reconcile."""

    status: ModelRolloutStatus
    records: list[AuditEntry] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    events: list[KubeEvent] = field(default_factory=list)
    next_check: datetime | None = None
