"""Prometheus answers as typed samples: vectors, scalars, and what counts as no data."""

from __future__ import annotations

from typing import Any

import pytest

from fairshift.metrics.answers import (
    MALFORMED,
    Sample,
    parse_answer,
    parse_number,
    result_of,
    single_value,
)


def document(result: Any, result_type: str = "vector") -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": result_type, "result": result}}


def element(labels: Any, value: Any) -> dict[str, Any]:
    return {"metric": labels, "value": [1_700_000_000.0, value]}


class TestNumbers:
    @pytest.mark.parametrize(("raw", "number"), [("3", 3.0), ("0.25", 0.25), (2, 2.0), ("0", 0.0)])
    def test_finite_non_negative_values(self, raw: Any, number: float) -> None:
        assert parse_number(raw) == number

    @pytest.mark.parametrize("raw", ["NaN", "+Inf", "-Inf", "-1", "many", "", None, True, [1]])
    def test_anything_else_is_no_data(self, raw: Any) -> None:
        assert parse_number(raw) is None


class TestVectors:
    def test_elements_become_samples(self) -> None:
        answer = parse_answer(document([element({"sex": "F"}, "4"), element({}, "NaN")]))
        assert answer.samples == (Sample({"sex": "F"}, 4.0), Sample({}, None))
        assert not answer.malformed
        assert answer.unusable_values == 1

    def test_an_empty_vector_is_no_samples_not_malformed(self) -> None:
        answer = parse_answer(document([]))
        assert answer.samples == ()
        assert not answer.malformed

    def test_an_element_without_a_value_pair_has_no_value(self) -> None:
        answer = parse_answer(document([{"metric": {"a": "b"}, "value": ["3"]}]))
        assert answer.samples == (Sample({"a": "b"}, None),)

    @pytest.mark.parametrize(
        "doc",
        [
            MALFORMED,
            None,
            [],
            {"status": "success"},
            {"data": {"result": 7}},
            document([{"value": [1, "3"]}]),
            document([element({"a": 1}, "3")]),
            document(["not an element"]),
        ],
    )
    def test_documents_of_another_shape_are_malformed(self, doc: Any) -> None:
        assert parse_answer(doc).malformed

    def test_result_of_a_document_without_data_is_malformed(self) -> None:
        assert result_of({"status": "error"}) is MALFORMED


class TestSingleValues:
    @pytest.mark.parametrize(
        ("doc", "value"),
        [
            (document([1_700_000_000.0, "0.25"], "scalar"), 0.25),
            (document([element({}, "-1.5")]), -1.5),
            (document([element({"pod": "a"}, "2")]), 2.0),
        ],
    )
    def test_one_finite_value_negative_allowed(self, doc: Any, value: float) -> None:
        assert single_value(doc) == value

    @pytest.mark.parametrize(
        "doc",
        [
            document([]),
            document([element({}, "NaN")]),
            document([element({}, "+Inf")]),
            document([element({"pod": "a"}, "1"), element({"pod": "b"}, "2")]),
            document([1_700_000_000.0, "NaN"], "scalar"),
            document([{"metric": {}}]),
            MALFORMED,
        ],
    )
    def test_no_single_finite_value_is_none(self, doc: Any) -> None:
        assert single_value(doc) is None
