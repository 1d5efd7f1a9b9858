"""The ModelRollout spec as pydantic models, with the checks a person can act on.

Every cross-field rule here has a twin CEL rule (``x-kubernetes-validations``) so the API server
refuses the same specs at admission with the same message; ``api.crd`` renders both.
"""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Any, Literal

from fairshift_instrument.convention import (
    ATTRIBUTE_PATTERN,
    RESERVED_LABELS,
    RESERVED_PREFIX,
    attribute_name_problem,
)
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from fairshift.api.catalog import METRIC_NAMES, MetricFamily, metric_info
from fairshift.api.durations import DURATION_PATTERN, parse_duration

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
REFERENCE_PATTERN = (
    r"^(majority|worst|[a-zA-Z_][a-zA-Z0-9_]*=[^,=]+(,[a-zA-Z_][a-zA-Z0-9_]*=[^,=]+)*)$"
)

Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=32)]

CEL = "x-kubernetes-validations"


def rules(*pairs: tuple[str, str]) -> dict[str, Any]:
    """CEL rules for the CRD schema of a model: ``(rule, message)`` pairs."""
    return {CEL: [{"rule": rule, "message": message} for rule, message in pairs]}


def count_set(*fields: str) -> str:
    """A CEL expression counting how many of ``fields`` are set on ``self``."""
    return " + ".join(f"(has(self.{f}) ? 1 : 0)" for f in fields)


