"""An in-memory MLflow tracking server with the ``Tracking`` port's methods, and a switch
that takes it down (every call then raises ``ConnectionError``, as MLflow's client does)."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fairshift.evidence.records import MetricPoint

DRAIN_LIMIT = 180.0
"""How long a test waits for the sink to deliver its queue: a wait for a condition, generous
because building a card and its charts takes seconds of CPU on a loaded machine."""


@dataclass
class FakeRun:
    experiment_id: str
    name: str
    tags: dict[str, str]
    metrics: dict[str, list[tuple[int, float, int]]] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    status: str = "RUNNING"

    def history(self, key: str) -> list[tuple[int, float]]:
        return [(step, value) for step, value, _ in self.metrics.get(key, [])]


class FakeTracking:
    """Experiments, runs, metrics, tags, artifacts and registered model versions in memory."""

    def __init__(self) -> None:
        self.down = False
        self.gate = threading.Event()  # cleared: every call waits (a slow server)
        self.gate.set()
        self.entered = threading.Event()  # set once a call has started
        self.calls: list[str] = []
        self.tokens_seen: list[str | None] = []
        self.experiments: dict[str, str] = {}
        self.runs: dict[str, FakeRun] = {}
        self.versions: dict[tuple[str, str], dict[str, str]] = {}
        self.aliases: dict[tuple[str, str], str] = {}

    def _call(self, name: str) -> None:
        self.entered.set()
        self.gate.wait(timeout=30)
        self.calls.append(name)
        self.tokens_seen.append(os.environ.get("MLFLOW_TRACKING_TOKEN"))
        if self.down:
            raise ConnectionError("Connection refused")

    def experiment_id(self, name: str) -> str:
        self._call("experiment_id")
        return self.experiments.setdefault(name, str(len(self.experiments) + 1))

    def find_run(self, experiment_id: str, tags: Mapping[str, str]) -> str | None:
        self._call("find_run")
        for run_id, run in self.runs.items():
            if run.experiment_id == experiment_id and tags.items() <= run.tags.items():
                return run_id
        return None

    def create_run(self, experiment_id: str, name: str, tags: Mapping[str, str]) -> str:
        self._call("create_run")
        run_id = f"run{len(self.runs) + 1}"
        self.runs[run_id] = FakeRun(experiment_id, name, dict(tags))
        return run_id

    def log(self, run_id: str, metrics: Sequence[MetricPoint], tags: Mapping[str, str]) -> None:
        self._call("log")
        run = self.runs[run_id]
        for m in metrics:
            run.metrics.setdefault(m.key, []).append((m.step, m.value, m.timestamp_ms))
        run.tags.update(tags)

    def log_json(self, run_id: str, document: Mapping[str, Any], path: str) -> None:
        self._call("log_json")
        self.runs[run_id].artifacts[path] = dict(document)

    def log_text(self, run_id: str, text: str, path: str) -> None:
        self._call("log_text")
        self.runs[run_id].artifacts[path] = text

    def set_status(self, run_id: str, status: str) -> None:
        self._call("set_status")
        self.runs[run_id].status = status

    def tag_model_version(
        self, name: str, version: str | None, alias: str | None, tags: Mapping[str, str]
    ) -> str:
        self._call("tag_model_version")
        if version is None:
            version = self.aliases[(name, str(alias))]
        self.versions.setdefault((name, version), {}).update(tags)
        return version

    def only_run(self) -> FakeRun:
        assert len(self.runs) == 1, f"{len(self.runs)} runs"
        return next(iter(self.runs.values()))
