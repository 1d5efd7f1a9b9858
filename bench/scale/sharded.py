"""Two sharded operator replicas share N rollouts; one is killed; how fast the other takes over.

``python -m bench.scale.sharded --rollouts 200 --shards 8 --json results.json`` sets up the
scale benchmark's world (``bench.scale.run.Bench``: N rollouts in a long analysis step, real
Prometheus series from synthetic exporters, on the local e2e cluster), then runs two
``fairshift run --shards`` replicas (``a`` and ``b``, Leases in their own namespace) and
measures, from what the operators and the audit chains record:

* before the kill (both replicas, ``--intervals`` intervals): analyses per rollout and
  interval (``hold`` records in the audit chains), shards and rollouts per replica;
* the takeover after ``a`` gets SIGKILL: seconds until ``b`` holds every shard (its
  ``fairshift_shards_held``), and until every rollout ``a`` worked has a new analysis;
* after the kill (``b`` alone, ``--intervals`` intervals): analyses per rollout and interval;
* double analyses over the whole run: consecutive ``hold`` records of one rollout closer than
  the interval (minus the records' one-second resolution). Must be 0.

Prints a Markdown summary; ``--json`` writes the figures. Everything it starts or creates is
stopped or removed at the end (``--keep`` keeps the rollouts for another run).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from itertools import pairwise
from pathlib import Path

from bench.scale import measure, workload
from bench.scale.kube import body_of
from bench.scale.run import Bench, Process, Scenario, free_port, log, reachable, wait_until

LEASE_NAMESPACE = "scale-shard-leases"
IDENTITIES = ("a", "b")


@dataclass
class Phase:
    """Analyses counted in the audit chains over one measured stretch."""

    seconds: float = 0.0
    analyses: int = 0
    rollouts: int = 0
    interval: float = 30.0

    @property
    def per_rollout_and_interval(self) -> float:
        if not self.rollouts or not self.seconds:
            return 0.0
        return self.analyses / self.rollouts / (self.seconds / self.interval)


@dataclass
class Result:
    rollouts: int
    shards: int
    interval: float
    lease_seconds: float
    held_before: dict[str, float] = field(default_factory=dict)
    owned_before: dict[str, float] = field(default_factory=dict)
    before: Phase = field(default_factory=Phase)
    after: Phase = field(default_factory=Phase)
    shards_moved_seconds: float = 0.0
    all_analysed_seconds: float = 0.0
    orphans: int = 0
    analysed_again: int = 0
    double_analyses: int = 0
    closest_gap_seconds: float = 0.0
    setup_minutes: float = 0.0
    started: str = ""


def hold_times(bench: Bench, namespaces: Sequence[str]) -> dict[tuple[str, str], list[float]]:
    """Per rollout, the times (epoch seconds) of its ``hold`` records, oldest first."""
    assert bench.kube is not None
    found: dict[tuple[str, str], list[float]] = {}
    for namespace in namespaces:
        response = bench.kube.core.list_namespaced_config_map(
            namespace, _preload_content=False, _request_timeout=60
        )
        for item in body_of(response)["items"]:
            name = item["metadata"]["name"]
            if not name.endswith("-audit"):
                continue
            lines = (item.get("data") or {}).get("records.jsonl", "").splitlines()
            records = [json.loads(line) for line in lines if line.strip()]
            found[(namespace, name.removesuffix("-audit"))] = [
                datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp()
                for r in records
                if r.get("action") == "hold"
            ]
    return found


def analyses_between(times: dict[tuple[str, str], list[float]], start: float, end: float) -> int:
    return sum(1 for marks in times.values() for mark in marks if start <= mark < end)


def doubles(times: dict[tuple[str, str], list[float]], interval: float) -> tuple[int, float]:
    """Consecutive analyses of one rollout closer than one interval, and the closest gap."""
    gaps = [later - earlier for marks in times.values() for earlier, later in pairwise(marks)]
    return sum(1 for gap in gaps if gap < interval - 1.0), min(gaps, default=0.0)


def wait_for_analyses(
    bench: Bench,
    namespaces: Sequence[str],
    baseline: dict[tuple[str, str], list[float]],
    killed: float,
    timeout: float,
) -> tuple[float, int]:
    """Seconds from the kill until every rollout had a new analysis (by the records' own
    times), and how many had one; when ``timeout`` passes first, the seconds are ``nan``."""
    deadline = time.monotonic() + timeout
    while True:
        now = hold_times(bench, namespaces)
        again = [
            min(t for t in now[key] if t > killed)
            for key, marks in baseline.items()
            if len(now.get(key, [])) > len(marks) and any(t > killed for t in now[key])
        ]
        if len(again) == len(baseline):
            return max(again) - killed, len(again)
        if time.monotonic() > deadline:
            log(f"{len(again)} of {len(baseline)} rollouts analysed again within {timeout:.0f}s")
            return float("nan"), len(again)
        time.sleep(5.0)


def start_replica(
    bench: Bench, identity: str, namespaces: Sequence[str], shards: int, lease: float
) -> tuple[Process, str]:
    port = free_port()
    argv = [sys.executable, "-m", "fairshift.cli", "run", "--kubeconfig", bench.kubeconfig]
    argv += [item for name in namespaces for item in ("--namespace", name)]
    argv += ["--standalone", "--shards", str(shards), "--shard-namespace", LEASE_NAMESPACE]
    argv += ["--shard-identity", identity, "--shard-lease-seconds", f"{lease:g}"]
    argv += ["--metrics-port", str(port), "--liveness", ""]
    process = Process(
        f"replica {identity}",
        argv,
        bench.workdir / f"replica-{identity}.log",
        env={"KUBECONFIG": bench.kubeconfig},
    )
    bench.processes.append(process)
    url = f"http://127.0.0.1:{port}/metrics"
    wait_until(lambda: process.alive() and reachable(url), 120, f"replica {identity} /metrics")
    return process, url


def gauge(url: str, name: str) -> float:
    try:
        return measure.scrape(url, timeout=30).gauge(name)
    except OSError:
        return float("nan")


def run(args: argparse.Namespace) -> Result:
    interval = float(args.interval)
    scenario = Scenario("sh", ("sex", "age_band"), args.rollouts, min(100, args.rollouts))
    result = Result(args.rollouts, args.shards, interval, args.lease_seconds)
    result.started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with Bench(Path(args.workdir), keep=args.keep) as bench:
        began = time.monotonic()
        bench.open(node_pods=2 * args.rollouts + 20)
        assert bench.kube is not None
        bench.kube.ensure_namespace(workload.namespace(LEASE_NAMESPACE))
        bench.namespaces.add(LEASE_NAMESPACE)
        bench.drive([scenario], "10m", args.max_inflight, args.setup_timeout, "2h")
        bench.set_interval(scenario, f"{interval:g}s")
        result.setup_minutes = (time.monotonic() - began) / 60
        namespaces = scenario.namespaces
        replicas = {
            identity: start_replica(bench, identity, namespaces, args.shards, args.lease_seconds)
            for identity in IDENTITIES
        }
        half = args.shards / 2
        wait_until(
            lambda: all(
                gauge(url, "fairshift_shards_held") == half for _, url in replicas.values()
            ),
            10 * args.lease_seconds,
            "an even split of the shards",
        )
        log(f"shards split evenly; {args.warmup:g}s warm-up, {args.intervals} intervals")
        time.sleep(args.warmup)
        start = time.time()
        time.sleep(args.intervals * interval)
        end = time.time()
        for identity, (_, url) in replicas.items():
            result.held_before[identity] = gauge(url, "fairshift_shards_held")
            result.owned_before[identity] = gauge(url, "fairshift_rollouts_owned")
        times = hold_times(bench, namespaces)
        result.before = Phase(
            end - start, analyses_between(times, start, end), len(times), interval
        )
        victim, _ = replicas["a"]
        _, survivor = replicas["b"]
        result.orphans = int(result.owned_before["a"])
        victim.popen.send_signal(signal.SIGKILL)
        victim.popen.wait(30)
        killed = time.time()
        log("replica a killed (SIGKILL)")
        wait_until(lambda: gauge(survivor, "fairshift_shards_held") == args.shards, 300, "takeover")
        result.shards_moved_seconds = time.time() - killed
        log(f"replica b holds every shard after {result.shards_moved_seconds:.1f}s")
        baseline = hold_times(bench, namespaces)

        result.all_analysed_seconds, result.analysed_again = wait_for_analyses(
            bench, namespaces, baseline, killed, args.analysis_timeout
        )
        start = time.time()
        time.sleep(args.intervals * interval)
        end = time.time()
        times = hold_times(bench, namespaces)
        result.after = Phase(end - start, analyses_between(times, start, end), len(times), interval)
        result.double_analyses, result.closest_gap_seconds = doubles(times, interval)
    return result


def markdown(result: Result) -> str:
    rows = [
        ("rollouts / shards", f"{result.rollouts} / {result.shards}"),
        ("shards held before the kill (a / b)", "{a:g} / {b:g}".format(**result.held_before)),
        ("rollouts owned before the kill (a / b)", "{a:g} / {b:g}".format(**result.owned_before)),
        (
            "analyses per rollout and interval, both replicas",
            f"{result.before.per_rollout_and_interval:.2f}",
        ),
        (
            f"seconds until b holds every shard (lease {result.lease_seconds:g} s)",
            f"{result.shards_moved_seconds:.1f}",
        ),
        (
            "seconds until every rollout has a new analysis (how many had one)",
            f"{result.all_analysed_seconds:.1f} ({result.analysed_again} of {result.rollouts})",
        ),
        (
            "analyses per rollout and interval, b alone",
            f"{result.after.per_rollout_and_interval:.2f}",
        ),
        ("double analyses (two in one interval), whole run", f"{result.double_analyses}"),
        ("closest two analyses of one rollout, seconds", f"{result.closest_gap_seconds:.0f}"),
    ]
    lines = ["| measure | value |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=200)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--interval", type=float, default=30.0, help="analysis interval, s")
    parser.add_argument("--intervals", type=int, default=3, help="measured before and after")
    parser.add_argument("--lease-seconds", type=float, default=20.0)
    parser.add_argument("--max-inflight", type=int, default=100)
    parser.add_argument("--setup-timeout", type=float, default=3600.0)
    parser.add_argument("--analysis-timeout", type=float, default=600.0)
    parser.add_argument(
        "--warmup", type=float, default=60.0, help="seconds after the split before measuring"
    )
    parser.add_argument("--workdir", default="/tmp/fairshift-bench-sharded")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    result = run(args)
    print(markdown(result))
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(result), indent=2, default=str))
    return 0 if result.double_analyses == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
