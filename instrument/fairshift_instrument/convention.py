"""fairshift's metric convention: series names, label names and the rule for slice attributes.

The one home of these facts. The model-server library (:mod:`fairshift_instrument.model_metrics`)
emits them; the operator's PromQL, its Prometheus answer decoder, its CSV reader and the
ModelRollout spec validators import them. This module imports nothing but the standard library,
so that anything can depend on it.

==========================================  ==========================  ===========================
series                                      labels besides the slices   what it feeds
==========================================  ==========================  ===========================
``fairshift_predictions_total``             ``decision`` ("0"/"1")      selection rate, parity
``fairshift_outcomes_total``                ``decision``, ``label``     confusion matrix: TPR, FPR,
                                            ("0"/"1")                   PPV, accuracy
``fairshift_score`` (histogram)             ``label``: "" at            drift (label ""), and
                                            prediction time, "0"/"1"    calibration (label 0/1)
                                            when the outcome arrives
``fairshift_request_duration_seconds``      none (no slice labels)      latency quantiles; its
(histogram)                                                             ``_count`` counts requests
``fairshift_errors_total``                  ``reason`` (no slices)      error rate
==========================================  ==========================  ===========================

A slice attribute becomes a label name on the first three series, so it must be a Prometheus
label name (:data:`ATTRIBUTE_PATTERN`) and must not be one of :data:`RESERVED_LABELS`: the
convention's own labels, the labels Prometheus or the usual scrape configuration attach
(``job``, ``instance``, ``version`` - the pod label that tells the stable model from the
candidate), the two labels the operator's queries set on each reading (:data:`READING_VERSION`,
:data:`READING_INSTANT`), and ``__name__``; names starting with ``__`` are reserved by
Prometheus too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

PREDICTIONS = "fairshift_predictions_total"
OUTCOMES = "fairshift_outcomes_total"
SCORE = "fairshift_score"
REQUEST_DURATION = "fairshift_request_duration_seconds"
ERRORS = "fairshift_errors_total"
SERIES = (PREDICTIONS, OUTCOMES, SCORE, REQUEST_DURATION, ERRORS)
"""Every series of the convention."""

DECISION = "decision"
LABEL = "label"
REASON = "reason"
BUCKET_BOUND = "le"
QUANTILE = "quantile"
VERSION = "version"
METRIC_NAME = "__name__"
READING_VERSION = "fairshift_version"
"""Set by the operator's queries on each reading: the version (stable, candidate) it is of."""
READING_INSTANT = "fairshift_reading"
"""Set by the operator's queries on each reading: the instant (start, end) it was taken at."""
UNLABELLED = ""
"""The ``label`` value of scores observed at prediction time (ground truth not yet known)."""

SCORE_BUCKETS: tuple[float, ...] = tuple(i / 20 for i in range(1, 21))
"""Upper bounds of the score buckets: 0.05, 0.10, ..., 1.0 (+Inf is added by Prometheus)."""

LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Prometheus' classic default latency buckets, in seconds (+Inf is added by Prometheus)."""

ATTRIBUTE_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
"""A Prometheus label name (the only names a slice attribute can take)."""

RESERVED_PREFIX = "__"
"""Label names starting with this are reserved by Prometheus."""

RESERVED_LABELS: frozenset[str] = frozenset(
    {
        DECISION,
        LABEL,
        REASON,
        BUCKET_BOUND,
        QUANTILE,
        VERSION,
        METRIC_NAME,
        READING_VERSION,
        READING_INSTANT,
        "job",
        "instance",
    }
)
"""Names a slice attribute cannot take: the convention's labels and the scrape-time labels."""

_ATTRIBUTE_NAME = re.compile(ATTRIBUTE_PATTERN)


def attribute_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a slice attribute, in one sentence; None when it can."""
    if not isinstance(name, str) or not _ATTRIBUTE_NAME.fullmatch(name):
        return f"slice attribute {name!r} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"
    if name in RESERVED_LABELS or name.startswith(RESERVED_PREFIX):
        return (
            f"slice attribute {name!r} is reserved by the metric convention; reserved names: "
            f"{', '.join(sorted(RESERVED_LABELS))} and names starting with '{RESERVED_PREFIX}'"
        )
    return None


def check_attribute_names(attributes: Iterable[str]) -> tuple[str, ...]:
    """The attribute names as a tuple; raises ValueError naming the first unusable one."""
    names = tuple(attributes)
    for name in names:
        problem = attribute_name_problem(name)
        if problem is not None:
            raise ValueError(problem)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"slice attributes must not repeat: {', '.join(repeated)}")
    return names
