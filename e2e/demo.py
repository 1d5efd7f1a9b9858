"""``make demo`` (``python -m e2e.demo``): a biased model caught and rolled back, then a model
that degrades after promotion caught by the guard and switched back, live, locally.

A developer tool of the repository, not part of the fairshift package: it drives the checkout's
local control plane (``e2e/cluster.sh``), simulated data plane (``e2e/dataplane``) and
``examples/demo-rollout.yaml``, and runs the installed operator (``fairshift run``). It

1. brings up the local control plane and Prometheus (``e2e/cluster.sh up``) unless running;
2. applies the CRD and ``examples/demo-rollout.yaml`` (a simulated credit scorer and its
   ModelRollout) in a fresh namespace, starts the operator (``fairshift run``) and the simulated
   data plane (model servers following the Deployments, traffic following the HTTPRoute);
3. rolls out a candidate that is unfair to older women only, and shows the phase, traffic
   weights and per-slice gates live until the rollout ends (or the time limit);
4. rolls out a candidate that is fair in its shadow and canary steps and, once it serves
   everyone, loses 0.4 of true positive rate for women (the data plane's ``production_bias``),
   judged on the marginal groups only (intersections take longer to prove fair);
   shows it promoted and Guarding, the guard's health and worst cells, the breach and the
   switch back to the last known good revision, and how long after the drift began it was
   caught;
5. prints ``kubectl get mro`` and where the evidence is, then stops its processes and brings
   the cluster down if it brought it up (``--keep`` leaves everything running to inspect).

Exits with :class:`fairshift.commands.exitcodes.ExitCode`: ``OK`` when the biased candidate
was rolled back and the drifting one switched back by the guard, ``FAILED`` when either was
not or the demo broke, ``USAGE`` when it cannot start.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from fairshift.commands.exitcodes import ExitCode
from fairshift.commands.views import StatusError, render_status

ROLLOUT = "credit-scorer"
TARGET = "credit-scorer"
REPO = Path(__file__).resolve().parents[1]
"""The checkout this module belongs to."""
EXAMPLE = Path("examples") / "demo-rollout.yaml"
CLUSTER_SH = Path("e2e") / "cluster.sh"
TERMINAL = ("Succeeded", "Guarding", "RolledBack", "Failed")

# Older women lose 0.4 of true positive rate; older men and younger women gain a little, so
# that every marginal group (sex=F, sex=M, each age band) stays within the gate's margin of
# 0.2: only the intersection gates can see it.
BIASED_CANDIDATE: dict[str, Any] = {
    "seed": 2,
    "latency_ms": 20,
    "bias": {
        "sex=F,age_band=60+": {"tpr": -0.4},
        "sex=M,age_band=60+": {"tpr": 0.1},
        "sex=F,age_band=18-29": {"tpr": 0.02},
        "sex=F,age_band=30-59": {"tpr": 0.02},
    },
}


# Fair while it is judged against the stable model in shadow and canary; 20 s after it starts
# serving production (the primary), women lose 0.4 of true positive rate.
DRIFTING_CANDIDATE: dict[str, Any] = {
    "seed": 3,
    "latency_ms": 20,
    "production_bias": {"sex=F": {"tpr": -0.4}},
    "production_after_s": 20,
}
GUARD_ACTIONS = ("promotion-done-guarded", "guard-warning", "guard-breached", "restored")


@dataclass(frozen=True)
class Act:
    """One rollout the demo shows: the candidate, a caption, and when it is over."""

    candidate: Mapping[str, Any]
    caption: str
    over: Callable[[Mapping[str, Any]], bool]


def rollout_ended(status: Mapping[str, Any]) -> bool:
    return status.get("phase") in TERMINAL


def guard_acted(status: Mapping[str, Any]) -> bool:
    """The drifting candidate's act is over once it is switched back (or anything final but
    Guarding: the guard is what the act waits for)."""
    return status.get("phase") in ("RolledBack", "Failed", "Succeeded")


ACTS = (
    Act(
        BIASED_CANDIDATE,
        "candidate: TPR -0.4 for older women; every marginal group within the margin",
        rollout_ended,
    ),
    Act(
        DRIFTING_CANDIDATE,
        "candidate: fair in its canary; once it serves everyone women lose 0.4 of TPR",
        guard_acted,
    ),
)


class DemoError(RuntimeError):
    """The demo cannot run (no checkout, the cluster did not come up...)."""


class Demo:
    """The processes and objects of one demo run."""

    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        self.repo = REPO
        self.workdir = Path(tempfile.mkdtemp(prefix="fairshift-demo-"))
        self.namespace = f"fairshift-demo-{secrets.token_hex(2)}"
        self.brought_up = False
        self.env: dict[str, str] = dict(os.environ)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.stats_file = self.workdir / "dataplane.url"

    # -- plumbing ----------------------------------------------------------------------------

    def cluster(self, verb: str, capture: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(self.repo / CLUSTER_SH), verb],
            env=self.env,
            capture_output=capture,
            text=True,
            timeout=3600,
            check=False,
        )

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        done = subprocess.run(
            ["kubectl", "--kubeconfig", self.env["KUBECONFIG"], *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and done.returncode != 0:
            raise DemoError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv, cwd=self.repo, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.processes.append(proc)
        return proc

    def wait(self, what: str, check: Any, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.5)
        raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}")

    # -- steps -------------------------------------------------------------------------------

    def up(self) -> None:
        if self.cluster("status").returncode != 0:
            self.console.print("[bold]bringing up the local cluster[/] (e2e/cluster.sh up) ...")
            done = self.cluster("up", capture=False)
            if done.returncode != 0:
                raise DemoError("e2e/cluster.sh up failed (see its output above)")
            self.brought_up = True
        for line in self.cluster("env").stdout.splitlines():
            match = re.match(r"export (\w+)='([^']*)'$", line.strip())
            if match:
                self.env[match.group(1)] = match.group(2)
        self.env["PATH"] = f"{self.env.get('FAIRSHIFT_E2E_BIN', '')}:{os.environ['PATH']}"

    def apply(self) -> None:
        crd = self.repo / "crds" / "modelrollouts.yaml"
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
        self.kubectl("wait", "--for=condition=Established", "crd/modelrollouts.fairshift.io")
        self.kubectl("create", "namespace", self.namespace)
        self.wait(
            "the namespace's default ServiceAccount",
            lambda: self.kubectl(
                "-n", self.namespace, "get", "sa", "default", "--ignore-not-found"
            ).strip(),
            60,
        )
        docs = list(yaml.safe_load_all((self.repo / EXAMPLE).read_text()))
        for doc in docs:
            if doc.get("kind") == "ModelRollout":
                address = self.env["FAIRSHIFT_PROMETHEUS_URL"]
                doc["spec"]["analysis"]["prometheus"]["address"] = address
        self.kubectl(
            "-n", self.namespace, "apply", "--server-side", "-f", "-",
            stdin=yaml.safe_dump_all(docs),
        )  # fmt: skip

    def start_processes(self) -> None:
        kubeconfig = self.env["KUBECONFIG"]
        self.spawn(
            "operator",
            [sys.executable, "-m", "fairshift.cli", "run", "--kubeconfig", kubeconfig,
             "--namespace", self.namespace, "--standalone", "--metrics-port", "0",
             "--liveness", "", "--tick", "2"],
        )  # fmt: skip
        self.spawn(
            "dataplane",
            [sys.executable, "-m", "e2e.dataplane", "--kubeconfig", kubeconfig,
             "--namespace", self.namespace, "--target", TARGET, "--rollout", ROLLOUT,
             "--rate", str(self.args.rate),
             "--duration", str(len(ACTS) * self.args.time_limit + 120),
             "--stats-file", str(self.stats_file)],
        )  # fmt: skip

    def mro(self) -> dict[str, Any]:
        text = self.kubectl("-n", self.namespace, "get", "mro", ROLLOUT, "-o", "json", check=False)
        found: dict[str, Any] = json.loads(text) if text.strip() else {}
        return found

    def phase(self) -> str | None:
        return (self.mro().get("status") or {}).get("phase")

    def stats(self) -> dict[str, Any]:
        try:
            url = self.stats_file.read_text().strip()
            with urllib.request.urlopen(url, timeout=5) as response:
                stats: dict[str, Any] = json.load(response)
            return stats
        except (OSError, ValueError):
            return {}

    def inject(self, candidate: Mapping[str, Any]) -> None:
        value = json.dumps(candidate, sort_keys=True, separators=(",", ":"))
        self.kubectl(
            "-n", self.namespace, "set", "env", f"deployment/{TARGET}", f"SIM_MODEL={value}"
        )

    def view(self, act: Act, obj: Mapping[str, Any], started: float) -> Group:
        elapsed = time.monotonic() - started
        header = Text.from_markup(
            f"[bold]fairshift demo[/]  namespace [bold]{self.namespace}[/]  "
            f"{elapsed:.0f}s of at most {self.args.time_limit:.0f}s  [dim]({act.caption})[/]"
        )
        parts: list[Any] = [header]
        if obj:
            try:
                parts.append(render_status(obj, datetime.now(UTC)))
            except StatusError as error:
                parts.append(Text(f"status not readable yet: {error}"))
            guard = (obj.get("status") or {}).get("guard")
            if guard:
                parts.append(guard_panel(guard))
        parts.append(traffic_panel(self.stats()))
        return Group(*parts)

    def play(self, act: Act) -> dict[str, Any]:
        """Roll out the act's candidate and show it live until the act is over (or the time
        limit); returns the rollout's last status."""
        before = (self.mro().get("status") or {}).get("phase")
        self.inject(act.candidate)
        if before != "Idle":  # wait until the operator took the new revision up
            self.wait("the new revision", lambda: self.phase() not in (before, None), 60)
        started = time.monotonic()
        obj = self.mro()
        with Live(self.view(act, obj, started), console=self.console, refresh_per_second=2) as live:
            while time.monotonic() - started < self.args.time_limit:
                obj = self.mro()
                live.update(self.view(act, obj, started))
                if act.over(obj.get("status") or {}):
                    break
                time.sleep(1.0)
        status: dict[str, Any] = obj.get("status") or {}
        return status

    def marginal_slices_only(self) -> None:
        """For the guard's act the rollout judges the marginal groups only: proving a fair
        candidate fair on every intersection (e.g. the four-fifths rule's lower bound above 0.8
        for older women) takes longer than a demo's few minutes of simulated traffic."""
        patch = {"spec": {"analysis": {"slices": {"intersections": False}}}}
        self.kubectl(
            "-n", self.namespace, "patch", "mro", ROLLOUT, "--type=merge", "-p", json.dumps(patch)
        )

    def guard_story(self) -> None:
        """The guard's records, and how long after the drift began it was caught."""
        text = self.kubectl(
            "-n", self.namespace, "get", "configmap", f"{ROLLOUT}-audit", "-o",
            "jsonpath={.data.records\\.jsonl}", check=False,
        )  # fmt: skip
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
        self.console.rule("what the guard recorded")
        for record in records:
            if record.get("action") in GUARD_ACTIONS:
                message = str(record.get("message", ""))[:150]
                self.console.print(f"  {record['time']}  [bold]{record['action']}[/]  {message}")
        drift = drift_began(self.stats())
        breach = next((r for r in records if r.get("action") == "guard-breached"), None)
        if drift is not None and breach is not None:
            caught = parse_time(breach["time"]) - drift
            self.console.print(
                f"  the live model began to drift at {format_time(drift)}; "
                f"the guard caught it [bold]{caught:.0f}s[/] later "
                "(looks every 30 s; the time is in whole seconds)"
            )

    def epilogue(self, phase: str | None) -> None:
        self.guard_story()
        ns = self.namespace
        self.console.rule("kubectl get mro")
        self.console.print(self.kubectl("-n", ns, "get", "mro", "-o", "wide", check=False))
        verify = subprocess.run(
            [sys.executable, "-m", "fairshift.cli", "audit", "verify", ROLLOUT, "-n", ns,
             "--kubeconfig", self.env["KUBECONFIG"]],
            capture_output=True, text=True, timeout=60, check=False, env=self.env,
        )  # fmt: skip
        self.console.print(f"[bold]audit chain:[/] {(verify.stdout + verify.stderr).strip()}")
        kc = f"KUBECONFIG={self.env['KUBECONFIG']}"
        self.console.rule("the evidence")
        self.console.print(
            f"  phase reached: [bold]{phase}[/]\n"
            f"  {kc} kubectl describe mro {ROLLOUT} -n {ns}      # status, gates, Events\n"
            f"  {kc} kubectl get configmap {ROLLOUT}-audit -n {ns} -o yaml   # the audit chain\n"
            f"  {kc} fairshift status {ROLLOUT} -n {ns}\n"
            f"  {kc} fairshift audit verify {ROLLOUT} -n {ns}\n"
            f"  operator and data plane logs: {self.workdir}",
            soft_wrap=True,
        )
        if not self.args.keep:
            going = "the cluster it brought up" if self.brought_up else f"namespace {ns}"
            self.console.print(
                f"[dim]the demo now removes {going}; "
                "run `make demo DEMO_ARGS=--keep` to look around afterwards[/]"
            )

    def cleanup(self) -> None:
        removing_namespace = not self.args.keep and not self.brought_up
        if removing_namespace and "KUBECONFIG" in self.env:
            # while the operator still runs: it hands traffic back and lifts its finalizer
            self.kubectl(
                "-n", self.namespace, "delete", "mro", ROLLOUT, "--ignore-not-found",
                "--timeout=30s", check=False,
            )  # fmt: skip
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self.args.keep:
            self.console.print(f"[dim]--keep: namespace {self.namespace} left in place[/]")
            return
        if self.brought_up:
            self.console.print("[dim]bringing the cluster down (e2e/cluster.sh down)[/]")
            self.cluster("down")
        elif "KUBECONFIG" in self.env and self.namespace:
            self.kubectl("delete", "namespace", self.namespace, "--wait=false", check=False)


