"""Tables, the plot and the Markdown page of the scale benchmark; the profile summary.

The profile (``bench.scale.profiled``, per-thread CPU time) is summarised two ways: CPU by
component (where the file of each function lives: fairshift's engine, its models, kopf, the
Kubernetes client, HTTP/TLS, ...) and the functions with the most self and cumulative time.
"""

from __future__ import annotations

import math
import platform
import pstats
import subprocess
from collections.abc import Sequence
from pathlib import Path

from bench.scale.run import Measurement

TARGET_CPU = 30.0  # CPU seconds per 30 s interval: one core
TARGET_RSS = 300.0  # MiB
KEPT_UP = 0.8
"""Analyses per rollout and interval that count as keeping up (each rollout is looked at when
its plan's next check comes, so an idle operator analyses every interval: ~1.0)."""
FINDINGS = Path(__file__).with_name("findings.md")
SHARDED = Path(__file__).with_name("sharded.md")
"""The sharded replicas' section (``python -m bench.scale.sharded``), kept as written."""

COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("fairshift engine (statistics, gates)", ("/fairshift/engine/",)),
    ("fairshift api (pydantic status/spec models)", ("/fairshift/api/",)),
    ("fairshift metrics (Prometheus source, operator metrics)", ("/fairshift/metrics/",)),
    ("fairshift k8s + routing (API reads/writes)", ("/fairshift/k8s/", "/fairshift/routing/")),
    ("fairshift reconciler + handlers", ("/fairshift/",)),
    ("pydantic / pydantic-core", ("pydantic",)),
    ("kopf (watching, patching, timers)", ("/kopf/",)),
    ("kubernetes client (models, serialisation)", ("/kubernetes/",)),
    ("prometheus-api-client + requests", ("prometheus_api_client", "/requests/")),
    ("urllib3 / http.client / ssl / socket", ("urllib3", "/http/", "ssl", "socket")),
    ("aiohttp / asyncio / yarl / multidict", ("aiohttp", "asyncio", "yarl", "multidict")),
    ("json / yaml / copy / re", ("json", "yaml", "/copy.py", "/re/", "sre_")),
    ("logging", ("/logging/",)),
    ("prometheus_client (the operator's /metrics)", ("prometheus_client",)),
    ("numpy / scipy", ("numpy", "scipy")),
)


def machine() -> dict[str, str]:
    """nproc, CPU model, RAM, kernel, Python."""
    model = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as handle:
        total_kib = int(handle.readline().split()[1])
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "nproc": nproc,
        "cpu": model,
        "ram": f"{total_kib / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def fmt(value: float, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return "> 10000"  # in the histogram's +Inf bucket (the last finite one is 10 s)
    return f"{value:.{digits}f}"


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def main_table(rows: Sequence[Measurement]) -> str:
    header = (
        "| rollouts | slices (attrs / cells) | analysing | CPU s per interval (mean / max) "
        "| CPU ms per rollout and interval | RSS MiB (end / peak) | reconciles per interval "
        "| reconcile p50 / p90 / p99 ms | analyses per rollout and interval "
        "| queries per rollout and interval | queries per analysis | query p50 / p99 ms "
        "| API server CPU s per interval | audit KiB per rollout |\n"
        "|---:|---|---:|---|---:|---|---:|---|---:|---:|---:|---|---:|---:|"
    )
    lines = [header]
    for row in rows:
        n = row.scenario.rollouts
        analyses = row.per_interval(row.analyses)
        queries = row.per_interval(row.queries)
        lines.append(
            f"| {n} | {len(row.scenario.attributes)} / {row.scenario.cells} "
            f"| {row.analysing:.0f} "
            f"| {fmt(mean(row.cpu), 2)} / {fmt(max(row.cpu, default=math.nan), 2)} "
            f"| {fmt(1000 * mean(row.cpu) / n, 1)} "
            f"| {fmt(row.rss[-1] if row.rss else math.nan, 0)} / {fmt(row.rss_peak, 0)} "
            f"| {fmt(row.per_interval(row.reconciles), 0)} "
            f"| {fmt(1000 * row.p50, 0)} / {fmt(1000 * row.p90, 0)} / {fmt(1000 * row.p99, 0)} "
            f"| {fmt(analyses / n, 2)} "
            f"| {fmt(queries / n, 1)} "
            f"| {fmt(queries_per_analysis(row), 2)} "
            f"| {fmt(1000 * row.query_p50, 0)} / {fmt(1000 * row.query_p99, 0)} "
            f"| {fmt(mean(row.apiserver_cpu), 1)} | {fmt(row.audit_kib, 0)} |"
        )
    return "\n".join(lines)


def queries_per_analysis(row: Measurement) -> float:
    """Over the operator's whole run (bigger counts than the window: less edge noise)."""
    if not row.lifetime_analyses:
        return math.nan
    return row.lifetime_queries / row.lifetime_analyses


