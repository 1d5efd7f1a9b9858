"""PrometheusSource against a fake Prometheus: the PromQL it sends and the counts it builds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fairshift_instrument.convention import LATENCY_BUCKETS, SCORE_BUCKETS
from prometheus_fake import EMPTY, FakePrometheus, Reply, failure, scalar, vector

from fairshift.api.analysis import Analysis
from fairshift.engine.counts import BinaryCounts, Histogram, slice_key
from fairshift.metrics.prometheus import PrometheusSource, PrometheusSources
from fairshift.metrics.source import InvalidQueryError, MetricsError, QueryContext

SELECTOR = 'namespace="lending",pod=~"credit-scorer-[0-9a-z]+-[0-9a-z]+"'
END = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
START = END - timedelta(seconds=300)


STABLE_SELECTOR = 'namespace="lending",pod=~"credit-scorer-primary-[0-9a-z]+-[0-9a-z]+"'


def readings(series: str) -> str:
    """The query of one series' start and end readings of both versions."""
    return " or ".join(
        f"label_replace(label_replace({series}{{{selector}}} @ {at.timestamp():.3f}, "
        f'"fairshift_reading", "{instant}", "", ""), "fairshift_version", "{version}", "", "")'
        for version, selector in (("stable", STABLE_SELECTOR), ("candidate", SELECTOR))
        for instant, at in (("start", START), ("end", END))
    )


PREDICTIONS = readings("fairshift_predictions_total")
OUTCOMES = readings("fairshift_outcomes_total")
SCORES = readings("fairshift_score_bucket")
LATENCY = readings("fairshift_request_duration_seconds_bucket")
ERRORS = readings("fairshift_errors_total")
STABLE_CUSTOM = f'sum(rate(http_requests_total{{ {STABLE_SELECTOR},code=~"5.."}}[300s]))'
CUSTOM = f'sum(rate(http_requests_total{{ {SELECTOR},code=~"5.."}}[300s]))'

WOMEN = {"sex": "F", "age_band": "60+"}
MEN = {"sex": "M", "age_band": "18-30"}

CONTEXT = QueryContext(
    namespace="lending",
    rollout="credit-scorer",
    deployment="credit-scorer",
    version="candidate",
    service="credit-scorer-canary",
    start=START,
    end=END,
)
STABLE = QueryContext(
    namespace="lending",
    rollout="credit-scorer",
    deployment="credit-scorer-primary",
    version="stable",
    service="credit-scorer-primary",
    start=START,
    end=END,
)


def analysis(
    address: str, *gates: dict[str, Any], attributes: Sequence[str] = ("sex", "age_band")
) -> Analysis:
    return Analysis.model_validate(
        {
            "prometheus": {"address": address, "timeout": "2s"},
            "slices": {"attributes": list(attributes)},
            "gates": list(gates)
            or [{"name": "accuracy", "metric": "accuracy", "maxDecrease": 0.02}],
        }
    )


ERROR_GATE = {
    "name": "errors",
    "query": 'sum(rate(http_requests_total{ {{selector}},code=~"5.."}[{{window}}]))',
    "max": 0.01,
}


def at_end(*samples: tuple[dict[str, str], str]) -> Reply:
    """Readings of series that appeared after the start: their counts are these values."""
    markers = {"fairshift_reading": "end", "fairshift_version": "candidate"}
    return vector(*[({**sample_labels, **markers}, value) for sample_labels, value in samples])


def labels(cell: dict[str, str], **extra: str) -> dict[str, str]:
    return {**cell, **extra}


def cumulative(bounds: Sequence[float], observations: Sequence[float]) -> list[tuple[str, str]]:
    """(le, cumulative count) pairs as Prometheus formats them, +Inf last."""
    pairs = [(repr(b), str(sum(o <= b for o in observations))) for b in bounds]
    return [*pairs, ("+Inf", str(len(observations)))]


