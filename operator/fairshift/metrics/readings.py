"""Counts from pinned counter readings: what each series counted between start and end.

Each element of a readings answer is one raw series of one version at one instant (the
``fairshift_version`` and ``fairshift_reading`` labels say which). A series' count is
``end - start``, with three exceptions where only what is provably new is kept:

* a **reset**: a process that restarts starts all of its counters again from zero, so when any
  series of a process (its labels other than the convention's and the slices') reads lower at
  the end than at the start, every series of that process counts only its end reading (what
  it counted since the restart; the stretch before the restart is dropped, which leaves rates
  unbiased, rather than guessed);
* a series with no reading at the start appeared after it: it counts its end reading (a
  counter starts from zero; "no reading" means no sample within Prometheus' lookback, five
  minutes by default, before the start, so a scrape gap that long across the start would
  make an old series look new);
* a series with no reading at the end (its pod is gone) counts nothing, so a version's counts
  can be lower at a later look than at an earlier one; a caller that reads increments between
  looks (``start`` = the previous look) loses at most one interval of a departed pod.

Two readings cannot see a restart after which every series of the process regrew past its
start reading; its series then count ``end - start``: less than happened, never more.
A count is never negative and never extrapolated. An unusable reading (NaN, infinite, not a
number) makes its series' count unusable, which drops its cell downstream. The counts are then
summed by each family's labels, as ``sum by (...)`` would, into an :class:`Answer`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from fairshift_instrument.convention import (
    BUCKET_BOUND,
    DECISION,
    LABEL,
    METRIC_NAME,
    QUANTILE,
    READING_INSTANT,
    READING_VERSION,
    REASON,
)

from fairshift.metrics.answers import MALFORMED_ANSWER, Answer, Labels, Sample

CONVENTION_LABELS = frozenset(
    {METRIC_NAME, READING_VERSION, READING_INSTANT, DECISION, LABEL, REASON, BUCKET_BOUND, QUANTILE}
)
"""Labels that tell series of one process apart (with the slice attributes)."""

SeriesKey = frozenset[tuple[str, str]]
"""A series' labels without the reading markers."""


@dataclass
class SeriesReadings:
    """The start and end readings of one series (absent: None; unusable: NaN)."""

    labels: Labels
    start: float | None = None
    end: float | None = None
    unusable: bool = False


@dataclass
class VersionReadings:
    """All readings of one version in one answer, by series."""

    series: dict[SeriesKey, SeriesReadings] = field(default_factory=dict)

    def add(self, labels: Labels, instant: str, value: float | None) -> None:
        kept = dict(labels)
        del kept[READING_VERSION], kept[READING_INSTANT]
        readings = self.series.get(key := frozenset(kept.items()))
        if readings is None:
            readings = self.series[key] = SeriesReadings(kept)
        if value is None:
            readings.unusable = True
        elif instant == "start":
            readings.start = value
        else:
            readings.end = value


@dataclass(frozen=True)
class Split:
    """An answer's readings by version; ``malformed`` when an element has no usable marker."""

    versions: Mapping[str, VersionReadings]
    malformed: bool = False


def split_by_version(answer: Answer) -> Split:
    """Group an answer's elements by version and series; unknown markers make it malformed."""
    if answer.malformed:
        return Split({}, malformed=True)
    versions: dict[str, VersionReadings] = defaultdict(VersionReadings)
    for sample in answer.samples:
        version = sample.labels.get(READING_VERSION)
        instant = sample.labels.get(READING_INSTANT)
        if version not in ("stable", "candidate") or instant not in ("start", "end"):
            return Split({}, malformed=True)
        versions[version].add(sample.labels, instant, sample.value)
    return Split(dict(versions))


def process_of(labels: Labels, slices: Iterable[str]) -> SeriesKey:
    """The labels a process' series share: everything but the convention's and the slices'."""
    excluded = CONVENTION_LABELS | set(slices)
    return frozenset((k, v) for k, v in labels.items() if k not in excluded)


def decreased(readings: SeriesReadings) -> bool:
    return readings.start is not None and readings.end is not None and readings.end < readings.start


def restarted_processes(
    readings: Iterable[SeriesReadings], slices: Sequence[str]
) -> set[SeriesKey]:
    """Processes with at least one series that reads lower at the end than at the start."""
    return {process_of(r.labels, slices) for r in readings if decreased(r)}


def series_count(readings: SeriesReadings, restarted: bool) -> float | None:
    """What one series counted from start to end (see the module docstring); None if unusable."""
    if readings.unusable:
        return None
    if readings.end is None:
        return 0.0
    if readings.start is None or restarted or decreased(readings):
        return readings.end
    return readings.end - readings.start


def series_counts(
    readings: Mapping[SeriesKey, SeriesReadings], restarted: set[SeriesKey], slices: Sequence[str]
) -> list[Sample]:
    """One sample per series with its count (None when unusable)."""
    return [
        Sample(
            r.labels, series_count(r, bool(restarted) and process_of(r.labels, slices) in restarted)
        )
        for r in readings.values()
    ]


def summed_by(samples: Iterable[Sample], by: Sequence[str]) -> Answer:
    """``sum by (by)``: one sample per label combination; an unusable count poisons its sum.

    Labels missing from a sample are left out of its group, as Prometheus does.
    """
    sums: dict[tuple[str | None, ...], float | None] = {}
    for sample in samples:
        key = tuple(map(sample.labels.get, by))
        total = sums.get(key, 0.0)
        sums[key] = None if total is None or sample.value is None else total + sample.value
    return Answer(
        tuple(
            Sample({name: v for name, v in zip(by, key, strict=True) if v}, value)
            for key, value in sums.items()
        )
    )


def counts_answer(
    split: Split, version: str, by: Sequence[str], restarted: set[SeriesKey], slices: Sequence[str]
) -> Answer:
    """One version's counts of one family, summed by ``by``; malformed stays malformed."""
    if split.malformed:
        return MALFORMED_ANSWER
    readings = split.versions.get(version, VersionReadings()).series
    return summed_by(series_counts(readings, restarted, slices), by)
