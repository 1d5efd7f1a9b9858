"""The guard benchmark measures the engine: its vectorised statistic equals ``GuardPlan.look``."""

from __future__ import annotations

import pytest
from bench.guard import simulate
from bench.guard.simulate import engine_check
from bench.guard.world import Traffic, drift_scenarios


@pytest.mark.parametrize("rps", [100.0, 1000.0])
def test_the_benchmark_statistic_is_the_engines(rps: float) -> None:
    engine_check(Traffic(rps), drift_scenarios()[1], looks=30, seed=4)


def test_the_check_notices_a_benchmark_that_drifts_from_the_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exact = simulate.regions
    monkeypatch.setattr(simulate, "regions", lambda gap: tuple(1.01 * x for x in exact(gap)))
    with pytest.raises(AssertionError, match="engine"):
        engine_check(Traffic(1000.0), drift_scenarios()[1], looks=30, seed=4)
