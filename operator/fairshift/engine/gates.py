"""Gate outcomes: inference on every measurement, with the rollout's error budget shared out.

Sequential looks (the operator, every interval) use always-valid one-sided bounds from
``engine.sequential``; a single look (``fairshift gate``) uses fixed-sample intervals (Wilson,
Newcombe, Katz). Critical cells share ``alpha`` by Bonferroni (Holm for a single look);
warning cells are flagged by Benjamini-Hochberg (e-BH on anytime e-values when sequential).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from fairshift.api.analysis import Analysis, Gate
from fairshift.api.status import OUTCOME_RANK, GateEvidence, Outcome
from fairshift.engine import intervals, multiplicity, sequential
from fairshift.engine.composition import SAMPLE_RATIO_ALPHA, comparable, sample_ratios
from fairshift.engine.counts import VersionCounts, slice_name
from fairshift.engine.harm import Measurement, Population, measure_gate, population
from fairshift.engine.inference import (
    ENGINE_ERRORS,
    FAILING,
    CellResult,
    failure_reason,
    infer,
    replace_outcome,
    sufficient,
    unmeasurable,
)
from fairshift.engine.ledger import Budget, fail_log_e_values

__all__ = [
    "FAILING",
    "CellResult",
    "Evaluation",
    "evaluate",
    "evidence",
    "excess",
    "sufficient",
]

SEVERITY_ORDER = OUTCOME_RANK


@dataclass(frozen=True)
class Evaluation:
    """Every cell of every gate after one look."""

    cells: tuple[CellResult, ...]
    gates: tuple[Gate, ...]
    budget: Budget = field(default_factory=Budget)
    alpha: float = 0.05  # the analysis alpha: the level a cell may pass at (intersection-union)

    def of_gate(self, gate: Gate) -> list[CellResult]:
        return [c for c in self.cells if c.gate.name == gate.name]

    def gate_outcome(self, gate: Gate) -> Outcome:
        """The worst outcome over the gate's cells; no cells at all is ``no-data``."""
        cells = self.of_gate(gate)
        if not cells:
            return Outcome.NO_DATA
        return min((c.outcome for c in cells), key=SEVERITY_ORDER.__getitem__)

    def worst(self, limit: int = 10) -> list[CellResult]:
        """The most severe cells first (then the closest to their bound)."""
        return sorted(self.cells, key=severity_key)[:limit]


def severity_key(cell: CellResult) -> tuple[int, int, float]:
    return (SEVERITY_ORDER[cell.outcome], 0 if cell.critical else 1, -excess(cell))


def excess(cell: CellResult) -> float:
    """How far the estimate lies beyond (positive) or within (negative) the acceptable region."""
    estimate = cell.measurement.estimate
    if estimate is None:
        return -math.inf
    low, high = cell.measurement.acceptable
    return max(low - estimate, estimate - high)


# --- multiplicity ---------------------------------------------------------------------------


PRIMARY_SHARE = 0.8
"""The share of the rollout's ``alpha`` that the cells of its ``primary`` gates split (when it
declares some and also has other critical cells); the other critical cells split the rest."""


@dataclass(frozen=True)
class FamilyAlphas:
    """Per-cell alpha: weighted Bonferroni over critical cells, plain over warning cells.

    The critical cells' alphas sum to at most the rollout's ``alpha`` whatever the weights,
    so the chance that any of them falsely fails stays within it (the union bound).
    """

    primary: float
    critical: float
    warning: float
    weighted: bool = True

    def of(self, m: Measurement) -> float:
        if not m.gate.critical:
            return self.warning
        return self.primary if m.gate.primary and self.weighted else self.critical