def guard_panel(guard: Mapping[str, Any]) -> Panel:
    """The guarded cells closest to a breach (the status above shows health and looks)."""
    lines = []
    for cell in (guard.get("worst") or [])[:4]:
        estimate = cell.get("estimate")
        shown = "-" if estimate is None else f"{estimate:.3f}"
        lines.append(
            f"{cell['gate']:<18} {cell['slice']:<14} {cell['grade']:<9} "
            f"at {cell['level']:.2f} of the breach threshold  estimate {shown}"
        )
    body = "\n".join(lines) or "no look yet"
    return Panel(Text(body), title="the guard: cells closest to a breach", title_align="left")


def drift_began(stats: Mapping[str, Any]) -> float | None:
    """When the primary's model server began to add its production bias (wall time)."""
    times = [p["driftsAt"] for p in stats.get("podHistory", []) if p.get("driftsAt")]
    return min(times) if times else None


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def format_time(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%H:%M:%S")


def traffic_panel(stats: Mapping[str, Any]) -> Panel:
    traffic = stats.get("traffic") or {}
    counts = traffic.get("counts") or {}
    routing = traffic.get("routing") or {}
    pods = "; ".join(f"{p['pod']} ({model_summary(p['model'])})" for p in stats.get("pods", []))
    lines = [
        f"route: {routing.get('backends', '-')}  mirror: {routing.get('mirror') or '-'}",
        "requests: "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v)
        + f"  ({traffic.get('rate', 0):.0f}/s)",
        f"model servers: {pods or '-'}",
    ]
    return Panel(Text("\n".join(lines)), title="simulated data plane", title_align="left")