class Model(BaseModel):
    """Base for API objects: camelCase on the wire, unknown fields refused, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class TargetRef(Model):
    """The Deployment the model team updates; its pod template is the candidate."""

    kind: Literal["Deployment"] = "Deployment"
    name: str = Field(pattern=NAME_PATTERN, max_length=63)


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


class Prometheus(Model):
    """Where the metrics are."""

    address: str = Field(pattern=r"^https?://", max_length=2048)
    timeout: Duration = "10s"


def usable_attribute(name: str) -> str:
    """``name`` when the metric convention lets it be a slice label; ValueError with the reason."""
    problem = attribute_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    return name


RESERVED_NAMES = sorted(name for name in RESERVED_LABELS if not name.startswith(RESERVED_PREFIX))
RESERVED_ATTRIBUTE_RULE = (
    f"!(self in [{', '.join(repr(name) for name in RESERVED_NAMES)}])"
    f" && !self.startsWith({RESERVED_PREFIX!r})"
)
"""CEL twin of :func:`usable_attribute` beyond the pattern: no reserved label name."""

RESERVED_ATTRIBUTE_MESSAGE = (
    "a slice attribute must not be a label reserved by the metric convention: "
    f"{', '.join(RESERVED_NAMES)} or a name starting with '{RESERVED_PREFIX}'"
)

SliceAttribute = Annotated[
    str,
    Field(
        pattern=ATTRIBUTE_PATTERN,
        max_length=63,
        json_schema_extra=rules((RESERVED_ATTRIBUTE_RULE, RESERVED_ATTRIBUTE_MESSAGE)),
    ),
    AfterValidator(usable_attribute),
]
"""A Prometheus label name the convention does not reserve (refused at admission otherwise)."""


class Slices(Model):
    """Which groups are analysed.

    ``attributes`` are label names of the metric convention's series; the convention's own
    labels (``label``, ``decision``, ``le``, ...), ``version`` and ``__``-names are refused.
    ``reference`` is ``majority``, ``worst`` or explicit values such as ``sex=male``.
    """

    attributes: list[SliceAttribute] = Field(default_factory=list, max_length=8)
    intersections: bool = True
    reference: str = Field(default="majority", pattern=REFERENCE_PATTERN, max_length=256)
    min_samples: int = Field(default=100, ge=1, le=10_000_000)

    @field_validator("attributes")
    @classmethod
    def attributes_unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("slices.attributes must not repeat an attribute")
        return value


BOUNDS = ("min", "max", "maxIncrease", "maxDecrease", "maxChange")
RELATIVE_BOUNDS = ("maxIncrease", "maxDecrease", "maxChange")


class Gate(Model):
    """One check: a metric (from the convention) or a PromQL ``query``, and one bound.

    ``min``/``max`` bound the candidate's value; ``maxIncrease``/``maxDecrease``/``maxChange``
    bound candidate minus stable, per slice where the metric is per slice.
    """

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                f"{count_set('metric', 'query')} == 1",
                "a gate needs exactly one of metric (from the convention) or query (PromQL)",
            ),
            (
                f"{count_set(*BOUNDS)} == 1",
                "a gate needs exactly one bound: min, max, maxIncrease, maxDecrease or maxChange",
            ),
            (
                "!has(self.query) || has(self.min) || has(self.max)",
                "a query gate can only use min or max (a query has no stable value to compare)",
            ),
            (
                "!has(self.metric) || !self.metric.startsWith('latency_') "
                "|| has(self.max) || has(self.maxIncrease)",
                "a latency gate takes max (seconds) or maxIncrease (seconds over stable)",
            ),
            (
                "!has(self.metric) || !self.metric.startsWith('score_') || has(self.max)",
                "a drift gate (score_psi, score_js, score_ks) already compares candidate with "
                "stable; bound it with max",
            ),
        )
    )

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$", max_length=63)
    metric: Literal[METRIC_NAMES] | None = None  # type: ignore[valid-type]
    query: str | None = Field(default=None, min_length=1, max_length=4096)
    min: float | None = None
    max: float | None = None
    max_increase: float | None = Field(default=None, ge=0)
    max_decrease: float | None = Field(default=None, ge=0)
    max_change: float | None = Field(default=None, ge=0)
    severity: Literal["critical", "warning"] = "critical"

    @model_validator(mode="after")
    def one_source_one_bound(self) -> Gate:
        if (self.metric is None) == (self.query is None):
            raise ValueError(
                f"gate {self.name}: needs exactly one of metric (from the convention) "
                "or query (PromQL)"
            )
        if len(self.bound_kinds) != 1:
            raise ValueError(
                f"gate {self.name}: needs exactly one bound: "
                "min, max, maxIncrease, maxDecrease or maxChange"
            )
        if self.query is not None and self.bound_kind in RELATIVE_BOUNDS:
            raise ValueError(
                f"gate {self.name}: a query gate can only use min or max "
                "(a query has no stable value to compare)"
            )
        if self.metric is not None:
            self.check_bound_fits_metric(self.metric)
        return self

    def check_bound_fits_metric(self, metric: str) -> None:
        info = metric_info(metric)
        if self.bound_kind in RELATIVE_BOUNDS and not info.relative_bounds:
            raise ValueError(
                f"gate {self.name}: {metric} already compares candidate with stable; "
                "bound it with max"
            )
        if info.family is MetricFamily.LATENCY and self.bound_kind not in ("max", "maxIncrease"):
            raise ValueError(
                f"gate {self.name}: a latency gate takes max (seconds) or maxIncrease "
                "(seconds over stable)"
            )

    @property
    def bound_kinds(self) -> list[str]:
        values = {
            "min": self.min,
            "max": self.max,
            "maxIncrease": self.max_increase,
            "maxDecrease": self.max_decrease,
            "maxChange": self.max_change,
        }
        return [kind for kind, value in values.items() if value is not None]

    @property
    def bound_kind(self) -> str:
        return self.bound_kinds[0]

    @property
    def threshold(self) -> float:
        value = {
            "min": self.min,
            "max": self.max,
            "maxIncrease": self.max_increase,
            "maxDecrease": self.max_decrease,
            "maxChange": self.max_change,
        }[self.bound_kind]
        assert value is not None
        return value

    @property
    def critical(self) -> bool:
        return self.severity == "critical"


class Analysis(Model):
    """How and how often the candidate is judged."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                "self.alpha > 0.0 && self.alpha <= 0.5",
                "alpha is the false-rollback budget of the whole rollout; it must be in (0, 0.5]",
            ),
            (
                "self.gates.all(g, self.gates.exists_one(h, h.name == g.name))",
                "gate names must be unique",
            ),
            (
                "duration(self.interval) >= duration('5s')",
                "analysis.interval must be at least 5s",
            ),
        )
    )

    interval: Duration = "30s"
    prometheus: Prometheus | None = None  # default: the operator's --prometheus address
    selector: str = Field(
        default='namespace="{{namespace}}",pod=~"{{deployment}}-[0-9a-z]+-[0-9a-z]+"',
        max_length=2048,
    )
    slices: Slices = Field(default_factory=Slices)
    alpha: float = 0.05
    gates: list[Gate] = Field(min_length=1, max_length=32)

    @model_validator(mode="after")
    def sane(self) -> Analysis:
        if not 0.0 < self.alpha <= 0.5:
            raise ValueError(
                "alpha is the false-rollback budget of the whole rollout; it must be in (0, 0.5]"
            )
        names = [g.name for g in self.gates]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"gate names must be unique; repeated: {', '.join(duplicates)}")
        if parse_duration(self.interval) < 5:
            raise ValueError("analysis.interval must be at least 5s")
        return self

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.interval)


class SecretKeyRef(Model):
    """A key of a Secret in the ModelRollout's namespace."""

    name: str = Field(pattern=NAME_PATTERN, max_length=253)
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)


class UrlFrom(Model):
    """Where a webhook URL is kept."""

    secret_key_ref: SecretKeyRef


