"""Reading decision CSV files into counts, and the one-line errors for bad files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fairshift.engine.counts import BinaryCounts, slice_key
from fairshift.metrics.csvfile import (
    LATENCY_BOUNDS,
    SCORE_BOUNDS,
    DataFileError,
    read_counts,
)

HEADER = "sex,age_band,prediction,label,score,latency_seconds\n"


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


class TestCounts:
    def test_cells_are_keyed_by_every_attribute(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            HEADER
            + "F,60+,1,1,0.9,0.02\n"
            + "F,60+,0,1,0.3,0.2\n"
            + "F,60+,1,,0.7,\n"
            + "M,18-29,1,0,0.6,0.004\n"
            + "M,18-29,0,0,0.1,12\n",
        )
        result = read_counts(path, ["sex", "age_band"])
        assert result.rows == 5
        cells = result.counts.cells
        assert cells[slice_key({"sex": "F", "age_band": "60+"})] == BinaryCounts(
            predictions=3, selected=2, tp=1, fp=0, fn=1, tn=0
        )
        assert cells[slice_key({"sex": "M", "age_band": "18-29"})] == BinaryCounts(
            predictions=2, selected=1, tp=0, fp=1, fn=0, tn=1
        )
        assert result.counts.requests == 5

    def test_score_histograms_use_twenty_buckets_closed_on_the_right(self, tmp_path: Path) -> None:
        path = write(tmp_path, "g,prediction,score\na,0,0\na,0,0.05\na,0,0.0501\na,1,1\n")
        scores = read_counts(path, ["g"]).counts.scores[slice_key({"g": "a"})]
        assert scores.bounds == SCORE_BOUNDS
        assert len(SCORE_BOUNDS) == 20
        assert scores.counts[0] == 2  # 0 and 0.05 are both in (.., 0.05]
        assert scores.counts[1] == 1
        assert scores.counts[19] == 1
        assert scores.total == 4

    def test_labelled_scores_split_by_label(self, tmp_path: Path) -> None:
        path = write(tmp_path, "g,prediction,label,score\na,1,1,0.92\na,1,0,0.61\na,0,,0.2\n")
        counts = read_counts(path, ["g"]).counts
        by_label = counts.labelled_scores[slice_key({"g": "a"})]
        assert by_label[1].total == 1 and by_label[1].counts[18] == 1
        assert by_label[0].total == 1 and by_label[0].counts[12] == 1
        assert counts.scores[slice_key({"g": "a"})].total == 3

    def test_latency_uses_prometheus_default_buckets(self, tmp_path: Path) -> None:
        path = write(tmp_path, "g,prediction,latency_seconds\na,0,0.005\na,0,0.3\na,1,11\na,1,\n")
        latency = read_counts(path, ["g"]).counts.latency
        assert latency is not None
        assert latency.bounds == LATENCY_BOUNDS and math.isinf(LATENCY_BOUNDS[-1])
        assert latency.counts[0] == 1  # 0.005 is in (.., 0.005]
        assert latency.counts[LATENCY_BOUNDS.index(0.5)] == 1
        assert latency.counts[-1] == 1
        assert latency.total == 3

    def test_optional_columns_may_be_absent(self, tmp_path: Path) -> None:
        counts = read_counts(write(tmp_path, "g,prediction\na,1\nb,0\n"), ["g"]).counts
        assert counts.latency is None
        assert not counts.scores and not counts.labelled_scores
        assert counts.cells[slice_key({"g": "a"})].labelled == 0

    def test_byte_order_mark_blank_lines_and_spaces_are_tolerated(self, tmp_path: Path) -> None:
        path = tmp_path / "bom.csv"
        path.write_text("\ufeffg , prediction\n\n a , 1 \n\n", encoding="utf-8")
        result = read_counts(path, ["g"])
        assert result.rows == 1
        assert slice_key({"g": "a"}) in result.counts.cells

    def test_no_attributes_gives_one_overall_cell(self, tmp_path: Path) -> None:
        result = read_counts(write(tmp_path, "prediction\n1\n0\n1\n"), [])
        assert result.counts.cells == {(): BinaryCounts(predictions=3, selected=2)}


def error_of(tmp_path: Path, text: str, attributes: list[str] | None = None) -> str:
    path = write(tmp_path, text)
    with pytest.raises(DataFileError) as caught:
        read_counts(path, attributes if attributes is not None else ["g"])
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message


class TestDecisions:
    def test_rows_are_kept_in_file_order_for_paired_comparisons(self, tmp_path: Path) -> None:
        path = write(tmp_path, "id,g,prediction,label\nr1,b,1,\nr2,a,0,1\nr3,b,0,0\n")
        decisions = read_counts(path, ["g"]).decisions
        assert len(decisions) == 3
        assert [decisions.cells[c] for c in decisions.codes] == [
            slice_key({"g": "b"}),
            slice_key({"g": "a"}),
            slice_key({"g": "b"}),
        ]
        assert decisions.prediction.tolist() == [1, 0, 0]
        assert math.isnan(decisions.label[0]) and decisions.label[1:].tolist() == [1, 0]
        assert decisions.ids is not None and decisions.ids.tolist() == ["r1", "r2", "r3"]

    def test_no_id_column(self, tmp_path: Path) -> None:
        assert read_counts(write(tmp_path, "g,prediction\na,1\n"), ["g"]).decisions.ids is None


class TestErrors:
    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(DataFileError, match="no such file"):
            read_counts(tmp_path / "absent.csv", ["g"])

    def test_directory(self, tmp_path: Path) -> None:
        with pytest.raises(DataFileError, match="directory"):
            read_counts(tmp_path, ["g"])

    def test_empty_file(self, tmp_path: Path) -> None:
        assert "empty" in error_of(tmp_path, "")

    def test_header_only(self, tmp_path: Path) -> None:
        assert "no data rows" in error_of(tmp_path, "g,prediction\n")

    def test_missing_prediction_column(self, tmp_path: Path) -> None:
        assert "'prediction'" in error_of(tmp_path, "g,label\na,1\n")

    def test_unknown_attribute(self, tmp_path: Path) -> None:
        message = error_of(tmp_path, "g,prediction\na,1\n", ["race"])
        assert "'race'" in message and "line 1" in message

    def test_duplicate_column_names_are_named(self, tmp_path: Path) -> None:
        text = "g,decile_score,prediction,decile_score,label,g\na,3,1,4,1,b\n"
        message = error_of(tmp_path, text)
        assert "duplicate column names" in message
        assert "'decile_score' (columns 2, 4)" in message and "'g' (columns 1, 6)" in message

    def test_a_repeated_id_is_refused_with_its_lines(self, tmp_path: Path) -> None:
        message = error_of(tmp_path, "id,g,prediction\n7,a,1\n8,a,0\n\n7,b,1\n")
        assert "line 5" in message and "id '7' repeated on lines 2, 5" in message

    def test_an_empty_id_is_refused(self, tmp_path: Path) -> None:
        message = error_of(tmp_path, "id,g,prediction\n7,a,1\n,a,0\n")
        assert "line 3" in message and "column 'id'" in message

    def test_attribute_named_like_a_data_column(self, tmp_path: Path) -> None:
        assert "not a slice attribute" in error_of(tmp_path, "g,prediction\na,1\n", ["label"])

    @pytest.mark.parametrize(
        ("row", "column"),
        [
            ("a,2,1,0.5,0.1", "prediction"),
            ("a,,1,0.5,0.1", "prediction"),
            ("a,yes,1,0.5,0.1", "prediction"),
            ("a,1,-1,0.5,0.1", "label"),
            ("a,1,0.5,0.5,0.1", "label"),
            ("a,1,1,1.01,0.1", "score"),
            ("a,1,1,-0.1,0.1", "score"),
            ("a,1,1,high,0.1", "score"),
            ("a,1,1,nan,0.1", "score"),
            ("a,1,1,0.5,-0.001", "latency_seconds"),
            ("a,1,1,0.5,fast", "latency_seconds"),
            ("a,1,1,0.5,inf", "latency_seconds"),
            (",1,1,0.5,0.1", "g"),
        ],
    )
    def test_bad_value_names_line_and_column(self, tmp_path: Path, row: str, column: str) -> None:
        text = "g,prediction,label,score,latency_seconds\na,1,1,0.5,0.1\n" + row + "\n"
        message = error_of(tmp_path, text)
        assert "line 3" in message
        assert f"column {column!r}" in message

    def test_short_row(self, tmp_path: Path) -> None:
        message = error_of(tmp_path, "g,prediction,label\na,1\n")
        assert "line 2" in message and "'label'" in message

    def test_not_utf8(self, tmp_path: Path) -> None:
        path = tmp_path / "latin.csv"
        path.write_bytes(b"g,prediction\n\xe9,1\n")
        with pytest.raises(DataFileError, match="UTF-8"):
            read_counts(path, ["g"])

    def test_data_file_error_is_a_value_error(self) -> None:
        assert issubclass(DataFileError, ValueError)
