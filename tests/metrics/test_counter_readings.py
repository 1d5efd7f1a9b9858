"""Counts from counter readings pinned at the analysis start and end, against stored series.

The fake Prometheus here stores samples and answers both fairshift's pinned readings and the
``increase(...[w])`` queries they replaced, evaluated as Prometheus does (extrapolated, reset
corrected); each test pins the exact count that only the readings give.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pytest
from prometheus_fake import Series, SeriesPrometheus, counter

from fairshift.api.analysis import Analysis
from fairshift.engine.counts import BinaryCounts, VersionCounts, slice_key
from fairshift.metrics.prometheus import PrometheusSource
from fairshift.metrics.source import QueryContext, Version, VersionPair

START = 1_700_000_000.0
END = START + 600.0
FIRST_SCRAPE = START - 23.0  # scrapes every 30 s, not aligned with the analysis
PREDICTIONS = "fairshift_predictions_total"
LATENCY = "fairshift_request_duration_seconds_bucket"
WOMEN = {"sex": "F"}
POD_A = {"namespace": "lending", "pod": "credit-scorer-6d4f-aaaaa"}
POD_B = {"namespace": "lending", "pod": "credit-scorer-6d4f-bbbbb"}


def context(start: float = START, end: float = END, version: Version = "candidate") -> QueryContext:
    stable = version == "stable"
    return QueryContext(
        namespace="lending",
        rollout="credit-scorer",
        deployment="credit-scorer-primary" if stable else "credit-scorer",
        version=version,
        service="credit-scorer-primary" if stable else "credit-scorer-canary",
        start=datetime.fromtimestamp(start, UTC),
        end=datetime.fromtimestamp(end, UTC),
    )


def analysis(*attributes: str) -> Analysis:
    return Analysis.model_validate(
        {
            "prometheus": {"address": "http://prometheus:9090"},
            "slices": {"attributes": list(attributes)},
            "gates": [{"name": "accuracy", "metric": "accuracy", "maxDecrease": 0.02}],
        }
    )


ANALYSIS = analysis("sex")


@pytest.fixture
def stored() -> Iterator[SeriesPrometheus]:
    fake = SeriesPrometheus(now=END)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def collect_both(
    fake: SeriesPrometheus, start: float = START, end: float = END, spec: Analysis = ANALYSIS
) -> VersionPair:
    source = PrometheusSource(fake.address, 2.0, retries=0)
    return source.collect(spec, context(start, end, "stable"), context(start, end))


def collect(fake: SeriesPrometheus) -> VersionCounts:
    return collect_both(fake).candidate


def running(values: Sequence[float]) -> list[float]:
    """Cumulative sums: a counter's readings from its increments."""
    total, readings = 0.0, []
    for value in values:
        total += value
        readings.append(total)
    return readings


def predictions(
    pod: dict[str, str], decision: str, readings: Sequence[float], first: float = FIRST_SCRAPE
) -> Series:
    return counter(PREDICTIONS, {**pod, **WOMEN, "decision": decision}, first, readings)


def reading_at(series: Series, at: float) -> float:
    value = series.value_at(at)
    assert value is not None
    return value


def test_counts_are_differences_of_readings_never_extrapolated(stored: SeriesPrometheus) -> None:
    bursty = [5, 0, 0, 9, 1, 0, 0, 0, 4, 0, 2, 0, 0, 0, 7, 0, 0, 1, 0, 3, 0, 0]
    selected = predictions(POD_A, "1", running([100, *bursty]))
    rejected = predictions(POD_A, "0", running([400, *(2 * v for v in bursty)]))
    stored.series += [selected, rejected]

    cell = collect(stored).cells[slice_key(WOMEN)]

    expected = reading_at(selected, END) - reading_at(selected, START)
    assert expected == sum(bursty[:20])  # the scrapes 23 s before START and before END
    assert cell.selected == expected
    assert cell.predictions == 3 * expected  # exact integers, no extrapolation factor