def targets(rows: Sequence[Measurement]) -> list[tuple[str, str, str]]:
    """(target, measured, met?) for the benchmark's three targets."""
    found: list[tuple[str, str, str]] = []
    largest = max(
        (r for r in rows if len(r.scenario.attributes) == 2),
        key=lambda r: r.scenario.rollouts,
        default=None,
    )
    if largest is not None:
        n = largest.scenario.rollouts
        cpu = max(largest.cpu, default=math.nan)
        analyses = largest.per_interval(largest.analyses) / n
        kept = analyses >= KEPT_UP
        found.append(
            (
                f"{n} rollouts on one core: CPU seconds per 30 s interval < {TARGET_CPU:.0f}, "
                "every rollout analysed every interval",
                f"max {fmt(cpu, 1)} CPU s per interval; {fmt(analyses, 2)} analyses per rollout "
                "and interval",
                "met" if cpu < TARGET_CPU and kept else "missed",
            )
        )
        found.append(
            (
                f"{n} rollouts under {TARGET_RSS:.0f} MiB resident",
                f"peak {fmt(largest.rss_peak, 0)} MiB",
                "met" if largest.rss_peak < TARGET_RSS else "missed",
            )
        )
    per_analysis = {
        row.scenario.cells: queries_per_analysis(row) for row in rows if row.lifetime_analyses
    }
    if len(per_analysis) >= 2:
        values = sorted(per_analysis.items())
        same = max(v for _, v in values) - min(v for _, v in values) < 0.5
        found.append(
            (
                "Prometheus queries per analysis independent of the number of slices",
                ", ".join(f"{cells} cells: {fmt(v, 2)}" for cells, v in values),
                "met" if same else "missed",
            )
        )
    return found


def targets_table(rows: Sequence[Measurement]) -> str:
    lines = ["| target | measured | |", "|---|---|---|"]
    lines += [f"| {a} | {b} | **{c}** |" for a, b, c in targets(rows)]
    return "\n".join(lines)