def family_alphas(
    measurements: Sequence[Measurement], alpha: float, weighted: bool = True
) -> FamilyAlphas:
    """Split ``alpha`` over the judged (not point-only) cells; see ``PRIMARY_SHARE``.

    ``weighted=False`` ignores ``primary`` (a single look, whose Holm step is unweighted).
    """
    judged = [m for m in measurements if not m.point_only]
    primary = sum(1 for m in judged if m.gate.critical and m.gate.primary and weighted)
    others = sum(1 for m in judged if m.gate.critical and not (m.gate.primary and weighted))
    warning = sum(1 for m in judged if not m.gate.critical)
    primary_budget = alpha if others == 0 else (PRIMARY_SHARE * alpha if primary else 0.0)
    return FamilyAlphas(
        primary=primary_budget / max(primary, 1),
        critical=(alpha - primary_budget) / max(others, 1),
        warning=alpha / max(warning, 1),
        weighted=weighted,
    )


def fail_side_e_value(cell: CellResult) -> float:
    """Anytime evidence that the cell is beyond its acceptable region (the larger side)."""
    m = cell.measurement
    if cell.outcome in (Outcome.INSUFFICIENT, Outcome.NO_DATA) or m.estimate is None:
        return 0.0
    if m.variance is None:
        return math.inf if cell.outcome in FAILING else 0.0
    low, high = m.acceptable
    taus = sequential.taus_for_margin(m.margin_scale, cell.alpha)
    values = [0.0]
    if math.isfinite(high):
        values.append(sequential.grid_e_value(m.estimate, m.variance, high, taus, "greater"))
    if math.isfinite(low):
        values.append(sequential.grid_e_value(m.estimate, m.variance, low, taus, "less"))
    return max(values)


def fail_side_p_value(cell: CellResult) -> float:
    """A one-sided fixed-sample (Wald) p-value that the cell is beyond its region."""
    from scipy.stats import norm

    m = cell.measurement
    if m.estimate is None or m.variance is None or m.variance <= 0:
        return 0.0 if cell.outcome in FAILING else 1.0
    low, high = m.acceptable
    sd = math.sqrt(m.variance)
    p_values = [1.0]
    if math.isfinite(high):
        p_values.append(float(norm.sf((m.estimate - high) / sd)))
    if math.isfinite(low):
        p_values.append(float(norm.sf((low - m.estimate) / sd)))
    return min(p_values)


def apply_warning_fdr(cells: list[CellResult], alpha: float, single_look: bool) -> list[CellResult]:
    """Warning cells: warn exactly those that BH (or e-BH) rejects at ``alpha``."""
    indices = [i for i, c in enumerate(cells) if not c.critical and not c.measurement.point_only]
    judged = [i for i in indices if cells[i].outcome not in (Outcome.INSUFFICIENT,)]
    if not judged:
        return cells
    if single_look:
        rejected = multiplicity.benjamini_hochberg(
            [fail_side_p_value(cells[i]) for i in judged], alpha
        )
    else:
        rejected = multiplicity.e_benjamini_hochberg(
            [fail_side_e_value(cells[i]) for i in judged], alpha
        )
    result = list(cells)
    flagged = sum(rejected)
    for position, index in enumerate(judged):
        cell = result[index]
        if rejected[position] and cell.outcome is not Outcome.WARN:
            result[index] = fdr_warning(cell, flagged * alpha / len(judged), single_look)
        elif not rejected[position] and cell.outcome is Outcome.WARN:
            result[index] = CellResult(
                cell.measurement,
                cell.lower,
                cell.upper,
                Outcome.PENDING,
                cell.measurement.note,
                cell.alpha,
            )
    return result


def fdr_warning(cell: CellResult, level: float, single_look: bool) -> CellResult:
    """A warning cell flagged by (e-)BH, with bounds and a reason that say why."""
    m = cell.measurement
    if not single_look or m.estimate is None:
        reason = "flagged by e-BH across warning cells (anytime evidence)"
        reason += f"; {m.note}" if m.note else ""
        return CellResult(m, cell.lower, cell.upper, Outcome.WARN, reason, cell.alpha)
    ci = intervals.wald_interval(m.estimate, m.variance, 2 * level)
    reason = failure_reason(
        m, ci.lower, ci.upper, f"Benjamini-Hochberg: Wald bound at alpha {level:.3g}"
    )
    return CellResult(m, ci.lower, ci.upper, Outcome.WARN, reason, level)


