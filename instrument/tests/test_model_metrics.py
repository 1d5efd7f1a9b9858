"""The model-server helper emits the metric convention exactly as the operator queries it."""

from __future__ import annotations

import math

import pytest
from fairshift_instrument import ModelMetrics
from fairshift_instrument.convention import LATENCY_BUCKETS, SCORE_BUCKETS, check_attribute_names
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]


def exposed(registry: CollectorRegistry) -> dict[tuple[str, Labels], float]:
    """Every sample of the exposition text: (name, sorted labels) -> value."""
    text = generate_latest(registry).decode()
    samples: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return exposed(registry).get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> ModelMetrics:
    return ModelMetrics(["sex", "age_band"], registry=registry)


WOMAN = {"sex": "F", "age_band": "60+"}


class TestPredictions:
    def test_counts_decisions_by_slice_and_decision(
        self, metrics: ModelMetrics, registry: CollectorRegistry
    ) -> None:
        metrics.record_prediction(WOMAN, 1)
        metrics.record_prediction(WOMAN, 1)
        metrics.record_prediction(WOMAN, 0)
        metrics.record_prediction({"sex": "M", "age_band": "18-30"}, 0)

        name = "fairshift_predictions_total"
        assert value(registry, name, sex="F", age_band="60+", decision="1") == 2
        assert value(registry, name, sex="F", age_band="60+", decision="0") == 1
        assert value(registry, name, sex="M", age_band="18-30", decision="0") == 1
        assert value(registry, name, sex="M", age_band="18-30", decision="1") is None

    def test_score_is_observed_without_a_label(
        self, metrics: ModelMetrics, registry: CollectorRegistry
    ) -> None:
        metrics.record_prediction(WOMAN, 1, score=0.72)

        bucket = "fairshift_score_bucket"
        assert value(registry, bucket, sex="F", age_band="60+", label="", le="0.7") == 0
        assert value(registry, bucket, sex="F", age_band="60+", label="", le="0.75") == 1
        assert value(registry, bucket, sex="F", age_band="60+", label="", le="+Inf") == 1
        assert value(registry, "fairshift_score_count", sex="F", age_band="60+", label="") == 1

    def test_score_buckets_are_twenty_equal_bins(
        self, metrics: ModelMetrics, registry: CollectorRegistry
    ) -> None:
        metrics.record_prediction(WOMAN, 0, score=0.0)

        bounds = sorted(
            float(dict(labels)["le"])
            for (name, labels) in exposed(registry)
            if name == "fairshift_score_bucket"
        )
        assert bounds == [*SCORE_BUCKETS, math.inf]
        assert SCORE_BUCKETS[0] == pytest.approx(0.05)
        assert len(SCORE_BUCKETS) == 20

    def test_latency_is_observed_without_slice_labels(
        self, metrics: ModelMetrics, registry: CollectorRegistry
    ) -> None:
        metrics.record_prediction(WOMAN, 1, latency_seconds=0.03)

        name = "fairshift_request_duration_seconds_bucket"
        assert value(registry, name, le="0.025") == 0
        assert value(registry, name, le="0.05") == 1
        assert value(registry, "fairshift_request_duration_seconds_count") == 1
        bounds = sorted(float(dict(labels)["le"]) for (n, labels) in exposed(registry) if n == name)
        assert bounds == [*LATENCY_BUCKETS, math.inf]


class TestOutcomes:
    def test_counts_confusion_cells(
        self, metrics: ModelMetrics, registry: CollectorRegistry
    ) -> None:
        metrics.record_outcome(WOMAN, decision=1, label=1)
        metrics.record_outcome(WOMAN, decision=1, label=0)
        metrics.record_outcome(WOMAN, decision=1, label=0)

        name = "fairshift_outcomes_total"
        assert value(registry, name, sex="F", age_band="60+", decision="1", label="1") == 1
        assert value(registry, name, sex="F", age_band="60+", decision="1", label="0") == 2

    def test_score_is_observed_again_under_its_label(
        self, metrics: ModelMetrics, registry: CollectorRegistry
    ) -> None:
        metrics.record_prediction(WOMAN, 1, score=0.9)
        metrics.record_outcome(WOMAN, decision=1, label=0, score=0.9)

        count = "fairshift_score_count"
        assert value(registry, count, sex="F", age_band="60+", label="") == 1
        assert value(registry, count, sex="F", age_band="60+", label="0") == 1
        assert value(registry, count, sex="F", age_band="60+", label="1") is None

    def test_outcome_without_score_leaves_scores_alone(
        self, metrics: ModelMetrics, registry: CollectorRegistry
    ) -> None:
        metrics.record_outcome(WOMAN, decision=0, label=1)

        assert not any(name.startswith("fairshift_score") for name, _ in exposed(registry))


