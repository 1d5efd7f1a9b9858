"""The simulated world: slices, traffic settings, the user's gates and the scenarios.

Two slice attributes, ``sex`` (F, M) and ``age_band`` (18-39, 40-64, 65+), give six finest
cells whose shares run from 1% to 34% (marginal groups from 5% to 61%). Every cell has the
same base rate of positive labels (0.3), true positive rate (0.8) and false positive rate
(0.1) in the stable model unless a scenario says otherwise, so the stable model's disparate
impact is 1.0. A scenario changes rates, score or latency distributions of one or both
versions; it also says which rule outcome is right (roll back, warn, or keep going).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

INTERVAL_SECONDS = 30.0
CANARY_WEIGHT = 0.25
"""One canary step at a fixed weight: the candidate gets 25% of requests, stable 75%."""
LABEL_SHARE = 0.5
"""Half of the requests eventually get a ground-truth label ..."""
LABEL_DELAY = 4
"""... which arrives four intervals (two minutes) after the decision."""
HORIZON = 120
"""Intervals per rollout: ``analyze: {duration: 10m, maxDuration: 60m}`` at 30 s."""
MINIMUM_SECONDS = 600.0
BUDGET_SECONDS = HORIZON * INTERVAL_SECONDS

SEXES = ("F", "M")
AGE_BANDS = ("18-39", "40-64", "65+")
CELLS: tuple[tuple[str, str], ...] = tuple((s, a) for s in SEXES for a in AGE_BANDS)
SHARES = np.array([0.27, 0.12, 0.04, 0.34, 0.22, 0.01])
"""Shares of the finest cells in the order of ``CELLS`` (F then M; young, middle, old)."""

BASE_RATE = 0.3
TPR = 0.8
FPR = 0.1

SCORE_BOUNDS = tuple(round(0.1 * i, 1) for i in range(1, 11))
LATENCY_BOUNDS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, float("inf"))
STABLE_LATENCY = np.array([0.2, 0.4, 0.3, 0.08, 0.018, 0.0015, 0.0005, 0.0])
SLOW_LATENCY = np.array([0.15, 0.35, 0.3, 0.13, 0.045, 0.02, 0.005, 0.0])
"""The latency regression: 2.5% of requests slower than 0.5 s (stable: 0.2%)."""

GATES: list[dict[str, Any]] = [
    {"name": "equal-opportunity", "metric": "tpr_gap", "maxIncrease": 0.02},
    {"name": "four-fifths", "metric": "disparate_impact", "min": 0.8},
    {"name": "impact-change", "metric": "disparate_impact", "maxDecrease": 0.05},
    {"name": "accuracy", "metric": "accuracy", "maxDecrease": 0.02},
    {"name": "latency", "metric": "latency_p99", "max": 0.5},
    {"name": "score-drift", "metric": "score_psi", "max": 0.1, "severity": "warning"},
]
"""The user's gates, the same in every scenario (all critical but the drift warning)."""

ANALYSIS: dict[str, Any] = {
    "interval": "30s",
    "prometheus": {"address": "http://prometheus:9090"},
    "slices": {
        "attributes": ["sex", "age_band"],
        "intersections": True,
        "reference": "majority",
        "minSamples": 100,
    },
    "alpha": 0.05,
    "gates": GATES,
}


PRIMARY_GATE = "equal-opportunity"
"""The gate the TPR-drop scenarios regress; the primary rule declares it ``primary: true``."""


def rollout_spec(primary: str | None = None) -> dict[str, Any]:
    """The ModelRollout spec a user would apply: one 25% canary step analysed for 10 to 60 min.

    ``primary`` names a gate the user declares ``primary: true``; the engine reads the
    analysis from this spec through the operator's own parser (``fairshift.api.spec``).
    """
    if primary is not None and not any(g["name"] == primary for g in GATES):
        raise ValueError(f"no gate named {primary!r}; gates: {', '.join(g['name'] for g in GATES)}")
    gates = [{**g, "primary": True} if g["name"] == primary else g for g in GATES]
    step = {"duration": f"{MINIMUM_SECONDS / 60:g}m", "maxDuration": f"{BUDGET_SECONDS / 60:g}m"}
    return {
        "targetRef": {"kind": "Deployment", "name": "credit-scorer"},
        "service": {"port": 8080},
        "routing": {"gatewayAPI": {"parentRefs": [{"name": "public"}]}},
        "strategy": {
            "canary": {"steps": [{"setWeight": round(100 * CANARY_WEIGHT)}, {"analyze": step}]}
        },
        "analysis": {**ANALYSIS, "gates": gates},
    }