def apply_holm(cells: list[CellResult], alpha: float) -> list[CellResult]:
    """Single look: critical cells fail exactly when Holm rejects them."""
    indices = [
        i
        for i, c in enumerate(cells)
        if c.critical and not c.measurement.point_only and c.outcome is not Outcome.INSUFFICIENT
    ]
    if not indices:
        return cells
    p_values = [fail_side_p_value(cells[i]) for i in indices]
    rejected = multiplicity.holm(p_values, alpha)
    result = list(cells)
    ranked = sorted(range(len(indices)), key=p_values.__getitem__)
    for rank, position in enumerate(ranked):
        index = indices[position]
        if rejected[position] and result[index].outcome is not Outcome.FAIL:
            level = alpha / (len(indices) - rank)
            result[index] = holm_failure(
                result[index], level, f"Holm, step {rank + 1} of {len(indices)}"
            )
    return result


def holm_failure(cell: CellResult, level: float, step: str) -> CellResult:
    """A cell Holm rejects at ``level``: shown with the Wald bounds at that level, which Holm's
    p-value puts beyond the acceptable region, so the bounds say why it fails."""
    m = cell.measurement
    assert m.estimate is not None
    ci = intervals.wald_interval(m.estimate, m.variance, 2 * level)
    reason = failure_reason(m, ci.lower, ci.upper, f"{step}: Wald bound at alpha {level:.3g}")
    return CellResult(m, ci.lower, ci.upper, Outcome.FAIL, reason, level)


# --- the whole look -------------------------------------------------------------------------


def evaluate(
    analysis: Analysis,
    stable: VersionCounts,
    candidate: VersionCounts,
    *,
    single_look: bool = False,
    gates: Sequence[Gate] | None = None,
    refine: Callable[[Measurement], Measurement] | None = None,
    carried: Mapping[str, float] | None = None,
) -> Evaluation:
    """Measure and judge every gate on every slice.

    ``refine`` may replace a measurement before inference (the offline gate's paired tests,
    when both files decided the same rows). ``carried`` is the candidate revision's ledger
    from its closed analysis windows (``Evaluation.budget.folded()`` of the last look of each,
    see ``engine.ledger``): critical cells then fail on the evidence of every window together,
    so the whole lifecycle shares one false-rollback budget.
    """
    chosen = tuple(gates if gates is not None else analysis.gates)
    s_like, c_like = comparable(stable, candidate)
    groups = (population(s_like, analysis.slices), population(c_like, analysis.slices))
    measurements = [
        m for gate in chosen for m in guarded_measure(gate, analysis, s_like, c_like, groups)
    ]
    if refine is not None:
        measurements = [refine(m) for m in measurements]
    alphas = family_alphas(measurements, analysis.alpha, weighted=not single_look)
    cells = [
        infer(
            m,
            alphas.of(m),
            analysis.slices.min_samples,
            single_look,
            pass_alpha=analysis.alpha,
        )
        for m in measurements
    ]
    cells = apply_warning_fdr(cells, analysis.alpha, single_look)
    if single_look:
        cells = apply_holm(cells, analysis.alpha)
    budget = Budget()
    if not single_look:  # the offline gate reports groups a file lost on its own
        cells, budget = apply_ledger(cells, carried or {})
        cells.extend(sample_ratio_cells(stable, candidate, analysis))
    return Evaluation(tuple(cells), chosen, budget, analysis.alpha)