def score_samples(cell: dict[str, str], label: str, scores: Sequence[float]) -> list[Any]:
    return [
        (labels(cell, label=label, le=le), count) for le, count in cumulative(SCORE_BUCKETS, scores)
    ]


def source_for(fake: FakePrometheus, **options: Any) -> PrometheusSource:
    options.setdefault("retries", 0)
    return PrometheusSource(fake.address, 2.0, **options)


def collect(fake: FakePrometheus, *gates: dict[str, Any], **options: Any) -> Any:
    """The candidate's counts (the canned answers hold readings of the candidate only)."""
    pair = source_for(fake, **options).collect(analysis(fake.address, *gates), STABLE, CONTEXT)
    assert pair.stable.cells == {}
    return pair.candidate


@pytest.fixture
def healthy(prometheus: FakePrometheus) -> FakePrometheus:
    """Two cells with predictions, outcomes, scores; latency; two errors; a custom gate."""
    prometheus.answer(
        "fairshift_predictions_total",
        at_end(
            (labels(WOMEN, decision="1"), "30.5"),
            (labels(WOMEN, decision="0"), "69.5"),
            (labels(MEN, decision="1"), "60"),
            (labels(MEN, decision="0"), "40"),
        ),
    )
    prometheus.answer(
        "fairshift_outcomes_total",
        at_end(
            (labels(WOMEN, decision="1", label="1"), "10"),
            (labels(WOMEN, decision="1", label="0"), "5"),
            (labels(WOMEN, decision="0", label="1"), "4"),
            (labels(WOMEN, decision="0", label="0"), "20.25"),
            (labels(MEN, decision="1", label="1"), "7"),
        ),
    )
    prometheus.answer(
        "fairshift_score_bucket",
        at_end(
            *score_samples(WOMEN, "", [0.1, 0.12, 0.9]),
            *score_samples(WOMEN, "1", [0.9]),
            *score_samples(WOMEN, "0", [0.12]),
            *score_samples(MEN, "", [0.5]),
        ),
    )
    prometheus.answer(
        "fairshift_request_duration_seconds_bucket",
        at_end(*[({"le": le}, count) for le, count in cumulative(LATENCY_BUCKETS, [0.02, 0.3, 3])]),
    )
    prometheus.answer("fairshift_errors_total", at_end(({}, "2")))
    prometheus.answer("http_requests_total", vector(({}, "0.004")))
    return prometheus


