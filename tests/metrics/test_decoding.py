"""The convention decoded from typed samples: cells, score and latency histograms, errors."""

from __future__ import annotations

import math

import pytest
from fairshift_instrument.convention import SCORE_BUCKETS

from fairshift.engine.counts import BinaryCounts, slice_key
from fairshift.metrics.answers import Answer, Sample
from fairshift.metrics.decoding import (
    CellTally,
    error_count,
    histogram_from_buckets,
    latency_histogram,
    score_histograms,
)

ATTRIBUTES = ("sex",)
WOMEN = slice_key({"sex": "F"})


def score_buckets(sex: str, label: str, counts: list[float]) -> list[Sample]:
    bounds = [*(repr(b) for b in SCORE_BUCKETS), "+Inf"]
    return [
        Sample({"sex": sex, "label": label, "le": le}, c)
        for le, c in zip(bounds, counts, strict=True)
    ]


def cumulative_to(total: float) -> list[float]:
    """Cumulative counts with everything in the first bucket."""
    return [total] * (len(SCORE_BUCKETS) + 1)


class TestCells:
    def test_predictions_and_outcomes_fill_the_confusion_cells(self) -> None:
        tally = CellTally(ATTRIBUTES)
        tally.add_predictions(
            [
                Sample({"sex": "F", "decision": "1"}, 3.0),
                Sample({"sex": "F", "decision": "0"}, 7.0),
            ]
        )
        tally.add_outcomes(
            [
                Sample({"sex": "F", "decision": "1", "label": "1"}, 2.0),
                Sample({"sex": "F", "decision": "1", "label": "0"}, 1.0),
                Sample({"sex": "F", "decision": "0", "label": "1"}, 4.0),
                Sample({"sex": "F", "decision": "0", "label": "0"}, 0.5),
            ]
        )
        assert tally.result() == {
            WOMEN: BinaryCounts(predictions=10.0, selected=3.0, tp=2.0, fp=1.0, fn=4.0, tn=0.5)
        }

    @pytest.mark.parametrize(
        "sample",
        [
            Sample({"sex": "F", "decision": "yes"}, 1.0),
            Sample({"sex": "F", "decision": "1"}, None),
        ],
    )
    def test_an_unusable_sample_drops_its_cell(self, sample: Sample) -> None:
        tally = CellTally(ATTRIBUTES)
        tally.add_predictions([Sample({"sex": "F", "decision": "0"}, 5.0), sample])
        assert tally.result() == {}

    def test_a_sample_without_the_slice_label_is_unplaced(self) -> None:
        tally = CellTally(ATTRIBUTES)
        tally.add_outcomes([Sample({"decision": "1", "label": "1"}, 1.0)])
        assert tally.unplaced == 1
        assert tally.result() == {}


class TestHistograms:
    def test_cumulative_buckets_become_counts(self) -> None:
        histogram = histogram_from_buckets([(1.0, 3.0), (0.5, 1.0), (math.inf, 4.0)])
        assert histogram is not None
        assert histogram.bounds == (0.5, 1.0, math.inf)
        assert histogram.counts == (1.0, 2.0, 1.0)

    @pytest.mark.parametrize(
        "buckets", [[], [(0.5, 1.0), (None, 2.0)], [(0.5, None)], [(0.5, 1.0), (0.5, 1.0)]]
    )
    def test_unreadable_or_repeated_buckets_are_no_histogram(
        self, buckets: list[tuple[float | None, float | None]]
    ) -> None:
        assert histogram_from_buckets(buckets) is None

    def test_scores_per_cell_and_label(self) -> None:
        samples = [
            *score_buckets("F", "", cumulative_to(3.0)),
            *score_buckets("F", "1", [1.0] * 21),
        ]
        scores, labelled, dropped = score_histograms(samples, ATTRIBUTES)
        assert scores[WOMEN].bounds == SCORE_BUCKETS
        assert scores[WOMEN].total == 3.0
        assert labelled[WOMEN][1].total == 1.0
        assert dropped == 0

    def test_score_groups_off_the_convention_are_dropped(self) -> None:
        other = [Sample({"sex": "F", "label": "", "le": le}, 1.0) for le in ("0.5", "+Inf")]
        unknown_label = score_buckets("F", "2", cumulative_to(1.0))
        scores, labelled, dropped = score_histograms([*other, *unknown_label], ATTRIBUTES)
        assert scores == {}
        assert labelled == {}
        assert dropped == 1 + len(unknown_label)

    def test_latency_needs_an_inf_bucket_and_usable_values(self) -> None:
        good = Answer((Sample({"le": "0.1"}, 1.0), Sample({"le": "+Inf"}, 2.0)))
        no_inf = Answer((Sample({"le": "0.1"}, 1.0),))
        nan = Answer((Sample({"le": "0.1"}, 1.0), Sample({"le": "+Inf"}, None)))
        histogram = latency_histogram(good)
        assert histogram is not None and histogram.total == 2.0
        assert latency_histogram(no_inf) is None
        assert latency_histogram(nan) is None
        assert latency_histogram(Answer()) is None


class TestErrors:
    def test_no_error_series_is_zero_errors(self) -> None:
        assert error_count(Answer()) == 0.0

    def test_one_value_is_the_count(self) -> None:
        assert error_count(Answer((Sample({}, 2.0),))) == 2.0

    @pytest.mark.parametrize(
        "answer",
        [
            Answer(malformed=True),
            Answer((Sample({}, None),)),
            Answer((Sample({"a": "1"}, 1.0), Sample({"a": "2"}, 1.0))),
        ],
    )
    def test_unusable_answers_are_none(self, answer: Answer) -> None:
        assert error_count(answer) is None