def model_summary(model: Mapping[str, Any]) -> str:
    """``seed 2, 20 ms, bias on sex=F,age_band=60+ (tpr -0.3), ...`` for the traffic panel."""
    parts = [f"seed {model.get('seed', 1)}", f"{model.get('latency_ms', 20)} ms"]
    bias = model.get("bias") or {}
    worst = sorted(bias.items(), key=lambda kv: min(kv[1].values(), default=0))[:1]
    for where, shifts in worst:
        shift = ", ".join(f"{k} {v:+g}" for k, v in shifts.items())
        parts.append(f"bias on {len(bias)} slices, worst {where} ({shift})")
    for where, shifts in (model.get("production_bias") or {}).items():
        shift = ", ".join(f"{k} {v:+g}" for k, v in shifts.items())
        after = model.get("production_after_s", 0)
        parts.append(f"in production after {after:g}s: {where} ({shift})")
    return ", ".join(parts)


def parser() -> argparse.ArgumentParser:
    """The demo's options (``make demo DEMO_ARGS='--keep'``)."""
    options = argparse.ArgumentParser(
        prog="python -m e2e.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    options.add_argument(
        "--time-limit", type=float, default=480.0, help="seconds per rollout shown (default 480)"
    )
    options.add_argument("--rate", type=float, default=250.0, help="simulated requests per second")
    options.add_argument(
        "--keep", action="store_true", help="leave the cluster, namespace and processes' data"
    )
    return options


