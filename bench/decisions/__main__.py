"""Command line: ``python -m bench.decisions [--seeds N] [--quick] [--out DIR] [--workers K]``.

``--quick`` (CI smoke) runs 3 seeds per scenario at 1000 requests/s and prints the tables.
``--report-only`` redoes the report from the outcomes a previous run saved.
Otherwise every scenario runs at 10, 100 and 1000 requests/s (or ``--levels``) with
``--seeds`` rollouts (five times as many for the A/A and fair scenarios), the tables are
printed, figures are written to ``DIR`` and the results block of ``DIR.md`` is replaced
(text outside it is kept).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.decisions.oracle import OracleTimes, oracle_minutes
from bench.decisions.report import all_tables, detection_figure, tradeoff_figure
from bench.decisions.run import RunResult, load, run_all, save
from bench.decisions.summary import Row, fairshift_verdicts, rows
from bench.decisions.world import SCENARIOS

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.decisions", description=__doc__)
    parser.add_argument("--seeds", type=int, default=16, help="rollouts per scenario and level")
    parser.add_argument("--quick", action="store_true", help="CI smoke: 3 seeds, 1000 rps")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--seed", type=int, default=20261122, help="base random seed")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--levels",
        type=int,
        nargs="+",
        default=[10, 100, 1000],
        help="traffic levels in requests/s (default: 10 100 1000)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="redo tables, figures and DIR.md from DIR/outcomes.csv without simulating",
    )
    return parser.parse_args(argv)


def oracles(levels: list[int]) -> dict[tuple[str, int], OracleTimes]:
    return {
        (s.name, rps): oracle_minutes(s.population(), rps, critical=s.expect != "warn")
        for s in SCENARIOS
        for rps in levels
        if s.expect != "keep"
    }


def machine() -> str:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        model = found.group(1).strip() if found else model
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
        f"numpy {np.__version__}, {platform.system()} {platform.machine()}"
    )


def engine_version() -> str:
    """The commit the engine was imported from, flagged when its files have local edits."""
    import fairshift

    root = Path(fairshift.__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "operator/fairshift"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{commit or 'unknown'}{'+local-edits' if dirty else ''}"


def results_block(command: str, result: RunResult, tables: str, levels: list[int]) -> str:
    per_look = 1000 * result.engine_seconds / max(result.looks, 1)
    figures = ["![False rollbacks against time to detect](benchmarks/tradeoff.png)", ""]
    figures += [
        f"![Time to detect at {rps} rps](benchmarks/detection-{rps}rps.png)" for rps in levels
    ]
    return "\n".join(
        [
            BEGIN,
            "",
            f"Command: `{command}`",
            "",
            f"Engine: fairshift at commit {result.engine}.",
            "",
            f"Machine: {machine()}. Wall time {result.wall_seconds / 60:.1f} min; "
            f"{result.looks} engine looks at {per_look:.1f} ms of CPU each (evaluate + "
            "decide, every gate on every slice). Outcomes of every rollout: "
            "`benchmarks/outcomes.csv`.",
            "",
            tables,
            *figures,
            "",
            END,
        ]
    )


def write_markdown(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else f"# Decision benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(head + block + tail)


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    levels = [1000] if args.quick else sorted(args.levels)
    seeds = 3 if args.quick else args.seeds
    if args.report_only:
        result = load(args.out / "outcomes.csv")
    else:
        engine = engine_version()
        result = replace(run_all(levels, seeds, args.seed, args.quick, args.workers), engine=engine)
    if not args.quick and not args.report_only:
        args.out.mkdir(parents=True, exist_ok=True)
        save(result, args.out / "outcomes.csv")
    table_rows: list[Row] = rows(result.outcomes, oracles(levels))
    tables = all_tables(table_rows, fairshift_verdicts(table_rows))
    print(tables)
    per_look = 1000 * result.engine_seconds / max(result.looks, 1)
    print(f"wall {result.wall_seconds:.1f} s; {result.looks} looks, {per_look:.1f} ms CPU each")
    if args.quick:
        return
    tradeoff_figure(table_rows, result.outcomes, args.out / "tradeoff.png")
    for rps in levels:
        detection_figure(table_rows, result.outcomes, rps, args.out / f"detection-{rps}rps.png")
    given = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--report-only"]
    command = "python -m bench.decisions " + shlex.join(given)
    block = results_block(command.strip(), result, tables, levels)
    write_markdown(args.out.with_suffix(".md"), block)


if __name__ == "__main__":
    main()
