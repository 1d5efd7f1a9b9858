"""One false-rollback budget per candidate revision: evidence carried across analysis windows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fairshift.api.analysis import Analysis
from fairshift.api.status import Outcome
from fairshift.engine import sequential
from fairshift.engine.counts import BinaryCounts, VersionCounts, slice_key
from fairshift.engine.gates import evaluate

SPEC = Analysis.model_validate(
    {
        "prometheus": {"address": "http://prometheus:9090"},
        "slices": {"attributes": ["sex"], "minSamples": 100},
        "gates": [{"name": "selection", "metric": "selection_rate", "maxIncrease": 0.02}],
    }
)
OVERALL = "selection/overall/above"


def version(n: float, rate: float) -> VersionCounts:
    return VersionCounts(
        cells={slice_key({"sex": s}): BinaryCounts(n / 2, n / 2 * rate) for s in "FM"}
    )


def test_evidence_from_earlier_windows_adds_up_to_a_rollback() -> None:
    stable, candidate = version(20_000, 0.30), version(20_000, 0.33)
    alone = evaluate(SPEC, stable, candidate)
    assert alone.cells[0].outcome is Outcome.PENDING
    threshold = alone.budget.thresholds[OVERALL]
    assert 0 < alone.budget.current[OVERALL] < threshold / 2
    carried = {OVERALL: 0.85 * threshold}
    together = evaluate(SPEC, stable, candidate, carried=carried)
    assert together.cells[0].outcome is Outcome.FAIL
    assert "every analysis window" in together.cells[0].reason
    assert together.budget.used == 1.0
    assert together.budget.folded()[OVERALL] == pytest.approx(
        carried[OVERALL] + alone.budget.current[OVERALL]
    )


def test_a_window_that_looked_fine_raises_the_bar_for_the_next() -> None:
    stable, candidate = version(20_000, 0.30), version(20_000, 0.337)
    assert evaluate(SPEC, stable, candidate).cells[0].outcome is Outcome.FAIL
    relieved = evaluate(SPEC, stable, candidate, carried={OVERALL: -2.0})
    assert relieved.cells[0].outcome is Outcome.PENDING
    assert relieved.budget.folded()[OVERALL] < relieved.budget.thresholds[OVERALL]


def test_keys_no_longer_measured_are_carried_unchanged() -> None:
    result = evaluate(
        SPEC, version(20_000, 0.3), version(20_000, 0.3), carried={"old/x/above": 1.5}
    )
    assert result.budget.folded()["old/x/above"] == 1.5
    assert OVERALL in result.budget.folded()


def test_one_budget_across_four_windows_keeps_alpha_on_the_margin() -> None:
    """A harm exactly on its bound, four windows of 60 looks: judged alone, the windows
    together roll back more often than alpha; carried across them, at most alpha."""
    rng = np.random.default_rng(11)
    runs, windows, looks, per_look, alpha = 4000, 4, 60, 50, 0.05
    tau, threshold = 0.1, math.log(1 / alpha)  # tau near the optimum for a window's end
    draws = rng.normal(0.0, math.sqrt(per_look), size=(runs, windows, looks))  # sums of N(0, 1)
    totals = np.cumsum(draws, axis=2)
    n = per_look * np.arange(1, looks + 1)
    estimates, variances = totals / n, np.broadcast_to(1.0 / n, totals.shape)
    log_e = sequential.log_mixture_e_values(estimates, variances, 0.0, tau, "greater")
    alone = (log_e.max(axis=2) >= threshold).any(axis=1).mean()
    carried = np.concatenate([np.zeros((runs, 1)), np.cumsum(log_e[:, :-1, -1], axis=1)], axis=1)
    together = ((carried[:, :, None] + log_e).max(axis=2) >= threshold).any(axis=1).mean()
    error = 3 * math.sqrt(alpha * (1 - alpha) / runs)
    assert together <= alpha + error
    assert alone > alpha + error  # about 8%, against about 3% carried
