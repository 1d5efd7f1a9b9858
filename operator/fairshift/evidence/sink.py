"""The MLflow sink: every decision of a rollout that names a tracking server, logged there.

:class:`MlflowSink` is a notifier (the reconciler's ``notify`` port). For each
``spec.notifications[].mlflow`` it queues the record and returns at once; one worker thread
delivers the queue in order:

- the run of the record's candidate revision, found by its tags or created
  (``fairshift.io/rollout``, ``fairshift.io/revision``) in the named experiment;
- the record's traffic shares and evidence as metrics at step ``seq`` and its decision and
  the audit chain's head as tags (``evidence.records``); every record but an analysis hold
  also as ``decisions/<seq>-<action>.json``, with the model card as it then stands;
- when the record settles the revision (promoted, rolled back, failed, reverted, or breached
  under the guard): the closing files (the card, the whole audit chain, the report), the run
  ended (FINISHED, FAILED or KILLED), and the registered model version, if named, tagged
  with the outcome and the chain's head;
- after a promotion, the guard's records (warnings, breaches, hourly attestations) go to the
  promoted revision's run: its worst cells as ``guard/...`` metrics, its health as a tag.

It never blocks or slows a rollout: a full queue drops the record, a delivery is tried a
bounded number of times within a deadline, and nothing raises to the caller. Every drop and
failure is counted (``fairshift_evidence_records_total{sink="mlflow",result}`` when the
operator's metrics are on), and :meth:`MlflowSink.health` says what went wrong last, for a
status condition or a log line.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from fairshift.api.notifications import MLflow, Notification
from fairshift.evidence.records import (
    AUDIT_HEAD_TAG,
    BREACHED,
    OUTCOME_TAG,
    ROLLOUT_TAG,
    RUN_STATUS,
    MetricPoint,
    RunKey,
    follows_candidate,
    is_routine,
    outcome,
    record_artifact_path,
    record_metrics,
    record_tags,
    run_key,
)
from fairshift.evidence.tracking import Credentials, MlflowTracking, Tracking, mlflow_environment

log = logging.getLogger(__name__)

ReadCredentials = Callable[[str, str], Credentials]
"""``read_credentials(namespace, secret_name)`` -> what the Secret holds (may raise)."""


class Files(Protocol):
    """The files a run gets (``evidence.closing.EvidenceFiles``): ``{path in the run: text}``."""

    def card(self, namespace: str, rollout: str, last: Mapping[str, Any]) -> dict[str, str]:
        """The model card after ``last`` (logged at every decision)."""

    def closing(self, namespace: str, rollout: str, last: Mapping[str, Any]) -> dict[str, str]:
        """The card, the chain and the report (logged when the rollout ends)."""

    def candidate_before(self, namespace: str, rollout: str, seq: int) -> str | None:
        """The candidate revision the newest stored record before ``seq`` names."""


@dataclass(frozen=True)
class Delivery:
    """One record for one tracking server."""

    namespace: str
    rollout: str
    settings: MLflow
    record: Mapping[str, Any]

    @property
    def name(self) -> str:
        return f"{self.namespace}/{self.rollout} seq {self.record.get('seq')}"


@dataclass(frozen=True)
class SinkHealth:
    """Counts since the operator started and the last problem, for a condition or a log."""

    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    skipped: int = 0
    queued: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_delivered_at: datetime | None = None

    @property
    def ok(self) -> bool:
        """No delivery failed or was dropped since the last one that went through."""
        if self.last_error_at is None:
            return True
        return self.last_delivered_at is not None and self.last_delivered_at > self.last_error_at


class MlflowSink:
    """Delivers audit records to the MLflow tracking servers the rollouts name.

    Each record is tried at most ``attempts`` times, ``backoff_seconds`` apart (doubling), and
    no retry starts after ``deadline_seconds``; each MLflow request gives up after
    ``timeout_seconds``. At most ``queue_size`` records wait; more are dropped.
    """

    def __init__(
        self,
        *,
        connect: Callable[[str], Tracking] = MlflowTracking,
        read_credentials: ReadCredentials | None = None,
        files: Files | None = None,
        count: Callable[[str], None] | None = None,
        queue_size: int = 1000,
        attempts: int = 3,
        backoff_seconds: float = 1.0,
        deadline_seconds: float = 20.0,
        timeout_seconds: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if attempts < 1:
            raise ValueError("an MLflow delivery needs at least one attempt")
        self._connect = connect
        self._read_credentials = read_credentials
        self._files = files
        self._count = count
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.deadline_seconds = deadline_seconds
        self.timeout_seconds = timeout_seconds
        self._sleep = sleep
        self._monotonic = monotonic
        self._clock = clock
        self._queue: queue.Queue[Delivery] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Condition()
        self._pending = 0
        self._health = SinkHealth()
        self._worker: threading.Thread | None = None
        self._servers: dict[str, Tracking] = {}
        self._experiments: dict[tuple[str, str], str] = {}
        self._runs: dict[tuple[str, str, RunKey], str] = {}
        self._candidates: dict[tuple[str, str], str] = {}
        self._evidence: dict[tuple[str, str], Any] = {}

    # the notifier port ---------------------------------------------------------------------

    def notify(
        self,
        namespace: str,
        rollout: str,
        record: Mapping[str, Any],
        notifications: Sequence[Notification] = (),
    ) -> None:
        """Queue the record for each MLflow server of ``notifications``; never blocks."""
        for notification in notifications:
            if notification.mlflow is not None:
                self.enqueue(Delivery(namespace, rollout, notification.mlflow, dict(record)))

    def enqueue(self, delivery: Delivery) -> None:
        with self._lock:
            self._start_worker()
            try:
                self._queue.put_nowait(delivery)
            except queue.Full:
                problem = f"{delivery.name}: dropped, {self._queue.maxsize} records already wait"
                self._note_failure(problem, dropped=True)
                return
            self._pending += 1

    # what the operator can ask -------------------------------------------------------------

    def problem(self, notifications: Sequence[Notification]) -> str | None:
        """Why records for MLflow may not be arriving (for a rollout that names a server)."""
        if not any(n.mlflow is not None for n in notifications):
            return None
        health = self.health()
        if health.ok:
            return None
        return f"MLflow unreachable or refusing records: {health.last_error or 'records dropped'}"

    def health(self) -> SinkHealth:
        """Counts and the last problem (``ok`` is False until a delivery succeeds again)."""
        with self._lock:
            return replace(self._health, queued=self._pending)

    def drain(self, timeout: float) -> bool:
        """Wait until every queued record was delivered or given up; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._pending == 0, timeout)

    # the worker ----------------------------------------------------------------------------

    def _start_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name="fairshift-mlflow", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        while True:
            delivery = self._queue.get()
            try:
                self.deliver(delivery)
            except Exception as error:  # the worker must outlive any surprise
                self._note_failure(f"{delivery.name}: {type(error).__name__}: {error}")
            finally:
                with self._lock:
                    self._pending -= 1
                    self._lock.notify_all()

    def deliver(self, delivery: Delivery) -> bool:
        """Deliver one record with bounded retries; True once MLflow has it. Never raises."""
        key = self.run_key_of(delivery)
        if key is None:
            with self._lock:
                self._health = replace(self._health, skipped=self._health.skipped + 1)
            self.counted("skipped")
            return False
        started = self._monotonic()
        delay = self.backoff_seconds
        for attempt in range(1, self.attempts + 1):
            try:
                self.deliver_once(delivery, key)
            except Exception as error:
                problem = f"{type(error).__name__}: {error}"[:500]
                elapsed = self._monotonic() - started
                if attempt == self.attempts or elapsed + delay > self.deadline_seconds:
                    self._note_failure(
                        f"{delivery.name}: not logged after {attempt} tries: {problem}"
                    )
                    return False
                log.info("MLflow %s: try %d failed (%s)", delivery.name, attempt, problem)
                self._sleep(delay)
                delay *= 2
                continue
            with self._lock:
                self._health = replace(
                    self._health,
                    delivered=self._health.delivered + 1,
                    last_delivered_at=self._clock(),
                )
            self.counted("delivered")
            return True
        return False

    def run_key_of(self, delivery: Delivery) -> RunKey | None:
        """The record's run. A record about a promoted candidate that no longer names it
        (the promotion, the guard's records, a switch back) belongs to the candidate before
        it: remembered, or read from the stored chain after a restart."""
        rollout = (delivery.namespace, delivery.rollout)
        record = delivery.record
        if record.get("candidateRevision"):
            self._candidates[rollout] = str(record["candidateRevision"])
        previous = self._candidates.get(rollout)
        if previous is None and follows_candidate(record) and self._files is not None:
            try:
                seq = int(record.get("seq") or 0)
                previous = self._files.candidate_before(*rollout, seq)
            except Exception as error:
                log.warning("MLflow %s: the candidate is unknown: %s", delivery.name, error)
            if previous is not None:
                self._candidates[rollout] = previous
        return run_key(delivery.namespace, delivery.rollout, record, previous)

    def deliver_once(self, delivery: Delivery, key: RunKey) -> None:
        """One try: run, metrics, tags, artifacts and, at the end, the model version."""
        settings, record = delivery.settings, delivery.record
        credentials = self.credentials(delivery)
        with mlflow_environment(credentials, self.timeout_seconds):
            tracking = self.server(settings.tracking_uri)
            run_id = self.run_for(tracking, settings, key)
            if record.get("action") == "retry":
                tracking.set_status(run_id, "RUNNING")
            tracking.log(run_id, self.new_metrics(delivery), record_tags(record))
            ended = outcome(record)
            if not is_routine(record):
                tracking.log_json(run_id, record, record_artifact_path(record))
                self.log_files(tracking, run_id, delivery, closing=ended is not None)
            if ended is not None:
                self.close_run(tracking, run_id, delivery, ended)

    def new_metrics(self, delivery: Delivery) -> list[MetricPoint]:
        """The record's metrics, less an evidence it only repeats (a transition carries the
        look that caused it; charting it twice would show a look that never happened)."""
        rollout, record = (delivery.namespace, delivery.rollout), delivery.record
        evidence = record.get("evidence") or None
        repeated = evidence is not None and evidence == self._evidence.get(rollout)
        if evidence is not None:
            self._evidence[rollout] = evidence
        points = record_metrics(record)
        if repeated:
            points = [p for p in points if p.key.startswith(("traffic/", "guard/"))]
        return points

    def log_files(self, tracking: Tracking, run_id: str, delivery: Delivery, closing: bool) -> None:
        if self._files is None:
            return
        ns, rollout, record = delivery.namespace, delivery.rollout, delivery.record
        files = self._files.closing if closing else self._files.card
        for path, text in files(ns, rollout, record).items():
            tracking.log_text(run_id, text, path)

    def close_run(self, tracking: Tracking, run_id: str, delivery: Delivery, ended: str) -> None:
        tracking.set_status(run_id, RUN_STATUS[ended])
        model = delivery.settings.registered_model
        if model is not None:
            tags = {
                OUTCOME_TAG: ended,
                AUDIT_HEAD_TAG: str(delivery.record.get("hash")),
                ROLLOUT_TAG: f"{delivery.namespace}/{delivery.rollout}",
                "fairshift.io/run-id": run_id,
            }
            if ended == BREACHED:  # kept when the switch back later says rolled-back
                tags["fairshift.io/breached-at"] = str(delivery.record.get("time"))
            tracking.tag_model_version(model.name, model.version, model.alias, tags)

    def credentials(self, delivery: Delivery) -> Credentials:
        secret = delivery.settings.credentials
        if secret is None:
            return Credentials()
        if self._read_credentials is None:
            raise RuntimeError("this operator cannot read Secrets for MLflow credentials")
        return self._read_credentials(delivery.namespace, secret.secret_ref.name)

    def server(self, tracking_uri: str) -> Tracking:
        if tracking_uri not in self._servers:
            self._servers[tracking_uri] = self._connect(tracking_uri)
        return self._servers[tracking_uri]

    def run_for(self, tracking: Tracking, settings: MLflow, key: RunKey) -> str:
        """The run of ``key``: remembered, found by its tags, or created."""
        uri, name = settings.tracking_uri, settings.experiment
        if (uri, name) not in self._experiments:
            self._experiments[(uri, name)] = tracking.experiment_id(name)
        experiment = self._experiments[(uri, name)]
        remembered = (uri, experiment, key)
        if remembered not in self._runs:
            found = tracking.find_run(experiment, key.tags)
            self._runs[remembered] = found or tracking.create_run(experiment, key.name, key.tags)
        return self._runs[remembered]

    def counted(self, result: str) -> None:
        """Tell the operator's metrics (``fairshift_evidence_records_total``); never raises."""
        if self._count is None:
            return
        try:
            self._count(result)
        except Exception as error:
            log.warning("MLflow: could not count a %s record: %s", result, error)

    def _note_failure(self, problem: str, dropped: bool = False) -> None:
        log.warning("MLflow %s", problem)
        self.counted("dropped" if dropped else "failed")
        with self._lock:
            self._health = replace(
                self._health,
                failed=self._health.failed + (0 if dropped else 1),
                dropped=self._health.dropped + (1 if dropped else 0),
                last_error=problem,
                last_error_at=self._clock(),
            )
