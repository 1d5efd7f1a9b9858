"""The scale benchmark's steps: cluster, objects, exporters, operator runs, measurements.

:class:`Bench` owns everything it starts (exporter processes, operator processes, file-sd
target files, namespaces, the fake node) and :meth:`Bench.close` stops or removes all of it,
also after an error or Ctrl-C. Every wait has a deadline.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.scale import kube as kube_mod
from bench.scale import measure, workload
from bench.scale.exporter import slices_of
from bench.scale.kube import REPO, Kube

PREFIX = "scale"
STOP_TIMEOUT = 20.0


def log(message: str) -> None:
    print(f"[bench.scale {time.strftime('%H:%M:%S', time.gmtime())}] {message}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Scenario:
    """``rollouts`` rollouts, ``per_namespace`` per namespace, sliced by ``attributes``."""

    key: str  # a2 / a3: the namespace family
    attributes: tuple[str, ...]
    rollouts: int
    per_namespace: int

    @property
    def cells(self) -> int:
        return len(slices_of(self.attributes))

    @property
    def namespaces(self) -> list[str]:
        count = math.ceil(self.rollouts / self.per_namespace)
        return [namespace_name(self.key, index) for index in range(count)]

    def members(self) -> list[tuple[str, str]]:
        """(namespace, rollout name) of every rollout of the scenario."""
        return [
            (namespace_name(self.key, i // self.per_namespace), f"m{i:04d}")
            for i in range(self.rollouts)
        ]


def namespace_name(key: str, index: int) -> str:
    return f"{PREFIX}-{key}-{index:02d}"


@dataclass
class Measurement:
    """What one operator run measured over ``intervals`` intervals of ``seconds``."""

    scenario: Scenario
    tick: float
    seconds: float
    cpu: list[float] = field(default_factory=list)  # CPU seconds per interval
    rss: list[float] = field(default_factory=list)  # MiB at each interval end
    rss_peak: float = 0.0
    reconciles: float = 0.0
    analyses: float = 0.0
    queries: float = 0.0
    query_errors: float = 0.0
    p50: float = math.nan
    p90: float = math.nan
    p99: float = math.nan
    query_p50: float = math.nan
    query_p99: float = math.nan
    analysing: float = 0.0
    lifetime_queries: float = 0.0
    lifetime_analyses: float = 0.0
    audit_kib: float = math.nan
    phases: dict[str, float] = field(default_factory=dict)
    apiserver_cpu: list[float] = field(default_factory=list)
    prometheus_cpu: list[float] = field(default_factory=list)

    @property
    def intervals(self) -> int:
        return len(self.cpu)

    def per_interval(self, total: float) -> float:
        return total / self.intervals if self.intervals else math.nan

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "scenario"}
        data["scenario"] = {
            "key": self.scenario.key,
            "attributes": list(self.scenario.attributes),
            "rollouts": self.scenario.rollouts,
            "cells": self.scenario.cells,
        }
        return data


class Process:
    """A child process with its log file; ``stop`` terminates it, then kills it if needed."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            list(argv),
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self._log.close()


