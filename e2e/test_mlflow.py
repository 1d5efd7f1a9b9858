"""The MLflow sink against a real MLflow tracking server (no cluster needed).

The ``tracking_server`` fixture starts ``mlflow server`` (the PyPI package, SQLite backend,
artifacts served by the server) on a free port and waits for ``/health``. A real-shaped
audit chain is fed through :class:`MlflowSink` with MLflow's own client:

- the run of the candidate revision, its metrics per gate and slice at each audit seq, its
  tags and decision files appear;
- the server stopped mid-rollout: ``notify`` still returns at once, the records of the
  outage are tried a bounded number of times and counted as failed, nothing raises;
- the server back (same database): the rest of the rollout is logged into the same run,
  which ends FINISHED with the chain and report attached, and the registered model version
  (by alias) is tagged promoted with the audit head.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow  # pip install -e '.[mlflow,mlflow-server]' (.ci/run does)
import pytest
from tests.evidence.rollout_records import rollout_records

from e2e.helpers import free_port, wait_for
from fairshift.api.notifications import Notification
from fairshift.engine.audit import verify_chain
from fairshift.evidence.closing import EvidenceFiles
from fairshift.evidence.sink import MlflowSink

pytestmark = pytest.mark.e2e

NS, NAME, REVISION = "lending", "credit-scorer", "7d9f8c6b5"
STARTUP_SECONDS = 300.0  # SQLite migrations take a while on a busy machine


class TrackingServer:
    """``mlflow server`` in its own process group; stop and start again on the same data."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.data / "server.log").open("ab")
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "mlflow", "server"),
                *("--backend-store-uri", f"sqlite:///{self.data / 'mlflow.db'}"),
                *("--artifacts-destination", str(self.data / "artifacts")),
                *("--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"),
            ],
            cwd=self.data,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(
            self.healthy,
            timeout=STARTUP_SECONDS,
            interval=1.0,
            message=f"mlflow server on {self.url} (log: {self.data / 'server.log'})",
        )

    def healthy(self) -> bool:
        """Up, and its tracking API answers (a fresh server's first requests are slow)."""
        assert self.process is not None and self.process.poll() is None, "mlflow server exited"
        probe = "/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default"
        try:
            with urllib.request.urlopen(self.url + probe, timeout=10) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        wait_for(lambda: not self.listening(), timeout=30, message="the port to close")

    def listening(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1):
                return True
        except OSError:
            return False


@pytest.fixture
def tracking_server(tmp_path: Path) -> Iterator[TrackingServer]:
    server = TrackingServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def registered_alias(client: Any, name: str, alias: str) -> str:
    """A registered model whose version (from a training run) carries ``alias``."""
    experiment = client.create_experiment("training")
    training = client.create_run(experiment)
    client.create_registered_model(name)
    version = client.create_model_version(
        name, f"runs:/{training.info.run_id}/model", run_id=training.info.run_id
    )
    client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def feed(sink: MlflowSink, records: list[dict[str, Any]], notification: Notification) -> float:
    """Hand the records to the sink as the reconciler does; the seconds notify took."""
    started = time.monotonic()
    for record in records:
        sink.notify(NS, NAME, record, [notification])
    return time.monotonic() - started


def test_a_rollout_is_logged_and_an_outage_neither_blocks_nor_raises(
    tracking_server: TrackingServer,
) -> None:
    client = mlflow.MlflowClient(tracking_server.url)
    version = registered_alias(client, NAME, "champion")
    records = rollout_records(REVISION)
    notification = Notification.model_validate(
        {
            "mlflow": {
                "trackingUri": tracking_server.url,
                "experiment": "credit-scorer rollouts",
                "registeredModel": {"name": NAME, "alias": "champion"},
            }
        }
    )
    sink = MlflowSink(
        files=EvidenceFiles(
            lambda ns, name: records, lambda ns, name: {"status": {"phase": "Succeeded"}}
        ),
        attempts=2,
        backoff_seconds=0.5,
        deadline_seconds=15.0,
        timeout_seconds=10.0,
    )

    # analysis looks: the run, its metrics and tags appear
    assert feed(sink, records[:5], notification) < 0.5
    assert sink.drain(timeout=120)
    experiment = client.get_experiment_by_name("credit-scorer rollouts")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == f"{NAME}-{REVISION}"
    assert run.data.tags["fairshift.io/rollout"] == f"{NS}/{NAME}"
    assert run.data.tags["fairshift.io/revision"] == REVISION
    assert run.data.tags["fairshift.io/audit-head"] == records[4]["hash"]
    history = client.get_metric_history(run.info.run_id, "equal-opportunity/sex.female/estimate")
    assert [(m.step, m.value) for m in history] == [(3, 0.01), (4, 0.02), (5, 0.03)]
    assert sink.health().ok and sink.health().delivered == 4

    # MLflow goes away mid-rollout: notify returns at once, the records are counted failed
    tracking_server.stop()
    assert feed(sink, records[5:6], notification) < 0.5
    started = time.monotonic()
    assert sink.drain(timeout=60)
    assert time.monotonic() - started < 30  # refused at once: 2 tries, 0.5 s apart
    outage = sink.health()
    assert (outage.delivered, outage.failed, outage.dropped) == (4, 1, 0)
    assert not outage.ok
    assert outage.last_error is not None and f"{NS}/{NAME} seq 6" in outage.last_error

    # MLflow is back: the rest of the rollout lands in the same run, which ends promoted
    tracking_server.start()
    assert feed(sink, records[6:], notification) < 0.5
    assert sink.drain(timeout=180)
    assert sink.health().ok and sink.health().delivered == 6

    run = client.get_run(run.info.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["fairshift.io/outcome"] == "promoted"
    assert run.data.tags["fairshift.io/audit-head"] == records[-1]["hash"]
    weights = client.get_metric_history(run.info.run_id, "traffic/canary_weight")
    assert sorted(m.step for m in weights) == [2, 3, 4, 5, 7, 8]  # seq 6 fell in the outage
    files = {a.path for a in client.list_artifacts(run.info.run_id, "decisions")}
    assert files == {
        "decisions/000002-new-revision.json",
        "decisions/000007-steps-done.json",
        "decisions/000008-promotion-done.json",
    }
    chain_file = client.download_artifacts(run.info.run_id, "audit/records.jsonl")
    chain = [json.loads(line) for line in Path(chain_file).read_text().splitlines()]
    assert verify_chain(chain, records[-1]["hash"]).ok
    page = Path(client.download_artifacts(run.info.run_id, "report/report.html")).read_text()
    assert f"{NS}/{NAME} {REVISION}" in page
    card = Path(client.download_artifacts(run.info.run_id, "model-card.md")).read_text()
    assert card.startswith(f"# Model card: {NS}/{NAME}")
    assert f"| Head (SHA-256) | {records[-1]['hash']} |" in card
    tags = client.get_model_version(NAME, version).tags
    assert tags["fairshift.io/outcome"] == "promoted"
    assert tags["fairshift.io/audit-head"] == records[-1]["hash"]
    assert tags["fairshift.io/run-id"] == run.info.run_id
