"""Harm measurements: for one gate, per slice, the estimate the statistics test and its margin.

One implementation per metric family (``engine.measures``) behind one small interface,
``MetricMeasure.measure(gate, versions)``; ``MEASURES`` is the one registry that chooses it,
by the catalog's family of the gate's metric (a gate with its own PromQL query is measured by
``QueryMeasure``). Both versions' cells are summed into groups once per look (``population``)
and every family reads those sums.
"""

from __future__ import annotations

from collections.abc import Mapping

from fairshift.api.analysis import Gate, Slices
from fairshift.api.catalog import MetricFamily, metric_info
from fairshift.engine.counts import VersionCounts
from fairshift.engine.measures.base import (
    Measurement,
    MetricMeasure,
    Population,
    Versions,
    population,
)
from fairshift.engine.measures.calibration import CalibrationMeasure
from fairshift.engine.measures.drift import DriftMeasure
from fairshift.engine.measures.fairness import FairnessMeasure
from fairshift.engine.measures.latency import LatencyMeasure
from fairshift.engine.measures.query import QueryMeasure
from fairshift.engine.measures.rates import ErrorRateMeasure, RateMeasure
from fairshift.engine.slices import ReferencePolicy

__all__ = ["MEASURES", "Measurement", "Population", "measure_for", "measure_gate", "population"]

MEASURES: Mapping[MetricFamily, MetricMeasure] = {
    MetricFamily.RATE: RateMeasure(),
    MetricFamily.FAIRNESS: FairnessMeasure(),
    MetricFamily.CALIBRATION: CalibrationMeasure(),
    MetricFamily.DRIFT: DriftMeasure(),
    MetricFamily.LATENCY: LatencyMeasure(),
    MetricFamily.ERRORS: ErrorRateMeasure(),
}
QUERY = QueryMeasure()


def measure_for(gate: Gate) -> MetricMeasure:
    """The family implementation that measures ``gate``."""
    if gate.query is not None:
        return QUERY
    return MEASURES[metric_info(str(gate.metric)).family]


def measure_gate(
    gate: Gate,
    slices: Slices,
    stable: VersionCounts,
    candidate: VersionCounts,
    policy: ReferencePolicy | None = None,
    populations: tuple[Population, Population] | None = None,
) -> list[Measurement]:
    """Every slice measurement of ``gate`` (empty when the data has none).

    ``populations`` (stable's and candidate's groups) may be passed in when several gates are
    measured on the same counts, so the groups are summed once per look.
    """
    s_pop, c_pop = populations or (population(stable, slices), population(candidate, slices))
    chosen = policy or ReferencePolicy.parse(slices.reference, slices.min_samples)
    return measure_for(gate).measure(gate, Versions(s_pop, c_pop, slices, chosen))
