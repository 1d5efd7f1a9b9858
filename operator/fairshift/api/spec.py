"""The ModelRollout spec as pydantic models, with the checks a person can act on.

Every cross-field rule here has a twin CEL rule (``x-kubernetes-validations``) so the API server
refuses the same specs at admission with the same message; ``api.crd`` renders both."""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from fairshift.api.analysis import Analysis
from fairshift.api.durations import parse_duration
from fairshift.api.guarding import Guard
from fairshift.api.notifications import Notification
from fairshift.api.schema import NAME_PATTERN, Duration, Model, count_set, rules

NO_FALLBACK = (
    "guard onBreach degrade sends traffic to spec.fallbackRef, which is not set: name the "
    "fallback Deployment in fallbackRef, or choose rollback, alert or escalate"
)
FALLBACK_NEEDS_MESH = (
    "fallbackRef needs a mesh router (gatewayAPI or istio): the replicas router can only "
    "scale the model's own Deployments, it cannot send traffic to another Deployment"
)
FALLBACK_IS_TARGET = "fallbackRef must name a Deployment other than targetRef: the model itself"


class TargetRef(Model):
    """The Deployment the model team updates; its pod template is the candidate."""

    kind: Literal["Deployment"] = "Deployment"
    name: str = Field(pattern=NAME_PATTERN, max_length=63)


class FallbackRef(Model):
    """A Deployment in the rollout's namespace that answers when the model must not: a
    rules-based model, a cached answer. fairshift makes a ``<rollout>-fallback`` Service
    selecting its pods on the rollout's port (to ``targetPort``, else the model's target port)
    and routes to it as a third backend on a breach whose response is ``degrade``, or on a
    kill."""

    kind: Literal["Deployment"] = "Deployment"
    name: str = Field(pattern=NAME_PATTERN, max_length=63)
    target_port: int | None = Field(default=None, ge=1, le=65535)


class ServicePort(Model):
    """The port the model server listens on; fairshift's Services expose it."""

    port: int = Field(ge=1, le=65535)
    target_port: int | None = Field(default=None, ge=1, le=65535)


class ParentRef(Model):
    """A Gateway the HTTPRoute attaches to."""

    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = Field(default=None, max_length=63)
    section_name: str | None = Field(default=None, max_length=253)


class GatewayAPIRouting(Model):
    """Route through a Gateway API HTTPRoute owned by fairshift."""

    parent_refs: list[ParentRef] = Field(min_length=1, max_length=16)
    hostnames: list[Annotated[str, Field(max_length=253)]] = Field(
        default_factory=list, max_length=16
    )
    path_prefix: str = Field(default="/", max_length=1024)


class IstioRouting(Model):
    """Route through an Istio VirtualService owned by fairshift."""

    hosts: list[Annotated[str, Field(max_length=253)]] = Field(min_length=1, max_length=16)
    gateways: list[Annotated[str, Field(max_length=253)]] = Field(
        default_factory=list, max_length=16
    )


class ReplicasRouting(Model):
    """No mesh: the canary weight is approximated by the share of replicas."""

    total_replicas: int | None = Field(default=None, ge=1, le=1000)


class Routing(Model):
    """How traffic reaches the two versions; exactly one router."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                f"{count_set('gatewayAPI', 'istio', 'replicas')} == 1",
                "routing needs exactly one router: gatewayAPI, istio or replicas",
            )
        )
    )

    gateway_api: GatewayAPIRouting | None = Field(default=None, alias="gatewayAPI")
    istio: IstioRouting | None = None
    replicas: ReplicasRouting | None = None

    @model_validator(mode="after")
    def exactly_one_router(self) -> Routing:
        if sum(r is not None for r in (self.gateway_api, self.istio, self.replicas)) != 1:
            raise ValueError("routing needs exactly one router: gatewayAPI, istio or replicas")
        return self

    @property
    def kind(self) -> Literal["gatewayAPI", "istio", "replicas"]:
        if self.gateway_api is not None:
            return "gatewayAPI"
        if self.istio is not None:
            return "istio"
        return "replicas"


class Shadow(Model):
    """Mirror a share of live traffic to the candidate; its answers are discarded."""

    mirror_percent: int = Field(default=100, ge=1, le=100)
    duration: Duration = "10m"


class AnalyzeStep(Model):
    """Hold the current weight and analyse for at least ``duration``.

    If the evidence is still not conclusive after ``maxDuration`` (default three times
    ``duration``) the step is *inconclusive* and ``onInconclusive`` applies.
    """

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                "!has(self.maxDuration) || duration(self.maxDuration) >= duration(self.duration)",
                "analyze.maxDuration must be at least analyze.duration",
            )
        )
    )

    duration: Duration
    max_duration: Duration | None = None

    @model_validator(mode="after")
    def max_not_below_min(self) -> AnalyzeStep:
        if self.max_duration and parse_duration(self.max_duration) < parse_duration(self.duration):
            raise ValueError("analyze.maxDuration must be at least analyze.duration")
        return self

    @property
    def budget_seconds(self) -> float:
        if self.max_duration:
            return parse_duration(self.max_duration)
        return 3 * parse_duration(self.duration)


class PauseStep(Model):
    """Wait: for ``duration`` if given, otherwise until someone promotes."""

    duration: Duration | None = None


class Step(Model):
    """One canary step: exactly one of setWeight, analyze or pause."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                f"{count_set('setWeight', 'analyze', 'pause')} == 1",
                "each canary step needs exactly one of setWeight, analyze or pause",
            )
        )
    )

    set_weight: int | None = Field(default=None, ge=0, le=100)
    analyze: AnalyzeStep | None = None
    pause: PauseStep | None = None

    @model_validator(mode="after")
    def exactly_one_action(self) -> Step:
        chosen = (self.set_weight is not None, self.analyze is not None, self.pause is not None)
        if sum(chosen) != 1:
            raise ValueError("each canary step needs exactly one of setWeight, analyze or pause")
        return self


