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
from fairshift.engine.counts import OVERALL, VersionCounts, slice_name
from fairshift.engine.harm import Measurement, Population, measure_gate, population
from fairshift.engine.intervals import ConfidenceInterval
from fairshift.engine.ledger import Budget, fail_log_e_values
from fairshift.engine.measures.base import is_relative

FAILING = (Outcome.FAIL, Outcome.WARN)
SEVERITY_ORDER = OUTCOME_RANK


@dataclass(frozen=True)
class CellResult:
    """A measurement with its bounds and outcome."""

    measurement: Measurement
    lower: float | None
    upper: float | None
    outcome: Outcome
    reason: str
    alpha: float

    @property
    def gate(self) -> Gate:
        return self.measurement.gate

    @property
    def critical(self) -> bool:
        return self.measurement.gate.critical


@dataclass(frozen=True)
class Evaluation:
    """Every cell of every gate after one look."""

    cells: tuple[CellResult, ...]
    gates: tuple[Gate, ...]
    budget: Budget = field(default_factory=Budget)

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


# --- inference ------------------------------------------------------------------------------


def sufficient(m: Measurement, min_samples: int) -> str | None:
    """Why a cell cannot be judged yet, or None when it can."""
    if m.point_only:
        return None if m.estimate is not None else (m.note or "the query returned no data")
    if m.candidate_samples < min_samples:
        return f"candidate has {m.candidate_samples:.0f} of {min_samples} samples"
    if m.needs_stable and m.stable_samples < min_samples:
        return f"stable has {m.stable_samples:.0f} of {min_samples} samples"
    if m.estimate is None or (m.variance is None and m.uniform_band is None):
        return "the metric is undefined for this slice (0/0)"
    return None


def sequential_bounds(m: Measurement, alpha: float) -> tuple[float, float]:
    """One-sided always-valid bounds, each at level ``alpha``."""
    assert m.estimate is not None
    if m.uniform_band is not None:
        width = m.uniform_band(alpha)
        return m.estimate - width, m.estimate + width
    tau = sequential.tau_for_margin(m.margin_scale, alpha)
    ci = sequential.normal_mixture_bounds(m.estimate, m.variance, alpha, tau)
    return ci.lower, ci.upper


def fixed_bounds(m: Measurement, alpha: float) -> tuple[float, float]:
    """One-sided fixed-sample bounds at ``alpha`` each (a two-sided ``2 alpha`` interval)."""
    assert m.estimate is not None
    if m.uniform_band is not None:
        width = m.uniform_band(alpha)
        return m.estimate - width, m.estimate + width
    two_sided = 2 * alpha
    ci: ConfidenceInterval | None = None
    props = m.fixed.proportions
    if m.fixed.method == "wilson" and props:
        ci = intervals.wilson_interval(props[0], two_sided)
    elif m.fixed.method == "newcombe" and len(props) == 2:
        ci = intervals.newcombe_difference_interval(props[0], props[1], two_sided)
    elif m.fixed.method == "katz" and m.log_scale:
        width = intervals.two_sided_z(two_sided) * math.sqrt(m.variance or math.inf)
        return m.estimate - width, m.estimate + width
    if ci is None:
        ci = intervals.wald_interval(m.estimate, m.variance, two_sided)
    return ci.lower, ci.upper


def judge(m: Measurement, lower: float, upper: float) -> Outcome:
    """fail when surely outside the acceptable region, pass when surely inside."""
    low, high = m.acceptable
    if lower > high or upper < low:
        return Outcome.FAIL if m.gate.critical else Outcome.WARN
    if lower >= low and upper <= high:
        return Outcome.PASS
    return Outcome.PENDING


def judge_point(m: Measurement) -> Outcome:
    assert m.estimate is not None
    low, high = m.acceptable
    if low <= m.estimate <= high:
        return Outcome.PASS
    return Outcome.FAIL if m.gate.critical else Outcome.WARN


def cell_alpha(m: Measurement, family_alpha: float) -> float:
    """A two-sided acceptable region (maxChange) splits the cell's alpha between its sides."""
    low, high = m.acceptable
    return family_alpha / 2 if math.isfinite(low) and math.isfinite(high) else family_alpha


ENGINE_ERRORS = (ValueError, ArithmeticError)
"""What the statistics may raise on counts they cannot judge; a cell gets no-data instead."""