def plot(rows: Sequence[Measurement], path: Path) -> None:
    """CPU seconds per interval and RSS against the number of rollouts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = sorted(
        (r for r in rows if len(r.scenario.attributes) == 2), key=lambda r: r.scenario.rollouts
    )
    n = [r.scenario.rollouts for r in series]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(n, [mean(r.cpu) for r in series], "o-", label="mean")
    left.plot(n, [max(r.cpu) for r in series], "s--", label="max")
    left.axhline(TARGET_CPU, color="red", linestyle=":", label="one core (30 s)")
    left.set_xlabel("ModelRollouts (analysing)")
    left.set_ylabel(f"operator CPU s per {series[0].seconds:.0f} s interval" if series else "")
    left.set_title("CPU per analysis interval")
    left.legend()
    right.plot(n, [r.rss_peak for r in series], "o-", label="peak RSS")
    right.axhline(TARGET_RSS, color="red", linestyle=":", label=f"{TARGET_RSS:.0f} MiB target")
    right.set_xlabel("ModelRollouts (analysing)")
    right.set_ylabel("resident memory, MiB")
    right.set_title("Operator memory")
    right.legend()
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.set_xlim(left=0)
        axis.set_ylim(bottom=0)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def component_of(filename: str) -> str:
    for name, needles in COMPONENTS:
        if any(needle in filename for needle in needles):
            return name
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (C functions, attributed to their caller's component above when known)"
    return "other"


def profile_summary(path: Path, top: int = 20) -> str:
    """CPU time by component and the top functions of a ``bench.scale.profiled`` dump."""
    stats = pstats.Stats(str(path))
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values()) or 1.0
    by_component: dict[str, float] = {}
    for (filename, _, _), (_, _, tottime, _, callers) in raw.items():
        component = component_of(filename)
        if component.startswith("builtins") and callers:
            # a C function: charge it to the component of its heaviest caller
            caller = max(callers.items(), key=lambda item: item[1][2])[0]
            component = component_of(caller[0])
        by_component[component] = by_component.get(component, 0.0) + tottime
    lines = [
        f"Profiled CPU time (all threads, `time.thread_time`): {total:.1f} s.",
        "",
        "| component | CPU s | share |",
        "|---|---:|---:|",
    ]
    for name, seconds in sorted(by_component.items(), key=lambda item: -item[1]):
        lines.append(f"| {name} | {seconds:.1f} | {100 * seconds / total:.1f}% |")
    lines += ["", "Functions with the most self time:", ""]
    lines += ["| function | calls | self s | cumulative s |", "|---|---:|---:|---:|"]
    ranked = sorted(raw.items(), key=lambda item: -item[1][2])[:top]
    for (filename, line, function), (_, calls, tottime, cumtime, _) in ranked:
        lines.append(
            f"| `{short(filename)}:{line}({function})` | {calls} | {tottime:.2f} | {cumtime:.2f} |"
        )
    lines += ["", "fairshift and kopf functions with the most cumulative time:", ""]
    lines += ["| function | calls | cumulative s | share |", "|---|---:|---:|---:|"]
    ours = [
        item
        for item in raw.items()
        if "/fairshift/" in item[0][0] or "/kopf/_core/actions/" in item[0][0]
    ]
    for (filename, line, function), (_, calls, _, cumtime, _) in sorted(
        ours, key=lambda item: -item[1][3]
    )[:top]:
        lines.append(
            f"| `{short(filename)}:{line}({function})` | {calls} | {cumtime:.2f} "
            f"| {100 * cumtime / total:.1f}% |"
        )
    return "\n".join(lines)


def short(filename: str) -> str:
    """A path without the machine's prefix: from the package directory on."""
    for marker in ("/site-packages/", "/operator/", "/lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def page(
    rows: Sequence[Measurement],
    command: str,
    plot_path: str,
    profile: str | None,
    notes: dict[str, str],
) -> str:
    """The Markdown page ``docs/benchmarks-scale.md``."""
    info = machine()
    slices = [r for r in rows if r.scenario.rollouts == min(x.scenario.rollouts for x in rows)]
    parts = [
        "# Benchmark: operator scale",
        "",
        "One fairshift operator process against N ModelRollouts that are all in an analysis",
        "step, on the real local control plane of `e2e/` and its real Prometheus. Generated by",
        "`python -m bench.scale`; every number below comes from the run described here.",
        "",
        "## How it was run",
        "",
        "```sh",
        command,
        "```",
        "",
        f"- Machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, Linux "
        f"{info['kernel']}, Python {info['python']}. The machine was shared: another e2e "
        "suite ran on the same cluster during the run, so CPU and latency include contention.",
        f"- Run: {notes.get('date', '')}, total {notes.get('runtime', '')}, fairshift at "
        f"commit {notes.get('commit', '')} (editable install; others edited the tree "
        "concurrently).",
        "- Cluster: `e2e/cluster.sh` (etcd, kube-apiserver, controller manager, scheduler built "
        "from the Kubernetes modules; kwok), Prometheus scraping every 2 s.",
        "- Each rollout: a target Deployment (replicas 1), the `<target>-primary` Deployment "
        "the operator makes, two Services, an HTTPRoute (Gateway API router) and the audit "
        "ConfigMap; pods run on a dedicated tainted kwok node (`scale-node-0`) so the shared "
        "node keeps its pod capacity for other tests. Steps: `setWeight: 10`, then "
        "`analyze: {duration: "
        f"{notes.get('analyze', '2h')}}}` (long enough that no rollout leaves its analysis during "
        "the run); the image change of each target starts the rollout.",
        "- Analysis: `interval: "
        f"{notes.get('interval', '30s')}`, five gates (tpr_gap, disparate_impact, accuracy, "
        "latency_p99, score_psi), slices `sex, age_band` (8 cells) and a variant with "
        "`region` as well (48 cells), minSamples 100.",
        "- Metrics: one exporter process per namespace (100 rollouts) serving stable and "
        "candidate series of `fairshift_instrument.ModelMetrics` with synthetic traffic; the "
        'rollouts\' selector is `namespace="{{namespace}}",version="{{version}}"`, matching '
        "the exporters' file-sd target labels, so every analysis runs real PromQL on real data.",
        "- Operator: `fairshift run --namespace ... --standalone --tick "
        f"{notes.get('tick', '30')}` (the default longest wait), restarted for each N, one "
        "warm-up interval, then "
        f"{notes.get('intervals', '')} measured intervals of {notes.get('seconds', '30')} s. "
        "CPU from `/proc/<pid>/stat` (utime+stime), RSS from `/proc/<pid>/status`, the rest "
        "from the operator's own `/metrics` deltas.",
        "",
        "## Targets",
        "",
        targets_table(rows),
        "",
        "## Results",
        "",
        main_table([r for r in rows if len(r.scenario.attributes) == 2]),
        "",
        f"![operator CPU per interval and RSS against N]({plot_path})",
        "",
        "### Slices",
        "",
        "Same N, more slice values: the queries per analysis stay the same (one query per "
        "series for both versions); only the answers grow.",
        "",
        main_table(sorted(slices, key=lambda r: r.scenario.cells)),
        "",
        'Columns: *analysing* is the operator\'s `fairshift_rollouts{phase="Canary"}`; '
        "*reconciles* and *analyses* come from `fairshift_reconcile_duration_seconds_count` and "
        "`fairshift_decisions_total` (one hold decision per analysis); *queries* from "
        "`fairshift_prometheus_queries_total`. An analysis is 5 queries (one per series for both "
        "versions; 10 before fairshift read both versions in one query). Reconcile latency is "
        "the reconciler only (the status patch kopf sends "
        "afterwards is not in it).",
    ]
    if profile:
        parts += ["", "## Where the time goes", "", profile]
    if FINDINGS.exists():
        parts += ["", FINDINGS.read_text().strip()]
    if SHARDED.exists():
        parts += ["", SHARDED.read_text().strip()]
    return "\n".join(parts) + "\n"
