"""Command line: ``python -m bench.guard [--quick] [--reps N] [--years Y] [--out FILE]``.

Checks first that the benchmark's vectorised statistic is the engine's (one replication
replayed through ``GuardPlan.look``), then runs a fair model for ``--years`` per replication
(false alarms per model-year) and the drifts (detection delays) at 100 and 1000 requests/s.
``--quick`` (CI smoke) runs 1000 requests/s only, a few replications over two weeks, and
prints the tables; otherwise the results block of ``--out`` is rewritten.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.decisions.__main__ import engine_version, machine, write_markdown
from bench.guard.run import DriftResult, NullResult, run_drift, run_null
from bench.guard.simulate import engine_check
from bench.guard.world import NULL_SHARES, Traffic, drift_scenarios, null_scenario

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
DECLARED_BREACHES_PER_YEAR = 365.0 / 90.0
DECLARED_WARNINGS_PER_YEAR = 365.0 / 7.0


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.guard", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="CI smoke: small and fast")
    parser.add_argument("--reps", type=int, default=200, help="replications per drift")
    parser.add_argument("--null-reps", type=int, default=10, help="fair models per traffic")
    parser.add_argument("--years", type=float, default=1.0, help="years per fair model")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks-guard.md"))
    return parser.parse_args(argv)


def rate_cell(count: int, years: float) -> str:
    """Alarms per model-year; with none seen, the 95% upper bound (rule of three)."""
    if count == 0:
        return f"0 (< {3.0 / years:.2g})"
    return f"{count / years:.3g}"


def null_table(results: list[NullResult]) -> str:
    lines = [
        "| traffic | group B | model-years | guard breaches / year | guard warnings / year "
        "| 1-hour window, for 15m: alerts / year |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.traffic.rps:g} req/s | {r.scenario.b_share:.0%} | {r.model_years:.1f} "
            f"| {rate_cell(r.breaches, r.model_years)} | {rate_cell(r.warnings, r.model_years)} "
            f"| {rate_cell(r.window_alerts, r.model_years)} |"
        )
    lines.append(
        f"| declared | | | <= {DECLARED_BREACHES_PER_YEAR:.2f} (one per 90 days) "
        f"| <= {DECLARED_WARNINGS_PER_YEAR:.1f} (one per 7 days) | none declared |"
    )
    return "\n".join(lines)


def median_with_misses(values: np.ndarray) -> float:
    """The median delay, counting a run missed within the horizon as later than every other."""
    padded = np.where(np.isnan(values), np.inf, values)
    return float(np.percentile(padded, 50, method="higher"))


def delays(values: np.ndarray) -> str:
    """``median / p90`` minutes, with the runs missed within two days."""
    missed = int(np.isnan(values).sum())
    padded = np.where(np.isnan(values), np.inf, values)
    median, p90 = np.percentile(padded, [50, 90], method="higher")
    if not np.isfinite(median):
        return f"missed {missed}/{values.size}"
    text = f"{median:.0f} / {p90:.0f}" if np.isfinite(p90) else f"{median:.0f} / >2 days"
    return text + (f" ({missed} missed)" if missed else "")


def ratio(values: np.ndarray, oracle: float) -> str:
    median = median_with_misses(values)
    if not (np.isfinite(median) and np.isfinite(oracle)):
        return "-"
    return f"{median / oracle:.2f}"


def drift_table(results: list[DriftResult]) -> str:
    lines = [
        "| traffic | drift | guard breach | guard warning | 1-hour window, for 15m "
        "| one-look oracle | breach / oracle |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.traffic.rps:g} req/s | {r.scenario.name} | {delays(r.breach)} "
            f"| {delays(r.warning)} | {delays(r.window)} | {r.oracle_minutes:.0f} "
            f"| {ratio(r.breach, r.oracle_minutes)} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    args = arguments(argv)
    started = time.monotonic()
    levels = [Traffic(1000.0)] if args.quick else [Traffic(100.0), Traffic(1000.0)]
    reps = 20 if args.quick else args.reps
    null_reps = 4 if args.quick else args.null_reps
    null_looks = int(14 * 288 if args.quick else args.years * levels[0].looks_per_year)
    for traffic in levels:
        engine_check(traffic, drift_scenarios()[1], 48, args.seed)
    print("the benchmark's statistic matches GuardPlan.look on the same counts")
    nulls = [
        run_null(traffic, null_scenario(share), null_reps, null_looks, args.seed + i)
        for i, (traffic, share) in enumerate((t, s) for t in levels for s in NULL_SHARES)
    ]
    scenarios = drift_scenarios()
    drifts = [
        run_drift(traffic, scenario, reps, args.seed + 100 + i)
        for i, (traffic, scenario) in enumerate((t, s) for t in levels for s in scenarios)
    ]
    tables = "\n\n".join(
        [
            "False alarms on a fair model (the day/night mix shift included):",
            null_table(nulls),
            "Minutes from the first drifted decision to the alarm, median / p90 "
            "(label delay 60 minutes included):",
            drift_table(drifts),
        ]
    )
    wall = time.monotonic() - started
    print(tables)
    print(f"wall {wall:.1f} s")
    if args.quick:
        return
    command = "python -m bench.guard " + shlex.join(sys.argv[1:] if argv is None else argv)
    block = "\n".join(
        [
            BEGIN,
            "",
            f"Command: `{command.strip()}`",
            "",
            f"Engine: fairshift at commit {engine_version()}. Machine: {machine()}. "
            f"Wall time {wall / 60:.1f} min.",
            "",
            tables,
            "",
            END,
        ]
    )
    write_markdown(args.out, block)


if __name__ == "__main__":
    main()
