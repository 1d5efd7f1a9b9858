"""Run every rule on the same simulated rollouts, in parallel, reproducibly.

Each rollout has its own generator seeded by ``(seed, scenario, traffic, replication)``, so
results do not depend on how work is split between processes. A task simulates a block of
rollouts of one scenario and traffic level, scores them with the peers' vectorised rules,
then with fairshift's engine look by look: its default rule (with the naive z-test on the
engine's measurements) and the same spec with the equal-opportunity gate declared primary.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np

from bench.decisions.engine_rule import ENGINE_RULES, run_engine
from bench.decisions.peers import NEVER, peer_times
from bench.decisions.points import points
from bench.decisions.traffic import Stream, simulate
from bench.decisions.world import HORIZON, SCENARIOS

RULES = (*(r.name for r in ENGINE_RULES), "naive z-test", "flagger", "argo", "kayenta")
BLOCK = 5


@dataclass(frozen=True)
class Task:
    scenario: int
    rps: int
    first: int
    count: int
    seed: int


@dataclass(frozen=True)
class Outcome:
    """One rule on one rollout: ticks (0-based) of its rollback and drift flag, or None."""

    scenario: str
    rps: int
    replication: int
    rule: str
    rollback: int | None
    warn: int | None


def tasks(rps_levels: list[int], seeds: int, seed: int, quick: bool) -> Iterator[Task]:
    for index, scenario in enumerate(SCENARIOS):
        reps = seeds if quick else seeds * scenario.seeds_factor
        for rps in rps_levels:
            for first in range(0, reps, BLOCK):
                yield Task(index, rps, first, min(BLOCK, reps - first), seed)


def simulate_block(task: Task) -> Stream:
    population = SCENARIOS[task.scenario].population()
    streams = [
        simulate(
            np.random.default_rng([task.seed, task.scenario, task.rps, rep]),
            population,
            task.rps,
            1,
            HORIZON,
        )
        for rep in range(task.first, task.first + task.count)
    ]
    columns = zip(*(s.arrays() for s in streams), strict=True)
    return Stream(*(np.concatenate(parts) for parts in columns))


def optional(tick: int) -> int | None:
    return None if tick == NEVER else int(tick)


def run_task(task: Task) -> tuple[list[Outcome], int, float]:
    """Outcomes of every rule on the task's rollouts, with engine looks and their CPU seconds."""
    name = SCENARIOS[task.scenario].name
    stream = simulate_block(task)
    found: list[Outcome] = []
    for rule, times in peer_times(points(stream), HORIZON).items():
        for i in range(task.count):
            rollback, warn = optional(times["rollback"][i]), optional(times["warn"][i])
            found.append(Outcome(name, task.rps, task.first + i, rule, rollback, warn))
    cumulative = stream.cumulative()
    looks, started = 0, time.process_time()
    need_warn = SCENARIOS[task.scenario].expect == "warn"
    for i in range(task.count):
        rep = task.first + i
        for engine_rule in ENGINE_RULES:
            t = run_engine(cumulative.rep(i), HORIZON, need_warn, engine_rule)
            looks += t.looks
            found.append(Outcome(name, task.rps, rep, engine_rule.name, t.rollback, t.warn))
            if engine_rule.primary is None:
                found.append(
                    Outcome(name, task.rps, rep, "naive z-test", t.naive_rollback, t.naive_warn)
                )
    return found, looks, time.process_time() - started


@dataclass(frozen=True)
class RunResult:
    """Outcomes with the cost of the run: engine looks, their CPU seconds, wall seconds."""

    outcomes: list[Outcome]
    looks: int
    engine_seconds: float
    wall_seconds: float
    engine: str = "unknown"


def run_all(rps_levels: list[int], seeds: int, seed: int, quick: bool, workers: int) -> RunResult:
    started = time.perf_counter()
    work = list(tasks(rps_levels, seeds, seed, quick))
    work.sort(key=lambda t: -t.count)
    outcomes: list[Outcome] = []
    looks, engine_seconds = 0, 0.0
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for found, n, seconds in pool.map(run_task, work):
            outcomes.extend(found)
            looks += n
            engine_seconds += seconds
    return RunResult(outcomes, looks, engine_seconds, time.perf_counter() - started)


FIELDS = ("scenario", "rps", "replication", "rule", "rollback", "warn")


def save(result: RunResult, path: Path) -> None:
    """Outcomes as CSV (empty cell: never), with the run's cost in a first comment line."""
    with path.open("w", newline="") as handle:
        handle.write(
            f"# looks={result.looks} engine_seconds={result.engine_seconds:.1f} "
            f"wall_seconds={result.wall_seconds:.1f} engine={result.engine}\n"
        )
        writer = csv.writer(handle)
        writer.writerow(FIELDS)
        for o in result.outcomes:
            writer.writerow(["" if v is None else v for v in astuple(o)])


def load(path: Path) -> RunResult:
    """Read what ``save`` wrote, to redo the report without simulating again."""
    with path.open(newline="") as handle:
        cost = dict(part.split("=") for part in handle.readline().lstrip("# ").split())
        reader = csv.DictReader(handle)
        outcomes = [
            Outcome(
                row["scenario"],
                int(row["rps"]),
                int(row["replication"]),
                row["rule"],
                int(row["rollback"]) if row["rollback"] else None,
                int(row["warn"]) if row["warn"] else None,
            )
            for row in reader
        ]
    return RunResult(
        outcomes,
        int(cost["looks"]),
        float(cost["engine_seconds"]),
        float(cost["wall_seconds"]),
        cost.get("engine", "unknown"),
    )