def beta_bucket_probabilities(a: float, b: float) -> FloatArray:
    """Probabilities of the ten score buckets under a Beta(a, b) score distribution."""
    from scipy.stats import beta

    edges = np.array((0.0, *SCORE_BOUNDS))
    cdf = beta.cdf(edges, a, b)
    probabilities: FloatArray = np.diff(cdf)
    return probabilities / probabilities.sum()


@dataclass
class Population:
    """Per version (0 stable, 1 candidate) and cell: the rates the traffic is drawn from."""

    base: FloatArray = field(default_factory=lambda: np.full((2, 6), BASE_RATE))
    tpr: FloatArray = field(default_factory=lambda: np.full((2, 6), TPR))
    fpr: FloatArray = field(default_factory=lambda: np.full((2, 6), FPR))
    scores: FloatArray = field(
        default_factory=lambda: np.tile(beta_bucket_probabilities(2.0, 5.0), (2, 6, 1))
    )
    latency: FloatArray = field(default_factory=lambda: np.tile(STABLE_LATENCY, (2, 1)))

    def confusion(self) -> FloatArray:
        """Probabilities of (tp, fn, fp, tn) per version and cell, shape (2, 6, 4)."""
        b, tpr, fpr = self.base, self.tpr, self.fpr
        return np.stack([b * tpr, b * (1 - tpr), (1 - b) * fpr, (1 - b) * (1 - fpr)], axis=-1)


def cells_where(sex: str | None = None, age: str | None = None) -> npt.NDArray[np.bool_]:
    return np.array(
        [(sex is None or s == sex) and (age is None or a == age) for s, a in CELLS], dtype=bool
    )


Expectation = Literal["keep", "rollback", "warn"]


@dataclass(frozen=True)
class Scenario:
    """A named change of the population; ``expect`` is the right outcome."""

    name: str
    description: str
    expect: Expectation
    change: Callable[[Population], None]
    seeds_factor: int = 1

    def population(self) -> Population:
        population = Population()
        self.change(population)
        return population


def no_change(p: Population) -> None:
    """A/A: both versions are the same model."""


def tpr_drop(points: float, sex: str | None = None, age: str | None = None) -> Callable:
    def change(p: Population) -> None:
        p.tpr[1, cells_where(sex, age)] -= points

    return change


def selection_scale(factor: float, versions: tuple[int, ...] = (1,)) -> Callable:
    """Scale TPR and FPR of women by ``factor``: their selection rate (and DI) by ``factor``."""

    def change(p: Population) -> None:
        women = cells_where(sex="F")
        for v in versions:
            p.tpr[v, women] *= factor
            p.fpr[v, women] *= factor

    return change


def score_shift(p: Population) -> None:
    """Candidate scores drift from Beta(2, 5) to Beta(2.75, 5) on every slice (PSI 0.2)."""
    p.scores[1] = beta_bucket_probabilities(2.75, 5.0)


def slow_candidate(p: Population) -> None:
    p.latency[1] = SLOW_LATENCY


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("a/a", "no difference between the versions", "keep", no_change, seeds_factor=5),
    Scenario(
        "tpr-5pt-65+",
        "TPR drops 5 points for age_band=65+ (5% of traffic)",
        "rollback",
        tpr_drop(0.05, age="65+"),
    ),
    Scenario(
        "tpr-10pt-65+",
        "TPR drops 10 points for age_band=65+ (5% of traffic)",
        "rollback",
        tpr_drop(0.10, age="65+"),
    ),
    Scenario(
        "di-1.0-to-0.8",
        "disparate impact of sex=F falls from 1.0 to 0.8",
        "rollback",
        selection_scale(0.8),
    ),
    Scenario(
        "di-1.0-to-0.9",
        "disparate impact of sex=F falls from 1.0 to 0.9",
        "rollback",
        selection_scale(0.9),
    ),
    Scenario(
        "tpr-10pt-F,40-64",
        "TPR drops 10 points only in the intersection sex=F, age_band=40-64 (12%)",
        "rollback",
        tpr_drop(0.10, sex="F", age="40-64"),
    ),
    Scenario(
        "score-drift",
        "candidate scores drift (PSI about 0.2 on every slice); a warning gate",
        "warn",
        score_shift,
    ),
    Scenario(
        "latency",
        "candidate p99 latency regresses past 0.5 s (2.5% of requests slower)",
        "rollback",
        slow_candidate,
    ),
    Scenario(
        "fair-di-0.9",
        "stable and candidate both have disparate impact 0.9 for sex=F",
        "keep",
        selection_scale(0.9, versions=(0, 1)),
        seeds_factor=5,
    ),
)


def scenario(name: str) -> Scenario:
    for s in SCENARIOS:
        if s.name == name:
            return s
    raise ValueError(f"unknown scenario {name!r}; known: {', '.join(s.name for s in SCENARIOS)}")
