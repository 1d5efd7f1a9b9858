"""The continuous guard: change detection on a promoted model's gates, for an unbounded horizon.

After promotion the operator keeps judging the live model. At every *look* (e.g. every five
minutes) it passes the increment of the model's counts since the previous look; each gate is
measured on that increment alone by the same code the rollout gates use
(``engine.harm.measure_gate``), with the stable model's evidence frozen at promotion as the
*reference* (the "stable" side of relative gates). Judging each look's increment on its own
keeps a traffic-mix change over the day out of the verdict (nothing is pooled over time).

Per look, gate and slice the measurement gives an estimate ``X`` of the harm on its test
scale, its variance ``V`` and the acceptable region ``[low, high]``. For each finite side and
each shift ``d`` of a small grid (multiples of the gate's margin) the look's likelihood ratio

    e = exp( d (X - high) / V - d^2 / (2 V) )        (mirrored for the low side)

has expectation at most 1 whenever the true harm is within the region (Gaussian model of the
estimate, as in ``engine.sequential``): it is an e-value. The Shiryaev-Roberts statistic
``R_t = (1 + R_{t-1}) e_t`` (``R_0 = 0``) then makes ``R_t - t`` a supermartingale, so
alarming when ``R_t >= A`` gives an average run length to a false alarm of at least ``A``
looks (Shin, Ramdas & Rinaldo 2023, e-detectors; Pollak 1987). The mean of the statistics
over the shift grid, and a weighted sum over all detectors, keep that property; so with
``N`` detectors (one per gate, slice and finite side) each one alarms at ``N A``, and the
model's first false alarm comes after at least ``A`` looks on average, whatever the number of
gates and slices. ``A`` is the declared time between false alarms (90 days by default) in
looks.

Two thresholds grade each cell: **breached** at the declared false-alarm time (the high
breach, an immediate response) and **warning** at a shorter one (7 days by default: a
preventive check and a notification). The state is ``log(1 + R)`` per detector and shift: a
small mapping of non-negative floats per gate and slice that the operator persists in status
and restores after a restart. After a breach has been handled the operator restarts the
detector (``GuardPlan.initial_state``); the declared rate is that of this renewal process.

A look in which a cell lacks ``minSamples`` (or its metric is undefined) leaves that cell's
statistic unchanged: a look without evidence is not counted, which can only lengthen the
time to a false alarm. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, field
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.special import logsumexp

from fairshift.api.analysis import Gate, Slices
from fairshift.engine.counts import SliceKey, VersionCounts, slice_name
from fairshift.engine.gates import sufficient
from fairshift.engine.harm import Measurement, Population, measure_gate, population

FloatArray = npt.NDArray[np.float64]
Side = Literal["upper", "lower"]
SECONDS_PER_DAY = 86_400.0
LOOKS_KEY = "looks"
KEY_SEPARATOR = "|"


class Grade(StrEnum):
    """The guard's verdict on one gate and slice, and on the whole model (the worst cell)."""

    HEALTHY = "healthy"
    WARNING = "warning"
    BREACHED = "breached"


GRADE_ORDER = {Grade.HEALTHY: 0, Grade.WARNING: 1, Grade.BREACHED: 2}


# --- the declared false-alarm rate ----------------------------------------------------------


@dataclass(frozen=True)
class GuardPolicy:
    """How often the guard looks and how rarely it may raise a false alarm.

    ``breach_days``: at most one false breach per this many days per model (on average);
    ``warning_days``: the same for warnings. ``shifts``: the harms beyond the acceptable
    region the detector is tuned for, as multiples of the gate's margin (a mixture over them,
    so small and large drifts are both caught quickly).
    """

    look_seconds: float
    breach_days: float = 90.0
    warning_days: float = 7.0
    shifts: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.look_seconds) and self.look_seconds > 0):
            raise ValueError(f"the look cadence must be positive seconds, got {self.look_seconds}")
        if not (math.isfinite(self.breach_days) and self.breach_days > 0):
            raise ValueError(f"breach_days must be positive, got {self.breach_days}")
        if not 0 < self.warning_days <= self.breach_days:
            raise ValueError(
                f"warning_days must be in (0, breach_days={self.breach_days}], "
                f"got {self.warning_days}"
            )
        if not self.shifts or any(not (math.isfinite(s) and s > 0) for s in self.shifts):
            raise ValueError(f"shifts must be positive multiples of the margin, got {self.shifts}")

    def looks_in(self, days: float) -> float:
        """How many looks ``days`` hold at this cadence: the average run length asked for."""
        return max(days * SECONDS_PER_DAY / self.look_seconds, 1.0)


