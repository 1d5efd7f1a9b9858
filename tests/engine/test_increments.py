"""Reset-aware increments of counter readings: never negative, a reset counts its new reading."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fairshift.engine.counts import BinaryCounts, Histogram, VersionCounts, slice_key
from fairshift.engine.increments import (
    cell_increment,
    counter_increment,
    histogram_increment,
    series_increment,
)

F = slice_key({"sex": "F"})
M = slice_key({"sex": "M"})
BOUNDS = (0.1, 0.5, float("inf"))


def counts(n: float, tp: float = 0.0) -> BinaryCounts:
    return BinaryCounts(predictions=n, selected=n / 2, tp=tp, fn=tp, fp=0.0, tn=0.0)


def test_growing_counters_give_their_difference() -> None:
    assert cell_increment(counts(100, 10), counts(150, 14)) == BinaryCounts(50, 25, 4, 0, 4, 0)


def test_a_counter_that_went_down_was_reset_and_counts_its_new_reading() -> None:
    assert cell_increment(counts(1000, 100), counts(30, 200)) == counts(30, 200)
    # one field down is enough: a restarted process resets all its counters at once
    assert cell_increment(counts(100, 10), counts(150, 9)) == counts(150, 9)


def test_histograms_reset_as_a_whole_and_new_buckets_start_afresh() -> None:
    before = Histogram(BOUNDS, (5.0, 5.0, 1.0))
    assert histogram_increment(before, Histogram(BOUNDS, (7.0, 6.0, 1.0))).counts == (2, 1, 0)
    assert histogram_increment(before, Histogram(BOUNDS, (1.0, 9.0, 1.0))).counts == (1, 9, 1)
    other = Histogram((0.2, float("inf")), (3.0, 1.0))
    assert histogram_increment(before, other) == other


def test_a_version_increment_covers_cells_histograms_and_totals() -> None:
    before = VersionCounts(
        cells={F: counts(100), M: counts(200)},
        latency=Histogram(BOUNDS, (10.0, 2.0, 0.0)),
        requests=300.0,
        errors=4.0,
        custom={"q": 0.5},
    )
    after = VersionCounts(
        cells={F: counts(160), M: counts(50)},
        latency=Histogram(BOUNDS, (15.0, 2.0, 1.0)),
        requests=20.0,
        errors=6.0,
        custom={"q": 0.7},
    )
    step = counter_increment(before, after)
    assert step.cells == {F: counts(60), M: counts(50)}
    assert step.latency == Histogram(BOUNDS, (5.0, 0.0, 1.0))
    assert (step.requests, step.errors) == (20.0, 2.0)
    assert step.custom == {"q": 0.7}


def test_series_sum_only_what_each_series_counted() -> None:
    """Pod b restarted: 50 from a, 20 from b. Differencing the sum (1000, then 170) would
    count pod a's earlier 100 decisions again."""
    before = {
        "a": VersionCounts(cells={F: counts(100)}),
        "b": VersionCounts(cells={F: counts(900)}),
    }
    after = {
        "a": VersionCounts(cells={F: counts(150)}),
        "b": VersionCounts(cells={F: counts(20)}),
        "c": VersionCounts(cells={M: counts(7)}),
    }
    step = series_increment(before, after)
    assert step.cells == {F: counts(70), M: counts(7)}


@given(
    st.lists(st.floats(min_value=0, max_value=1e9), min_size=6, max_size=6),
    st.lists(st.floats(min_value=0, max_value=1e9), min_size=6, max_size=6),
)
def test_an_increment_is_never_negative(before: list[float], after: list[float]) -> None:
    step = cell_increment(BinaryCounts(*before), BinaryCounts(*after))
    assert min(step.predictions, step.selected, step.tp, step.fp, step.fn, step.tn) >= 0
