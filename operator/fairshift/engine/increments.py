"""Reset-aware increments of cumulative counters: what a model did between two readings.

Prometheus counters only grow until their process restarts, when they start again from zero.
The increment of a counter between two readings is therefore ``current - previous`` when the
counter did not go down, and ``current`` (only the new reading counts) when it did: a
decrease is a reset, never a negative count. A restarted pod resets all of its counters at
once, so a cell (or a histogram) whose count went down in *any* field is taken as reset as a
whole. The rule is exact for the readings of one series (one pod); for sums over pods the
caller passes the readings per series to ``series_increment``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import astuple

from fairshift.engine.counts import BinaryCounts, Histogram, SliceKey, VersionCounts


def cell_increment(previous: BinaryCounts | None, current: BinaryCounts) -> BinaryCounts:
    """``current - previous``; ``current`` when any count went down (a counter reset)."""
    if previous is None:
        return current
    before, now = astuple(previous), astuple(current)
    if any(b > n for b, n in zip(before, now, strict=True)):
        return current
    return BinaryCounts(*(n - b for b, n in zip(before, now, strict=True)))


def histogram_increment(previous: Histogram | None, current: Histogram) -> Histogram:
    """Per-bucket ``current - previous``; ``current`` when any bucket went down or the buckets
    changed (a restarted process may come back with other buckets)."""
    if previous is None or previous.bounds != current.bounds:
        return current
    if any(b > n for b, n in zip(previous.counts, current.counts, strict=True)):
        return current
    return Histogram(
        current.bounds,
        tuple(n - b for b, n in zip(previous.counts, current.counts, strict=True)),
    )


def _scalar_increment(previous: float, current: float) -> float:
    return current if current < previous else current - previous


def _histograms_increment(
    previous: Mapping[SliceKey, Histogram], current: Mapping[SliceKey, Histogram]
) -> dict[SliceKey, Histogram]:
    return {key: histogram_increment(previous.get(key), now) for key, now in current.items()}


def _labelled_increment(
    previous: Mapping[SliceKey, Mapping[int, Histogram]],
    current: Mapping[SliceKey, Mapping[int, Histogram]],
) -> dict[SliceKey, dict[int, Histogram]]:
    return {
        key: _histograms_by_label(previous.get(key, {}), by_label)
        for key, by_label in current.items()
    }


def _histograms_by_label(
    previous: Mapping[int, Histogram], current: Mapping[int, Histogram]
) -> dict[int, Histogram]:
    return {label: histogram_increment(previous.get(label), now) for label, now in current.items()}


def counter_increment(previous: VersionCounts | None, current: VersionCounts) -> VersionCounts:
    """What one series counted between two readings, reset-aware per cell and histogram.

    Cells and histograms absent from ``previous`` count their whole reading (the series is
    new); those absent from ``current`` count nothing (the series is gone). ``custom`` gate
    values are point readings, not counters: the current ones are kept.
    """
    if previous is None:
        return current
    latency = None
    if current.latency is not None:
        latency = histogram_increment(previous.latency, current.latency)
    return VersionCounts(
        cells={
            key: cell_increment(previous.cells.get(key), now) for key, now in current.cells.items()
        },
        scores=_histograms_increment(previous.scores, current.scores),
        labelled_scores=_labelled_increment(previous.labelled_scores, current.labelled_scores),
        latency=latency,
        requests=_scalar_increment(previous.requests, current.requests),
        errors=_scalar_increment(previous.errors, current.errors),
        custom=dict(current.custom),
    )


def _sum_mapping(
    total: Mapping[SliceKey, BinaryCounts], more: Mapping[SliceKey, BinaryCounts]
) -> dict[SliceKey, BinaryCounts]:
    summed = dict(total)
    for key, counts in more.items():
        summed[key] = summed[key] + counts if key in summed else counts
    return summed


def _sum_histograms(
    total: Mapping[SliceKey, Histogram], more: Mapping[SliceKey, Histogram]
) -> dict[SliceKey, Histogram]:
    summed = dict(total)
    for key, histogram in more.items():
        summed[key] = summed[key] + histogram if key in summed else histogram
    return summed


def _sum_labelled(
    total: Mapping[SliceKey, Mapping[int, Histogram]],
    more: Mapping[SliceKey, Mapping[int, Histogram]],
) -> dict[SliceKey, dict[int, Histogram]]:
    summed = {key: dict(by_label) for key, by_label in total.items()}
    for key, by_label in more.items():
        target = summed.setdefault(key, {})
        for label, histogram in by_label.items():
            target[label] = target[label] + histogram if label in target else histogram
    return summed


def add_counts(first: VersionCounts, second: VersionCounts) -> VersionCounts:
    """The counts of two disjoint sources together (e.g. two pods); custom values of the
    second win (they are point readings of the whole model, not per source)."""
    latency = first.latency
    if second.latency is not None:
        latency = second.latency if latency is None else latency + second.latency
    return VersionCounts(
        cells=_sum_mapping(first.cells, second.cells),
        scores=_sum_histograms(first.scores, second.scores),
        labelled_scores=_sum_labelled(first.labelled_scores, second.labelled_scores),
        latency=latency,
        requests=first.requests + second.requests,
        errors=first.errors + second.errors,
        custom={**first.custom, **second.custom},
    )


def series_increment(
    previous: Mapping[str, VersionCounts], current: Mapping[str, VersionCounts]
) -> VersionCounts:
    """The model's increment: the sum over series (e.g. pods) of their reset-aware increments.

    A series that restarted counts only its new reading; a new series counts its whole
    reading; a series that disappeared counts nothing more.
    """
    total = VersionCounts()
    for series in sorted(current):
        total = add_counts(total, counter_increment(previous.get(series), current[series]))
    return total