class Bench:
    """The benchmark's world on the e2e cluster; use as a context manager."""

    def __init__(self, workdir: Path, keep: bool = False) -> None:
        self.workdir = workdir
        self.keep = keep
        self.brought_up = False
        self.env: dict[str, str] = {}
        self.kube: Kube | None = None
        self.exporters: dict[str, Process] = {}
        self.sd_files: list[Path] = []
        self.namespaces: set[str] = set()
        self.node_created = False
        self.processes: list[Process] = []

    # lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self, node_pods: int) -> None:
        if kube_mod.cluster_up():
            log("reusing the running e2e cluster")
        else:
            log("starting the e2e cluster (e2e/cluster.sh up)")
            done = kube_mod.cluster_sh("up", timeout=1800)
            if done.returncode != 0:
                raise RuntimeError(f"e2e/cluster.sh up failed:\n{done.stderr[-2000:]}")
            self.brought_up = True
        self.env = kube_mod.cluster_env()
        self.kube = Kube(self.env["KUBECONFIG"])
        if not self.kube.crd_installed():
            subprocess.run(
                [
                    "kubectl",
                    "--kubeconfig",
                    self.env["KUBECONFIG"],
                    "apply",
                    "-f",
                    str(REPO / "crds"),
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
        if self.kube.ensure_node(workload.node(node_pods)):
            self.node_created = True
            log(f"created the fake node {workload.NODE} (tainted, {node_pods} pods)")
        wait_until(
            lambda: self.kube is not None and self.kube.node_ready(workload.NODE), 120, "node Ready"
        )

    def adopt_leftovers(self) -> None:
        """Take over what an earlier run kept (``--keep``), so that ``close`` removes it."""
        if not kube_mod.cluster_up():
            log("the e2e cluster is not running: nothing to clean up")
            return
        self.env = kube_mod.cluster_env()
        self.kube = Kube(self.env["KUBECONFIG"])
        self.namespaces = set(
            self.kube.labelled_namespaces(workload.BENCH_LABEL, workload.TAINT_VALUE)
        )
        self.node_created = True
        sd_dir = Path(self.env["FAIRSHIFT_PROMETHEUS_SD_DIR"])
        self.sd_files = sorted(sd_dir.glob(f"{PREFIX}-*.json"))
        log(f"removing {len(self.namespaces)} namespaces, {len(self.sd_files)} targets, the node")

    @property
    def prometheus(self) -> str:
        return self.env["FAIRSHIFT_PROMETHEUS_URL"]

    @property
    def kubeconfig(self) -> str:
        return self.env["KUBECONFIG"]

    def close(self) -> None:
        """Stop every process, remove targets, namespaces and the node; cluster down if ours."""
        for process in [*self.processes, *self.exporters.values()]:
            try:
                process.stop()
            except Exception as error:  # keep cleaning up
                log(f"could not stop {process.name}: {error}")
        self.processes.clear()
        self.exporters.clear()
        for path in self.sd_files:
            path.unlink(missing_ok=True)
        self.sd_files.clear()
        if self.kube is not None and not self.keep:
            self.delete_namespaces()
            if self.node_created:
                self.kube.delete_node(workload.NODE)
        if self.kube is not None:
            self.kube.close()
            self.kube = None
        if self.brought_up:
            log("stopping the e2e cluster this run started")
            kube_mod.cluster_sh("down", timeout=300)

    def delete_namespaces(self, timeout: float = 900.0) -> None:
        assert self.kube is not None
        kube = self.kube
        names = sorted(self.namespaces)
        if not names:
            return
        log(f"deleting {len(names)} namespaces")
        for name in names:
            try:
                for rollout in kube.rollouts(name):
                    kube.drop_finalizers(name, rollout)
            except Exception as error:
                log(f"could not release the rollouts of {name}: {error}")
            kube.delete_namespace(name)
        try:
            wait_until(
                lambda: not any(kube.namespace_exists(n) for n in names), timeout, "namespaces gone"
            )
        except TimeoutError as error:
            log(f"warning: {error}; they keep terminating in the background")
        self.namespaces.clear()

    # objects -------------------------------------------------------------------------------

    def ensure_exporter(self, namespace: str, attributes: Sequence[str]) -> None:
        """One exporter process per namespace, registered as two file-sd targets."""
        if namespace in self.exporters:
            return
        stable, candidate = free_port(), free_port()
        argv = [
            sys.executable,
            "-m",
            "bench.scale.exporter",
            "--attributes",
            ",".join(attributes),
            "--stable-port",
            str(stable),
            "--candidate-port",
            str(candidate),
            "--rate",
            "20",
        ]
        process = Process(f"exporter {namespace}", argv, self.workdir / f"exporter-{namespace}.log")
        self.exporters[namespace] = process
        groups = [
            {
                "targets": [f"127.0.0.1:{port}"],
                "labels": {"namespace": namespace, "version": version},
            }
            for port, version in ((stable, "stable"), (candidate, "candidate"))
        ]
        sd_dir = Path(self.env["FAIRSHIFT_PROMETHEUS_SD_DIR"])
        sd_dir.mkdir(parents=True, exist_ok=True)
        path = sd_dir / f"{namespace}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups))
        tmp.replace(path)
        self.sd_files.append(path)

    def start_operator(
        self,
        namespaces: Sequence[str],
        tick: float,
        label: str,
        profile: Path | None = None,
    ) -> tuple[Process, str]:
        """``fairshift run`` for ``namespaces``; returns the process and its /metrics URL."""
        port = free_port()
        options = [
            "run",
            "--kubeconfig",
            self.kubeconfig,
            *[item for name in namespaces for item in ("--namespace", name)],
            "--standalone",
            "--metrics-port",
            str(port),
            "--liveness",
            "",
            "--tick",
            f"{tick:g}",
        ]
        if profile is None:
            argv = [sys.executable, "-m", "fairshift.cli", *options]
        else:
            argv = [sys.executable, "-m", "bench.scale.profiled", str(profile), *options]
        # KUBECONFIG in the environment too: kopf's login reads the kubernetes client's default
        # location, which that client computes when it is imported (before `run` sets it).
        process = Process(
            f"operator {label}",
            argv,
            self.workdir / f"operator-{label}.log",
            env={"KUBECONFIG": self.kubeconfig},
        )
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}/metrics"
        wait_until(lambda: process.alive() and reachable(url), 600, f"operator {label} /metrics")
        return process, url

    def stop_process(self, process: Process, timeout: float = STOP_TIMEOUT) -> None:
        process.stop(timeout)
        if process in self.processes:
            self.processes.remove(process)

    def drive(
        self,
        scenarios: Sequence[Scenario],
        interval: str,
        max_inflight: int,
        timeout: float,
        analyze: str,
    ) -> dict[str, int]:
        """Create the rollouts and push them into their analysis step; returns phase counts.

        Rollouts are created in waves so that no more than ``max_inflight`` are on their way
        (created, not yet analysing): the shared controller manager never gets a long queue.
        They are created with the analysis interval ``interval`` (long: each analyses once
        when it reaches its step, so the setup operator spends its time bringing the others
        there); :meth:`measure` sets the measured interval first.
        """
        assert self.kube is not None
        kube = self.kube
        members: list[tuple[Scenario, str, str]] = []
        for scenario in scenarios:
            for namespace in scenario.namespaces:
                if namespace not in self.namespaces:
                    kube.ensure_namespace(workload.namespace(namespace))
                    self.namespaces.add(namespace)
                self.ensure_exporter(namespace, scenario.attributes)
            members += [(scenario, ns, name) for ns, name in scenario.members()]
        namespaces = sorted({ns for _, ns, _ in members})
        # one setup operator per namespace: a single process ticks each rollout far less often
        # than every 5 s once hundreds exist (see the findings), which would make setup slow
        operators = [
            self.start_operator([namespace], 5.0, f"setup-{namespace}")[0]
            for namespace in namespaces
        ]
        created = 0
        wanted = {ns: sum(1 for _, n, _ in members if n == ns) for ns in namespaces}
        finished: set[str] = set()
        rollouts: dict[tuple[str, str], dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        phases: dict[str, int] = {}
        try:
            while True:
                for namespace in namespaces:
                    if namespace in finished:
                        continue  # every rollout there analyses: no need to list it again
                    listed = kube.rollouts(namespace)
                    for name, item in listed.items():
                        rollouts[(namespace, name)] = item
                    if len(listed) == wanted[namespace] and all(
                        done(item.get("status") or {}) for item in listed.values()
                    ):
                        finished.add(namespace)
                phases = {}
                analysing = 0
                for (namespace, name), item in rollouts.items():
                    if item["spec"]["analysis"]["interval"] != interval:
                        kube.set_interval(namespace, name, interval)
                        item["spec"]["analysis"]["interval"] = interval
                    status = item.get("status") or {}
                    phase = str(status.get("phase") or "New")
                    phases[phase] = phases.get(phase, 0) + 1
                    if phase == "Canary" and status.get("currentStep") == 1:
                        analysing += 1
                    elif phase == "Idle" and not status.get("candidateRevision"):
                        kube.patch_deployment(
                            namespace, name, workload.image_patch(name, workload.CANDIDATE_TAG)
                        )
                existing = sum(1 for _, ns, name in members if (ns, name) in rollouts)
                created = max(created, existing)
                settled = sum(phases.get(p, 0) for p in SETTLED)
                inflight = created - analysing - settled
                while created < len(members) and inflight < max_inflight:
                    scenario, namespace, name = members[created]
                    kube.create_deployment(namespace, workload.target(name))
                    kube.create_rollout(
                        namespace,
                        workload.rollout(
                            name, scenario.attributes, self.prometheus, interval, analyze
                        ),
                    )
                    created += 1
                    inflight += 1
                log(
                    f"setup: {created}/{len(members)} created, {analysing} analysing, "
                    f"phases {dict(sorted(phases.items()))}"
                )
                if analysing + settled >= len(members):
                    break
                if time.monotonic() > deadline:
                    log("setup: deadline reached; measuring what is there")
                    break
                for operator in operators:
                    if not operator.alive():
                        raise RuntimeError(f"a setup operator exited; see {operator.log_path}")
                time.sleep(5.0)
        finally:
            for operator in operators:
                self.stop_process(operator)
        return phases

    # measurement ---------------------------------------------------------------------------

    def set_interval(self, scenario: Scenario, interval: str) -> None:
        """Give every rollout of ``scenario`` the analysis interval ``interval``."""
        assert self.kube is not None
        for namespace in scenario.namespaces:
            for name, item in self.kube.rollouts(namespace).items():
                if item["spec"]["analysis"]["interval"] != interval:
                    self.kube.set_interval(namespace, name, interval)

    def audit_kib(self, namespace: str) -> float:
        """Mean size of the audit records kept per rollout in ``namespace``, KiB."""
        assert self.kube is not None
        sizes = self.kube.audit_sizes(namespace)
        return sum(sizes) / len(sizes) / 1024 if sizes else math.nan

    def measure(
        self,
        scenario: Scenario,
        tick: float,
        seconds: float,
        intervals: int,
        warmup: float,
        profile: Path | None = None,
    ) -> Measurement:
        """Run one operator for the scenario's namespaces and measure ``intervals`` intervals."""
        label = f"{scenario.key}-{scenario.rollouts}" + ("-profiled" if profile else "")
        self.set_interval(scenario, f"{seconds:g}s")
        operator, url = self.start_operator(scenario.namespaces, tick, label, profile)
        result = Measurement(scenario, tick, seconds)
        others = cluster_pids(Path(self.env.get("FAIRSHIFT_E2E_RUN", "")))
        try:
            log(f"{label}: warm-up {warmup:.0f}s")
            sleep_watching(operator, warmup)
            start = time.monotonic()
            cpu0, scrape0 = measure.cpu_seconds(operator.pid), measure.scrape(url, timeout=60)
            side0 = {name: safe_cpu(pid) for name, pid in others.items()}
            previous_cpu, previous_side = cpu0, dict(side0)
            previous_time = start
            for index in range(intervals):
                end = start + (index + 1) * seconds
                while (now := time.monotonic()) < end:
                    result.rss_peak = max(result.rss_peak, measure.rss_mib(operator.pid))
                    if not operator.alive():
                        raise RuntimeError(f"the operator exited; see {operator.log_path}")
                    time.sleep(min(1.0, end - now))
                cpu = measure.cpu_seconds(operator.pid)
                now = time.monotonic()
                scale = seconds / (now - previous_time)
                result.cpu.append((cpu - previous_cpu) * scale)
                result.rss.append(measure.rss_mib(operator.pid))
                side = {name: safe_cpu(pid) for name, pid in others.items()}
                result.apiserver_cpu.append(
                    (side.get("kube-apiserver", 0) - previous_side.get("kube-apiserver", 0)) * scale
                )
                result.prometheus_cpu.append(
                    (side.get("prometheus", 0) - previous_side.get("prometheus", 0)) * scale
                )
                previous_cpu, previous_side, previous_time = cpu, side, now
                log(
                    f"{label}: interval {index + 1}/{intervals}: cpu {result.cpu[-1]:.2f}s "
                    f"rss {result.rss[-1]:.0f} MiB"
                )
            scrape1 = measure.scrape(url, timeout=60)
            elapsed = time.monotonic() - start
            fill_from_metrics(result, scrape0, scrape1, seconds / elapsed * intervals)
            result.audit_kib = self.audit_kib(scenario.namespaces[0])
        finally:
            # a profiled operator writes its stats on the way out: give it time
            self.stop_process(operator, timeout=180 if profile else STOP_TIMEOUT)
        return result


SETTLED = ("RolledBack", "Paused", "Failed", "Succeeded", "Guarding")


def done(status: dict[str, Any]) -> bool:
    """The rollout analyses (Canary, analysis step) or will not move again by itself."""
    phase = status.get("phase")
    return (phase == "Canary" and status.get("currentStep") == 1) or phase in SETTLED


def fill_from_metrics(
    result: Measurement, before: measure.Scrape, after: measure.Scrape, normalise: float
) -> None:
    """Counter deltas (scaled to exactly ``intervals`` intervals) and latency quantiles."""
    window = normalise / max(result.intervals, 1)

    def delta(name: str, **labels: str) -> float:
        if labels:
            return (
                after.counter_where(name, **labels) - before.counter_where(name, **labels)
            ) * window
        return (after.counter(name) - before.counter(name)) * window

    result.reconciles = delta("fairshift_reconcile_duration_seconds_count")
    result.analyses = delta("fairshift_decisions_total")
    result.queries = delta("fairshift_prometheus_queries_total")
    result.query_errors = delta("fairshift_prometheus_queries_total", outcome="error")
    name = "fairshift_reconcile_duration_seconds"
    buckets = measure.bucket_delta(before.buckets.get(name, {}), after.buckets.get(name, {}))
    result.p50, result.p90, result.p99 = (measure.quantile(q, buckets) for q in (0.5, 0.9, 0.99))
    name = "fairshift_prometheus_query_duration_seconds"
    buckets = measure.bucket_delta(before.buckets.get(name, {}), after.buckets.get(name, {}))
    result.query_p50, result.query_p99 = (measure.quantile(q, buckets) for q in (0.5, 0.99))
    result.phases = {
        dict(items)["phase"]: value
        for (metric, items), value in after.gauges.items()
        if metric == "fairshift_rollouts" and value
    }
    result.analysing = result.phases.get("Canary", 0.0)
    result.lifetime_queries = after.counter("fairshift_prometheus_queries_total")
    result.lifetime_analyses = after.counter("fairshift_decisions_total")


def cluster_pids(run_dir: Path) -> dict[str, int]:
    """The pids of the API server and Prometheus of the e2e cluster (for context)."""
    found = {}
    for name in ("kube-apiserver", "prometheus"):
        try:
            found[name] = int((run_dir / "pids" / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            continue
    return found


def safe_cpu(pid: int) -> float:
    try:
        return measure.cpu_seconds(pid)
    except OSError:
        return 0.0


def reachable(url: str) -> bool:
    try:
        measure.scrape(url, timeout=2.0)
    except OSError:
        return False
    return True


def sleep_watching(process: Process, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited; see {process.log_path}")
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(1.0)


def workdir() -> Path:
    """A private scratch directory for logs and profiles (outside the repository)."""
    return Path(tempfile.mkdtemp(prefix="fairshift-bench-scale-"))