class TestQueries:
    def test_sends_one_query_per_series_for_both_versions_and_one_per_custom_gate_and_version(
        self, healthy: FakePrometheus
    ) -> None:
        source = source_for(healthy)
        source.collect(analysis(healthy.address, ERROR_GATE), STABLE, CONTEXT)

        assert healthy.queries == [
            *(PREDICTIONS, OUTCOMES, SCORES, LATENCY, ERRORS),
            *(STABLE_CUSTOM, CUSTOM),
        ]
        assert set(healthy.paths) == {"/api/v1/query"}
        assert set(healthy.times) == {f"{END.timestamp():.3f}"}
        assert source.queries_last_collect == 7
        assert source.seconds_last_collect > 0

    def test_each_versions_custom_gate_is_evaluated_at_the_end_of_its_span(
        self, healthy: FakePrometheus
    ) -> None:
        reference_end = START - timedelta(days=1)
        reference = replace(STABLE, start=reference_end - timedelta(hours=1), end=reference_end)
        source_for(healthy).collect(analysis(healthy.address, ERROR_GATE), reference, CONTEXT)

        custom = [
            at for query, at in zip(healthy.queries, healthy.times, strict=True) if "http" in query
        ]
        assert custom == [f"{reference_end.timestamp():.3f}", f"{END.timestamp():.3f}"]

    def test_query_count_does_not_grow_with_slices(self, prometheus: FakePrometheus) -> None:
        many = ("sex", "age_band", "region", "income", "language")
        source = source_for(prometheus)
        source.collect(analysis(prometheus.address, attributes=many), STABLE, CONTEXT)
        assert source.queries_last_collect == 5
        assert prometheus.queries[0] == PREDICTIONS

    def test_label_values_are_escaped_in_the_selector(self, prometheus: FakePrometheus) -> None:
        context = QueryContext('ns"x', "r", "dep\\loy", "candidate", "svc", START, END)
        source_for(prometheus).collect(analysis(prometheus.address, ERROR_GATE), STABLE, context)
        assert 'namespace="ns\\"x",pod=~"dep\\\\loy-[0-9a-z]+-[0-9a-z]+"' in prometheus.queries[0]
        assert "[300s]" in prometheus.queries[-1]  # {{window}}: the analysis' age

    def test_custom_selector_template(self, prometheus: FakePrometheus) -> None:
        spec = analysis(prometheus.address).model_copy(
            update={"selector": 'job="{{service}}",version="{{ version }}"'}
        )
        source_for(prometheus).collect(spec, STABLE, CONTEXT)
        assert '{job="credit-scorer-canary",version="candidate"}' in prometheus.queries[0]

    def test_unknown_selector_variable_fails_loudly(self, prometheus: FakePrometheus) -> None:
        spec = analysis(prometheus.address).model_copy(update={"selector": 'app="{{app}}"'})
        with pytest.raises(InvalidQueryError, match=r"\{\{app\}\}"):
            source_for(prometheus).collect(spec, STABLE, CONTEXT)
        assert prometheus.queries == []

    def test_unknown_variable_in_a_gate_query_names_the_gate(
        self, prometheus: FakePrometheus
    ) -> None:
        gate = {"name": "custom", "query": "sum(x{ {{selector}} }[{{range}}])", "max": 1}
        with pytest.raises(InvalidQueryError, match=r"gate custom: .*\{\{range\}\}"):
            collect(prometheus, gate)


class TestCounts:
    def test_cells_from_predictions_and_outcomes(self, healthy: FakePrometheus) -> None:
        counts = collect(healthy)

        assert counts.cells == {
            slice_key(WOMEN): BinaryCounts(
                predictions=100.0, selected=30.5, tp=10.0, fp=5.0, fn=4.0, tn=20.25
            ),
            slice_key(MEN): BinaryCounts(predictions=100.0, selected=60.0, tp=7.0),
        }

    def test_scores_by_cell_and_label(self, healthy: FakePrometheus) -> None:
        counts = collect(healthy)

        women = counts.scores[slice_key(WOMEN)]
        assert women.bounds == SCORE_BUCKETS
        assert women.counts[1] == 1  # 0.1 in (0.05, 0.10]
        assert women.counts[2] == 1  # 0.12 in (0.10, 0.15]
        assert women.counts[17] == 1  # 0.9 in (0.85, 0.90]
        assert women.total == 3
        assert counts.scores[slice_key(MEN)].total == 1
        assert counts.labelled_scores[slice_key(WOMEN)][1].counts[17] == 1
        assert counts.labelled_scores[slice_key(WOMEN)][0].counts[2] == 1
        assert slice_key(MEN) not in counts.labelled_scores

    def test_score_counts_above_one_are_folded_into_the_last_bucket(
        self, prometheus: FakePrometheus
    ) -> None:
        samples = [
            (sample_labels, "2.5" if sample_labels["le"] == "+Inf" else count)
            for sample_labels, count in score_samples(WOMEN, "", [0.3, 0.97])
        ]
        prometheus.answer("fairshift_score_bucket", at_end(*samples))

        histogram = collect(prometheus).scores[slice_key(WOMEN)]

        assert histogram.bounds == SCORE_BUCKETS
        assert histogram.counts[-1] == pytest.approx(1.5)
        assert histogram.total == pytest.approx(2.5)

    def test_latency_requests_errors_and_custom(self, healthy: FakePrometheus) -> None:
        counts = collect(healthy, ERROR_GATE)

        assert counts.latency is not None
        assert counts.latency.bounds == (*LATENCY_BUCKETS, math.inf)
        assert counts.latency.counts[LATENCY_BUCKETS.index(0.025)] == 1
        assert counts.latency.counts[LATENCY_BUCKETS.index(0.5)] == 1
        assert counts.latency.counts[LATENCY_BUCKETS.index(5.0)] == 1
        assert counts.requests == 3
        assert counts.errors == 2
        assert counts.custom == {"errors": pytest.approx(0.004)}

    def test_requests_are_predictions_plus_errors_without_latency(
        self, prometheus: FakePrometheus
    ) -> None:
        prometheus.answer(
            "fairshift_predictions_total",
            at_end((labels(WOMEN, decision="1"), "7"), (labels(MEN, decision="0"), "3.5")),
        )
        prometheus.answer("fairshift_errors_total", at_end(({}, "1.5")))

        counts = collect(prometheus)

        assert counts.latency is None
        assert counts.requests == 12.0

    def test_without_attributes_everything_is_one_overall_cell(
        self, prometheus: FakePrometheus
    ) -> None:
        prometheus.answer(
            "fairshift_predictions_total",
            at_end(({"decision": "1"}, "4"), ({"decision": "0"}, "6")),
        )
        prometheus.answer("fairshift_score_bucket", at_end(*score_samples({}, "", [0.3])))
        source = source_for(prometheus)

        pair = source.collect(analysis(prometheus.address, attributes=()), STABLE, CONTEXT)
        counts = pair.candidate

        assert counts.cells == {(): BinaryCounts(predictions=10.0, selected=4.0)}
        assert counts.scores[()].total == 1
        assert prometheus.queries[0] == PREDICTIONS


