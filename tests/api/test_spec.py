"""The spec models accept the documented example and refuse bad specs with clear messages."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fairshift.api.durations import format_duration, parse_duration
from fairshift.api.spec import SpecError, parse_spec


def test_example_is_valid(example_spec: dict[str, Any]) -> None:
    spec = parse_spec(example_spec)
    assert spec.routing.kind == "gatewayAPI"
    assert spec.analysis is not None
    assert [g.bound_kind for g in spec.analysis.gates][:4] == [
        "maxIncrease",
        "min",
        "maxChange",
        "maxDecrease",
    ]
    assert spec.analysis.interval_seconds == 30


def mutated(spec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``spec`` with the dotted ``path`` set (``None`` deletes it)."""
    result = copy.deepcopy(spec)
    node: Any = result
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if value is None:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return result


BAD_SPECS = [
    ("routing", {}, "exactly one router"),
    ("routing", {"replicas": {}, "istio": {"hosts": ["a"]}}, "exactly one router"),
    ("routing", {"replicas": {}}, "shadow traffic needs a mesh router"),
    ("strategy.canary.steps.2", {"setWeight": 2}, "must not decrease"),
    ("strategy.canary.steps.0", {"setWeight": 5, "pause": {}}, "exactly one of setWeight"),
    ("strategy.canary.steps.0", {"setWeight": 101}, "less than or equal to 100"),
    ("analysis.alpha", 0.0, "(0, 0.5]"),
    ("analysis.alpha", 0.7, "(0, 0.5]"),
    ("analysis.gates.0", {"name": "x", "metric": "tpr_gap"}, "exactly one bound"),
    (
        "analysis.gates.0",
        {"name": "x", "metric": "tpr_gap", "max": 1, "min": 0},
        "exactly one bound",
    ),
    ("analysis.gates.0", {"name": "x", "max": 1}, "exactly one of metric"),
    ("analysis.gates.0", {"name": "x", "query": "up", "maxIncrease": 1}, "only use min or max"),
    ("analysis.gates.0", {"name": "x", "metric": "nonsense", "max": 1}, "Input should be"),
    ("analysis.gates.1.name", "equal-opportunity", "unique"),
    ("analysis.slices.attributes", ["sex", "bad-name"], "should match pattern"),
    ("analysis.slices.attributes", ["sex", "label"], "'label' is reserved by the metric"),
    ("analysis.slices.attributes", ["version"], "'version' is reserved by the metric convention"),
    ("analysis.slices.attributes", ["decision"], "'decision' is reserved by the metric convention"),
    ("analysis.slices.attributes", ["le"], "'le' is reserved by the metric convention"),
    ("analysis.slices.attributes", ["__name__"], "'__name__' is reserved by the metric convention"),
    ("analysis.slices.reference", "sex:male", "should match pattern"),
    ("analysis.interval", "30 seconds", "should match pattern"),
    ("analysis.interval", "1s", "at least 5s"),
    ("analysis.gates.5", {"name": "d", "metric": "score_psi", "maxIncrease": 0.1}, "bound it"),
    ("analysis.gates.4", {"name": "l", "metric": "latency_p99", "min": 0.1}, "latency gate"),
    (
        "analysis.gates.0",
        {"name": "x", "metric": "tpr_gap", "max": 0.1, "severity": "warning", "primary": True},
        "a primary gate must be critical",
    ),
    (
        "analysis.gates.0",
        {"name": "x", "metric": "tpr_gap", "max": 0.1, "primary": "sometimes"},
        "bool",
    ),
    ("service.port", 0, "greater than or equal to 1"),
    ("targetRef.name", "Not_A_Name", "should match pattern"),
    ("onFailure", "explode", "Input should be"),
    ("guard", {"onBreach": "degrade"}, "guard onBreach degrade sends traffic to spec.fallbackRef"),
    (
        "guard",
        {"gates": [{"name": "equal-opportunity", "onBreach": "degrade"}]},
        "which is not set: name the fallback Deployment in fallbackRef",
    ),
    ("guard", {"onBreach": "degrade", "degradePercent": 0}, "greater than or equal to 1"),
    ("fallbackRef", {"name": "credit-scorer"}, "fallbackRef must name a Deployment other than"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD_SPECS)
def test_bad_specs_are_refused_with_a_message(
    example_spec: dict[str, Any], path: str, value: Any, message: str
) -> None:
    with pytest.raises(SpecError) as error:
        parse_spec(mutated(example_spec, path, value))
    assert message in str(error.value)
    assert str(error.value).startswith("spec")


def test_unknown_fields_are_refused(example_spec: dict[str, Any]) -> None:
    with pytest.raises(SpecError, match=r"spec\.strategy\.canari"):
        parse_spec({**example_spec, "strategy": {**example_spec["strategy"], "canari": {}}})


def test_analyze_steps_need_analysis(example_spec: dict[str, Any]) -> None:
    with pytest.raises(SpecError, match="analyze steps need an analysis"):
        parse_spec(mutated(example_spec, "analysis", None))


def test_analyze_budget_defaults_to_three_durations(example_spec: dict[str, Any]) -> None:
    spec = parse_spec(example_spec)
    step = spec.strategy.canary.steps[1].analyze
    assert step is not None and step.budget_seconds == 1800


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("10m", 600), ("1h30m", 5400), ("500ms", 0.5)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_duration_round_trip() -> None:
    assert format_duration(parse_duration("1h30m")) == "1h30m"
    with pytest.raises(ValueError, match="30s, 10m or 1h30m"):
        parse_duration("soon")


MLFLOW = {
    "trackingUri": "https://mlflow.example.org",
    "experiment": "credit-scorer",
    "registeredModel": {"name": "credit-scorer", "alias": "champion"},
    "credentials": {"secretRef": {"name": "mlflow-credentials"}},
}
WEBHOOK = {"urlFrom": {"secretKeyRef": {"name": "hooks", "key": "slack"}}, "format": "slack"}


def test_mlflow_and_webhooks_are_notifications(example_spec: dict[str, Any]) -> None:
    spec = parse_spec({**example_spec, "notifications": [{"webhook": WEBHOOK}, {"mlflow": MLFLOW}]})

    webhook, mlflow = spec.notifications
    assert webhook.webhook is not None and webhook.mlflow is None
    assert mlflow.mlflow is not None and mlflow.webhook is None
    assert mlflow.mlflow.tracking_uri == "https://mlflow.example.org"
    assert mlflow.mlflow.registered_model is not None
    assert mlflow.mlflow.registered_model.alias == "champion"
    assert mlflow.mlflow.credentials is not None
    assert mlflow.mlflow.credentials.secret_ref.name == "mlflow-credentials"


BAD_NOTIFICATIONS = [
    ({}, "exactly one of webhook or mlflow"),
    ({"webhook": WEBHOOK, "mlflow": MLFLOW}, "exactly one of webhook or mlflow"),
    ({"mlflow": {**MLFLOW, "trackingUri": "mlflow.example.org"}}, "should match pattern"),
    ({"mlflow": {**MLFLOW, "experiment": ""}}, "at least 1 character"),
    (
        {"mlflow": {**MLFLOW, "registeredModel": {"name": "m"}}},
        "exactly one of version or alias",
    ),
    (
        {"mlflow": {**MLFLOW, "registeredModel": {"name": "m", "version": "3", "alias": "a"}}},
        "exactly one of version or alias",
    ),
    ({"mlflow": {**MLFLOW, "registeredModel": {"name": "m", "version": "v3"}}}, "pattern"),
    ({"mlflow": {**MLFLOW, "credentials": {"secretRef": {}}}}, "Field required"),
]


@pytest.mark.parametrize(("notification", "message"), BAD_NOTIFICATIONS)
def test_bad_notifications_are_refused_with_a_message(
    example_spec: dict[str, Any], notification: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError) as error:
        parse_spec({**example_spec, "notifications": [notification]})
    assert message in str(error.value)
    assert str(error.value).startswith("spec.notifications[0]")


def test_degrade_with_a_fallback_is_accepted(example_spec: dict[str, Any]) -> None:
    raw = {
        **example_spec,
        "guard": {"onBreach": "degrade", "degradePercent": 30},
        "fallbackRef": {"name": "rules-scorer", "targetPort": 9000},
    }
    spec = parse_spec(raw)
    assert spec.guard.degrades and spec.guard.degrade_percent == 30
    assert spec.fallback_ref is not None and spec.fallback_ref.target_port == 9000


def test_a_fallback_needs_a_mesh_router(example_spec: dict[str, Any]) -> None:
    raw = {**example_spec, "routing": {"replicas": {}}, "fallbackRef": {"name": "rules-scorer"}}
    raw["strategy"] = {k: v for k, v in raw["strategy"].items() if k != "shadow"}
    with pytest.raises(SpecError, match="fallbackRef needs a mesh router"):
        parse_spec(raw)
