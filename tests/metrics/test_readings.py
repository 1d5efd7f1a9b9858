"""Counts from start and end readings: differences, resets per process, new and gone series."""

from __future__ import annotations

import pytest

from fairshift.metrics.answers import Answer, Sample
from fairshift.metrics.readings import (
    SeriesReadings,
    counts_answer,
    process_of,
    restarted_processes,
    series_count,
    split_by_version,
    summed_by,
)

SLICES = ("sex",)
POD_A = {"pod": "a", "namespace": "lending"}
POD_B = {"pod": "b", "namespace": "lending"}


def reading(
    labels: dict[str, str], instant: str, value: float | None, version: str = "candidate"
) -> Sample:
    return Sample({**labels, "fairshift_reading": instant, "fairshift_version": version}, value)


class TestSeriesCount:
    @pytest.mark.parametrize(
        ("start", "end", "restarted", "count"),
        [
            (10.0, 25.0, False, 15.0),  # the difference
            (10.0, 4.0, False, 4.0),  # went down: a reset, only the end reading is new
            (10.0, 25.0, True, 25.0),  # its process restarted: only the end reading
            (None, 7.0, False, 7.0),  # appeared after the start
            (10.0, None, False, 0.0),  # gone: nothing
        ],
    )
    def test_counts(
        self, start: float | None, end: float | None, restarted: bool, count: float
    ) -> None:
        assert series_count(SeriesReadings({}, start, end), restarted) == count

    def test_an_unusable_reading_is_an_unusable_count(self) -> None:
        assert series_count(SeriesReadings({}, 1.0, 2.0, unusable=True), False) is None


class TestProcesses:
    def test_a_process_is_its_labels_besides_the_conventions_and_the_slices(self) -> None:
        labels = {**POD_A, "sex": "F", "decision": "1", "le": "0.5", "__name__": "x"}
        assert process_of(labels, SLICES) == {("namespace", "lending"), ("pod", "a")}

    def test_a_series_that_went_down_restarts_its_process_only(self) -> None:
        readings = [
            SeriesReadings({**POD_A, "sex": "F", "decision": "1"}, 10.0, 3.0),
            SeriesReadings({**POD_A, "sex": "M", "decision": "0"}, 10.0, 30.0),
            SeriesReadings({**POD_B, "sex": "F", "decision": "1"}, 10.0, 30.0),
            SeriesReadings({**POD_B, "sex": "F", "decision": "0"}, None, 1.0),
        ]
        assert restarted_processes(readings, SLICES) == {process_of(POD_A, SLICES)}


class TestAnswers:
    def test_split_by_version_and_instant(self) -> None:
        answer = Answer(
            (
                reading(POD_A, "start", 1.0),
                reading(POD_A, "end", 4.0),
                reading(POD_A, "end", 9.0, version="stable"),
            )
        )
        split = split_by_version(answer)
        candidate = list(split.versions["candidate"].series.values())
        assert [(r.labels, r.start, r.end) for r in candidate] == [(POD_A, 1.0, 4.0)]
        assert [r.end for r in split.versions["stable"].series.values()] == [9.0]

    @pytest.mark.parametrize(
        "sample",
        [Sample(POD_A, 1.0), reading(POD_A, "middle", 1.0), reading(POD_A, "end", 1.0, "canary")],
    )
    def test_an_element_without_known_markers_makes_the_answer_malformed(
        self, sample: Sample
    ) -> None:
        assert split_by_version(Answer((sample,))).malformed
        assert counts_answer(
            split_by_version(Answer((sample,))), "candidate", (), set(), SLICES
        ).malformed

    def test_sums_like_sum_by_and_an_unusable_count_poisons_its_group(self) -> None:
        summed = summed_by(
            [
                Sample({**POD_A, "sex": "F"}, 2.0),
                Sample({**POD_B, "sex": "F"}, 3.0),
                Sample({**POD_A, "sex": "M"}, 1.0),
                Sample({**POD_B, "sex": "M"}, None),
                Sample(POD_A, 4.0),
            ],
            ["sex"],
        )
        assert summed.samples == (
            Sample({"sex": "F"}, 5.0),
            Sample({"sex": "M"}, None),
            Sample({}, 4.0),
        )

    def test_counts_of_one_version(self) -> None:
        answer = Answer(
            (
                reading({**POD_A, "sex": "F"}, "start", 10.0),
                reading({**POD_A, "sex": "F"}, "end", 16.0),
                reading({**POD_B, "sex": "F"}, "end", 5.0),
                reading({**POD_B, "sex": "F"}, "end", 50.0, version="stable"),
            )
        )
        counted = counts_answer(split_by_version(answer), "candidate", ("sex",), set(), SLICES)
        assert counted.samples == (Sample({"sex": "F"}, 11.0),)
