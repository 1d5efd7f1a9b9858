"""Prometheus answers as typed samples: an instant vector or a scalar, empty or NaN as no data.

Nothing here knows the metric convention. A value that is NaN, infinite, negative or not a
number is ``None`` (no data), never a zero that could pass a gate; an answer that is not of the
HTTP API's shape, or a sample without readable labels (it could belong to anything), makes the
whole answer malformed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Labels = Mapping[str, str]
STRING = frozenset({str})


@dataclass(frozen=True)
class Sample:
    """One instant-vector element: its labels, and its value when finite and non-negative."""

    labels: Labels
    value: float | None


@dataclass(frozen=True)
class Answer:
    """The samples of one answer; ``malformed`` when it is not an instant vector at all."""

    samples: tuple[Sample, ...] = ()
    malformed: bool = False

    @property
    def unusable_values(self) -> int:
        return sum(sample.value is None for sample in self.samples)


MALFORMED_ANSWER = Answer(malformed=True)


class Malformed:
    """The marker for a document that is not JSON of the HTTP API's shape."""


MALFORMED = Malformed()


def result_of(document: Any) -> Any:
    """``data.result`` of a query document, or :data:`MALFORMED`."""
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict) or "result" not in data:
        return MALFORMED
    return data["result"]


def finite(raw: Any) -> float | None:
    """A finite float (negative allowed: custom queries may be differences); None otherwise."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        return None
    try:
        number = float(raw)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_number(raw: Any) -> float | None:
    """A finite, non-negative float from a Prometheus value string; None otherwise."""
    number = finite(raw)
    return number if number is not None and number >= 0.0 else None


def parse_labels(raw: Any) -> Labels | None:
    """A ``metric`` object whose keys and values are all strings; None otherwise."""
    if not isinstance(raw, dict):
        return None
    if not set(map(type, raw)) <= STRING or not set(map(type, raw.values())) <= STRING:
        return None  # checked per type, not per label: answers have tens of thousands of labels
    return raw


def parse_sample(item: Any) -> Sample | None:
    """A vector element ``{"metric": {...}, "value": [t, "v"]}``; None without readable labels."""
    if not isinstance(item, dict):
        return None
    labels = parse_labels(item.get("metric"))
    if labels is None:
        return None
    pair = item.get("value")
    if not isinstance(pair, list | tuple) or len(pair) != 2:
        return Sample(labels, None)
    return Sample(labels, parse_number(pair[1]))


def parse_vector(result: Any) -> Answer:
    """The samples of a ``data.result`` list (an instant vector)."""
    if not isinstance(result, list):
        return MALFORMED_ANSWER
    samples = [parse_sample(item) for item in result]
    if any(sample is None for sample in samples):
        return MALFORMED_ANSWER
    return Answer(tuple(s for s in samples if s is not None))


def parse_answer(document: Any) -> Answer:
    """The instant vector of a query document."""
    return parse_vector(result_of(document))


def is_scalar(result: Any) -> bool:
    """A scalar result: ``[time, "value"]``."""
    return (
        isinstance(result, list)
        and len(result) == 2
        and isinstance(result[0], int | float)
        and not isinstance(result[1], list | dict)
    )


def single_value(document: Any) -> float | None:
    """The one finite value of an answer: a one-element vector or a scalar; None otherwise."""
    result = result_of(document)
    if is_scalar(result):
        return finite(result[1])
    if not isinstance(result, list) or len(result) != 1 or not isinstance(result[0], dict):
        return None
    pair = result[0].get("value")
    if not isinstance(pair, list | tuple) or len(pair) != 2:
        return None
    return finite(pair[1])
