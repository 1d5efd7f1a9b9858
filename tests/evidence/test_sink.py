"""The MLflow sink against an in-memory tracking server: runs, metrics, tags, artifacts, the
model version, and never holding up a rollout when MLflow is slow or down."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fairshift.api.notifications import Notification
from fairshift.evidence.sink import MlflowSink
from fairshift.evidence.tracking import Credentials
from tests.evidence.fake_tracking import DRAIN_LIMIT, FakeTracking
from tests.evidence.rollout_records import chained, guarded_payloads, rollout_records

NS, NAME = "lending", "credit-scorer"


def mlflow_notification(**extra: Any) -> Notification:
    settings = {"trackingUri": "http://mlflow:5000", "experiment": "credit", **extra}
    return Notification.model_validate({"mlflow": settings})


class StubFiles:
    """Files that name the record they were made after."""

    def card(self, namespace: str, rollout: str, last: Mapping[str, Any]) -> dict[str, str]:
        return {"model-card.md": f"card after {last['seq']}"}

    def closing(self, namespace: str, rollout: str, last: Mapping[str, Any]) -> dict[str, str]:
        return {**self.card(namespace, rollout, last), "audit/records.jsonl": f"{last['seq']}\n"}

    def candidate_before(self, namespace: str, rollout: str, seq: int) -> str | None:
        return "7d9f8c6b5" if seq > 2 else None


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


class Sleeps(list[float]):
    """A fake ``sleep`` whose sleeps are the only time that passes (``monotonic``)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)

    def monotonic(self) -> float:
        return sum(self)


def make_sink(server: FakeTracking, **options: Any) -> tuple[MlflowSink, Sleeps]:
    sleeps = Sleeps()
    defaults: dict[str, Any] = {
        "connect": lambda _uri: server,
        "sleep": sleeps,
        "monotonic": sleeps.monotonic,
        "clock": Clock(),
        "files": StubFiles(),
    }
    return MlflowSink(**{**defaults, **options}), sleeps


def feed(sink: MlflowSink, records: list[dict[str, Any]], notification: Notification) -> None:
    for record in records:
        sink.notify(NS, NAME, record, [notification])
    assert sink.drain(timeout=DRAIN_LIMIT)


def test_a_promoted_rollout_is_one_run_with_its_evidence_decisions_and_outcome() -> None:
    server = FakeTracking()
    server.aliases[("credit-scorer", "champion")] = "4"
    sink, _ = make_sink(server)
    records = rollout_records()
    notification = mlflow_notification(
        registeredModel={"name": "credit-scorer", "alias": "champion"}
    )

    feed(sink, records, notification)

    run = server.only_run()
    assert run.name == "credit-scorer-7d9f8c6b5"
    assert server.experiments == {"credit": run.experiment_id}
    assert run.tags["fairshift.io/rollout"] == "lending/credit-scorer"
    assert run.tags["fairshift.io/revision"] == "7d9f8c6b5"
    assert run.history("equal-opportunity/sex.female/estimate") == [
        (3, pytest.approx(0.01)),
        (4, pytest.approx(0.02)),
        (5, pytest.approx(0.03)),
    ]
    assert [v for _, v in run.history("traffic/canary_weight")] == [10, 10, 10, 10, 50, 100, 0]
    assert sorted(p for p in run.artifacts if p.startswith("decisions/")) == [
        "decisions/000002-new-revision.json",
        "decisions/000006-step-done.json",
        "decisions/000007-steps-done.json",
        "decisions/000008-promotion-done.json",
    ]
    assert run.artifacts["decisions/000006-step-done.json"] == records[5]
    assert run.artifacts["audit/records.jsonl"] == "8\n"
    assert run.artifacts["model-card.md"] == "card after 8"
    assert run.tags["fairshift.io/outcome"] == "promoted"
    assert run.tags["fairshift.io/audit-head"] == records[-1]["hash"]
    assert run.status == "FINISHED"
    assert server.versions[("credit-scorer", "4")] == {
        "fairshift.io/outcome": "promoted",
        "fairshift.io/audit-head": records[-1]["hash"],
        "fairshift.io/rollout": "lending/credit-scorer",
        "fairshift.io/run-id": "run1",
    }
    health = sink.health()
    assert (health.delivered, health.skipped, health.failed, health.dropped) == (7, 1, 0, 0)
    assert health.ok and health.last_error is None


def test_a_rolled_back_candidate_ends_its_run_failed_and_tags_a_numbered_version() -> None:
    server = FakeTracking()
    sink, _ = make_sink(server)
    notification = mlflow_notification(registeredModel={"name": "credit-scorer", "version": "7"})

    feed(sink, rollout_records(end="rolled"), notification)

    run = server.only_run()
    assert run.status == "FAILED"
    assert run.tags["fairshift.io/outcome"] == "rolled-back"
    # the rollback's record repeats the failed look: charted once, at the look's seq
    assert run.history("equal-opportunity/sex.female/estimate")[-1] == (7, 0.12)
    assert [step for step, _ in run.history("traffic/canary_weight")][-2:] == [7, 8]
    assert server.versions[("credit-scorer", "7")]["fairshift.io/outcome"] == "rolled-back"


