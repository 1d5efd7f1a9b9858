"""The fixed-sample oracle: how long a one-look test with perfect hindsight would need.

The oracle knows which gate and slice the scenario breaks and the true effect. For each cell
whose true value lies beyond the gate's bound, the engine's own measurement on noise-free
expected counts gives the estimate's variance ``V(t)`` after ``t`` intervals (label delay
included); the one-look test at one-sided level ``a`` with power ``1 - b`` needs
``excess / sqrt(V(t)) >= z_a + z_b`` (the closed form for two proportions, generalised to
every measurement the engine makes). The oracle's time is the smallest such ``t`` over the
broken cells, rounded up to a whole interval, in minutes. Two levels are reported:
``a = alpha`` (one test, it knew where to look) and ``a = alpha / m`` with ``m`` the
critical cells of the analysis (the same Bonferroni share fairshift gives each cell).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import norm

from bench.decisions.engine_rule import analysis, version_counts
from bench.decisions.traffic import expected_cumulative
from bench.decisions.world import INTERVAL_SECONDS, Population
from fairshift.engine.gates import CellResult, Evaluation, evaluate

ALPHA = 0.05
POWER = 0.8
FAR = 1e7  # intervals: "never" for the oracle


def expected_look(population: Population, rps: float, intervals: float) -> Evaluation:
    cum = expected_cumulative(population, rps, intervals)
    return evaluate(analysis(), version_counts(cum, 0, 0), version_counts(cum, 0, 1))


def excess(cell: CellResult) -> float:
    """How far the true value lies beyond the acceptable region (drift: the raw divergence)."""
    m = cell.measurement
    value = m.candidate_value if m.gate.metric == "score_psi" else m.estimate
    if value is None:
        return -math.inf
    low, high = m.acceptable
    return max(value - high, low - value)


def broken_cells(population: Population, rps: float, critical: bool) -> set[tuple[str, object]]:
    """(gate, slice) of the cells whose true value violates their gate."""
    evaluation = expected_look(population, rps, FAR)
    return {
        (c.gate.name, c.measurement.slice)
        for c in evaluation.cells
        if c.critical == critical and excess(c) > 1e-9
    }


def strongest(evaluation: Evaluation, broken: set[tuple[str, object]]) -> float:
    """The largest standardised excess over the broken cells."""
    best = -math.inf
    for c in evaluation.cells:
        if (c.gate.name, c.measurement.slice) in broken and c.measurement.variance:
            best = max(best, excess(c) / math.sqrt(c.measurement.variance))
    return best


@dataclass(frozen=True)
class OracleTimes:
    """Minutes the one-look test needs (``inf`` when nothing is broken)."""

    single: float
    bonferroni: float


def oracle_minutes(population: Population, rps: float, critical: bool) -> OracleTimes:
    broken = broken_cells(population, rps, critical)
    if not broken:
        return OracleTimes(math.inf, math.inf)
    cells = sum(1 for c in expected_look(population, rps, 100).cells if c.critical == critical)
    z_power = float(norm.ppf(POWER))
    single = needed_intervals(population, rps, broken, float(norm.isf(ALPHA)) + z_power)
    split = float(norm.isf(ALPHA / cells)) + z_power
    bonferroni = needed_intervals(population, rps, broken, split)
    minutes = INTERVAL_SECONDS / 60.0
    return OracleTimes(whole(single) * minutes, whole(bonferroni) * minutes)


def whole(intervals: float) -> float:
    """Looks happen at interval ends: the oracle's look is the first one after ``t``."""
    return math.ceil(intervals - 1e-9) if math.isfinite(intervals) else math.inf


def needed_intervals(
    population: Population, rps: float, broken: set[tuple[str, object]], z: float
) -> float:
    """Bisection (in log time) for the first ``t`` where the strongest cell reaches ``z``."""
    low, high = 1.0, FAR
    if strongest(expected_look(population, rps, high), broken) < z:
        return math.inf
    if strongest(expected_look(population, rps, low), broken) >= z:
        return low
    for _ in range(40):
        middle = math.sqrt(low * high)
        if strongest(expected_look(population, rps, middle), broken) >= z:
            high = middle
        else:
            low = middle
        if high / low < 1.01:
            break
    return high
