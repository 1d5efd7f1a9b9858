"""The statistics' promises over a rollout's whole life, on the engine as the operator calls it.

``python -m bench.decisions.lifecycle [--runs N] [--quick]`` prints one table. Each scenario
simulates binomial decision counts look by look (30 s), calls ``evaluate`` with the counts
since the window began (and, for the budget across windows, the revision's carried ledger,
as the planner passes it) and ``decide`` with the step's clock:

- ``margin-lifecycle``: shadow, three analyses and a resume of the third (five windows of
  20 looks), the candidate's selection rate exactly on its ``maxIncrease: 0.02`` margin:
  false rollbacks per rollout, judged per window and with one carried budget.
- ``day-night``: identical models under a shared day/night mix shift (women 60% of traffic
  by day, 20% by night, every rate halving at night; instantaneous disparate impact 1.15,
  pooled over the step about 1.5): rollbacks by ``disparate_impact min: 0.8``.
- ``rare-cell``: identical models, a 1% cell (sex=F, age=old, selection 0.05 against 0.3)
  that reaches stable only: rollbacks by ``selection_rate maxChange: 0.01``.
- ``200-cells``: identical models, sex x age (3) x region (5) with intersections and three
  gates (216 critical cells), 1000 requests/s at a 25% canary, ``analyze: {duration: 10m,
  maxDuration: 60m}``: promoted within maxDuration, and when, with the promoted share's 95%
  Clopper-Pearson interval (``--many-runs N``; each run's end is printed on stderr).
- ``counter-resets``: identical models served by three pods per version whose counters
  restart at random moments (about once per pod per step); each look reads the raw counters
  at the step start and now and counts them with fairshift's reading rule
  (``fairshift.metrics.readings``): rollbacks, beside what a naive ``now - start`` difference
  (``increase`` without repair) does with the same readings (see ``bench.decisions.resets``).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binomtest

from bench.decisions import resets
from fairshift.api.analysis import Analysis
from fairshift.engine.counts import BinaryCounts, VersionCounts, slice_key
from fairshift.engine.decision import Action, StepClock, decide
from fairshift.engine.gates import evaluate

INTERVAL = 30.0
Cells = dict[tuple[tuple[str, str], ...], tuple[float, float]]  # key -> (share, selection)


def spec(attributes: list[str], gates: list[dict[str, Any]], intersections: bool) -> Analysis:
    return Analysis.model_validate(
        {
            "prometheus": {"address": "http://prometheus:9090"},
            "slices": {
                "attributes": attributes,
                "intersections": intersections,
                "minSamples": 100,
            },
            "alpha": 0.05,
            "gates": gates,
        }
    )


def draw(rng: np.random.Generator, n: float, cells: Cells) -> dict[Any, np.ndarray]:
    """One look's decisions and selections per cell."""
    found = {}
    for key, (share, selection) in cells.items():
        decisions = rng.poisson(n * share)
        found[key] = np.array([decisions, rng.binomial(decisions, selection)], dtype=float)
    return found


def counts(total: Mapping[Any, np.ndarray]) -> VersionCounts:
    return VersionCounts(
        cells={k: BinaryCounts(float(v[0]), float(v[1])) for k, v in total.items() if v[0] > 0}
    )


@dataclass(frozen=True)
class Window:
    looks: int
    stable: Callable[[int], Cells]  # look -> cells of stable
    candidate: Callable[[int], Cells]
    n_stable: float
    n_candidate: float


