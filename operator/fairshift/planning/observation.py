"""What the executor observed once per tick, and what the metric source answered.

The planner decides from these values only; it never asks the world a second question.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from fairshift.api.traffic import Weights
from fairshift.engine.gates import Evaluation
from fairshift.engine.guard import GuardLook


@dataclass(frozen=True)
class DeploymentState:
    """What the operator needs to know about a Deployment."""

    name: str
    revision: str
    replicas: int
    updated_replicas: int
    available_replicas: int
    observed: bool  # the controller has seen the latest spec (observedGeneration)
    available: bool  # rolled out: every desired replica updated and available, no old ones
    template: dict[str, Any]
    selector: dict[str, str]
    last_good_revision: str | None = None  # a primary's kept template before its promotion


@dataclass(frozen=True)
class RouteState:
    """The route as read back: its weights (None: no route object yet) and whether the live
    object holds what was last written (None: cannot tell yet)."""

    weights: Weights | None
    verified: bool | None

    def shows(self, wanted: Weights) -> bool:
        return self.weights == wanted and self.verified is True


@dataclass(frozen=True)
class ManualRequest:
    """A manual action asked for in the action annotation; ``malformed`` when unreadable."""

    action: str
    id: str
    malformed: bool = False
    by: str = ""  # who asked (the CLI writes the Kubernetes user or the local user)
    reason: str = ""  # why, recorded in the audit trail


@dataclass(frozen=True)
class Observation:
    """One snapshot of the world around a rollout."""

    target: DeploymentState | None
    primary: DeploymentState | None
    route: RouteState
    request: ManualRequest | None = None
    fallback: DeploymentState | None = None  # spec.fallbackRef's Deployment, when named


@dataclass(frozen=True)
class AnalysisWindow:
    """The stretch of time an analysis covers: the step's analysis start until ``end``."""

    step: int | None
    start: datetime
    end: datetime

    @property
    def seconds(self) -> int:
        return max(int((self.end - self.start).total_seconds()), 1)


ErrorKind = Literal["metrics", "invalid-query", "engine"]


@dataclass(frozen=True)
class AnalysisResult:
    """The metric source's and the engine's answer for one window: an evaluation or an error."""

    window: AnalysisWindow
    evaluation: Evaluation | None = None
    error: str = ""
    error_kind: ErrorKind = "metrics"


@dataclass(frozen=True)
class GuardWindow:
    """One guard look: the live model's traffic from ``start`` to ``end``, judged against
    the stable model's evidence frozen from ``reference_start`` to ``reference_end``."""

    start: datetime
    end: datetime
    reference_start: datetime
    reference_end: datetime


@dataclass(frozen=True)
class GuardResult:
    """The guard's answer for one look: the detectors' new state and grades, or an error."""

    window: GuardWindow
    look: GuardLook | None = None
    error: str = ""