class TestNoData:
    def test_empty_answers_are_no_data(self, prometheus: FakePrometheus) -> None:
        counts = collect(prometheus, ERROR_GATE)

        assert counts.cells == {}
        assert counts.scores == {}
        assert counts.labelled_scores == {}
        assert counts.latency is None
        assert counts.requests == 0
        assert counts.errors == 0
        assert counts.custom == {"errors": None}

    @pytest.mark.parametrize("bad", ["NaN", "+Inf", "-Inf", "-3", "many", ""])
    def test_an_unusable_count_drops_only_its_cell(
        self, prometheus: FakePrometheus, bad: str
    ) -> None:
        prometheus.answer(
            "fairshift_predictions_total",
            at_end(
                (labels(WOMEN, decision="1"), bad),
                (labels(WOMEN, decision="0"), "10"),
                (labels(MEN, decision="1"), "5"),
            ),
        )

        counts = collect(prometheus)

        assert counts.cells == {slice_key(MEN): BinaryCounts(predictions=5.0, selected=5.0)}

    def test_a_nan_outcome_drops_the_cell(self, prometheus: FakePrometheus) -> None:
        prometheus.answer(
            "fairshift_predictions_total",
            at_end((labels(WOMEN, decision="1"), "10"), (labels(MEN, decision="1"), "5")),
        )
        prometheus.answer(
            "fairshift_outcomes_total", at_end((labels(WOMEN, decision="1", label="0"), "NaN"))
        )

        assert set(collect(prometheus).cells) == {slice_key(MEN)}

    def test_unknown_decision_or_label_drops_the_cell(self, prometheus: FakePrometheus) -> None:
        prometheus.answer(
            "fairshift_predictions_total",
            at_end(
                (labels(WOMEN, decision="yes"), "10"),
                (labels(MEN, decision="1"), "5"),
            ),
        )
        prometheus.answer(
            "fairshift_outcomes_total", at_end((labels(MEN, decision="1", label="2"), "1"))
        )

        assert collect(prometheus).cells == {}

    def test_samples_without_slice_labels_are_left_out(self, prometheus: FakePrometheus) -> None:
        prometheus.answer(
            "fairshift_predictions_total",
            at_end(({"sex": "F", "decision": "1"}, "10"), (labels(MEN, decision="1"), "5")),
        )

        assert set(collect(prometheus).cells) == {slice_key(MEN)}

    @pytest.mark.parametrize(
        "body",
        [b"<html>proxy error</html>", b'{"status": "success"}', b'{"data": {"result": 7}}', b"[]"],
    )
    def test_malformed_answers_are_no_data(self, prometheus: FakePrometheus, body: bytes) -> None:
        prometheus.default = Reply(200, body)

        counts = collect(prometheus, ERROR_GATE)

        assert counts.cells == {}
        assert counts.scores == {}
        assert counts.latency is None
        assert counts.requests == 0
        assert counts.custom == {"errors": None}

    def test_a_sample_without_labels_makes_the_whole_answer_malformed(
        self, prometheus: FakePrometheus
    ) -> None:
        body = b'{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"3"]}]}}'
        prometheus.answer("fairshift_predictions_total", Reply(200, body))

        assert collect(prometheus).cells == {}

    def test_nan_score_bucket_drops_that_histogram(self, prometheus: FakePrometheus) -> None:
        broken = [
            (sample_labels, "NaN" if sample_labels["le"] == "0.5" else count)
            for sample_labels, count in score_samples(WOMEN, "", [0.3])
        ]
        prometheus.answer("fairshift_score_bucket", at_end(*broken, *score_samples(MEN, "", [0.3])))

        counts = collect(prometheus)

        assert set(counts.scores) == {slice_key(MEN)}

    def test_score_buckets_off_the_convention_are_dropped(self, prometheus: FakePrometheus) -> None:
        other = [(labels(WOMEN, label="", le=le), "1") for le in ("0.5", "1.0", "+Inf")]
        prometheus.answer("fairshift_score_bucket", at_end(*other))

        assert collect(prometheus).scores == {}

    def test_nan_latency_bucket_means_no_latency(self, prometheus: FakePrometheus) -> None:
        prometheus.answer(
            "fairshift_request_duration_seconds_bucket",
            at_end(({"le": "0.1"}, "3"), ({"le": "+Inf"}, "NaN")),
        )
        assert collect(prometheus).latency is None

    def test_unusable_error_count_leaves_the_error_rate_undefined(
        self, healthy: FakePrometheus
    ) -> None:
        healthy.rules.insert(0, ("fairshift_errors_total", [at_end(({}, "NaN"))]))

        counts = collect(healthy)

        assert counts.requests == 0
        assert counts.errors == 0
        assert counts.latency is not None  # the rest is still there

    @pytest.mark.parametrize(
        "reply",
        [
            EMPTY,
            vector(({}, "NaN")),
            vector(({}, "+Inf")),
            vector(({"pod": "a"}, "1"), ({"pod": "b"}, "2")),
            vector(({}, "one")),
            scalar("NaN"),
        ],
    )
    def test_custom_gate_without_a_single_finite_value_is_none(
        self, prometheus: FakePrometheus, reply: Reply
    ) -> None:
        prometheus.answer("http_requests_total", reply)
        assert collect(prometheus, ERROR_GATE).custom == {"errors": None}

    @pytest.mark.parametrize(
        ("reply", "expected"), [(scalar("0.25"), 0.25), (vector(({}, "-1.5")), -1.5)]
    )
    def test_custom_gate_single_values(
        self, prometheus: FakePrometheus, reply: Reply, expected: float
    ) -> None:
        prometheus.answer("http_requests_total", reply)
        assert collect(prometheus, ERROR_GATE).custom == {"errors": expected}


