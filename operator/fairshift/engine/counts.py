"""Counts the engine works from: per-slice confusion counts and histograms of one model version.

A *slice key* names a group as sorted ``(attribute, value)`` pairs; the empty key is the whole
population. Every metric in the engine is computed from these counts, so the same code serves
Prometheus (cumulative series) and files (``fairshift measure`` / ``fairshift gate``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

SliceKey = tuple[tuple[str, str], ...]
OVERALL: SliceKey = ()


def slice_key(labels: Mapping[str, str]) -> SliceKey:
    """The canonical key of a group given as ``{attribute: value}``."""
    return tuple(sorted((str(k), str(v)) for k, v in labels.items()))


def slice_name(key: SliceKey) -> str:
    """A readable name: ``sex=F,age_band=60+``; ``overall`` for the whole population."""
    if not key:
        return "overall"
    return ",".join(f"{attribute}={value}" for attribute, value in key)


def grouping_of(key: SliceKey) -> tuple[str, ...]:
    """The attributes a key is grouped by (sorted)."""
    return tuple(attribute for attribute, _ in key)


@dataclass(frozen=True)
class BinaryCounts:
    """Decisions of a binary classifier for one slice.

    ``predictions`` and ``selected`` count every decision (label known or not); the four
    confusion cells count only decisions whose ground-truth label has arrived.
    """

    predictions: float = 0.0
    selected: float = 0.0
    tp: float = 0.0
    fp: float = 0.0
    fn: float = 0.0
    tn: float = 0.0

    @property
    def labelled(self) -> float:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def positives(self) -> float:
        """Labelled decisions whose label is 1."""
        return self.tp + self.fn

    @property
    def negatives(self) -> float:
        """Labelled decisions whose label is 0."""
        return self.fp + self.tn

    def __add__(self, other: BinaryCounts) -> BinaryCounts:
        return BinaryCounts(
            predictions=self.predictions + other.predictions,
            selected=self.selected + other.selected,
            tp=self.tp + other.tp,
            fp=self.fp + other.fp,
            fn=self.fn + other.fn,
            tn=self.tn + other.tn,
        )


_INCREASING: set[tuple[float, ...]] = set()
"""Bucket bounds already checked to increase."""


@dataclass(frozen=True)
class Histogram:
    """A histogram as Prometheus keeps it: bucket upper bounds and the count in each bucket.

    ``counts[i]`` is the number of observations in ``(bounds[i-1], bounds[i]]`` (not
    cumulative); the last bound may be ``inf``.
    """

    bounds: tuple[float, ...]
    counts: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.bounds) != len(self.counts):
            raise ValueError("a histogram needs one count per bucket bound")
        if self.bounds in _INCREASING:  # tens of thousands of slices share a few bucket layouts
            return
        if any(b2 <= b1 for b1, b2 in zip(self.bounds, self.bounds[1:], strict=False)):
            raise ValueError("histogram bucket bounds must increase")
        if len(_INCREASING) < 1024:
            _INCREASING.add(self.bounds)

    @property
    def total(self) -> float:
        return float(sum(self.counts))

    @classmethod
    def from_cumulative(cls, bounds: Iterable[float], cumulative: Iterable[float]) -> Histogram:
        """Build from Prometheus ``_bucket`` values (cumulative counts per ``le``)."""
        bounds_t = tuple(float(b) for b in bounds)
        cum = [max(0.0, float(c)) for c in cumulative]
        counts: list[float] = []
        previous = 0.0
        for value in cum:
            counts.append(max(0.0, value - previous))
            previous = max(previous, value)
        return cls(bounds_t, tuple(counts))

    def __add__(self, other: Histogram) -> Histogram:
        if self.bounds != other.bounds:
            raise ValueError("cannot add histograms with different buckets")
        return Histogram(
            self.bounds, tuple(a + b for a, b in zip(self.counts, other.counts, strict=True))
        )


@dataclass(frozen=True)
class VersionCounts:
    """Everything measured for one model version (stable or candidate) over one window.

    ``cells`` holds counts for the finest groups (all slice attributes set); coarser groups
    are sums of cells (see ``engine.slices``). ``scores`` holds histograms of every score per
    finest cell (drift); ``labelled_scores`` holds, per cell and ground-truth label (0 or 1),
    histograms of the scores whose label has arrived (calibration). ``latency`` is over all
    requests. ``custom`` holds values of gates with their own PromQL ``query`` (already a
    single number).
    """

    cells: Mapping[SliceKey, BinaryCounts] = field(default_factory=dict)
    scores: Mapping[SliceKey, Histogram] = field(default_factory=dict)
    labelled_scores: Mapping[SliceKey, Mapping[int, Histogram]] = field(default_factory=dict)
    latency: Histogram | None = None
    requests: float = 0.0
    errors: float = 0.0
    custom: Mapping[str, float | None] = field(default_factory=dict)
