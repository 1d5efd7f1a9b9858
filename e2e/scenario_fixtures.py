"""Fixtures and helpers for the rollout scenarios (``e2e/test_scenarios.py``).

A :class:`Scenario` is one test's world on the real control plane: its namespace, the target
Deployment (a simulated model described by ``SIM_MODEL``), a ModelRollout, the REAL operator
process (``fairshift run ... --standalone --tick 2``, its log in the test's tmp dir and printed
when the test fails), and the simulated data plane (``python -m e2e.dataplane``: model servers
that follow the Deployments, and traffic that follows the HTTPRoute).

Use the fixtures in a test module by naming them there:
``crd = scenario_fixtures.crd`` and ``scenario = scenario_fixtures.scenario``.

Timings (scenario duration, regression-to-rollback) are printed and appended as JSON lines to
``$FAIRSHIFT_E2E_TIMINGS`` (default ``<run dir>/scenario-timings.jsonl``, else the tmp dir).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes import watch as kwatch

from e2e.helpers import Kubectl, Prometheus, wait_for
from fairshift.engine.audit import verify_chain

REPO = Path(__file__).resolve().parent.parent
CRD_FILE = REPO / "crds" / "modelrollouts.yaml"
TARGET = "credit-scorer"
ROLLOUT = "credit-scorer"
TERMINAL = ("Succeeded", "Guarding", "RolledBack", "Failed")

STABLE_MODEL: dict[str, Any] = {"seed": 1, "latency_ms": 20}
"""The stable model: TPR 0.8, FPR 0.15 everywhere, 20 ms, no errors."""

STANDARD_GATES: list[dict[str, Any]] = [
    {"name": "equal-opportunity", "metric": "tpr_gap", "maxIncrease": 0.1},
    {"name": "four-fifths", "metric": "disparate_impact", "min": 0.8},
    {"name": "accuracy", "metric": "accuracy", "maxDecrease": 0.1},
    {"name": "latency", "metric": "latency_p99", "max": 0.25},
    {"name": "score-drift", "metric": "score_psi", "max": 0.1, "severity": "warning"},
]


def deployment(model: Mapping[str, Any], replicas: int = 1) -> dict[str, Any]:
    """The target Deployment: one container whose ``SIM_MODEL`` says how the model behaves."""
    labels = {"app": TARGET}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": TARGET, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "model",
                            "image": "registry.example.com/credit-scorer:sim",
                            "ports": [{"containerPort": 8080}],
                            "env": [{"name": "SIM_MODEL", "value": model_json(model)}],
                        }
                    ]
                },
            },
        },
    }


def model_json(model: Mapping[str, Any]) -> str:
    return json.dumps(dict(model), sort_keys=True, separators=(",", ":"))


def rollout(
    prometheus_url: str,
    *,
    steps: list[dict[str, Any]],
    shadow: dict[str, Any] | None = None,
    gates: list[dict[str, Any]] | None = None,
    intersections: bool = True,
    min_samples: int = 100,
    interval: str = "5s",
    **spec: Any,
) -> dict[str, Any]:
    """A ModelRollout for the scenarios: Gateway API routing, short steps, fast analysis."""
    strategy: dict[str, Any] = {"canary": {"steps": steps}, "progressDeadline": "2m"}
    if shadow is not None:
        strategy["shadow"] = shadow
    body: dict[str, Any] = {
        "targetRef": {"kind": "Deployment", "name": TARGET},
        "service": {"port": 8080},
        "routing": {"gatewayAPI": {"parentRefs": [{"name": "public"}]}},
        "strategy": strategy,
        "analysis": {
            "interval": interval,
            "prometheus": {"address": prometheus_url},
            "slices": {
                "attributes": ["sex", "age_band"],
                "intersections": intersections,
                "reference": "majority",
                "minSamples": min_samples,
            },
            "alpha": 0.05,
            "gates": gates if gates is not None else STANDARD_GATES,
        },
        **spec,
    }
    return {
        "apiVersion": "fairshift.io/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": ROLLOUT},
        "spec": body,
    }


def route_weights(route: Mapping[str, Any] | None) -> tuple[int, int, int] | None:
    """(primary, canary, mirror percent) of the rollout's HTTPRoute, as a gateway reads it."""
    if route is None:
        return None
    rule = route["spec"]["rules"][0]
    amounts = {ref["name"]: int(ref.get("weight", 1)) for ref in rule["backendRefs"]}
    mirror = 0
    for filter_ in rule.get("filters") or []:
        if filter_.get("type") == "RequestMirror":
            mirror = int(filter_["requestMirror"].get("percent", 100))
    return amounts.get(f"{ROLLOUT}-primary", 0), amounts.get(f"{ROLLOUT}-canary", 0), mirror