def test_a_restarted_pod_counts_only_since_its_restart(stored: SeriesPrometheus) -> None:
    # Pod A restarts in mid-window: decision 1 ends below its start reading (a visible reset),
    # decision 0 has regrown past its start reading; both count only what came after the
    # restart. Pod B did not restart and counts its difference.
    restart = [0.0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33]
    stored.series += [
        predictions(POD_A, "1", [100, *[100 + 5 * i for i in range(1, 10)], *restart[:11]]),
        predictions(
            POD_A, "0", [10, *[10 + 1 * i for i in range(1, 10)], *[r * 2 for r in restart[:11]]]
        ),
        predictions(POD_B, "1", running([50, *[2] * 21])),
        predictions(POD_B, "0", running([50, *[3] * 21])),
    ]

    cell = collect(stored).cells[slice_key(WOMEN)]

    since_restart_a = 30 + 60  # pod A's end readings, both after its restart
    pod_b = 20 * 2 + 20 * 3
    assert cell.predictions == since_restart_a + pod_b
    assert cell.selected == 30 + 20 * 2


def test_a_reset_seen_in_one_series_applies_to_every_series_of_its_pod(
    stored: SeriesPrometheus,
) -> None:
    before = [100 + 10 * i for i in range(10)]
    after = [0.0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    latency = [
        counter(
            LATENCY,
            {**POD_A, "le": le},
            FIRST_SCRAPE,
            [*[0.5 * b for b in before], *[200 + a for a in after]],
        )
        for le in ("0.1", "+Inf")
    ]
    stored.series += [predictions(POD_A, "1", [*before, *after]), *latency]

    counts = collect(stored)

    assert counts.cells[slice_key(WOMEN)].predictions == 10  # the end reading after the reset
    assert counts.latency is not None
    assert counts.latency.total == 210  # regrew past its start reading, yet counted since restart


def test_a_pod_that_appears_mid_window_counts_its_whole_reading(stored: SeriesPrometheus) -> None:
    # Started 5 minutes into the analysis, it had served 12 requests before its first scrape.
    late = START + 307.0
    stored.series += [
        predictions(POD_A, "1", running([30, *[1] * 21])),
        predictions(POD_B, "1", running([12, *[4] * 9]), first=late),
    ]

    cell = collect(stored).cells[slice_key(WOMEN)]

    assert cell.predictions == 20 + (12 + 4 * 9)


def test_a_pod_that_went_away_counts_nothing(stored: SeriesPrometheus) -> None:
    gone = predictions(POD_B, "1", running([70, *[5] * 9]))
    gone.ends_at = START + 280.0
    stored.series += [predictions(POD_A, "1", running([30, *[1] * 21])), gone]

    assert collect(stored).cells[slice_key(WOMEN)].predictions == 20


def test_the_queries_read_two_instants_whatever_the_window(stored: SeriesPrometheus) -> None:
    collect_both(stored, START, START + 60)
    collect_both(stored, START - 6 * 3600, START + 60)

    short, long = stored.queries[:5], stored.queries[5:]
    for query in stored.queries:
        assert "}[" not in query  # no range selector: nothing is read between the two instants
        assert query.count(" @ ") == 4  # start and end, of stable and of the candidate
    assert [len(q) for q in short] == [len(q) for q in long]
    assert f"@ {START + 60:.3f}" in short[0]
    assert f"@ {START - 6 * 3600:.3f}" in long[0]


@pytest.mark.parametrize("attributes", [(), ("sex",), ("sex", "age_band", "region", "income")])
def test_an_analysis_is_five_queries_for_both_versions_whatever_the_slices(
    stored: SeriesPrometheus, attributes: tuple[str, ...]
) -> None:
    collect_both(stored, spec=analysis(*attributes))
    assert len(stored.queries) == 5


def test_one_query_per_series_reads_both_versions_apart(stored: SeriesPrometheus) -> None:
    stable_pod = {"namespace": "lending", "pod": "credit-scorer-primary-5c9b-ccccc"}
    stored.series += [
        predictions(stable_pod, "1", running([500, *[6] * 21])),
        predictions(stable_pod, "0", running([500, *[4] * 21])),
        predictions(POD_A, "1", running([10, *[1] * 21])),
        predictions(POD_A, "0", running([10, *[9] * 21])),
    ]

    pair = collect_both(stored)

    assert len(stored.queries_containing(PREDICTIONS)) == 1
    assert pair.stable.cells[slice_key(WOMEN)] == BinaryCounts(predictions=200, selected=120)
    assert pair.candidate.cells[slice_key(WOMEN)] == BinaryCounts(predictions=200, selected=20)
