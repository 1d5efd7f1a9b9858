"""The ``analysis`` block: where metrics are, how slices are cut, and the gates."""

from __future__ import annotations

from typing import Annotated, Literal

from fairshift_instrument.convention import (
    ATTRIBUTE_PATTERN,
    RESERVED_LABELS,
    RESERVED_PREFIX,
    attribute_name_problem,
)
from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from fairshift.api.catalog import METRIC_NAMES, MetricFamily, metric_info
from fairshift.api.durations import parse_duration
from fairshift.api.schema import REFERENCE_PATTERN, Duration, Model, count_set, rules


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


PRIMARY_NEEDS_CRITICAL = (
    "a primary gate must be critical: primary gates share most of the rollback budget, and a "
    "warning gate never rolls back"
)


class Gate(Model):
    """One check: a metric (from the convention) or a PromQL ``query``, and one bound.

    ``min``/``max`` bound the candidate's value; ``maxIncrease``/``maxDecrease``/``maxChange``
    bound candidate minus stable, per slice where the metric is per slice. ``primary: true``
    declares the gates whose regressions matter most: their cells share most of the
    rollout's false-rollback budget (``engine.gates.PRIMARY_SHARE``) and are caught sooner,
    the other critical cells share the rest.
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
                "!has(self.primary) || !self.primary || !has(self.severity) "
                "|| self.severity == 'critical'",
                PRIMARY_NEEDS_CRITICAL,
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
    primary: bool = False

    @model_validator(mode="after")
    def one_source_one_bound(self) -> Gate:
        if self.primary and self.severity != "critical":
            raise ValueError(f"gate {self.name}: {PRIMARY_NEEDS_CRITICAL}")
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