class TestFailures:
    def test_http_500_is_a_metrics_error(self, prometheus: FakePrometheus) -> None:
        prometheus.default = failure(500, "internal", "boom")
        source = source_for(prometheus)
        with pytest.raises(MetricsError, match="500") as raised:
            source.collect(analysis(prometheus.address), STABLE, CONTEXT)
        assert not isinstance(raised.value, InvalidQueryError)
        # the five series are asked together; the failure ends the collect there
        assert source.queries_last_collect == 5

    def test_refused_promql_is_an_invalid_query(self, prometheus: FakePrometheus) -> None:
        prometheus.answer("http_requests_total", failure(400, "bad_data", "unexpected }"))
        with pytest.raises(InvalidQueryError, match="unexpected }"):
            collect(prometheus, ERROR_GATE)


class RecordingObserver:
    def __init__(self) -> None:
        self.calls: list[tuple[float, bool]] = []

    def observe_query(self, seconds: float, ok: bool) -> None:
        self.calls.append((seconds, ok))


class TestObservationAndSources:
    def test_every_query_is_observed(self, healthy: FakePrometheus) -> None:
        observer = RecordingObserver()
        collect(healthy, ERROR_GATE, observer=observer)
        assert len(observer.calls) == 7
        assert all(ok and seconds >= 0 for seconds, ok in observer.calls)

    def test_collect_detailed_reports_problems(self, prometheus: FakePrometheus) -> None:
        prometheus.answer(
            "fairshift_predictions_total", at_end((labels(WOMEN, decision="1"), "NaN"))
        )
        collection = source_for(prometheus).collect_detailed(
            analysis(prometheus.address), STABLE, CONTEXT
        )
        assert collection.queries == 5
        assert any("NaN" in problem for problem in collection.problems)

    def test_sources_follow_the_analysis_address_and_are_reused(
        self, prometheus: FakePrometheus
    ) -> None:
        made: list[tuple[str, float]] = []

        def make(address: str, timeout: float) -> PrometheusSource:
            made.append((address, timeout))
            return PrometheusSource(address, timeout, retries=0)

        sources = PrometheusSources(make)
        spec = analysis(prometheus.address)
        sources.collect(spec, STABLE, CONTEXT)
        sources.collect(spec, STABLE, CONTEXT)

        assert made == [(prometheus.address, 2.0)]
        assert len(prometheus.queries) == 10  # two analyses of five queries
        assert sources.source_for(spec.prometheus).queries_last_collect == 5

    def test_histograms_are_engine_histograms(self, healthy: FakePrometheus) -> None:
        counts = collect(healthy)
        assert all(isinstance(h, Histogram) for h in counts.scores.values())


