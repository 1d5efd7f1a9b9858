"""What every metric family shares: the measurement it produces, the versions it reads, and
the acceptable regions of the five bounds.

A ``Measurement`` puts one gate on one slice on a *test scale*: an ``estimate`` with a
``variance`` and the ``acceptable`` region the gate allows. ``min``/``max`` bound the
candidate's own value; ``maxIncrease``/``maxDecrease``/``maxChange`` bound candidate minus
stable. A family implements ``MetricMeasure.measure(gate, versions)``; ``Versions`` carries
both versions' counts with every group summed once per version (``Population``), so no family
sums cells per slice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, Protocol

from fairshift.api.analysis import Gate, Slices
from fairshift.engine.counts import OVERALL, BinaryCounts, Histogram, SliceKey, VersionCounts
from fairshift.engine.rates import Proportion
from fairshift.engine.slices import Grouping, ReferencePolicy, aggregate, groupings

INF = math.inf
FixedMethod = Literal["wilson", "newcombe", "katz", "wald"]
Labelled = Mapping[int, Histogram]


@dataclass(frozen=True)
class FixedLook:
    """How a single look computes its exact interval: method and the proportions it needs."""

    method: FixedMethod
    proportions: tuple[Proportion, ...] = ()


@dataclass(frozen=True)
class Measurement:
    """One gate on one slice, ready for inference."""

    gate: Gate
    slice: SliceKey
    reference: SliceKey | None
    stable_value: float | None
    candidate_value: float | None
    estimate: float | None
    variance: float | None
    acceptable: tuple[float, float]
    stable_samples: float
    candidate_samples: float
    needs_stable: bool = True
    fixed: FixedLook = field(default_factory=lambda: FixedLook("wald"))
    log_scale: bool = False
    margin_scale: float = 0.01
    note: str = ""
    uniform_band: Callable[[float], float] | None = None  # alpha -> half-width (KS)
    point_only: bool = False  # a PromQL gate: a value without a variance
    stable_estimate: float | None = None  # absolute bounds: stable's value on the test scale
    stable_variance: float | None = None

    @property
    def versus_stable(self) -> tuple[float, float] | None:
        """Candidate minus stable on the test scale, with its variance (absolute bounds)."""
        if self.estimate is None or self.stable_estimate is None:
            return None
        if self.variance is None or self.stable_variance is None:
            return None
        return self.estimate - self.stable_estimate, self.variance + self.stable_variance

    @property
    def threshold(self) -> float:
        return self.gate.threshold


@dataclass(frozen=True)
class Population:
    """One version's counts summed into every analysed group, each sum taken once.

    ``groups`` and ``overall`` are summed on construction; score histograms (drift) and
    labelled score histograms (calibration) the first time a gate asks for them.
    """

    counts: VersionCounts
    grouping_list: tuple[Grouping, ...]
    groups: Mapping[Grouping, Mapping[SliceKey, BinaryCounts]]
    overall: BinaryCounts

    @cached_property
    def scores(self) -> dict[SliceKey, Histogram]:
        """Score histograms of the whole population and of every group."""
        return summed_by_slice(self.counts.scores, self.grouping_list)

    @cached_property
    def labelled(self) -> dict[SliceKey, dict[int, Histogram]]:
        """Per ground-truth label, score histograms of the population and of every group."""
        found: dict[SliceKey, dict[int, Histogram]] = {}
        for label in (0, 1):
            of_label = {k: v[label] for k, v in self.counts.labelled_scores.items() if label in v}
            for key, histogram in summed_by_slice(of_label, self.grouping_list).items():
                found.setdefault(key, {})[label] = histogram
        return found


def summed_by_slice(
    cells: Mapping[SliceKey, Histogram], grouping_list: tuple[Grouping, ...]
) -> dict[SliceKey, Histogram]:
    found: dict[SliceKey, Histogram] = {}
    for grouping in ((), *grouping_list):
        found.update(aggregate(cells, grouping))
    return found


def population(counts: VersionCounts, slices: Slices) -> Population:
    """Sum the finest cells into the marginal and intersection groups the spec asks for."""
    grouping_list = tuple(groupings(slices.attributes, slices.intersections))
    grouped = {g: aggregate(counts.cells, g) for g in grouping_list}
    overall = sum(counts.cells.values(), BinaryCounts())
    return Population(counts, grouping_list, grouped, overall)


@dataclass(frozen=True)
class Versions:
    """Both versions of one look, as every family reads them."""

    stable: Population
    candidate: Population
    slices: Slices
    policy: ReferencePolicy

    def slice_keys(self) -> list[SliceKey]:
        """The whole population, then every group the candidate has."""
        keys = [OVERALL]
        for groups in self.candidate.groups.values():
            keys.extend(sorted(groups))
        return keys


class MetricMeasure(Protocol):
    """One metric family: every slice measurement of a gate of that family."""

    def measure(self, gate: Gate, versions: Versions) -> list[Measurement]: ...


# --- acceptable regions ---------------------------------------------------------------------


def is_relative(gate: Gate) -> bool:
    return gate.bound_kind in ("maxIncrease", "maxDecrease", "maxChange")


def relative_region(gate: Gate) -> tuple[float, float]:
    """Acceptable candidate-minus-stable region for a relative bound."""
    t = gate.threshold
    return {
        "maxIncrease": (-INF, t),
        "maxDecrease": (-t, INF),
        "maxChange": (-t, t),
    }[gate.bound_kind]


def absolute_region(gate: Gate) -> tuple[float, float]:
    return (gate.threshold, INF) if gate.bound_kind == "min" else (-INF, gate.threshold)


def region(gate: Gate) -> tuple[float, float]:
    """The acceptable region of ``gate`` on the metric's own scale."""
    return relative_region(gate) if is_relative(gate) else absolute_region(gate)


def difference(
    candidate: float | None,
    candidate_variance: float | None,
    stable: float | None,
    stable_variance: float | None,
) -> tuple[float | None, float | None]:
    """Candidate minus stable and its variance (independent versions); None when undefined."""
    if stable is None or candidate is None:
        return None, None
    if stable_variance is None or candidate_variance is None:
        return candidate - stable, None
    return candidate - stable, stable_variance + candidate_variance


def margin_scale(gate: Gate) -> float:
    """The scale the mixture is tuned for: the bound's size, at least 0.01."""
    return max(abs(gate.threshold), 0.01)
