"""The simulated production world of the guard benchmark: groups, traffic, labels and gates.

One slice attribute, ``group``, with three groups: ``A`` (the majority, the reference group),
``B`` (the group that drifts, 5% or 20% of traffic) and ``C`` (the rest). Every group has a
30% base rate, TPR 0.8 and FPR 0.1 until the drift. Shares follow a day/night cycle (up to
+-30%, out of phase between groups), shared by the reference and the live model. Half the
decisions get a label, ``label_delay`` after the decision.

The guarded gates are the equal-opportunity and equal-FPR gaps with a 2-point tolerance
(``maxIncrease: 0.02``, judged by magnitude, so both sides of each gap are watched): 2 gates x
2 non-reference groups x 2 sides = 8 detectors. The reference is the stable model's evidence
over the hour before promotion (the same rates, sampled: its noise is part of the result).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fairshift.api.analysis import Gate, Slices

FloatArray = npt.NDArray[np.float64]

ATTRIBUTE = "group"
GROUPS = ("A", "B", "C")
REFERENCE = 0  # index of the reference group (the majority)
BASE_RATE = 0.3
TPR = 0.8
FPR = 0.1
LABELLED = 0.5
MARGIN = 0.02
DAY_SWING = 0.3
LOOKS_PER_DAY = 288
GATE_METRICS = ("tpr_gap", "fpr_gap")
GATES = tuple(
    Gate.model_validate({"name": f"equal-{metric[:3]}", "metric": metric, "maxIncrease": MARGIN})
    for metric in GATE_METRICS
)
SLICES = Slices(attributes=[ATTRIBUTE], intersections=False, reference="majority")


@dataclass(frozen=True)
class Traffic:
    """Requests per second, the look cadence and the label delay."""

    rps: float
    look_seconds: float = 300.0
    label_delay_looks: int = 12  # one hour at five-minute looks
    reference_looks: int = 12  # the stable model's hour before promotion

    @property
    def per_look(self) -> float:
        return self.rps * self.look_seconds

    @property
    def looks_per_year(self) -> float:
        return 365.0 * 86_400.0 / self.look_seconds


@dataclass(frozen=True)
class Scenario:
    """A drift: group B's TPR falls by ``tpr_drop`` at ``start`` (in looks), or no drift."""

    name: str
    b_share: float
    tpr_drop: float = 0.0

    def base_shares(self) -> FloatArray:
        rest = 1.0 - self.b_share
        return np.array([0.7 * rest, self.b_share, 0.3 * rest])


def shares(scenario: Scenario, look: int) -> FloatArray:
    """Group shares at ``look``: a day/night cycle out of phase between groups, renormalised."""
    phase = 2.0 * math.pi * look / LOOKS_PER_DAY
    swing = 1.0 + DAY_SWING * np.sin(phase + np.array([0.0, math.pi, math.pi / 2]))
    weighted = scenario.base_shares() * swing
    normalised: FloatArray = weighted / weighted.sum()
    return normalised


def rates(scenario: Scenario, drifted: bool) -> tuple[FloatArray, FloatArray]:
    """TPR and FPR per group, before or after the drift."""
    tpr = np.full(len(GROUPS), TPR)
    if drifted:
        tpr[1] -= scenario.tpr_drop
    return tpr, np.full(len(GROUPS), FPR)


NULL_SHARES = (0.05, 0.20)
DROPS = (0.03, 0.05, 0.10, 0.20)


def drift_scenarios() -> list[Scenario]:
    return [
        Scenario(f"B {share:.0%}, TPR -{drop * 100:.0f} pt", share, drop)
        for share in NULL_SHARES
        for drop in DROPS
    ]


def null_scenario(b_share: float) -> Scenario:
    return Scenario(f"no drift, B {b_share:.0%}", b_share)