class Webhook(Model):
    """A webhook: the URL from a Secret, in the generic JSON or the Slack format."""

    url_from: UrlFrom
    format: Literal["generic", "slack"] = "generic"


class SecretRef(Model):
    """A Secret in the ModelRollout's namespace."""

    name: str = Field(pattern=NAME_PATTERN, max_length=253)


class MLflowCredentials(Model):
    """A Secret holding ``MLFLOW_TRACKING_TOKEN``, or ``MLFLOW_TRACKING_USERNAME`` and
    ``MLFLOW_TRACKING_PASSWORD`` (the names MLflow's own client reads)."""

    secret_ref: SecretRef


class MLflowRegisteredModel(Model):
    """The registered model version this rollout serves: by number or by alias."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                f"{count_set('version', 'alias')} == 1",
                "mlflow.registeredModel needs exactly one of version or alias",
            )
        )
    )

    name: str = Field(min_length=1, max_length=256)
    version: str | None = Field(default=None, pattern=r"^[1-9][0-9]*$", max_length=20)
    alias: str | None = Field(default=None, pattern=r"^[a-zA-Z_][a-zA-Z0-9_-]*$", max_length=255)

    @model_validator(mode="after")
    def version_or_alias(self) -> MLflowRegisteredModel:
        if (self.version is None) == (self.alias is None):
            raise ValueError("mlflow.registeredModel needs exactly one of version or alias")
        return self


class MLflow(Model):
    """An MLflow tracking server that receives every decision of the rollout: a run per
    candidate revision with the gates' estimates and bounds per slice, the decisions, and
    at the end the report and the model card."""

    tracking_uri: str = Field(pattern=r"^https?://", max_length=2048)
    experiment: str = Field(min_length=1, max_length=500)
    registered_model: MLflowRegisteredModel | None = None
    credentials: MLflowCredentials | None = None


class Notification(Model):
    """Where decisions are announced: a webhook (pause, rollback, promotion, failure) or an
    MLflow tracking server (every decision and its evidence)."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                f"{count_set('webhook', 'mlflow')} == 1",
                "a notification needs exactly one of webhook or mlflow",
            )
        )
    )

    webhook: Webhook | None = None
    mlflow: MLflow | None = None

    @model_validator(mode="after")
    def exactly_one_sink(self) -> Notification:
        if (self.webhook is None) == (self.mlflow is None):
            raise ValueError("a notification needs exactly one of webhook or mlflow")
        return self


BreachResponse = Literal["alert", "rollback", "escalate"]


class GuardGate(Model):
    """How the guard answers a breach of one gate (by its name in ``analysis.gates``)."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$", max_length=63)
    on_breach: BreachResponse


class Guard(Model):
    """The continuous guard after promotion: the rollout's gates keep judging the live model.

    Each look covers the live model's traffic since the previous look (``interval``), shifted
    back by ``labelDelay`` when outcomes arrive late; relative gates compare it with the
    stable model's evidence frozen at promotion. ``falseAlarmDays``: at most one false breach
    per this many days per model on average; ``warningDays`` the same for warnings. A breach
    of a critical gate switches back to the last known good revision unless ``onBreach`` (or
    the gate's own entry in ``gates``) says ``alert`` or ``escalate`` (keep serving, hold the
    next rollout until a person acknowledges); a warning gate only alerts.
    """

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                "duration(self.interval) >= duration('30s')",
                "guard.interval must be at least 30s",
            ),
            (
                "self.warningDays <= self.falseAlarmDays",
                "guard.warningDays must not exceed guard.falseAlarmDays",
            ),
        )
    )

    enabled: bool = True
    interval: Duration = "5m"
    label_delay: Duration = "0s"
    false_alarm_days: float = Field(default=90.0, gt=0, le=3650)
    warning_days: float = Field(default=7.0, gt=0, le=3650)
    on_breach: BreachResponse = "rollback"
    gates: list[GuardGate] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def sane(self) -> Guard:
        if parse_duration(self.interval) < 30:
            raise ValueError("guard.interval must be at least 30s")
        if self.warning_days > self.false_alarm_days:
            raise ValueError("guard.warningDays must not exceed guard.falseAlarmDays")
        return self

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.interval)

    @property
    def label_delay_seconds(self) -> float:
        return parse_duration(self.label_delay)

    def response(self, gate: Gate) -> BreachResponse:
        """What a breach of ``gate`` does: its own entry, else by severity and ``onBreach``."""
        own = next((g.on_breach for g in self.gates if g.name == gate.name), None)
        if own is not None:
            return own
        return self.on_breach if gate.severity == "critical" else "alert"


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
        return self


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
