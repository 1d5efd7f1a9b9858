"""The fixed-sample oracle: how long a one-look test with perfect hindsight would need.

The oracle knows which gate and slice the scenario breaks and the true effect. For each cell
whose true value lies beyond the gate's bound, the engine's own measurement on noise-free
expected counts gives the estimate's variance ``V(t)`` after ``t`` intervals (label delay
included); the one-look test at one-sided level ``a`` with power ``1 - b`` needs
``excess / sqrt(V(t)) >= z_a + z_b`` (the closed form for two proportions, generalised to
every measurement the engine makes). The oracle's time is the smallest such ``t`` over the
broken cells, rounded up to a whole interval, in minutes. Three levels are reported:
``a = alpha`` (one test, it knew where to look) and ``a = alpha / m`` with ``m`` the
critical cells of the analysis (the same Bonferroni share fairshift gives each cell): the
two the targets compare with; and, for the primary rule, each broken cell at the share of
``alpha`` the engine gives it when the equal-opportunity gate is declared ``primary: true``
(its cells split 80% of ``alpha``, the other critical cells 20%).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from scipy.stats import norm

from bench.decisions.engine_rule import analysis, version_counts
from bench.decisions.traffic import expected_cumulative
from bench.decisions.world import INTERVAL_SECONDS, PRIMARY_GATE, Population
from fairshift.engine.gates import CellResult, Evaluation, FamilyAlphas, evaluate, family_alphas

ALPHA = 0.05
POWER = 0.8
FAR = 1e7  # intervals: "never" for the oracle
Level = Callable[[CellResult], float]
"""The one-sided level of a cell's one-look test."""


def expected_look(
    population: Population, rps: float, intervals: float, primary: str | None = None
) -> Evaluation:
    cum = expected_cumulative(population, rps, intervals)
    return evaluate(analysis(primary), version_counts(cum, 0, 0), version_counts(cum, 0, 1))


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


def strongest(evaluation: Evaluation, broken: set[tuple[str, object]], level: Level) -> float:
    """The largest standardised excess beyond the cell's critical value, over the broken cells.

    A one-look test of the cell at ``level(cell)`` has 80% power once this reaches ``z_0.2``.
    """
    best = -math.inf
    for c in evaluation.cells:
        if (c.gate.name, c.measurement.slice) in broken and c.measurement.variance:
            z = excess(c) / math.sqrt(c.measurement.variance)
            best = max(best, z - float(norm.isf(level(c))))
    return best


@dataclass(frozen=True)
class OracleTimes:
    """Minutes the one-look test needs (``inf`` when nothing is broken).

    ``single`` and ``bonferroni`` are the targets' oracles; ``primary`` is the one-look test
    of each broken cell at the alpha the primary declaration gives it (a reference for the
    primary rule's row, not a target).
    """

    single: float
    bonferroni: float
    primary: float = math.inf


def oracle_minutes(population: Population, rps: float, critical: bool) -> OracleTimes:
    broken = broken_cells(population, rps, critical)
    if not broken:
        return OracleTimes(math.inf, math.inf)
    cells = sum(1 for c in expected_look(population, rps, 100).cells if c.critical == critical)
    single = needed_intervals(population, rps, broken, lambda _: ALPHA)
    bonferroni = needed_intervals(population, rps, broken, lambda _: ALPHA / cells)
    shares = primary_shares(population, rps)
    primary = needed_intervals(
        population, rps, broken, lambda c: shares.of(c.measurement), PRIMARY_GATE
    )
    minutes = INTERVAL_SECONDS / 60.0
    return OracleTimes(
        whole(single) * minutes, whole(bonferroni) * minutes, whole(primary) * minutes
    )


def primary_shares(population: Population, rps: float) -> FamilyAlphas:
    """Each cell's share of ``alpha`` with the primary gate declared, as the engine splits it.

    The share before a two-sided cell halves it, like the Bonferroni oracle's ``alpha / m``.
    """
    declared = analysis(PRIMARY_GATE)
    look = expected_look(population, rps, 100, PRIMARY_GATE)
    gates = set(declared.gates)
    return family_alphas([c.measurement for c in look.cells if c.gate in gates], declared.alpha)


def whole(intervals: float) -> float:
    """Looks happen at interval ends: the oracle's look is the first one after ``t``."""
    return math.ceil(intervals - 1e-9) if math.isfinite(intervals) else math.inf


def needed_intervals(
    population: Population,
    rps: float,
    broken: set[tuple[str, object]],
    level: Level,
    primary: str | None = None,
) -> float:
    """Bisection (in log time) for the first ``t`` where the strongest cell has 80% power.

    Cells are measured (and, for ``level``, given their alpha) under the analysis with
    ``primary`` declared.
    """
    z = float(norm.ppf(POWER))

    def powered(intervals: float) -> bool:
        look = expected_look(population, rps, intervals, primary)
        return strongest(look, broken, level) >= z

    low, high = 1.0, FAR
    if not powered(high):
        return math.inf
    if powered(low):
        return low
    for _ in range(40):
        middle = math.sqrt(low * high)
        if powered(middle):
            high = middle
        else:
            low = middle
        if high / low < 1.01:
            break
    return high