def run_windows(
    rng: np.random.Generator,
    analysis: Analysis,
    windows: list[Window],
    carry: bool,
    minimum_looks: int = 0,
) -> tuple[str, int]:
    """The rollout's end ('rollback', 'advance', 'promote', 'hold') and its look."""
    carried: dict[str, float] = {}
    look_index = 0
    for number, window in enumerate(windows):
        s_total: dict[Any, np.ndarray] = {}
        c_total: dict[Any, np.ndarray] = {}
        folded: dict[str, float] = dict(carried)
        for look in range(window.looks):
            look_index += 1
            for total, cells, n in (
                (s_total, window.stable(look), window.n_stable),
                (c_total, window.candidate(look), window.n_candidate),
            ):
                for key, value in draw(rng, n, cells).items():
                    total[key] = total.get(key, 0.0) + value
            result = evaluate(
                analysis, counts(s_total), counts(c_total), carried=carried if carry else None
            )
            folded = result.budget.folded()
            clock = StepClock(
                (look + 1) * INTERVAL, minimum_looks * INTERVAL, window.looks * INTERVAL
            )
            last = number == len(windows) - 1
            action = decide(result, clock, last_step=last).action
            if action is Action.ROLLBACK:
                return "rollback", look_index
            if action is Action.PROMOTE:
                return "promote", look_index
            if action in (Action.ADVANCE, Action.PAUSE) and not last:
                break
        carried = folded
    return "hold", look_index


def two_groups(share_f: float, rate_f: float, rate_m: float) -> Cells:
    return {
        slice_key({"sex": "F"}): (share_f, rate_f),
        slice_key({"sex": "M"}): (1 - share_f, rate_m),
    }


def margin_lifecycle(rng: np.random.Generator, carry: bool) -> tuple[str, int]:
    analysis = spec(
        ["sex"], [{"name": "sel", "metric": "selection_rate", "maxIncrease": 0.02}], False
    )
    stable = two_groups(0.5, 0.30, 0.30)
    candidate = two_groups(0.5, 0.32, 0.32)
    window = Window(20, lambda _: stable, lambda _: candidate, 1500.0, 500.0)
    return run_windows(rng, analysis, [window] * 5, carry, minimum_looks=20)


def day_night(rng: np.random.Generator, carry: bool) -> tuple[str, int]:
    analysis = spec(
        ["sex"], [{"name": "four-fifths", "metric": "disparate_impact", "min": 0.8}], False
    )

    def cells(look: int) -> Cells:
        if look < 20:
            return two_groups(0.6, 0.46, 0.40)
        return two_groups(0.2, 0.23, 0.20)

    window = Window(40, cells, cells, 1500.0, 500.0)
    return run_windows(rng, analysis, [window], carry, minimum_looks=20)


def rare_cell(rng: np.random.Generator, carry: bool) -> tuple[str, int]:
    analysis = spec(
        ["sex", "age"], [{"name": "sel", "metric": "selection_rate", "maxChange": 0.01}], True
    )
    full = {
        slice_key({"sex": s, "age": a}): (share, 0.05 if (s, a) == ("F", "old") else 0.3)
        for (s, a), share in {
            ("F", "young"): 0.49,
            ("F", "old"): 0.01,
            ("M", "young"): 0.25,
            ("M", "old"): 0.25,
        }.items()
    }
    without = {k: v for k, v in full.items() if k != slice_key({"sex": "F", "age": "old"})}
    window = Window(40, lambda _: full, lambda _: without, 1500.0, 500.0)
    return run_windows(rng, analysis, [window], carry, minimum_looks=20)


REGIONS = ("n", "e", "s", "w", "c")
MANY_GATES = [
    {"name": "selection", "metric": "selection_rate", "maxChange": 0.03},
    {"name": "parity", "metric": "statistical_parity_difference", "maxIncrease": 0.03},
    {"name": "four-fifths", "metric": "disparate_impact", "min": 0.8},
]