def log_threshold(average_run_length: float, detectors: int) -> float:
    """``log(1 + N A)``: a detector alarms when its ``log(1 + R)`` reaches it.

    With ``N`` detectors sharing an average run length of ``A`` looks, each alarms at
    ``R >= N A``: any one alarming implies ``sum_k R_k / N >= A``, an e-detector whose run
    length under no change is at least ``A`` on average.
    """
    if detectors < 1:
        raise ValueError("a guard needs at least one detector")
    return math.log1p(detectors * average_run_length)


# --- the statistic, element-wise (the engine and the benchmark share it) --------------------


def log_e_values(excess: npt.ArrayLike, variance: npt.ArrayLike, shift: float) -> FloatArray:
    """``log e = d x / V - d^2 / (2 V)`` for an estimate ``x`` beyond the boundary (``excess``).

    ``excess`` is ``X - high`` for the upper side and ``low - X`` for the lower side; under
    any harm within the region its expectation is at most 1 (Gaussian estimate).
    """
    x = np.asarray(excess, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    if np.any(~(v > 0.0)):
        raise ValueError("variances must be positive")
    values: FloatArray = shift * x / v - shift * shift / (2.0 * v)
    return values


def shiryaev_roberts_step(log1p_r: npt.ArrayLike, log_e: npt.ArrayLike) -> FloatArray:
    """One look of ``R_t = (1 + R_{t-1}) e_t``, kept as ``log(1 + R)`` (0 at the start)."""
    s = np.asarray(log1p_r, dtype=np.float64)
    stepped: FloatArray = np.logaddexp(0.0, s + np.asarray(log_e, dtype=np.float64))
    return stepped


def mixture_log1p(log1p_r: npt.ArrayLike, axis: int = -1) -> FloatArray:
    """``log(1 + mean R)`` over the shift grid (``axis``) from the per-shift ``log(1 + R)``."""
    s = np.asarray(log1p_r, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_r = s + np.log(-np.expm1(-s))  # log R = log((1 + R) - 1); -inf at R = 0
    log_mean = logsumexp(log_r, axis=axis) - math.log(s.shape[axis])
    mixed: FloatArray = np.logaddexp(0.0, log_mean)
    return mixed


# --- the state the operator persists --------------------------------------------------------


@dataclass(frozen=True)
class GuardState:
    """``log(1 + R)`` per detector and shift, and the looks judged, per gate and slice.

    ``cells`` maps ``"<gate>|<slice>"`` to ``{"upper@1": 3.2, "lower@1": 0.0, ..., "looks":
    12.0}``; all values are finite and non-negative. ``to_dict``/``from_dict`` are the
    status form.
    """

    cells: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {key: dict(values) for key, values in sorted(self.cells.items())}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> GuardState:
        """Parse the status form; a malformed entry is an error that names it."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"guard state must be a mapping, got {type(raw).__name__}")
        cells: dict[str, dict[str, float]] = {}
        for key, values in raw.items():
            if not isinstance(values, Mapping):
                raise ValueError(f"guard state of {key!r} must be a mapping of numbers")
            cells[str(key)] = {str(name): _state_number(key, name, v) for name, v in values.items()}
        return cls(cells)


def _state_number(key: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"guard state {key!r}/{name!r} must be a number, got {value!r}")
    number = float(value)
    if not (math.isfinite(number) and number >= 0.0):
        raise ValueError(f"guard state {key!r}/{name!r} must be finite and >= 0, got {value!r}")
    return number


def cell_key(gate: str, key: SliceKey) -> str:
    """``"<gate>|<slice>"``, e.g. ``equal-opportunity|sex=F``."""
    return f"{gate}{KEY_SEPARATOR}{slice_name(key)}"


def shift_key(side: Side, shift: float) -> str:
    return f"{side}@{shift:g}"


# --- the plan: which cells are guarded, at which thresholds ---------------------------------


@dataclass(frozen=True)
class GuardedCell:
    """One gate on one slice, with the sides of its acceptable region the guard watches."""

    key: str
    gate: Gate
    slice: SliceKey
    sides: tuple[Side, ...]


@dataclass(frozen=True)
class CellHealth:
    """One gate on one slice after a look.

    ``level`` is ``log(1 + R) / log(1 + N A_breach)`` of the worse side: 1 or more is a
    breach (a dashboard-friendly distance to the alarm). ``judged`` is False when the look
    held too little data for this cell (its statistic did not move); ``reason`` says why.
    """

    key: str
    gate: str
    slice: SliceKey
    grade: Grade
    level: float
    judged: bool
    reason: str
    estimate: float | None
    acceptable: tuple[float, float]
    samples: float


@dataclass(frozen=True)
class GuardLook:
    """What one look found: the next state, every guarded cell, and the worst grade."""

    state: GuardState
    cells: tuple[CellHealth, ...]

    @property
    def grade(self) -> Grade:
        return max(
            (c.grade for c in self.cells), key=GRADE_ORDER.__getitem__, default=Grade.HEALTHY
        )

    def worst(self, limit: int = 10) -> list[CellHealth]:
        """The cells closest to (or beyond) a breach first."""
        return sorted(self.cells, key=lambda c: (-GRADE_ORDER[c.grade], -c.level))[:limit]


@dataclass(frozen=True)
class GuardPlan:
    """The guarded cells of a promoted model and their thresholds.

    Built from the gates, the slices, the frozen reference and the policy alone, so a
    restarted operator rebuilds the same plan and continues from the persisted state.
    ``unguarded`` names gates the guard cannot judge statistically, with the reason.
    """

    gates: tuple[Gate, ...]
    slices: Slices
    reference: VersionCounts
    reference_population: Population
    policy: GuardPolicy
    cells: tuple[GuardedCell, ...]
    unguarded: Mapping[str, str]

    @property
    def detectors(self) -> int:
        return sum(len(c.sides) for c in self.cells)

    @property
    def breach_log_threshold(self) -> float:
        return log_threshold(self.policy.looks_in(self.policy.breach_days), self.detectors)

    @property
    def warning_log_threshold(self) -> float:
        return log_threshold(self.policy.looks_in(self.policy.warning_days), self.detectors)

    def initial_state(self) -> GuardState:
        """A detector with no evidence yet (at the start, and after a breach was handled)."""
        return GuardState({c.key: _fresh_cell(c, self.policy.shifts) for c in self.cells})

    def look(self, state: GuardState, increment: VersionCounts) -> GuardLook:
        """Judge one look: ``increment`` holds the live model's counts since the last look.

        Cells of ``state`` that the plan does not hold are dropped; planned cells missing
        from it start afresh.
        """
        negative = negative_counts(increment)
        measured, failures = ({}, {}) if negative else self._measure(increment)
        next_cells: dict[str, dict[str, float]] = {}
        health: list[CellHealth] = []
        for cell in self.cells:
            fresh = _fresh_cell(cell, self.policy.shifts)
            stored = state.cells.get(cell.key, {})
            previous = {name: stored.get(name, 0.0) for name in fresh}
            m = measured.get(cell.key)
            why_not = negative or failures.get(cell.gate.name) or self._why_not_judged(m)
            values, report = self._judge(cell, previous, m, why_not)
            next_cells[cell.key] = values
            health.append(report)
        return GuardLook(GuardState(next_cells), tuple(health))

    def _measure(self, increment: VersionCounts) -> tuple[dict[str, Measurement], dict[str, str]]:
        """Every gate's measurements of the look, and the gates that could not be measured."""
        live = population(increment, self.slices)
        found: dict[str, Measurement] = {}
        failures: dict[str, str] = {}
        for gate in self.gates:
            try:
                measured = measure_gate(
                    gate,
                    self.slices,
                    self.reference,
                    increment,
                    populations=(self.reference_population, live),
                )
            except (ValueError, ArithmeticError) as error:
                failures[gate.name] = f"the look could not be measured: {error}"
                continue
            for m in measured:
                found[cell_key(gate.name, m.slice)] = m
        return found, failures

    def _why_not_judged(self, m: Measurement | None) -> str | None:
        if m is None:
            return "no decisions of this slice in the look"
        why_not = sufficient(m, self.slices.min_samples)
        if why_not is None and not _usable(m.estimate, m.variance):
            why_not = "the measurement has no usable estimate and variance"
        return why_not

    def _judge(
        self,
        cell: GuardedCell,
        values: dict[str, float],
        m: Measurement | None,
        why_not: str | None,
    ) -> tuple[dict[str, float], CellHealth]:
        if m is not None and why_not is None:
            values = _advance(cell, values, m, self.policy.shifts)
        level = _level(cell, values, self.policy.shifts) / self.breach_log_threshold
        grade = Grade.HEALTHY
        if level * self.breach_log_threshold >= self.warning_log_threshold:
            grade = Grade.WARNING
        if level >= 1.0:
            grade = Grade.BREACHED
        return values, CellHealth(
            key=cell.key,
            gate=cell.gate.name,
            slice=cell.slice,
            grade=grade,
            level=level,
            judged=why_not is None,
            reason=why_not or "",
            estimate=None if m is None else m.estimate,
            acceptable=(-math.inf, math.inf) if m is None else m.acceptable,
            samples=0.0 if m is None else m.candidate_samples,
        )


def negative_counts(increment: VersionCounts) -> str | None:
    """Why an increment cannot be judged because a count in it is negative, or None.

    Counts between two readings are never negative (a reset counts only the new reading);
    a negative one means cumulative readings were subtracted without that rule.
    """
    for key, cell in increment.cells.items():
        if min(astuple(cell)) < 0.0:
            return (
                f"the look's counts for {slice_name(key)} are negative: a counter reset must "
                "count only the new reading"
            )
    if increment.requests < 0.0 or increment.errors < 0.0:
        return "the look's request or error count is negative"
    return None


def _usable(estimate: float | None, variance: float | None) -> bool:
    return (
        estimate is not None
        and variance is not None
        and math.isfinite(estimate)
        and math.isfinite(variance)
        and variance > 0.0
    )


def _fresh_cell(cell: GuardedCell, shifts: Sequence[float]) -> dict[str, float]:
    values = {shift_key(side, s): 0.0 for side in cell.sides for s in shifts}
    values[LOOKS_KEY] = 0.0
    return values


def _advance(
    cell: GuardedCell, values: dict[str, float], m: Measurement, shifts: Sequence[float]
) -> dict[str, float]:
    """One Shiryaev-Roberts step of every side and shift of ``cell`` on measurement ``m``."""
    assert m.estimate is not None and m.variance is not None
    low, high = m.acceptable
    stepped = dict(values)
    for side in cell.sides:
        boundary = high if side == "upper" else low
        if not math.isfinite(boundary):
            continue  # this look's region is open on that side: no evidence against it
        excess = m.estimate - high if side == "upper" else low - m.estimate
        for s in shifts:
            name = shift_key(side, s)
            log_e = log_e_values([excess], [m.variance], s * m.margin_scale)
            stepped[name] = float(shiryaev_roberts_step([values.get(name, 0.0)], log_e)[0])
    stepped[LOOKS_KEY] = values.get(LOOKS_KEY, 0.0) + 1.0
    return stepped


def _level(cell: GuardedCell, values: Mapping[str, float], shifts: Sequence[float]) -> float:
    """``log(1 + mean R)`` of the worse side."""
    sides = [[values.get(shift_key(side, s), 0.0) for s in shifts] for side in cell.sides]
    return float(np.max(mixture_log1p(np.array(sides), axis=1)))


# --- building the plan ----------------------------------------------------------------------


def unguardable_reason(m: Measurement) -> str | None:
    """Why a measurement cannot feed a change detector, or None when it can."""
    if m.point_only:
        return "a PromQL gate has no variance to test; alert on it with its own rule"
    if m.uniform_band is not None:
        return "a KS gate has a band but no variance; guard drift with score_psi or score_js"
    return None


def _sides(acceptable: tuple[float, float]) -> tuple[Side, ...]:
    low, high = acceptable
    sides: list[Side] = []
    if math.isfinite(high):
        sides.append("upper")
    if math.isfinite(low):
        sides.append("lower")
    return tuple(sides)


def _gate_cells(
    gate: Gate, slices: Slices, reference: VersionCounts, ref_population: Population
) -> list[GuardedCell] | str:
    """The guarded cells of one gate, or why it has none."""
    cells: list[GuardedCell] = []
    for m in measure_gate(
        gate, slices, reference, reference, populations=(ref_population, ref_population)
    ):
        reason = unguardable_reason(m)
        if reason is not None:
            return reason
        if m.needs_stable and m.stable_samples < slices.min_samples:
            continue
        sides = _sides(m.acceptable)
        if sides:
            cells.append(GuardedCell(cell_key(gate.name, m.slice), gate, m.slice, sides))
    if not cells:
        return f"the reference holds no slice with {slices.min_samples} samples for this gate"
    return cells


def plan_guard(
    gates: Sequence[Gate], slices: Slices, reference: VersionCounts, policy: GuardPolicy
) -> GuardPlan:
    """The cells to guard: every gate on every slice the frozen reference has.

    The reference is measured against itself to list the slices and each cell's acceptable
    region. A relative gate needs the reference to hold ``minSamples`` of the slice; cells
    that do not are left out (they have nothing to compare with). Slices that appear only
    later are not guarded. Raises ValueError when nothing can be guarded.
    """
    ref_population = population(reference, slices)
    cells: list[GuardedCell] = []
    unguarded: dict[str, str] = {}
    for gate in gates:
        found = _gate_cells(gate, slices, reference, ref_population)
        if isinstance(found, str):
            unguarded[gate.name] = found
        else:
            cells.extend(found)
    if not cells:
        reasons = "; ".join(f"{name}: {why}" for name, why in unguarded.items())
        raise ValueError(f"nothing to guard: {reasons}")
    return GuardPlan(
        gates=tuple(gates),
        slices=slices,
        reference=reference,
        reference_population=ref_population,
        policy=policy,
        cells=tuple(cells),
        unguarded=unguarded,
    )
