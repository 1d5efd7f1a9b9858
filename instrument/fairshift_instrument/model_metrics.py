"""Emit fairshift's metric convention from a model server (a binary classifier).

fairshift judges a rollout from five Prometheus series that every model server exposes (their
names and labels live in :mod:`fairshift_instrument.convention`). Each carries the *slice
attributes* (for example ``sex`` and ``age_band``) as labels, so the operator can read per-slice
counts with one query per series, grouped by those labels.

* A prediction increments ``fairshift_predictions_total{<slice>, decision}`` and, when the score
  is given, observes it in ``fairshift_score{<slice>, label=""}``.
* Ground truth may arrive much later: :meth:`ModelMetrics.record_outcome` increments
  ``fairshift_outcomes_total{<slice>, decision, label}`` and, with the score, observes it again
  in ``fairshift_score{<slice>, label="0"|"1"}``.
* Score buckets are twenty equal bins on [0, 1] (``le`` = 0.05, 0.10, ..., 1.0, +Inf); latency
  buckets are Prometheus' classic defaults (5 ms ... 10 s, +Inf). Both are fixed here so that
  the stable and the candidate model always produce comparable histograms.
* Time every request once: either with :meth:`ModelMetrics.timed` or with
  ``latency_seconds=`` on :meth:`ModelMetrics.record_prediction`, not both; failed requests
  should be timed too, so that the latency ``_count`` is the number of requests.

Attribute names must be Prometheus label names that the convention does not reserve (see
:mod:`fairshift_instrument.convention`). Attribute values must be non-empty strings: Prometheus
cannot tell an empty label from a missing one, so use an explicit value such as ``"unknown"``.

Example::

    metrics = ModelMetrics(["sex", "age_band"])
    with metrics.timed():
        score = model.predict_proba(features)
        metrics.record_prediction({"sex": "F", "age_band": "30-45"}, int(score >= 0.5), score)
    ...  # later, when the true label is known
    metrics.record_outcome({"sex": "F", "age_band": "30-45"}, decision=1, label=0, score=score)
"""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from fairshift_instrument.convention import (
    DECISION,
    ERRORS,
    LABEL,
    LATENCY_BUCKETS,
    OUTCOMES,
    PREDICTIONS,
    REASON,
    REQUEST_DURATION,
    SCORE,
    SCORE_BUCKETS,
    UNLABELLED,
    check_attribute_names,
)


def binary_value(value: int, what: str) -> str:
    """``"0"`` or ``"1"`` for a decision or label; raises ValueError for anything else."""
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{what} must be 0 or 1, got {value!r}") from None
    if number not in (0, 1):
        raise ValueError(f"{what} must be 0 or 1, got {value!r}")
    return str(number)


def checked_score(score: float) -> float:
    """The score as a float in [0, 1]; raises ValueError otherwise."""
    try:
        value = float(score)
    except (TypeError, ValueError):
        raise ValueError(f"score must be a number in [0, 1], got {score!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"score must be a number in [0, 1], got {score!r}")
    return value


def checked_latency(seconds: float) -> float:
    """The latency as a finite, non-negative float; raises ValueError otherwise."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        raise ValueError(f"latency_seconds must be a number >= 0, got {seconds!r}") from None
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"latency_seconds must be a finite number >= 0, got {seconds!r}")
    return value


class ModelMetrics:
    """The convention's series for one model server, registered in ``registry``.

    ``registry`` defaults to prometheus_client's default registry (the one
    ``start_http_server`` exposes); create one ModelMetrics per registry.
    """

    def __init__(
        self,
        attributes: Sequence[str],
        registry: CollectorRegistry | None = None,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.attributes = check_attribute_names(attributes)
        self._clock = clock
        target = REGISTRY if registry is None else registry
        slices = list(self.attributes)
        self._predictions = Counter(
            PREDICTIONS,
            "Decisions of the model, by slice and decision (0/1).",
            [*slices, DECISION],
            registry=target,
        )
        self._outcomes = Counter(
            OUTCOMES,
            "Decisions whose ground-truth label has arrived, by slice, decision and label.",
            [*slices, DECISION, LABEL],
            registry=target,
        )
        self._scores = Histogram(
            SCORE,
            'Model scores by slice: label="" when predicted, "0"/"1" once the outcome is known.',
            [*slices, LABEL],
            buckets=SCORE_BUCKETS,
            registry=target,
        )
        self._latency = Histogram(
            REQUEST_DURATION,
            "Time to answer a request, in seconds.",
            buckets=LATENCY_BUCKETS,
            registry=target,
        )
        self._errors = Counter(
            ERRORS,
            "Requests that failed, by reason.",
            [REASON],
            registry=target,
        )

    def record_prediction(
        self,
        slice: Mapping[str, str],
        decision: int,
        score: float | None = None,
        latency_seconds: float | None = None,
    ) -> None:
        """Count one decision for ``slice``; observe its score and latency when given.

        Everything is checked before anything is recorded, so a ValueError records nothing.
        """
        values = self.slice_values(slice)
        decided = binary_value(decision, "decision")
        checked = None if score is None else checked_score(score)
        latency = None if latency_seconds is None else checked_latency(latency_seconds)
        self._predictions.labels(*values, decided).inc()
        if checked is not None:
            self._scores.labels(*values, UNLABELLED).observe(checked)
        if latency is not None:
            self._latency.observe(latency)

    def record_outcome(
        self,
        slice: Mapping[str, str],
        decision: int,
        label: int,
        score: float | None = None,
    ) -> None:
        """Count the ground truth of an earlier decision; observe its score under that label."""
        values = self.slice_values(slice)
        decided = binary_value(decision, "decision")
        truth = binary_value(label, "label")
        checked = None if score is None else checked_score(score)
        self._outcomes.labels(*values, decided, truth).inc()
        if checked is not None:
            self._scores.labels(*values, truth).observe(checked)

    def record_error(self, reason: str) -> None:
        """Count one failed request; ``reason`` is a short, bounded code (e.g. ``timeout``)."""
        if not isinstance(reason, str) or not reason:
            raise ValueError(f"error reason must be a non-empty string, got {reason!r}")
        self._errors.labels(reason).inc()

    @contextmanager
    def timed(self) -> Iterator[None]:
        """Observe the duration of the block as one request, also when the block raises."""
        started = self._clock()
        try:
            yield
        finally:
            self._latency.observe(max(0.0, self._clock() - started))

    def slice_values(self, slice: Mapping[str, str]) -> list[str]:
        """The slice's values in attribute order; raises ValueError on missing/extra/empty."""
        missing = [name for name in self.attributes if name not in slice]
        unexpected = sorted(str(name) for name in slice if name not in self.attributes)
        if missing or unexpected:
            raise ValueError(
                f"slice must set exactly the attributes {list(self.attributes)}; "
                f"missing: {missing}, unexpected: {unexpected}"
            )
        values = [slice[name] for name in self.attributes]
        for name, value in zip(self.attributes, values, strict=True):
            if not isinstance(value, str) or not value:
                raise ValueError(
                    f"slice attribute {name!r} needs a non-empty string value, got {value!r}"
                )
        return values