def test_each_candidate_revision_gets_its_own_run() -> None:
    server = FakeTracking()
    sink, _ = make_sink(server)
    feed(sink, rollout_records("aaa111", end="rolled")[1:], mlflow_notification())
    feed(sink, rollout_records("bbb222")[1:], mlflow_notification())

    assert sorted(run.name for run in server.runs.values()) == [
        "credit-scorer-aaa111",
        "credit-scorer-bbb222",
    ]


def test_a_restarted_operator_finds_the_run_by_its_tags() -> None:
    server = FakeTracking()
    records = rollout_records()
    first, _ = make_sink(server)
    feed(first, records[:4], mlflow_notification())
    again, _ = make_sink(server)
    feed(again, records[4:], mlflow_notification())

    run = server.only_run()
    assert [step for step, _ in run.history("traffic/canary_weight")] == [2, 3, 4, 5, 6, 7, 8]


def test_after_a_restart_the_candidate_of_a_promotion_is_read_from_the_chain() -> None:
    server = FakeTracking()
    records = rollout_records()
    first, _ = make_sink(server)
    feed(first, records[:-1], mlflow_notification())
    restarted, _ = make_sink(server)
    feed(restarted, records[-1:], mlflow_notification())

    run = server.only_run()
    assert run.tags["fairshift.io/outcome"] == "promoted"
    assert restarted.health().delivered == 1


def test_a_promotion_whose_candidate_nobody_knows_is_skipped() -> None:
    server = FakeTracking()
    sink, _ = make_sink(server, files=None)
    feed(sink, rollout_records()[-1:], mlflow_notification())
    assert server.runs == {}
    assert sink.health().skipped == 1


def test_the_guards_records_go_to_the_promoted_revisions_run() -> None:
    server = FakeTracking()
    server.aliases[("credit-scorer", "champion")] = "4"
    sink, _ = make_sink(server)
    records = chained(guarded_payloads())
    notification = mlflow_notification(
        registeredModel={"name": "credit-scorer", "alias": "champion"}
    )

    feed(sink, records, notification)

    run = server.only_run()
    assert run.history("guard/equal-opportunity/sex.female/level") == [
        (9, 0.1),
        (10, 0.6),
        (11, 1.2),
    ]
    assert {p for p in run.artifacts if "-guard-" in p} == {
        "decisions/000009-guard-attest.json",
        "decisions/000010-guard-warning.json",
        "decisions/000011-guard-breached.json",
    }
    assert run.tags["fairshift.io/guard-health"] == "Breached"
    assert run.tags["fairshift.io/outcome"] == "rolled-back"  # switched back after the breach
    assert run.status == "FAILED"
    version = server.versions[("credit-scorer", "4")]
    assert version["fairshift.io/outcome"] == "rolled-back"
    assert version["fairshift.io/breached-at"] == records[10]["time"]
    assert version["fairshift.io/audit-head"] == records[-1]["hash"]
    assert sink.health().delivered == len(records) - 1


def test_a_breach_that_only_alerts_tags_the_version_breached() -> None:
    server = FakeTracking()
    sink, _ = make_sink(server)
    payloads = guarded_payloads()[:-2]
    alert = {**guarded_payloads()[-2], "action": "guard-alert", "phase": "Guarding"}
    records = chained([*payloads, alert])
    notification = mlflow_notification(registeredModel={"name": "credit-scorer", "version": "4"})

    feed(sink, records, notification)

    assert server.versions[("credit-scorer", "4")]["fairshift.io/outcome"] == "breached"
    assert server.only_run().tags["fairshift.io/outcome"] == "breached"


def test_rollouts_without_mlflow_queue_nothing() -> None:
    server = FakeTracking()
    sink, _ = make_sink(server)
    webhook = Notification.model_validate(
        {"webhook": {"urlFrom": {"secretKeyRef": {"name": "hooks", "key": "url"}}}}
    )
    for record in rollout_records():
        sink.notify(NS, NAME, record, [webhook])
        sink.notify(NS, NAME, record)
    assert sink.drain(timeout=1)
    assert server.calls == []
    assert sink.health().delivered == 0


def test_mlflow_down_is_tried_a_bounded_number_of_times_counted_and_recovered_from() -> None:
    server = FakeTracking()
    sink, sleeps = make_sink(server, attempts=3, backoff_seconds=0.5)
    records = rollout_records()
    feed(sink, records[:3], mlflow_notification())

    server.down = True
    feed(sink, records[3:5], mlflow_notification())
    down = sink.health()
    assert (down.delivered, down.failed) == (2, 2)
    assert sleeps == [0.5, 1.0, 0.5, 1.0]
    assert not down.ok
    assert down.last_error is not None
    assert "lending/credit-scorer seq 5: not logged after 3 tries" in down.last_error
    assert "ConnectionError: Connection refused" in down.last_error

    server.down = False
    feed(sink, records[5:], mlflow_notification())
    recovered = sink.health()
    assert recovered.ok and recovered.delivered == 5 and recovered.failed == 2
    run = server.only_run()
    assert [step for step, _ in run.history("traffic/canary_weight")] == [2, 3, 6, 7, 8]
    assert run.status == "FINISHED"