class TestErrorsAndTiming:
    def test_errors_are_counted_by_reason(
        self, metrics: ModelMetrics, registry: CollectorRegistry
    ) -> None:
        metrics.record_error("timeout")
        metrics.record_error("timeout")
        metrics.record_error("bad_input")

        assert value(registry, "fairshift_errors_total", reason="timeout") == 2
        assert value(registry, "fairshift_errors_total", reason="bad_input") == 1

    def test_timed_observes_the_block_duration(self, registry: CollectorRegistry) -> None:
        ticks = iter([10.0, 10.2])
        metrics = ModelMetrics(["sex"], registry=registry, clock=lambda: next(ticks))

        with metrics.timed():
            pass

        assert value(registry, "fairshift_request_duration_seconds_sum") == pytest.approx(0.2)
        assert value(registry, "fairshift_request_duration_seconds_count") == 1

    def test_timed_observes_a_failing_block_and_reraises(self, registry: CollectorRegistry) -> None:
        ticks = iter([1.0, 4.0])
        metrics = ModelMetrics(["sex"], registry=registry, clock=lambda: next(ticks))

        with pytest.raises(RuntimeError), metrics.timed():
            raise RuntimeError("model crashed")

        assert value(registry, "fairshift_request_duration_seconds_sum") == pytest.approx(3.0)

    def test_no_attributes_means_one_overall_slice(self, registry: CollectorRegistry) -> None:
        metrics = ModelMetrics([], registry=registry)
        metrics.record_prediction({}, 1)

        assert value(registry, "fairshift_predictions_total", decision="1") == 1


class TestValidation:
    @pytest.mark.parametrize("name", ["1sex", "age-band", "", "sex ", "é"])
    def test_attribute_names_must_be_label_names(self, name: str) -> None:
        with pytest.raises(ValueError, match="not a Prometheus label name"):
            check_attribute_names([name])

    @pytest.mark.parametrize(
        "name", ["decision", "label", "le", "reason", "job", "version", "__name__", "__x"]
    )
    def test_reserved_attribute_names_are_refused(self, name: str) -> None:
        with pytest.raises(ValueError, match="reserved"):
            ModelMetrics([name], registry=CollectorRegistry())

    def test_repeated_attributes_are_refused(self) -> None:
        with pytest.raises(ValueError, match="must not repeat: sex"):
            check_attribute_names(["sex", "age_band", "sex"])

    @pytest.mark.parametrize("decision", [2, -1, 0.5, "1", None])
    def test_decision_must_be_zero_or_one(self, metrics: ModelMetrics, decision: object) -> None:
        with pytest.raises(ValueError, match="decision must be 0 or 1"):
            metrics.record_prediction(WOMAN, decision)  # type: ignore[arg-type]

    @pytest.mark.parametrize("label", [2, 1.0, "0"])
    def test_label_must_be_zero_or_one(self, metrics: ModelMetrics, label: object) -> None:
        with pytest.raises(ValueError, match="label must be 0 or 1"):
            metrics.record_outcome(WOMAN, 1, label)  # type: ignore[arg-type]

    @pytest.mark.parametrize("score", [-0.01, 1.01, math.nan, math.inf, "high"])
    def test_score_must_be_in_unit_interval(self, metrics: ModelMetrics, score: object) -> None:
        with pytest.raises(ValueError, match=r"score must be a number in \[0, 1\]"):
            metrics.record_prediction(WOMAN, 1, score=score)  # type: ignore[arg-type]

    @pytest.mark.parametrize("latency", [-0.1, math.inf, math.nan])
    def test_latency_must_be_finite_and_non_negative(
        self, metrics: ModelMetrics, latency: float
    ) -> None:
        with pytest.raises(ValueError, match="latency_seconds"):
            metrics.record_prediction(WOMAN, 1, latency_seconds=latency)

    def test_slice_must_set_exactly_the_attributes(self, metrics: ModelMetrics) -> None:
        with pytest.raises(ValueError, match=r"missing: \['age_band'\], unexpected: \['race'\]"):
            metrics.record_prediction({"sex": "F", "race": "x"}, 1)

    def test_slice_values_must_be_non_empty_strings(self, metrics: ModelMetrics) -> None:
        with pytest.raises(ValueError, match="'age_band' needs a non-empty string"):
            metrics.record_prediction({"sex": "F", "age_band": ""}, 1)

    def test_a_refused_prediction_records_nothing(
        self, metrics: ModelMetrics, registry: CollectorRegistry
    ) -> None:
        with pytest.raises(ValueError):
            metrics.record_prediction(WOMAN, 1, score=0.5, latency_seconds=-1.0)

        assert not any(name.startswith("fairshift_predictions") for name, _ in exposed(registry))
        assert value(registry, "fairshift_request_duration_seconds_count") == 0

    def test_error_reason_must_be_given(self, metrics: ModelMetrics) -> None:
        with pytest.raises(ValueError, match="reason"):
            metrics.record_error("")

    def test_numpy_style_integers_are_accepted(
        self, metrics: ModelMetrics, registry: CollectorRegistry
    ) -> None:
        numpy = pytest.importorskip("numpy")
        metrics.record_prediction(WOMAN, numpy.int64(1), score=numpy.float32(0.5))

        name = "fairshift_predictions_total"
        assert value(registry, name, sex="F", age_band="60+", decision="1") == 1