def timings_file(run_dir: str | None, fallback: Path) -> Path:
    explicit = os.environ.get("FAIRSHIFT_E2E_TIMINGS")
    if explicit:
        return Path(explicit)
    return Path(run_dir) / "scenario-timings.jsonl" if run_dir else fallback


class Process:
    """A subprocess with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], log: Path, env: Mapping[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self.env = dict(env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with self.log.open("ab") as out:
            out.write(f"\n=== {time.strftime('%H:%M:%S')} start {self.name}\n".encode())
            self.proc = subprocess.Popen(
                self.argv, cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would; waits until it is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        with self.log.open("ab") as out:
            out.write(f"\n=== {time.strftime('%H:%M:%S')} SIGKILL {self.name}\n".encode())

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def tail(self, lines: int = 80) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Scenario:
    """One scenario's namespace, operator, data plane and the checks the tests make."""

    def __init__(
        self,
        name: str,
        kubectl: Kubectl,
        namespace: str,
        prometheus: Prometheus,
        env: Mapping[str, str],
        kubeconfig: str,
        tmp: Path,
        timings: Path,
        run_dir: str | None = None,
    ) -> None:
        self.name = name
        self.kubectl = kubectl
        self.k = kubectl.ns(namespace)
        self.namespace = namespace
        self.prometheus = prometheus
        self.env = dict(env)
        self.kubeconfig = kubeconfig
        self.tmp = tmp
        self.timings_path = timings
        self.run_dir = run_dir
        self.started = time.monotonic()
        self.operator: Process | None = None
        self.dataplane: Process | None = None
        self.stats_file = tmp / "dataplane.url"
        self.timings: dict[str, float] = {}

    # -- setup -------------------------------------------------------------------------------

    def deploy(self, model: Mapping[str, Any] = STABLE_MODEL) -> None:
        self.k.apply(deployment(model))

    def apply_rollout(self, body: Mapping[str, Any]) -> None:
        self.k.apply(body, server_side=True)

    def set_model(self, model: Mapping[str, Any]) -> float:
        """Change the candidate's ``SIM_MODEL``: a new revision. Returns the wall time."""
        self.k("set", "env", f"deployment/{TARGET}", f"SIM_MODEL={model_json(model)}")
        return time.time()

    def start_operator(self) -> Process:
        if self.operator is None:
            argv = [
                sys.executable,
                "-m",
                "fairshift.cli",
                "run",
                "--kubeconfig",
                self.kubeconfig,
                "--namespace",
                self.namespace,
                "--standalone",
                "--metrics-port",
                "0",
                "--liveness",
                "",
                "--tick",
                "2",
            ]
            self.operator = Process("operator", argv, self.tmp / "operator.log", self.env)
        return self.operator.start()

    def start_dataplane(
        self, rate: float = 250.0, duration: float = 420.0, extra: Sequence[str] = ()
    ) -> Process:
        """The data plane; ``extra`` are more of its options (e.g. ``--mix``)."""
        argv = [
            sys.executable,
            "-m",
            "e2e.dataplane",
            "--kubeconfig",
            self.kubeconfig,
            "--namespace",
            self.namespace,
            "--target",
            TARGET,
            "--rollout",
            ROLLOUT,
            "--rate",
            str(rate),
            "--duration",
            str(duration),
            "--stats-file",
            str(self.stats_file),
            *extra,
        ]
        self.dataplane = Process("dataplane", argv, self.tmp / "dataplane.log", self.env).start()
        wait_for(self.stats_file.exists, timeout=30, message="data plane stats endpoint")
        return self.dataplane

    def start(
        self,
        body: Mapping[str, Any],
        model: Mapping[str, Any] = STABLE_MODEL,
        rate: float = 250.0,
        dataplane_args: Sequence[str] = (),
    ) -> None:
        """Deployment, rollout, operator and data plane; waits until the rollout is Idle and
        the stable model is serving traffic and scraped."""
        self.deploy(model)
        self.apply_rollout(body)
        self.start_operator()
        self.start_dataplane(rate=rate, extra=dataplane_args)
        self.wait_phase("Idle", timeout=120)
        self.wait_scraped(f"{TARGET}-primary")

    def wait_scraped(self, deployment: str, timeout: float = 60) -> None:
        """Until Prometheus has predictions of ``deployment``'s pods."""
        query = (
            f'sum(fairshift_predictions_total{{namespace="{self.namespace}",'
            f'pod=~"{deployment}-[0-9a-z]+-[0-9a-z]+"}})'
        )
        self.prometheus.wait_for_value(query, lambda v: v > 0, timeout=timeout)

    # -- reading -----------------------------------------------------------------------------

    def mro(self) -> dict[str, Any]:
        found = self.k.get("modelrollout", ROLLOUT)
        assert found is not None, "the ModelRollout is gone"
        return found

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.mro().get("status") or {}
        return status

    def phase(self) -> str | None:
        return self.status().get("phase")

    def wait_phase(
        self, *phases: str, timeout: float = 180, interval: float = 1.0
    ) -> dict[str, Any]:
        """Wait until the rollout is in one of ``phases``; returns its status."""
        seen: list[str] = []

        def reached() -> dict[str, Any] | None:
            status = self.status()
            phase = status.get("phase")
            if not seen or seen[-1] != phase:
                seen.append(str(phase))
            return status if phase in phases else None

        try:
            return wait_for(reached, timeout=timeout, interval=interval, message=f"phase {phases}")
        except AssertionError as error:
            status = self.status()
            raise AssertionError(
                f"{error}; phases seen {seen}; reason {status.get('reason')}: "
                f"{status.get('message')}"
            ) from None

    def wait_for_status(self, predicate: Any, timeout: float = 60) -> dict[str, Any]:
        """Wait until ``predicate(status)`` holds; returns the status."""

        def check() -> dict[str, Any] | None:
            status = self.status()
            return status if predicate(status) else None

        return wait_for(check, timeout=timeout, message="rollout status")

    def weights(self) -> tuple[int, int, int] | None:
        """(primary, canary, mirror percent) of the HTTPRoute, as the gateway would read it."""
        return route_weights(self.k.get("httproute", ROLLOUT))

    def route_owned(self) -> bool:
        route = self.k.get("httproute", ROLLOUT)
        owners = (route or {}).get("metadata", {}).get("ownerReferences") or []
        uid = self.mro()["metadata"]["uid"]
        return any(o.get("uid") == uid and o.get("kind") == "ModelRollout" for o in owners)

    def replicas(self, name: str) -> int:
        found = self.k.get("deployment", name)
        assert found is not None, f"Deployment {name} is gone"
        return int(found["spec"].get("replicas", 1))

    def template_env(self, name: str) -> str:
        found = self.k.get("deployment", name)
        assert found is not None, f"Deployment {name} is gone"
        env = found["spec"]["template"]["spec"]["containers"][0].get("env") or []
        return next((e.get("value", "") for e in env if e["name"] == "SIM_MODEL"), "")

    def events(self) -> list[dict[str, Any]]:
        """Events about the ModelRollout, oldest first."""
        items = self.k.json(
            "get", "events", "--field-selector", "involvedObject.kind=ModelRollout"
        )["items"]
        return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")

    def event_reasons(self) -> list[str]:
        return [str(e.get("reason")) for e in self.events()]

    def audit_records(self) -> list[dict[str, Any]]:
        cm = self.k.get("configmap", f"{ROLLOUT}-audit")
        assert cm is not None, "no audit ConfigMap"
        text = (cm.get("data") or {}).get("records.jsonl", "")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def verify_audit(self) -> list[dict[str, Any]]:
        """The audit records, after checking the chain against ``status.auditHead``."""
        records = self.audit_records()
        head = self.status().get("auditHead")
        check = verify_chain(records, expected_head=head)
        assert check.ok, f"audit chain broken: {check.problems}"
        assert records, "the audit trail is empty"
        return records

    def stats(self) -> dict[str, Any]:
        url = self.stats_file.read_text().strip()
        with urllib.request.urlopen(url, timeout=10) as response:
            stats: dict[str, Any] = json.load(response)
        return stats

    def action(self, verb: str, *extra: str) -> subprocess.CompletedProcess[str]:
        """``fairshift <verb> credit-scorer --wait`` (the manual-control CLI)."""
        argv = [sys.executable, "-m", "fairshift.cli", verb, ROLLOUT, "-n", self.namespace]
        argv += ["--kubeconfig", self.kubeconfig, "--wait", "--timeout", "60", *extra]
        return subprocess.run(
            argv, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=90
        )

    def annotate_action(self, verb: str) -> str:
        """The raw protocol: write ``fairshift.io/action`` with a fresh id (kubectl annotate)."""
        request_id = str(uuid.uuid4())
        value = json.dumps({"action": verb, "id": request_id})
        self.k("annotate", "--overwrite", f"modelrollout/{ROLLOUT}", f"fairshift.io/action={value}")
        return request_id

    def kill_operator_when_route(
        self, predicate: Callable[[tuple[int, int, int]], bool], timeout: float = 300
    ) -> dict[str, Any]:
        """SIGKILL the operator the moment the HTTPRoute's (primary, canary, mirror) weights
        satisfy ``predicate`` (a watch, not a poll): a crash right after the operator moved
        traffic and before it wrote status. Returns a dict that gets ``killedAt`` (wall time)
        and ``weights`` when it happens."""
        operator = self.operator
        assert operator is not None
        api = config.new_client_from_config(config_file=self.kubeconfig)  # type: ignore[no-untyped-call]
        custom = client.CustomObjectsApi(api)
        result: dict[str, Any] = {}

        def watch() -> None:
            stream = kwatch.Watch()  # type: ignore[no-untyped-call]
            deadline = time.monotonic() + timeout
            try:
                while time.monotonic() < deadline and "killedAt" not in result:
                    for event in stream.stream(  # type: ignore[no-untyped-call]
                        custom.list_namespaced_custom_object,
                        "gateway.networking.k8s.io", "v1", self.namespace, "httproutes",
                        field_selector=f"metadata.name={ROLLOUT}", timeout_seconds=30,
                    ):  # fmt: skip
                        weights = route_weights(event["object"])
                        if weights is not None and predicate(weights):
                            operator.kill()
                            result.update(killedAt=time.time(), weights=weights)
                            stream.stop()  # type: ignore[no-untyped-call]
                            break
            finally:
                api.close()

        threading.Thread(target=watch, name="kill-on-route", daemon=True).start()
        return result

    # -- Prometheus down and up ----------------------------------------------------------------

    def prometheus_pid(self) -> int | None:
        """The pid of the Prometheus ``e2e/cluster.sh up`` started (from its pid file)."""
        if not self.run_dir:
            return None
        pid_file = Path(self.run_dir) / "pids" / "prometheus.pid"
        if not pid_file.exists():
            return None
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline")
        if not cmdline.exists() or b"prometheus" not in cmdline.read_bytes():
            return None
        return pid

    def stop_prometheus(self) -> None:
        pid = self.prometheus_pid()
        assert pid is not None, "no Prometheus started by e2e/cluster.sh to stop"
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not self.prometheus.ready(), timeout=30, message="Prometheus down")

    def start_prometheus(self) -> None:
        """``e2e/cluster.sh up`` again (idempotent), keeping Prometheus' data."""
        env = {**self.env, "FAIRSHIFT_E2E_KEEP_STATE": "1"}
        if self.run_dir:
            env["FAIRSHIFT_E2E_RUN"] = self.run_dir
        subprocess.run(
            ["bash", str(REPO / "e2e" / "cluster.sh"), "up"],
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        wait_for(self.prometheus.ready, timeout=60, message="Prometheus ready")

    def delete_rollout(self) -> None:
        """Delete the ModelRollout while the operator still runs its finalizer, so that the
        namespace can go; without an operator, drop the finalizer instead."""
        if self.k.get("modelrollout", ROLLOUT) is None:
            return
        if self.operator is None or not self.operator.running:
            self.k.run(
                "patch", "modelrollout", ROLLOUT, "--type=merge",
                "-p", '{"metadata":{"finalizers":null}}', check=False,
            )  # fmt: skip
        done = self.k.run("delete", "modelrollout", ROLLOUT, "--timeout=30s", check=False)
        if done.returncode != 0:
            self.k.run(
                "patch", "modelrollout", ROLLOUT, "--type=merge",
                "-p", '{"metadata":{"finalizers":null}}', check=False,
            )  # fmt: skip

    # -- timings -----------------------------------------------------------------------------

    def record_time(self, what: str, seconds: float) -> None:
        self.timings[what] = round(seconds, 1)
        print(f"TIMING {self.name} {what} {seconds:.1f}s")

    def regression_to_rollback(self) -> float:
        """Seconds from the candidate first getting traffic (weight or mirror) to the route
        sending everything to primary again, from the data plane's route timeline."""
        timeline = self.stats()["traffic"]["timeline"]
        exposed = next(
            (e["time"] for e in timeline if e.get("canary", 0) > 0 or e.get("mirror", 0) > 0),
            None,
        )
        assert exposed is not None, f"the candidate never got traffic: {timeline}"
        back = next(
            (
                e["time"]
                for e in timeline
                if e["time"] > exposed and e.get("canary", 0) == 0 and e.get("mirror", 0) == 0
            ),
            None,
        )
        assert back is not None, f"traffic never went back to primary: {timeline}"
        seconds = float(back) - float(exposed)
        self.record_time("regression_to_rollback", seconds)
        return seconds

    def finish(self, failed: bool) -> None:
        self.record_time("scenario", time.monotonic() - self.started)
        self.timings_path.parent.mkdir(parents=True, exist_ok=True)
        with self.timings_path.open("a") as out:
            entry = {"test": self.name, "failed": failed, "time": time.time(), **self.timings}
            out.write(json.dumps(entry) + "\n")
        if self.dataplane is not None:
            self.dataplane.stop()
        self.delete_rollout()
        if self.operator is not None:
            self.operator.stop()
        if failed:
            print(f"--- operator log ({self.tmp / 'operator.log'}) ---")
            print(self.operator.tail(150) if self.operator else "(not started)")
            print(f"--- data plane log ({self.tmp / 'dataplane.log'}) ---")
            print(self.dataplane.tail(40) if self.dataplane else "(not started)")
            mro = self.k.get("modelrollout", ROLLOUT)
            print("--- kubectl get mro -o yaml (status) ---")
            print(json.dumps((mro or {}).get("status"), indent=1)[:6000])


@pytest.fixture(scope="session")
def crd(kubectl: Kubectl) -> None:
    """The ModelRollout CRD, applied server-side and established."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    kubectl.wait("crd/modelrollouts.fairshift.io", "condition=Established", timeout=60)


@pytest.fixture
def scenario(
    request: pytest.FixtureRequest,
    crd: None,
    e2e_cluster: Any,
    kubectl: Kubectl,
    namespace: str,
    prometheus: Prometheus,
    tmp_path: Path,
) -> Iterator[Scenario]:
    """A :class:`Scenario` in a fresh namespace; processes stopped, logs printed on failure."""
    world = Scenario(
        request.node.name,
        kubectl,
        namespace,
        prometheus,
        e2e_cluster.env(),
        e2e_cluster.kubeconfig,
        tmp_path,
        timings_file(e2e_cluster.run_dir, tmp_path / "scenario-timings.jsonl"),
        e2e_cluster.run_dir,
    )
    failures_before = request.session.testsfailed
    try:
        yield world
    finally:
        # the call phase has been reported by now: a failure shows in the session's count
        world.finish(failed=request.session.testsfailed > failures_before)
