"""The counter-resets scenario counts with fairshift's reading rule, and its check can tell."""

from __future__ import annotations

import numpy as np
import pytest
from bench.decisions import resets

from fairshift.metrics import readings
from fairshift.metrics.readings import SeriesReadings

RUNS = 4


def rollouts() -> list[resets.Outcome]:
    rng = np.random.default_rng(20261203)
    return [resets.counter_resets(rng) for _ in range(RUNS)]


def assert_possible_counts(outcomes: list[resets.Outcome]) -> None:
    impossible = sum(outcome.impossible_looks[resets.RULE] for outcome in outcomes)
    assert impossible == 0, f"the reading rule gave {impossible} looks of impossible counts"


def test_restarts_never_give_impossible_counts_nor_false_rollbacks() -> None:
    outcomes = rollouts()
    assert sum(outcome.restarts for outcome in outcomes) > 0
    assert_possible_counts(outcomes)
    assert [o.ends[resets.RULE][0] for o in outcomes].count("rollback") == 0


def test_the_naive_difference_on_the_same_readings_gives_impossible_counts() -> None:
    outcomes = rollouts()
    assert sum(outcome.impossible_looks[resets.NAIVE] for outcome in outcomes) > 0


def test_the_check_notices_counts_that_bypass_the_reading_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def difference(series: SeriesReadings, restarted: bool) -> float | None:
        return (series.end or 0.0) - (series.start or 0.0)

    monkeypatch.setattr(readings, "series_count", difference)
    with pytest.raises(AssertionError, match="impossible"):
        assert_possible_counts(rollouts())
