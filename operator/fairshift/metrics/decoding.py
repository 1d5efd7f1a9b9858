"""The metric convention decoded: typed samples of each series into the engine's counts.

* cells from predictions ``{decision}`` and outcomes ``{decision, label}`` per finest slice;
* score histograms per cell, unlabelled (``label=""``) and per ``label`` 0/1, on the
  convention's buckets only (others could not be compared with the stable model's);
* the request-duration histogram; the error count (0 when no error series exists yet).

A sample that cannot be placed (a missing slice label) is counted as unplaced; one with an
unknown decision or label, or no usable value, drops its whole cell or histogram.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from fairshift_instrument.convention import BUCKET_BOUND, DECISION, LABEL, SCORE_BUCKETS, UNLABELLED

from fairshift.engine.counts import BinaryCounts, Histogram, SliceKey, slice_key
from fairshift.metrics.answers import Answer, Labels, Sample


def cell_of(labels: Labels, attributes: Sequence[str]) -> SliceKey | None:
    """The finest slice a sample belongs to; None when an attribute label is missing."""
    values = {attribute: labels.get(attribute, "") for attribute in attributes}
    if not all(values.values()):
        return None
    return slice_key(values)


def binary_label(labels: Labels, name: str) -> int | None:
    """The 0/1 value of ``decision`` or ``label``; None for anything else."""
    raw = labels.get(name)
    return int(raw) if raw in ("0", "1") else None


def confusion_cell(decision: int, label: int, count: float) -> BinaryCounts:
    """``count`` labelled decisions in one confusion cell."""
    cell = {(1, 1): "tp", (1, 0): "fp", (0, 1): "fn", (0, 0): "tn"}[(decision, label)]
    return BinaryCounts(**{cell: count})


@dataclass
class CellTally:
    """Adds samples into per-cell confusion counts; cells with an unusable sample are dropped."""

    attributes: Sequence[str]
    cells: dict[SliceKey, BinaryCounts] = field(default_factory=dict)
    dropped: set[SliceKey] = field(default_factory=set)
    unplaced: int = 0

    def add_predictions(self, samples: Iterable[Sample]) -> None:
        for sample in samples:
            key = cell_of(sample.labels, self.attributes)
            decision = binary_label(sample.labels, DECISION)
            if key is None:
                self.unplaced += 1
            elif decision is None or sample.value is None:
                self.dropped.add(key)
            else:
                selected = sample.value if decision == 1 else 0.0
                self.add(key, BinaryCounts(predictions=sample.value, selected=selected))

    def add_outcomes(self, samples: Iterable[Sample]) -> None:
        for sample in samples:
            key = cell_of(sample.labels, self.attributes)
            decision = binary_label(sample.labels, DECISION)
            label = binary_label(sample.labels, LABEL)
            if key is None:
                self.unplaced += 1
            elif decision is None or label is None or sample.value is None:
                self.dropped.add(key)
            else:
                self.add(key, confusion_cell(decision, label, sample.value))

    def add(self, key: SliceKey, counts: BinaryCounts) -> None:
        self.cells[key] = self.cells.get(key, BinaryCounts()) + counts

    def result(self) -> dict[SliceKey, BinaryCounts]:
        return {key: c for key, c in self.cells.items() if key not in self.dropped}


def parse_bound(raw: str | None) -> float | None:
    """A bucket's ``le`` as a float (``+Inf`` included); None when missing or not a number."""
    if raw is None:
        return None
    try:
        bound = float(raw)
    except ValueError:
        return None
    return None if math.isnan(bound) else bound


Bucket = tuple[float | None, float | None]
"""A bucket sample: its ``le`` bound and cumulative count, None where unreadable."""


def bucket_of(sample: Sample) -> Bucket:
    return parse_bound(sample.labels.get(BUCKET_BOUND)), sample.value


def histogram_from_buckets(buckets: Sequence[Bucket]) -> Histogram | None:
    """A histogram from ``(le, cumulative count)`` pairs; None if any is unreadable or repeated."""
    ordered = sorted(
        (bound, count) for bound, count in buckets if bound is not None and count is not None
    )
    if not ordered or len(ordered) != len(buckets):
        return None
    bounds = [bound for bound, _ in ordered]
    if len(set(bounds)) != len(bounds):
        return None
    return Histogram.from_cumulative(bounds, [count for _, count in ordered])


def score_histogram(buckets: Sequence[Bucket]) -> Histogram | None:
    """A score histogram on the convention's buckets (the always-empty +Inf bucket folded in).

    Anything else (other buckets, a broken bound) is None.
    """
    histogram = histogram_from_buckets(buckets)
    if histogram is None or not histogram.bounds or not math.isinf(histogram.bounds[-1]):
        return None
    finite_bounds, counts = histogram.bounds[:-1], list(histogram.counts[:-1])
    if finite_bounds != SCORE_BUCKETS:
        return None
    counts[-1] += histogram.counts[-1]
    return Histogram(finite_bounds, tuple(counts))


ScoreHistograms = tuple[dict[SliceKey, Histogram], dict[SliceKey, dict[int, Histogram]], int]
"""Unlabelled and per-label score histograms per cell, and how many groups were dropped."""


def score_histograms(samples: Iterable[Sample], attributes: Sequence[str]) -> ScoreHistograms:
    """Group bucket samples by cell and ``label`` and build one histogram per group."""
    groups: dict[tuple[SliceKey, str], list[Bucket]] = defaultdict(list)
    dropped = 0
    for sample in samples:
        key = cell_of(sample.labels, attributes)
        label = sample.labels.get(LABEL, UNLABELLED)
        if key is None or label not in (UNLABELLED, "0", "1"):
            dropped += 1
            continue
        groups[(key, label)].append(bucket_of(sample))
    scores: dict[SliceKey, Histogram] = {}
    labelled: dict[SliceKey, dict[int, Histogram]] = {}
    for (key, label), buckets in groups.items():
        histogram = score_histogram(buckets)
        if histogram is None:
            dropped += 1
        elif label == UNLABELLED:
            scores[key] = histogram
        else:
            labelled.setdefault(key, {})[int(label)] = histogram
    return scores, labelled, dropped


def latency_histogram(answer: Answer) -> Histogram | None:
    """The request-duration histogram; None when empty or not entirely usable."""
    if answer.malformed or not answer.samples:
        return None
    histogram = histogram_from_buckets([bucket_of(sample) for sample in answer.samples])
    if histogram is None or not math.isinf(histogram.bounds[-1]):
        return None
    return histogram


def error_count(answer: Answer) -> float | None:
    """Errors over the window: 0 when no error series exists yet; None when unusable."""
    if answer.malformed or len(answer.samples) > 1:
        return None
    return answer.samples[0].value if answer.samples else 0.0