def test_no_retry_starts_after_the_deadline() -> None:
    server = FakeTracking()
    server.down = True
    sink, sleeps = make_sink(server, attempts=10, backoff_seconds=4.0, deadline_seconds=10.0)
    feed(sink, rollout_records()[1:2], mlflow_notification())
    assert sleeps == [4.0]  # 4 s, then 8 s more would pass the 10 s deadline
    assert sink.health().failed == 1


def test_a_slow_server_never_holds_up_the_caller_and_a_full_queue_drops_counted() -> None:
    server = FakeTracking()
    server.gate.clear()  # every MLflow call waits
    sink, _ = make_sink(server, queue_size=2)
    first, *rest = rollout_records()[1:]
    sink.notify(NS, NAME, first, [mlflow_notification()])
    assert server.entered.wait(timeout=10)  # the worker is inside MLflow with the first

    started = time.monotonic()
    for record in rest:
        sink.notify(NS, NAME, record, [mlflow_notification()])
    assert time.monotonic() - started < 1.0
    assert sink.health().queued == 3

    server.gate.set()
    assert sink.drain(timeout=DRAIN_LIMIT)
    health = sink.health()
    assert (health.delivered, health.dropped, health.queued) == (3, len(rest) - 2, 0)
    assert health.last_error is not None and "dropped, 2 records already wait" in health.last_error


def test_credentials_come_from_the_secret_only_for_the_calls_of_that_rollout() -> None:
    server = FakeTracking()
    asked: list[tuple[str, str]] = []

    def read_credentials(namespace: str, secret: str) -> Credentials:
        asked.append((namespace, secret))
        return Credentials(token="s3cr3t")

    sink, _ = make_sink(server, read_credentials=read_credentials)
    notification = mlflow_notification(credentials={"secretRef": {"name": "mlflow-token"}})
    feed(sink, rollout_records()[1:3], notification)

    assert set(asked) == {("lending", "mlflow-token")}
    assert set(server.tokens_seen) == {"s3cr3t"}
    assert os.environ.get("MLFLOW_TRACKING_TOKEN") != "s3cr3t"


def test_an_unreadable_secret_is_a_counted_failure() -> None:
    def read_credentials(namespace: str, secret: str) -> Credentials:
        raise LookupError(f"Secret {namespace}/{secret} not found")

    sink, _ = make_sink(FakeTracking(), read_credentials=read_credentials, attempts=1)
    notification = mlflow_notification(credentials={"secretRef": {"name": "gone"}})
    feed(sink, rollout_records()[1:2], notification)

    health = sink.health()
    assert health.failed == 1
    assert health.last_error is not None and "Secret lending/gone not found" in health.last_error


def test_the_card_follows_each_decision_not_each_look() -> None:
    server = FakeTracking()
    sink, _ = make_sink(server)
    feed(sink, rollout_records()[:6], mlflow_notification())

    run = server.only_run()
    assert run.artifacts["model-card.md"] == "card after 6"
    assert server.calls.count("log_text") == 2  # after new-revision and step-done
    assert "audit/records.jsonl" not in run.artifacts


def test_files_that_cannot_be_made_are_retried_and_counted_not_raised() -> None:
    class Broken(StubFiles):
        def closing(self, namespace: str, rollout: str, last: Mapping[str, Any]) -> dict[str, str]:
            raise OSError("audit store unreachable")

    server = FakeTracking()
    sink, _ = make_sink(server, files=Broken(), attempts=2)
    feed(sink, rollout_records(), mlflow_notification())

    health = sink.health()
    assert health.failed == 1 and "audit store unreachable" in str(health.last_error)
    assert health.delivered == 6
    assert server.only_run().status == "RUNNING"


def test_every_result_is_counted_for_the_operators_metrics() -> None:
    server = FakeTracking()
    results: list[str] = []
    sink, _ = make_sink(server, count=results.append, attempts=1)
    records = rollout_records()
    feed(sink, records[:3], mlflow_notification())
    server.down = True
    feed(sink, records[3:4], mlflow_notification())

    assert results == ["skipped", "delivered", "delivered", "failed"]


def test_a_broken_counter_does_not_stop_the_delivery() -> None:
    def count(result: str) -> None:
        raise RuntimeError("registry gone")

    server = FakeTracking()
    sink, _ = make_sink(server, count=count)
    feed(sink, rollout_records()[1:3], mlflow_notification())
    assert sink.health().delivered == 2


def test_an_attempt_count_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one attempt"):
        MlflowSink(attempts=0)