def many_cells(rng: np.random.Generator, carry: bool) -> tuple[str, int]:
    analysis = spec(["sex", "age", "region"], MANY_GATES, True)
    shares = np.random.default_rng(5).dirichlet(np.full(30, 2.0))
    cells = {
        slice_key({"sex": s, "age": a, "region": r}): (float(share), 0.3)
        for (s, a, r), share in zip(
            itertools.product(("F", "M"), ("18-39", "40-64", "65+"), REGIONS), shares, strict=True
        )
    }
    per_look = 1000.0 * INTERVAL
    window = Window(120, lambda _: cells, lambda _: cells, 0.75 * per_look, 0.25 * per_look)
    return run_windows(rng, analysis, [window], carry, minimum_looks=20)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.decisions.lifecycle")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="a few runs per scenario")
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument(
        "--many-runs", type=int, default=None, help="runs of 200-cells (default: runs / 20)"
    )
    parser.add_argument(
        "--only",
        choices=("margin-lifecycle", "day-night", "rare-cell", "counter-resets", "200-cells"),
        help="run one scenario (with the carried budget only)",
    )
    args = parser.parse_args(argv)
    runs = 5 if args.quick else args.runs
    print("| scenario | rule | runs | rolled back | promoted (median minute) | inconclusive |")
    print("|---|---|---:|---:|---:|---:|")
    scenarios: tuple[tuple[str, Callable[[np.random.Generator, bool], tuple[str, int]], int], ...]
    scenarios = (
        ("margin-lifecycle", margin_lifecycle, 1),
        ("day-night", day_night, 4),
        ("rare-cell", rare_cell, 4),
    )
    for name, scenario, scale in scenarios:
        if args.only is not None and args.only != name:
            continue
        for carry in (False, True) if args.only is None else (True,):
            rng = np.random.default_rng(args.seed)
            ends = [scenario(rng, carry) for _ in range(max(runs // scale, 2))]
            print(row(name, "carried budget" if carry else "per window", ends))
    if args.only in (None, "counter-resets"):
        print_resets(np.random.default_rng(args.seed), max(runs, 2))
    if args.only not in (None, "200-cells"):
        return
    many_runs = args.many_runs or max(runs // 20, 2)
    ends = many_cells_runs(np.random.default_rng(args.seed), many_runs)
    print(row("200-cells", "carried budget", ends))
    print(promoted_share(ends))


def many_cells_runs(rng: np.random.Generator, runs: int) -> list[tuple[str, int]]:
    """The 200-cells rollouts, each one's end reported on stderr as it comes (they are slow)."""
    ends = []
    for number in range(1, runs + 1):
        end, look = many_cells(rng, True)
        print(
            f"200-cells {number}/{runs}: {end} at minute {look * INTERVAL / 60:.1f}",
            file=sys.stderr,
        )
        ends.append((end, look))
    return ends


def promoted_share(ends: list[tuple[str, int]]) -> str:
    """Rollouts promoted within maxDuration, k/n with its 95% Clopper-Pearson interval."""
    promoted = sum(end == "promote" for end, _ in ends)
    interval = binomtest(promoted, len(ends)).proportion_ci(0.95, method="exact")
    return (
        f"promoted within maxDuration: {promoted}/{len(ends)} "
        f"(95% Clopper-Pearson interval {interval.low:.1%} to {interval.high:.1%})"
    )


def print_resets(rng: np.random.Generator, runs: int) -> None:
    """The counter-resets rows: fairshift's reading rule and the naive difference, same data."""
    outcomes = [resets.counter_resets(rng) for _ in range(runs)]
    for rule in resets.RULES:
        ends = [outcome.ends[rule] for outcome in outcomes]
        print(row("counter-resets", f"{rule}, carried budget", ends))
    print(resets.summary(outcomes))


def row(name: str, rule: str, ends: list[tuple[str, int]]) -> str:
    """One table row: rollbacks, promotions (and their median minute) and the rest."""
    minutes = [look * INTERVAL / 60 for end, look in ends if end == "promote"]
    median = f" ({float(np.median(minutes)):.1f})" if minutes else ""
    rolled = sum(end == "rollback" for end, _ in ends)
    rest = len(ends) - rolled - len(minutes)
    return f"| {name} | {rule} | {len(ends)} | {rolled} | {len(minutes)}{median} | {rest} |"


if __name__ == "__main__":
    main()
