"""The helpers routers share: recorded weights, amounts to percents, drift comparison."""

from __future__ import annotations

from typing import Any

import pytest

from fairshift.routing.base import (
    WEIGHTS_ANNOTATION,
    RoutingError,
    Weights,
    contains,
    decode_weights,
    encode_weights,
    require_owned,
    route_metadata,
    weights_from_amounts,
)
from tests.fakes import OWNER, route_target


@pytest.mark.parametrize("weights", [Weights(100, 0), Weights(73, 27, 5), Weights(0, 100, 100)])
def test_recorded_weights_round_trip(weights: Weights) -> None:
    recorded = {"metadata": {"annotations": {WEIGHTS_ANNOTATION: encode_weights(weights)}}}

    assert decode_weights(recorded) == weights


@pytest.mark.parametrize(
    "annotations",
    [None, {}, {WEIGHTS_ANNOTATION: "not json"}, {WEIGHTS_ANNOTATION: '{"primary": 1}'}],
)
def test_missing_or_unreadable_records_are_none(annotations: dict[str, str] | None) -> None:
    assert decode_weights({"metadata": {"annotations": annotations}}) is None


def test_weights_that_do_not_sum_to_100_are_not_a_record() -> None:
    recorded = {"primary": 90, "canary": 20, "mirrorPercent": 0}
    obj = {"metadata": {"annotations": {WEIGHTS_ANNOTATION: str(recorded).replace("'", '"')}}}

    assert decode_weights(obj) is None


@pytest.mark.parametrize(
    ("primary", "canary", "expected"),
    [
        (3, 1, Weights(75, 25)),
        (1, 0, Weights(100, 0)),
        (0, 7, Weights(0, 100)),
        (2, 1, Weights(67, 33)),
    ],
)
def test_amounts_become_percents(primary: float, canary: float, expected: Weights) -> None:
    assert weights_from_amounts(primary, canary) == expected


@pytest.mark.parametrize(("primary", "canary"), [(0, 0), (-1, 2)])
def test_amounts_that_split_nothing_are_an_error(primary: float, canary: float) -> None:
    with pytest.raises(RoutingError):
        weights_from_amounts(primary, canary)


@pytest.mark.parametrize(
    ("live", "expected", "holds"),
    [
        ({"a": 1, "b": 2}, {"a": 1}, True),
        ({"a": [{"x": 1, "y": 2}]}, {"a": [{"x": 1}]}, True),
        ({"a": [{"x": 1}, {"x": 2}]}, {"a": [{"x": 1}]}, False),
        ({"a": 1}, {"a": 2}, False),
        ({}, {"a": None}, False),
        ({"a": "1"}, {"a": 1}, False),
    ],
)
def test_contains_allows_added_fields_only(live: Any, expected: Any, holds: bool) -> None:
    assert contains(live, expected) is holds


def test_route_metadata_names_owns_and_records() -> None:
    metadata = route_metadata(route_target({"replicas": {}}), Weights(90, 10))

    assert metadata["name"] == "credit-scorer"
    assert metadata["ownerReferences"] == [OWNER]
    assert decode_weights({"metadata": metadata}) == Weights(90, 10)


def test_without_owners_anything_is_ours() -> None:
    require_owned({"metadata": {}}, route_target({"replicas": {}}, owners=()), "HTTPRoute")
