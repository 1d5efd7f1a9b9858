"""What if the engine tuned ``tau`` differently? fairshift's rule only, ``tau`` scaled.

The engine tunes each confidence sequence's mixing scale to the gate's margin
(``tau_for_margin``): the sequence is tightest when a harm of twice the margin becomes
detectable. This module reruns fairshift's rule with ``tau`` multiplied by each factor
(1 is the engine as it is) on the same seeded rollouts, to show what a different choice
would buy. Any fixed ``tau`` keeps the false-rollback guarantee; only speed changes. The
patch lives in this process only; the engine's files are untouched.

``python -m bench.decisions.what_if [--factors 1 2 4] [--seeds 10] [--rps 100 1000]``
"""

from __future__ import annotations

import argparse
import math
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from bench.decisions.engine_rule import run_engine
from bench.decisions.report import table
from bench.decisions.run import Task, simulate_block
from bench.decisions.summary import MINUTES_PER_LOOK, quantile
from bench.decisions.world import HORIZON, SCENARIOS
from fairshift.engine import sequential

ORIGINAL = sequential.tau_for_margin


def patch(factor: float) -> None:
    def scaled(margin: float, alpha: float, *, floor: float = 0.01) -> float:
        return factor * ORIGINAL(margin, alpha, floor=floor)

    sequential.tau_for_margin = scaled  # type: ignore[assignment]


def run(job: tuple[float, Task]) -> tuple[float, str, int, list[float]]:
    factor, task = job
    patch(factor)
    stream = simulate_block(task).cumulative()
    scenario = SCENARIOS[task.scenario]
    need_warn = scenario.expect == "warn"
    times = []
    for i in range(task.count):
        t = run_engine(stream.rep(i), HORIZON, need_warn)
        tick = t.warn if need_warn else t.rollback
        times.append(math.inf if tick is None else (tick + 1) * MINUTES_PER_LOOK)
    return factor, scenario.name, task.rps, times


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.decisions.what_if")
    parser.add_argument("--factors", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--rps", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    jobs = [
        (factor, Task(index, rps, first, min(5, args.seeds - first), args.seed))
        for factor in args.factors
        for index, _ in enumerate(SCENARIOS)
        for rps in args.rps
        for first in range(0, args.seeds, 5)
    ]
    found: dict[tuple[float, str, int], list[float]] = {}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for factor, name, rps, times in pool.map(run, jobs):
            found.setdefault((factor, name, rps), []).extend(times)
    body = []
    for (factor, name, rps), times in sorted(found.items(), key=lambda kv: (kv[0][1], kv[0][2])):
        values = np.array(times)
        body.append(
            [
                name,
                str(rps),
                f"{factor:g}",
                f"{np.isfinite(values).mean():.2f}",
                f"{quantile(values, 0.5):.1f}",
                f"{quantile(values, 0.9):.1f}",
            ]
        )
    header = ["scenario", "rps", "tau factor", "event rate", "median min", "p90 min"]
    print(table(header, body))


if __name__ == "__main__":
    main()
