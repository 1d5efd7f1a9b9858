"""``python -m bench.scale``: how one fairshift operator process scales with rollouts and slices.

    python -m bench.scale [--rollouts 100,300,1000] [--quick] [--out docs/benchmarks-scale.md]

Uses the local e2e cluster (``e2e/cluster.sh up``; reused when it already runs, brought down
at the end only if this run started it). Creates the rollouts in namespaces ``scale-*`` on a
dedicated fake node, drives each into a 30-minute analysis step, feeds Prometheus from one
synthetic exporter per namespace, then for each N runs one operator process restricted to the
first N rollouts' namespaces and measures CPU per interval, RSS, reconcile latency and
Prometheus queries. A variant with a third slice attribute shows the query count does not
grow with slices. With ``--profile N`` one more run at N is made under ``bench.scale.profiled``
and summarised. Writes the Markdown page and ``docs/img/scale-cpu-rss.png``; ``--quick`` (10
rollouts, 2 intervals of 10 s) prints the table only. Everything it starts is stopped and
everything it creates is deleted at the end, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.scale import report
from bench.scale.kube import REPO
from bench.scale.run import Bench, Measurement, Scenario, log, workdir

TWO = ("sex", "age_band")
THREE = ("sex", "age_band", "region")
PLOT = Path("docs/img/scale-cpu-rss.png")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--rollouts", default="100,300,1000", help="values of N, comma-separated")
    parser.add_argument("--quick", action="store_true", help="CI smoke: 10 rollouts, 2 x 10 s")
    parser.add_argument("--out", default="docs/benchmarks-scale.md")
    parser.add_argument("--intervals", type=int, default=4, help="measured intervals per N")
    parser.add_argument("--interval", type=float, default=30.0, help="analysis interval, s")
    parser.add_argument(
        "--tick", type=float, default=30.0, help="operator --tick, the longest wait (its default)"
    )
    parser.add_argument("--per-namespace", type=int, default=100)
    parser.add_argument(
        "--slices-rollouts", type=int, default=None, help="N of the 3-attribute variant"
    )
    parser.add_argument("--profile", type=int, default=None, help="also profile at this N")
    parser.add_argument("--max-inflight", type=int, default=50)
    parser.add_argument("--analyze", default="2h", help="duration of the analysis step")
    parser.add_argument(
        "--setup-interval", default="1h", help="analysis interval while the rollouts are set up"
    )
    parser.add_argument("--setup-timeout", type=float, default=1800.0)
    parser.add_argument("--keep", action="store_true", help="keep namespaces and node")
    parser.add_argument("--json", default=None, help="also write raw results here")
    parser.add_argument(
        "--cleanup", action="store_true", help="only remove what a --keep run left, then exit"
    )
    return parser.parse_args(argv)


def commit() -> str:
    """The fairshift commit the run measured (others may have had uncommitted edits)."""
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return done.stdout.strip() or "unknown"


def stop_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM becomes KeyboardInterrupt, so that the cleanup runs."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    started = time.monotonic()
    if args.quick:
        sizes, intervals, seconds = [10], 2, 10.0
        slices_n = 10
    else:
        sizes = sorted({int(n) for n in args.rollouts.split(",") if n.strip()})
        intervals, seconds = args.intervals, args.interval
        slices_n = args.slices_rollouts or min(sizes)
    interval_text = f"{seconds:g}s"
    per_ns = args.per_namespace
    two = [Scenario("a2" if not args.quick else "q2", TWO, n, per_ns) for n in sizes]
    three = Scenario("a3" if not args.quick else "q3", THREE, slices_n, per_ns)
    scratch = workdir()
    if args.cleanup:
        with Bench(scratch) as bench:
            bench.adopt_leftovers()
        return 0
    log(f"logs and profiles in {scratch}")
    rows: list[Measurement] = []
    profile_text = None
    pods = 2 * (max(sizes) + slices_n) + 100
    with Bench(scratch, keep=args.keep) as bench:
        try:
            bench.open(node_pods=pods)
            phases = bench.drive(
                [two[-1], three],
                args.setup_interval,
                args.max_inflight,
                args.setup_timeout,
                args.analyze,
            )
            log(f"setup done in {time.monotonic() - started:.0f}s: {phases}")
            warmup = seconds + 5
            for scenario in [*two, three]:
                rows.append(bench.measure(scenario, args.tick, seconds, intervals, warmup))
                print(report.main_table(rows[-1:]), flush=True)
            if args.profile and not args.quick:
                scenario = next((s for s in two if s.rollouts == args.profile), two[-1])
                path = scratch / f"operator-{scenario.rollouts}.prof"
                try:
                    bench.measure(scenario, args.tick, seconds, intervals, warmup, profile=path)
                except (OSError, RuntimeError) as error:  # the tables above still count
                    log(f"the profiled run failed: {error}")
                if path.exists():
                    profile_text = report.profile_summary(path)
                    print(profile_text, flush=True)
        except KeyboardInterrupt:
            log("interrupted; cleaning up")
            return 130
    runtime = time.monotonic() - started
    print(report.main_table(rows))
    print()
    print(report.targets_table(rows))
    log(f"done in {runtime / 60:.1f} min")
    if args.json:
        Path(args.json).write_text(json.dumps([r.as_dict() for r in rows], indent=1))
    if args.quick:
        return 0
    out = REPO / args.out
    plot_path = REPO / PLOT
    report.plot(rows, plot_path)
    command = "python -m bench.scale " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    notes = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "runtime": f"{math.ceil(runtime / 60)} min",
        "interval": interval_text,
        "tick": f"{args.tick:g}",
        "intervals": str(intervals),
        "seconds": f"{seconds:g}",
        "analyze": args.analyze,
        "commit": commit(),
    }
    relative = Path("img") / PLOT.name
    out.write_text(report.page(rows, command.strip(), str(relative), profile_text, notes))
    log(f"wrote {args.out} and {PLOT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
