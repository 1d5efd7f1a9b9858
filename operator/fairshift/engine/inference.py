"""Inference on one cell: its bounds at its share of alpha, and its outcome with a reason.

Sequential looks (the operator, every interval) use always-valid one-sided bounds from
``engine.sequential``; a single look (``fairshift gate``) uses fixed-sample intervals (Wilson,
Newcombe, Katz). A cell fails when its bounds lie beyond the acceptable region, passes when
they lie within it, and is pending otherwise; below ``minSamples`` it is insufficient, and an
error on its counts is a no-data outcome, never a crash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fairshift.api.analysis import Gate
from fairshift.api.status import Outcome
from fairshift.engine import intervals, sequential
from fairshift.engine.counts import OVERALL
from fairshift.engine.intervals import ConfidenceInterval
from fairshift.engine.measures.base import Measurement, is_relative

FAILING = (Outcome.FAIL, Outcome.WARN)


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
    taus = sequential.taus_for_margin(m.margin_scale, alpha)
    ci = sequential.grid_bounds(m.estimate, m.variance, alpha, taus)
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


def infer(
    m: Measurement,
    family_alpha: float,
    min_samples: int,
    single_look: bool,
    pass_alpha: float | None = None,
) -> CellResult:
    """The cell's bounds and outcome; an error on its counts is a no-data outcome, never a crash.

    ``pass_alpha`` (sequential looks): the level at which the cell may *pass*. Promotion needs
    every cell to pass, so the chance to promote a candidate with a harmful cell is at most the
    chance that this cell passes (an intersection-union test): passing needs no Bonferroni
    share, only failing (a rollback needs just one cell) does.
    """
    try:
        result = infer_unguarded(m, family_alpha, min_samples, single_look)
        if pass_alpha is not None and result.outcome is Outcome.PENDING and not single_look:
            return passed_at(result, pass_alpha)
        return result
    except ENGINE_ERRORS as error:
        reason = f"engine error, the counts cannot be judged: {error}"
        return CellResult(m, None, None, Outcome.NO_DATA, reason, cell_alpha(m, family_alpha))


def passed_at(cell: CellResult, pass_alpha: float) -> CellResult:
    """A pending cell passes when its always-valid bounds at ``pass_alpha`` lie in its region."""
    m = cell.measurement
    level = min(pass_alpha, 0.25)
    lower, upper = sequential_bounds(m, level)
    low, high = m.acceptable
    if lower >= low and upper <= high:
        reason = f"within the bound (always-valid bounds at alpha {level:.3g})"
        return CellResult(m, lower, upper, Outcome.PASS, reason, cell.alpha)
    return cell


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
    if outcome in FAILING and not single_look and not worse_than_stable(m, lower, alpha):
        return CellResult(m, lower, upper, Outcome.PENDING, SHARED_SHIFT, alpha)
    if outcome in FAILING:
        how = "one-sided bound" if single_look else "always-valid bound"
        reason = failure_reason(m, lower, upper, f"{how} at alpha {alpha:.3g}")
    return CellResult(m, lower, upper, outcome, reason, alpha)


SHARED_SHIFT = (
    "beyond the bound, but surely no worse than stable, which is beyond it too: a shift "
    "both versions share (e.g. the traffic mix of the day) is not the candidate's regression"
)


def worse_than_stable(m: Measurement, lower: float, alpha: float) -> bool:
    """An absolute bound fails only where the candidate is also surely worse than stable.

    Counts pooled over a window mix the day's traffic shares; when the mix moves, a pooled
    value can leave its bound for both versions alike (Simpson's paradox). The candidate is
    judged against ``max(bound, stable)``: both the bound and stable must be surely beaten,
    each at the cell's ``alpha`` (an intersection-union test, so still at ``alpha``). Without
    stable's value on the test scale the bound alone decides.
    """
    versus = m.versus_stable
    if versus is None or versus[1] <= 0:
        return True
    difference, variance = versus
    taus = sequential.taus_for_margin(m.margin_scale, alpha)
    bounds = sequential.grid_bounds(difference, variance, alpha, taus)
    above = lower > m.acceptable[1]
    return bounds.lower > 0 if above else bounds.upper < 0


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


def replace_outcome(cell: CellResult, outcome: Outcome) -> CellResult:
    return CellResult(cell.measurement, cell.lower, cell.upper, outcome, cell.reason, cell.alpha)
