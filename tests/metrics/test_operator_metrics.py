"""The operator's own metrics: what the reconciler reports is what /metrics shows."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fairshift.api.status import GateEvidence, Outcome, Phase
from fairshift.metrics.operator_metrics import OperatorMetrics, new_registry

Labels = tuple[tuple[str, str], ...]


def exposed(registry: CollectorRegistry) -> dict[tuple[str, Labels], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(metrics: OperatorMetrics, name: str, **labels: str) -> float | None:
    return exposed(metrics.registry).get((name, tuple(sorted(labels.items()))))


def series(metrics: OperatorMetrics, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (n, labels) in exposed(metrics.registry) if n == name]


@dataclass(frozen=True)
class Evidence:
    gate: str
    slice: str
    estimate: float | None
    lower: float | None
    upper: float | None


@pytest.fixture
def metrics() -> OperatorMetrics:
    return OperatorMetrics(new_registry())


class TestRegistry:
    def test_each_instance_has_its_own_registry(self) -> None:
        first, second = OperatorMetrics(), OperatorMetrics()
        first.count_decision("rollback", "AnalysisFailed")
        assert first.registry is not second.registry
        assert value(second, "fairshift_decisions_total", action="rollback", reason="x") is None

    def test_uses_the_registry_it_is_given(self) -> None:
        registry = new_registry()
        assert OperatorMetrics(registry).registry is registry


class TestRollouts:
    def test_every_phase_is_exposed_with_zero(self, metrics: OperatorMetrics) -> None:
        phases = {labels["phase"] for labels in series(metrics, "fairshift_rollouts")}
        assert phases == {phase.value for phase in Phase}
        assert value(metrics, "fairshift_rollouts", phase="Canary") == 0

    def test_rollouts_are_counted_by_their_latest_phase(self, metrics: OperatorMetrics) -> None:
        metrics.observe_rollout("lending", "credit", "Canary", 25)
        metrics.observe_rollout("lending", "fraud", Phase.CANARY, 5)
        metrics.observe_rollout("lending", "credit", "Paused", 25)

        assert value(metrics, "fairshift_rollouts", phase="Canary") == 1
        assert value(metrics, "fairshift_rollouts", phase="Paused") == 1
        assert (
            value(metrics, "fairshift_canary_weight", namespace="lending", rollout="credit") == 25
        )
        assert value(metrics, "fairshift_canary_weight", namespace="lending", rollout="fraud") == 5

    def test_the_fallback_share_is_exposed(self, metrics: OperatorMetrics) -> None:
        metrics.observe_rollout("lending", "credit", "Fallback", 0, 40)
        key = {"namespace": "lending", "rollout": "credit"}
        assert value(metrics, "fairshift_fallback_weight", **key) == 40
        assert value(metrics, "fairshift_rollouts", phase="Fallback") == 1
        metrics.forget("lending", "credit")
        assert not series(metrics, "fairshift_fallback_weight")

    def test_an_unknown_phase_drops_back_to_zero(self, metrics: OperatorMetrics) -> None:
        metrics.observe_rollout("a", "b", "Weird", 0)
        metrics.observe_rollout("a", "b", "Idle", 0)
        assert value(metrics, "fairshift_rollouts", phase="Weird") == 0
        assert value(metrics, "fairshift_rollouts", phase="Idle") == 1


class TestGates:
    def test_estimates_and_bounds_per_gate_and_slice(self, metrics: OperatorMetrics) -> None:
        metrics.observe_gates(
            "lending",
            "credit",
            [
                Evidence("equal-opportunity", "sex=F", 0.03, -0.01, 0.07),
                Evidence("accuracy", "overall", -0.002, -0.01, 0.006),
            ],
        )
        labels = {"namespace": "lending", "rollout": "credit", "gate": "equal-opportunity"}
        assert value(metrics, "fairshift_gate_estimate", **labels, slice="sex=F") == 0.03
        assert value(metrics, "fairshift_gate_lower", **labels, slice="sex=F") == -0.01
        assert value(metrics, "fairshift_gate_upper", **labels, slice="sex=F") == 0.07
        assert (
            value(
                metrics,
                "fairshift_gate_estimate",
                **{**labels, "gate": "accuracy"},
                slice="overall",
            )
            == -0.002
        )

    def test_accepts_status_evidence(self, metrics: OperatorMetrics) -> None:
        evidence = GateEvidence(
            gate="four-fifths",
            metric="disparate_impact",
            severity="critical",
            slice="age_band=60+",
            estimate=0.1,
            lower=0.05,
            upper=0.2,
            bound="min",
            threshold=0.8,
            outcome=Outcome.PENDING,
        )
        metrics.observe_gates("ns", "r", [evidence])
        assert (
            value(
                metrics,
                "fairshift_gate_upper",
                namespace="ns",
                rollout="r",
                gate="four-fifths",
                slice="age_band=60+",
            )
            == 0.2
        )

    def test_missing_or_infinite_values_are_not_exposed(self, metrics: OperatorMetrics) -> None:
        metrics.observe_gates("ns", "r", [Evidence("g", "overall", 0.1, 0.0, 0.2)])
        metrics.observe_gates("ns", "r", [Evidence("g", "overall", None, -math.inf, 0.3)])

        labels = {"namespace": "ns", "rollout": "r", "gate": "g", "slice": "overall"}
        assert value(metrics, "fairshift_gate_estimate", **labels) is None
        assert value(metrics, "fairshift_gate_lower", **labels) is None
        assert value(metrics, "fairshift_gate_upper", **labels) == 0.3

    def test_pairs_no_longer_reported_are_removed(self, metrics: OperatorMetrics) -> None:
        metrics.observe_gates(
            "ns", "r", [Evidence("g", "sex=F", 1, 0, 2), Evidence("g", "sex=M", 1, 0, 2)]
        )
        metrics.observe_gates("ns", "other", [Evidence("g", "sex=F", 1, 0, 2)])
        metrics.observe_gates("ns", "r", [Evidence("g", "sex=M", 3, 2, 4)])

        slices = {
            (labels["rollout"], labels["slice"])
            for labels in series(metrics, "fairshift_gate_estimate")
        }
        assert slices == {("r", "sex=M"), ("other", "sex=F")}


class TestCounters:
    def test_decisions_by_action_and_reason(self, metrics: OperatorMetrics) -> None:
        metrics.count_decision("rollback", "CriticalGateFailed")
        metrics.count_decision("rollback", "CriticalGateFailed")
        metrics.count_decision("advance", "AllGatesPassed")
        name = "fairshift_decisions_total"
        assert value(metrics, name, action="rollback", reason="CriticalGateFailed") == 2
        assert value(metrics, name, action="advance", reason="AllGatesPassed") == 1

    def test_analysis_errors_by_rollout_and_kind(self, metrics: OperatorMetrics) -> None:
        metrics.count_error("ns", "r", "metrics")
        metrics.count_error("ns", "r", "metrics")
        assert (
            value(
                metrics,
                "fairshift_analysis_errors_total",
                namespace="ns",
                rollout="r",
                kind="metrics",
            )
            == 2
        )

    def test_prometheus_queries_by_outcome(self, metrics: OperatorMetrics) -> None:
        metrics.observe_query(0.05, ok=True)
        metrics.observe_query(0.05, ok=True)
        metrics.observe_query(2.0, ok=False)
        assert value(metrics, "fairshift_prometheus_queries_total", outcome="ok") == 2
        assert value(metrics, "fairshift_prometheus_queries_total", outcome="error") == 1
        assert value(metrics, "fairshift_prometheus_query_duration_seconds_count") == 3
        assert value(metrics, "fairshift_prometheus_query_duration_seconds_sum") == pytest.approx(
            2.1
        )


class TestReconcileTiming:
    def test_observes_the_block_even_when_it_raises(self) -> None:
        ticks = iter([1.0, 1.5, 10.0, 12.0])
        metrics = OperatorMetrics(clock=lambda: next(ticks))

        with metrics.time_reconcile():
            pass
        with pytest.raises(RuntimeError), metrics.time_reconcile():
            raise RuntimeError("conflict")

        assert value(metrics, "fairshift_reconcile_duration_seconds_count") == 2
        assert value(metrics, "fairshift_reconcile_duration_seconds_sum") == pytest.approx(2.5)


class TestForget:
    def test_removes_every_series_of_the_rollout(self, metrics: OperatorMetrics) -> None:
        for rollout in ("gone", "kept"):
            metrics.observe_rollout("ns", rollout, "Canary", 10)
            metrics.observe_gates("ns", rollout, [Evidence("g", "overall", 1, 0, 2)])
            metrics.count_error("ns", rollout, "metrics")

        metrics.forget("ns", "gone")

        for name in (
            "fairshift_canary_weight",
            "fairshift_gate_estimate",
            "fairshift_gate_lower",
            "fairshift_gate_upper",
            "fairshift_analysis_errors_total",
        ):
            assert {labels["rollout"] for labels in series(metrics, name)} == {"kept"}, name
        assert value(metrics, "fairshift_rollouts", phase="Canary") == 1

    def test_forgetting_an_unknown_rollout_is_harmless(self, metrics: OperatorMetrics) -> None:
        metrics.forget("ns", "never-seen")
        assert value(metrics, "fairshift_rollouts", phase="Idle") == 0


def test_the_guard_health_is_a_state_set_and_goes_with_the_rollout() -> None:
    metrics = OperatorMetrics(new_registry())
    metrics.observe_guard("lending", "credit-scorer", "Breached", 2)
    value = metrics.registry.get_sample_value
    labels = {"namespace": "lending", "rollout": "credit-scorer"}
    assert value("fairshift_guard_health", {**labels, "health": "Breached"}) == 1
    assert value("fairshift_guard_health", {**labels, "health": "Healthy"}) == 0
    assert value("fairshift_guard_breaches", labels) == 2
    metrics.observe_guard("lending", "credit-scorer", "Healthy", 2)
    assert value("fairshift_guard_health", {**labels, "health": "Breached"}) == 0
    metrics.forget("lending", "credit-scorer")
    assert value("fairshift_guard_health", {**labels, "health": "Healthy"}) is None
    assert value("fairshift_guard_breaches", labels) is None


def test_evidence_records_are_counted_by_sink_and_result(metrics: OperatorMetrics) -> None:
    metrics.count_evidence("mlflow", "delivered")
    metrics.count_evidence("mlflow", "delivered")
    metrics.count_evidence("mlflow", "dropped")
    total = "fairshift_evidence_records_total"
    assert value(metrics, total, sink="mlflow", result="delivered") == 2
    assert value(metrics, total, sink="mlflow", result="dropped") == 1