def apply_ledger(
    cells: list[CellResult], carried: Mapping[str, float]
) -> tuple[list[CellResult], Budget]:
    """Critical cells judged on the evidence carried from closed windows plus this one's."""
    current: dict[str, float] = {}
    thresholds: dict[str, float] = {}
    judged = list(cells)
    for index, cell in enumerate(cells):
        if not cell.critical or cell.outcome in (Outcome.INSUFFICIENT, Outcome.NO_DATA):
            continue
        values = fail_log_e_values(cell.measurement, cell.alpha)
        current.update(values)
        thresholds.update({key: math.log(1.0 / cell.alpha) for key in values})
        if not any(key in carried for key in values):
            continue  # nothing carried: this window's confidence sequence decides
        budget = Budget(carried, values, thresholds)
        if any(budget.crossed(key) for key in values):
            reason = "the evidence of every analysis window of this revision crossed the bound"
            judged[index] = CellResult(
                cell.measurement, cell.lower, cell.upper, Outcome.FAIL, reason, cell.alpha
            )
        elif cell.outcome is Outcome.FAIL:
            judged[index] = replace_outcome(cell, Outcome.PENDING)
    return judged, Budget(carried, current, thresholds)


SAMPLE_RATIO_GATE = Gate(
    name="sample-ratio",
    query="each slice's share of decisions, candidate against stable",
    max=0.0,
    severity="warning",
)
"""Not a user's gate: the name under which sample-ratio mismatches are reported."""


def sample_ratio_cells(
    stable: VersionCounts, candidate: VersionCounts, analysis: Analysis
) -> list[CellResult]:
    """A warning cell for every slice whose share of traffic differs between the versions."""
    found = []
    for check in sample_ratios(stable, candidate, analysis.slices):
        if not check.mismatched:
            continue
        s, c = check.stable_share.value, check.candidate_share.value
        m = Measurement(
            gate=SAMPLE_RATIO_GATE,
            slice=check.slice,
            reference=None,
            stable_value=s,
            candidate_value=c,
            estimate=None if s is None or c is None else c - s,
            variance=None,
            acceptable=(0.0, 0.0),
            stable_samples=check.stable_share.successes,
            candidate_samples=check.candidate_share.successes,
            note=check.reason,
        )
        found.append(CellResult(m, None, None, Outcome.WARN, check.reason, SAMPLE_RATIO_ALPHA))
    return found


def guarded_measure(
    gate: Gate,
    analysis: Analysis,
    stable: VersionCounts,
    candidate: VersionCounts,
    groups: tuple[Population, Population],
) -> list[Measurement]:
    """The gate's measurements, or one no-data cell saying why they could not be taken."""
    try:
        return measure_gate(gate, analysis.slices, stable, candidate, populations=groups)
    except ENGINE_ERRORS as error:
        return [unmeasurable(gate, error)]


def evidence(cell: CellResult) -> GateEvidence:
    """The status/report form of a cell, on the metric's natural scale."""
    m = cell.measurement
    to_natural = math.exp if m.log_scale else (lambda x: x)

    def natural(x: float | None) -> float | None:
        if x is None or not math.isfinite(x):
            return None
        return round(to_natural(x), 6)

    return GateEvidence(
        gate=m.gate.name,
        metric=m.gate.metric or "query",
        severity=m.gate.severity,
        slice=slice_name(m.slice),
        reference=slice_name(m.reference) if m.reference is not None else None,
        stable=rounded(m.stable_value),
        candidate=rounded(m.candidate_value),
        estimate=natural(m.estimate),
        lower=natural(cell.lower),
        upper=natural(cell.upper),
        bound=m.gate.bound_kind,
        threshold=m.gate.threshold,
        stable_samples=round(m.stable_samples, 3) if math.isfinite(m.stable_samples) else 0,
        candidate_samples=round(m.candidate_samples, 3)
        if math.isfinite(m.candidate_samples)
        else 0,
        outcome=cell.outcome,
        reason=cell.reason,
    )


def rounded(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 6)