def infer(m: Measurement, family_alpha: float, min_samples: int, single_look: bool) -> CellResult:
    """The cell's bounds and outcome; an error on its counts is a no-data outcome, never a crash."""
    try:
        return infer_unguarded(m, family_alpha, min_samples, single_look)
    except ENGINE_ERRORS as error:
        reason = f"engine error, the counts cannot be judged: {error}"
        return CellResult(m, None, None, Outcome.NO_DATA, reason, cell_alpha(m, family_alpha))


def unmeasurable(gate: Gate, error: Exception) -> Measurement:
    """A placeholder cell for a gate whose measurement raised on the counts it was given."""
    return Measurement(
        gate=gate,
        slice=OVERALL,
        reference=None,
        stable_value=None,
        candidate_value=None,
        estimate=None,
        variance=None,
        acceptable=(-math.inf, math.inf),
        stable_samples=0.0,
        candidate_samples=0.0,
        point_only=True,
        note=f"engine error, the gate cannot be measured on these counts: {error}",
    )


def infer_unguarded(
    m: Measurement, family_alpha: float, min_samples: int, single_look: bool
) -> CellResult:
    alpha = cell_alpha(m, family_alpha)
    why_not = sufficient(m, min_samples)
    if why_not is not None:
        outcome = Outcome.NO_DATA if m.point_only else Outcome.INSUFFICIENT
        return CellResult(m, None, None, outcome, why_not, alpha)
    if m.point_only:
        return CellResult(m, m.estimate, m.estimate, judge_point(m), m.note, alpha)
    bounds = fixed_bounds if single_look else sequential_bounds
    lower, upper = bounds(m, alpha)
    outcome = judge(m, lower, upper)
    reason = m.note
    if outcome in FAILING:
        how = "one-sided bound" if single_look else "always-valid bound"
        reason = failure_reason(m, lower, upper, f"{how} at alpha {alpha:.3g}")
    return CellResult(m, lower, upper, outcome, reason, alpha)


def failure_reason(m: Measurement, lower: float, upper: float, how: str) -> str:
    """Why a cell fails, in the terms its displayed bounds use (the metric's natural scale)."""
    low, high = m.acceptable
    to_natural = math.exp if m.log_scale else (lambda x: x)
    what = "the change" if is_relative(m.gate) else "the value"
    if lower > high:
        side = f"{what}'s lower bound {to_natural(lower):.4g} is above the most allowed"
        side += f", {to_natural(high):.4g}"
    else:
        side = f"{what}'s upper bound {to_natural(upper):.4g} is below the least allowed"
        side += f", {to_natural(low):.4g}"
    return f"{side} ({how})" + (f"; {m.note}" if m.note else "")


# --- multiplicity ---------------------------------------------------------------------------


def family_alphas(measurements: Sequence[Measurement], alpha: float) -> tuple[float, float]:
    """Per-cell alpha for critical cells (Bonferroni) and for warning cells."""
    critical = sum(1 for m in measurements if m.gate.critical and not m.point_only)
    warning = sum(1 for m in measurements if not m.gate.critical and not m.point_only)
    return alpha / max(critical, 1), alpha / max(warning, 1)


def fail_side_e_value(cell: CellResult) -> float:
    """Anytime evidence that the cell is beyond its acceptable region (the larger side)."""
    m = cell.measurement
    if cell.outcome in (Outcome.INSUFFICIENT, Outcome.NO_DATA) or m.estimate is None:
        return 0.0
    if m.variance is None:
        return math.inf if cell.outcome in FAILING else 0.0
    low, high = m.acceptable
    tau = sequential.tau_for_margin(m.margin_scale, cell.alpha)
    values = [0.0]
    if math.isfinite(high):
        values.append(sequential.mixture_e_value(m.estimate, m.variance, high, tau, "greater"))
    if math.isfinite(low):
        values.append(sequential.mixture_e_value(m.estimate, m.variance, low, tau, "less"))
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


def replace_outcome(cell: CellResult, outcome: Outcome) -> CellResult:
    return CellResult(cell.measurement, cell.lower, cell.upper, outcome, cell.reason, cell.alpha)


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
    critical_alpha, warning_alpha = family_alphas(measurements, analysis.alpha)
    cells = [
        infer(
            m,
            critical_alpha if m.gate.critical else warning_alpha,
            analysis.slices.min_samples,
            single_look,
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
    return Evaluation(tuple(cells), chosen, budget)


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
