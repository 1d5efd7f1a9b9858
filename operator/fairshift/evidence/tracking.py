"""The few things fairshift asks of an MLflow tracking server, and MLflow's client doing them.

:class:`Tracking` is the port the sink writes through (tests use an in-memory fake);
:class:`MlflowTracking` implements it with ``mlflow.MlflowClient``, MLflow's own client
library (``pip install 'fairshift[mlflow]'``), imported only when a rollout names a server.

MLflow's client reads credentials and its HTTP retry settings from environment variables on
every request (``MLFLOW_TRACKING_TOKEN``, ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``,
``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``MLFLOW_HTTP_REQUEST_TIMEOUT``). The sink makes every
MLflow call from one thread, inside :func:`mlflow_environment`, which sets them for that
call and restores them after: each rollout's server gets its own credentials, and the sink's
bounded retries are the only ones.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from fairshift.evidence.records import MetricPoint
from fairshift.k8s.errors import NotFound

MAX_METRICS_PER_CALL = 1000  # MLflow's log_batch limit
MAX_TAGS_PER_CALL = 100


@dataclass(frozen=True)
class Credentials:
    """What a rollout's Secret holds for its tracking server (all optional)."""

    token: str | None = None
    username: str | None = None
    password: str | None = None

    def environment(self) -> dict[str, str | None]:
        return {
            "MLFLOW_TRACKING_TOKEN": self.token,
            "MLFLOW_TRACKING_USERNAME": self.username,
            "MLFLOW_TRACKING_PASSWORD": self.password,
        }


class Tracking(Protocol):
    """An MLflow tracking server, as the sink uses it. Every method may raise."""

    def experiment_id(self, name: str) -> str:
        """The id of the experiment called ``name``, created if it does not exist."""

    def find_run(self, experiment_id: str, tags: Mapping[str, str]) -> str | None:
        """The id of a run of the experiment carrying all of ``tags``, or None."""

    def create_run(self, experiment_id: str, name: str, tags: Mapping[str, str]) -> str:
        """A new run's id."""

    def log(self, run_id: str, metrics: Sequence[MetricPoint], tags: Mapping[str, str]) -> None:
        """Metric points and tags, in as few calls as MLflow allows."""

    def log_json(self, run_id: str, document: Mapping[str, Any], path: str) -> None:
        """A JSON artifact at ``path`` in the run."""

    def log_text(self, run_id: str, text: str, path: str) -> None:
        """A text artifact (Markdown, HTML, JSON lines) at ``path`` in the run."""

    def set_status(self, run_id: str, status: str) -> None:
        """``RUNNING``, ``FINISHED`` or ``FAILED`` (with an end time unless running)."""

    def tag_model_version(
        self, name: str, version: str | None, alias: str | None, tags: Mapping[str, str]
    ) -> str:
        """Tag a registered model version (given by number or alias); returns its number."""


_environment_lock = threading.Lock()


@contextmanager
def mlflow_environment(credentials: Credentials, timeout_seconds: float) -> Iterator[None]:
    """MLflow's client settings for one delivery: these credentials, no retries of its own."""
    wanted: dict[str, str | None] = {
        **credentials.environment(),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, round(timeout_seconds))),
    }
    with _environment_lock:
        saved = {key: os.environ.get(key) for key in wanted}
        try:
            set_environment(wanted)
            yield
        finally:
            set_environment(saved)


def set_environment(values: Mapping[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def quoted(value: str) -> str:
    """A string literal for MLflow's search filter."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class MlflowTracking:
    """:class:`Tracking` with ``mlflow.MlflowClient`` on one tracking URI."""

    def __init__(self, tracking_uri: str) -> None:
        try:
            from mlflow import MlflowClient
        except ImportError as error:
            raise RuntimeError(
                "the MLflow client is not installed: pip install 'fairshift[mlflow]'"
            ) from error
        self._client: Any = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def experiment_id(self, name: str) -> str:
        found = self._client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        return str(self._client.create_experiment(name))

    def find_run(self, experiment_id: str, tags: Mapping[str, str]) -> str | None:
        condition = " and ".join(f"tags.`{k}` = {quoted(v)}" for k, v in sorted(tags.items()))
        runs = self._client.search_runs(
            [experiment_id], filter_string=condition, max_results=1, order_by=["start_time DESC"]
        )
        return str(runs[0].info.run_id) if runs else None

    def create_run(self, experiment_id: str, name: str, tags: Mapping[str, str]) -> str:
        run = self._client.create_run(experiment_id, tags=dict(tags), run_name=name)
        return str(run.info.run_id)

    def log(self, run_id: str, metrics: Sequence[MetricPoint], tags: Mapping[str, str]) -> None:
        from mlflow.entities import Metric, RunTag

        points = [Metric(m.key, m.value, m.timestamp_ms, m.step) for m in metrics]
        labels = [RunTag(key, value) for key, value in tags.items()]
        for start in range(0, max(len(points), 1), MAX_METRICS_PER_CALL):
            chunk = points[start : start + MAX_METRICS_PER_CALL]
            self._client.log_batch(run_id, metrics=chunk, tags=labels[:MAX_TAGS_PER_CALL])
            labels = labels[MAX_TAGS_PER_CALL:]
        for start in range(0, len(labels), MAX_TAGS_PER_CALL):
            self._client.log_batch(run_id, tags=labels[start : start + MAX_TAGS_PER_CALL])

    def log_json(self, run_id: str, document: Mapping[str, Any], path: str) -> None:
        self._client.log_dict(run_id, dict(document), path)

    def log_text(self, run_id: str, text: str, path: str) -> None:
        self._client.log_text(run_id, text, path)

    def set_status(self, run_id: str, status: str) -> None:
        if status == "RUNNING":
            self._client.update_run(run_id, status="RUNNING")
        else:
            self._client.set_terminated(run_id, status=status)

    def tag_model_version(
        self, name: str, version: str | None, alias: str | None, tags: Mapping[str, str]
    ) -> str:
        if version is None:
            version = str(self._client.get_model_version_by_alias(name, alias).version)
        for key, value in tags.items():
            self._client.set_model_version_tag(name, version, key, value)
        return version


ReadSecretKey = Callable[[str, str, str], str]
"""``read_key(namespace, secret_name, key)`` -> the value; ``NotFound`` when absent."""


def secret_credentials(read_key: ReadSecretKey) -> Callable[[str, str], Credentials]:
    """Credentials from a Secret: ``MLFLOW_TRACKING_TOKEN``, else ``MLFLOW_TRACKING_USERNAME``
    and ``MLFLOW_TRACKING_PASSWORD``; a Secret with neither is an error."""

    def read(namespace: str, name: str) -> Credentials:
        token = optional_key(read_key, namespace, name, "MLFLOW_TRACKING_TOKEN")
        username = optional_key(read_key, namespace, name, "MLFLOW_TRACKING_USERNAME")
        password = optional_key(read_key, namespace, name, "MLFLOW_TRACKING_PASSWORD")
        if token is None and (username is None or password is None):
            raise ValueError(
                f"Secret {namespace}/{name} holds neither MLFLOW_TRACKING_TOKEN nor both "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
            )
        return Credentials(token=token, username=username, password=password)

    return read


def optional_key(read_key: ReadSecretKey, namespace: str, name: str, key: str) -> str | None:
    try:
        return read_key(namespace, name, key)
    except NotFound as error:
        if "has no key" in str(error):
            return None
        raise