class Canary(Model):
    """Canary steps, run in order."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                "self.steps.filter(s, has(s.setWeight)).map(s, s.setWeight).isSorted()",
                "canary setWeight values must not decrease from one step to the next",
            )
        )
    )

    steps: list[Step] = Field(min_length=1, max_length=64)

    @model_validator(mode="after")
    def weights_do_not_decrease(self) -> Canary:
        weights = [s.set_weight for s in self.steps if s.set_weight is not None]
        if any(b < a for a, b in itertools.pairwise(weights)):
            raise ValueError("canary setWeight values must not decrease from one step to the next")
        return self


class Strategy(Model):
    """Shadow (optional) then canary steps."""

    shadow: Shadow | None = None
    canary: Canary
    progress_deadline: Duration = "10m"


class ModelRolloutSpec(Model):
    """The whole spec of a ModelRollout."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                "!has(self.strategy.shadow) || !has(self.routing.replicas)",
                "shadow traffic needs a mesh router (gatewayAPI or istio); "
                "the replicas router cannot mirror requests",
            ),
            (
                "!self.strategy.canary.steps.exists(s, has(s.analyze)) || has(self.analysis)",
                "analyze steps need an analysis block with gates",
            ),
            (
                "!has(self.guard) || !has(self.guard.gates) || self.guard.gates.all(g, "
                "has(self.analysis) && self.analysis.gates.exists(a, a.name == g.name))",
                "guard.gates name gates that analysis.gates lacks",
            ),
            (
                "has(self.fallbackRef) || !has(self.guard) || ((!has(self.guard.onBreach) || "
                "self.guard.onBreach != 'degrade') && (!has(self.guard.gates) || "
                "self.guard.gates.all(g, g.onBreach != 'degrade')))",
                NO_FALLBACK,
            ),
            ("!has(self.fallbackRef) || !has(self.routing.replicas)", FALLBACK_NEEDS_MESH),
            (
                "!has(self.fallbackRef) || self.fallbackRef.name != self.targetRef.name",
                FALLBACK_IS_TARGET,
            ),
        )
    )

    target_ref: TargetRef
    service: ServicePort
    routing: Routing
    strategy: Strategy
    analysis: Analysis | None = None
    on_failure: Literal["rollback", "pause"] = "rollback"
    on_inconclusive: Literal["pause", "rollback"] = "pause"
    paused: bool = False
    notifications: list[Notification] = Field(default_factory=list, max_length=8)
    guard: Guard = Field(default_factory=Guard)
    fallback_ref: FallbackRef | None = None

    @property
    def guarded(self) -> bool:
        """Whether the promoted model stays guarded (it needs gates to guard with)."""
        return self.guard.enabled and self.analysis is not None

    @model_validator(mode="after")
    def cross_field(self) -> ModelRolloutSpec:
        if self.strategy.shadow is not None and self.routing.replicas is not None:
            raise ValueError(
                "shadow traffic needs a mesh router (gatewayAPI or istio); "
                "the replicas router cannot mirror requests"
            )
        analyses = any(s.analyze is not None for s in self.strategy.canary.steps)
        if analyses and self.analysis is None:
            raise ValueError("analyze steps need an analysis block with gates")
        names = {g.name for g in self.analysis.gates} if self.analysis else set()
        unknown = [g.name for g in self.guard.gates if g.name not in names]
        if unknown:
            raise ValueError(f"guard.gates name gates that analysis.gates lacks: {unknown}")
        self.fallback_is_usable()
        return self

    def fallback_is_usable(self) -> None:
        if self.guard.degrades and self.fallback_ref is None:
            raise ValueError(NO_FALLBACK)
        if self.fallback_ref is not None and self.routing.replicas is not None:
            raise ValueError(FALLBACK_NEEDS_MESH)
        if self.fallback_ref is not None and self.fallback_ref.name == self.target_ref.name:
            raise ValueError(FALLBACK_IS_TARGET)


def parse_spec(raw: dict[str, Any]) -> ModelRolloutSpec:
    """Validate a spec dict (as the API server stores it); raises ``SpecError``."""
    from pydantic import ValidationError

    try:
        return ModelRolloutSpec.model_validate(raw)
    except ValidationError as error:
        raise SpecError(describe_validation_error(error)) from None


class SpecError(ValueError):
    """A spec that cannot be run, with a message a person can act on."""


def describe_validation_error(error: Any) -> str:
    """One line per problem: ``spec.analysis.gates[0].max: Input should be a valid number``."""
    lines = []
    for problem in error.errors():
        where = "spec" + "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in problem["loc"]
        )
        message = re.sub(r"^Value error, ", "", problem["msg"])
        lines.append(f"{where}: {message}")
    return "; ".join(lines)
