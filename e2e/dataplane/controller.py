"""The data-plane controller: model-server processes follow the Deployments, like kubelets would.

Pods on the kwok node are fake, so this controller plays kubelet for the two Deployments of a
rollout, ``<target>`` (the candidate) and ``<target>-primary``. It polls them through the API
server and, for each one with ``spec.replicas > 0``, runs one :class:`ModelServer` configured
from the pod template's first container's ``SIM_MODEL`` env var (the primary's servers are
production servers: they apply the model's ``production_bias``). When the template changes
(a new revision, or promotion copying the candidate into primary) the server restarts with the
new behaviour; when replicas drop to 0 it stops.

Every server is registered in Prometheus through a file-sd JSON file with the labels a pod
would have: ``namespace=<ns>`` and ``pod=<deployment>-<template hash>-<pod suffix>``, so the
operator's default selector ``pod=~"{{deployment}}-[0-9a-z]+-[0-9a-z]+"`` matches the
candidate and the primary separately (PromQL regexes are anchored).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e.dataplane.kube import KubeReader
from e2e.dataplane.population import ModelBehaviour
from e2e.dataplane.server import ModelServer

log = logging.getLogger("dataplane.controller")

SIM_MODEL_ENV = "SIM_MODEL"
POD_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet Kubernetes uses


def template_hash(template: dict[str, Any]) -> str:
    """A 10-character [0-9a-z] hash of a pod template (plays the ReplicaSet's hash)."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = []
    for _ in range(10):
        number, rest = divmod(number, 36)
        out.append(alphabet[rest])
    return "".join(out)


def sim_model(template: dict[str, Any]) -> str:
    """The ``SIM_MODEL`` env value of the template's first container ("" if absent)."""
    containers = (template.get("spec") or {}).get("containers") or [{}]
    for env in containers[0].get("env") or []:
        if env.get("name") == SIM_MODEL_ENV:
            return str(env.get("value") or "")
    return ""


@dataclass
class Pod:
    """A running model server standing in for one pod of a Deployment."""

    deployment: str
    revision: str
    name: str
    labels: dict[str, str]
    model_json: str
    server: ModelServer
    started_at: float = field(default_factory=time.time)

    @property
    def address(self) -> str:
        return self.server.address

    def describe(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "pod": self.name,
            "revision": self.revision,
            "address": self.address,
            "model": json.loads(self.model_json) if self.model_json else {},
            "labels": self.labels,
            "startedAt": self.started_at,
            "driftsAt": self.server.drifts_at,
            "requests": self.server.requests,
            "failures": self.server.failures,
        }


class DataPlaneController:
    """Keeps one model server per scaled-up Deployment of a rollout, registered in Prometheus."""

    def __init__(
        self,
        kube: KubeReader,
        target: str,
        sd_dir: str | Path | None,
        *,
        poll_seconds: float = 1.0,
        rng: random.Random | None = None,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.kube = kube
        self.namespace = kube.namespace
        self.deployments = (target, f"{target}-primary")
        self.sd_dir = Path(sd_dir) if sd_dir else None
        self.poll_seconds = poll_seconds
        self.rng = rng or random.Random()
        self.on_change = on_change or (lambda message: log.info("%s", message))
        self.pods: dict[str, Pod] = {}
        self.history: list[dict[str, Any]] = []
        self.errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dataplane-controller", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> DataPlaneController:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for name in list(self.pods):
            self._stop_pod(name, "data plane stopping")

    def snapshot(self) -> list[Pod]:
        with self._lock:
            return list(self.pods.values())

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync_once()
            except Exception as error:  # the API may be briefly away; try again next poll
                self.errors += 1
                log.warning("sync failed: %s", error)
            self._stop.wait(self.poll_seconds)

    # -- reconcile ---------------------------------------------------------------------------

    def sync_once(self) -> None:
        wanted: dict[str, dict[str, Any]] = {}
        for deployment in self.kube.deployments():
            name = deployment["metadata"]["name"]
            spec = deployment.get("spec") or {}
            replicas = 1 if spec.get("replicas") is None else int(spec["replicas"])
            if name in self.deployments and replicas > 0:
                wanted[name] = spec.get("template") or {}
        for name, pod in list(self.pods.items()):
            if name not in wanted:
                self._stop_pod(name, "scaled to 0")
            elif template_hash(wanted[name]) != pod.revision:
                self._stop_pod(name, "template changed")
        for name, template in wanted.items():
            if name not in self.pods:
                self._start_pod(name, template)

    def _start_pod(self, deployment: str, template: dict[str, Any]) -> None:
        revision = template_hash(template)
        suffix = "".join(self.rng.choice(POD_SUFFIX_ALPHABET) for _ in range(5))
        pod_name = f"{deployment}-{revision}-{suffix}"
        model_json = sim_model(template)
        try:
            model = ModelBehaviour.from_json(model_json)
        except ValueError as error:
            log.error("%s: bad %s: %s", deployment, SIM_MODEL_ENV, error)
            model = ModelBehaviour()
        production = deployment == self.deployments[1]
        server = ModelServer(pod_name, model, production=production).start()
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        pod = Pod(deployment, revision, pod_name, labels, model_json, server)
        with self._lock:
            self.pods[deployment] = pod
        self._register(pod)
        self.history.append({"time": time.time(), "event": "started", **pod.describe()})
        self.on_change(f"started {pod_name} on {pod.address} model={model_json or '{}'}")

    def _stop_pod(self, deployment: str, why: str) -> None:
        with self._lock:
            pod = self.pods.pop(deployment, None)
        if pod is None:
            return
        self._unregister(pod)
        pod.server.stop()
        self.history.append({"time": time.time(), "event": f"stopped: {why}", **pod.describe()})
        self.on_change(f"stopped {pod.name} ({why})")

    # -- Prometheus file-sd ------------------------------------------------------------------

    def _sd_file(self, pod: Pod) -> Path | None:
        if self.sd_dir is None:
            return None
        return self.sd_dir / f"dataplane-{self.namespace}-{pod.deployment}.json"

    def _register(self, pod: Pod) -> None:
        path = self._sd_file(pod)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        labels = {"namespace": self.namespace, "pod": pod.name}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": [pod.address], "labels": labels}]))
        tmp.replace(path)

    def _unregister(self, pod: Pod) -> None:
        path = self._sd_file(pod)
        if path is not None:
            path.unlink(missing_ok=True)