class TestCounted:
    """``counted=True``: Prometheus sums the counts, one element per cell and version."""

    def test_the_counts_come_as_prometheus_summed_them_for_each_version(
        self, prometheus: FakePrometheus
    ) -> None:
        prometheus.answer(
            "fairshift_predictions_total",
            vector(
                (labels(MEN, decision="1", fairshift_version="candidate"), "60"),
                (labels(MEN, decision="0", fairshift_version="candidate"), "40"),
                (labels(MEN, decision="1", fairshift_version="stable"), "30"),
            ),
        )
        prometheus.answer(
            "fairshift_outcomes_total",
            vector((labels(MEN, decision="1", label="1", fairshift_version="candidate"), "7")),
        )
        source = source_for(prometheus, counted=True)

        pair = source.collect(analysis(prometheus.address), STABLE, CONTEXT)

        assert pair.candidate.cells == {
            slice_key(MEN): BinaryCounts(predictions=100.0, selected=60.0, tp=7.0)
        }
        assert pair.stable.cells == {slice_key(MEN): BinaryCounts(predictions=30.0, selected=30.0)}
        assert source.queries_last_collect == 5
        assert all("sum by (sex, age_band, decision" in q for q in prometheus.queries[:2])

    def test_an_element_without_its_version_is_no_data_not_a_guess(
        self, prometheus: FakePrometheus
    ) -> None:
        prometheus.answer(
            "fairshift_predictions_total",
            vector(
                (labels(MEN, decision="1", fairshift_version="candidate"), "60"),
                (labels(MEN, decision="1"), "40"),
            ),
        )
        pair = source_for(prometheus, counted=True).collect(
            analysis(prometheus.address), STABLE, CONTEXT
        )
        assert pair.candidate.cells == {} and pair.stable.cells == {}