def main(argv: Sequence[str] | None = None) -> int:
    return run(parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    console = Console()
    if not console.is_terminal:  # a log file: wide enough for the gates table
        console = Console(width=160)
    demo = Demo(args, console)
    phase: str | None = None
    handled = False
    try:
        demo.up()
        demo.apply()
        demo.start_processes()
        console.print(f"waiting for the operator to adopt [bold]{demo.namespace}/{ROLLOUT}[/] ...")
        demo.wait("the rollout to become Idle", lambda: demo.phase() == "Idle", 180)
        console.print("rolling out the biased candidate (a new pod template) ...")
        phase = demo.play(ACTS[0]).get("phase")
        if phase == "RolledBack":
            console.print(
                "rolling out a candidate that is fair until it serves everyone: "
                "promoted, then guarded ..."
            )
            demo.marginal_slices_only()
            final = demo.play(ACTS[1])
            handled = final.get("phase") == "RolledBack" and final.get("reason") == "GuardBreached"
            phase = final.get("phase")
        demo.epilogue(phase)
    except DemoError as error:
        console.print(f"[red]demo failed: {error}[/]  (logs: {demo.workdir})")
        return ExitCode.FAILED
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return ExitCode.INTERRUPTED
    finally:
        demo.cleanup()
    return ExitCode.OK if handled else ExitCode.FAILED


if __name__ == "__main__":
    sys.exit(main())
