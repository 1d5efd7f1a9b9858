"""Webhook notifications against a local HTTP server: formats, retries, and never raising."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from fairshift.api.notifications import Notification
from fairshift.notify.messages import (
    HEADLINES,
    DecisionEvent,
    generic_payload,
    notification_kind,
    payload_for,
    should_notify,
    slack_payload,
    worst_evidence,
)
from fairshift.notify.webhook import Notifier

SECRET_PATH = "/services/T000/B000/very-secret-token"


@dataclass
class Received:
    path: str
    content_type: str
    body: Any


@dataclass
class HookServer:
    """Answers POSTs with ``statuses`` in turn (the last repeated), after ``delay`` seconds."""

    statuses: list[int] = field(default_factory=lambda: [200])
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{SECRET_PATH}"

    def next_status(self, received: Received) -> int:
        with self.lock:
            self.received.append(received)
            return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


@pytest.fixture
def hook() -> Iterator[HookServer]:
    state = HookServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"null")
            status = state.next_status(
                Received(self.path, self.headers.get("Content-Type", ""), body)
            )
            time.sleep(state.delay)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    state.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.server.daemon_threads = True
    thread = threading.Thread(
        target=state.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        state.server.shutdown()
        state.server.server_close()


EVIDENCE = [
    {
        "gate": "accuracy",
        "metric": "accuracy",
        "severity": "critical",
        "slice": "overall",
        "estimate": 0.001,
        "lower": -0.004,
        "upper": 0.006,
        "bound": "maxDecrease",
        "threshold": 0.02,
        "stableSamples": 5000,
        "candidateSamples": 800,
        "outcome": "pass",
    },
    {
        "gate": "equal-opportunity",
        "metric": "tpr_gap",
        "severity": "critical",
        "slice": "sex=F,age_band=60+",
        "estimate": 0.0812,
        "lower": 0.0611,
        "upper": 0.1023,
        "bound": "maxIncrease",
        "threshold": 0.05,
        "stableSamples": 1180,
        "candidateSamples": 1200,
        "outcome": "fail",
    },
]

RECORD = {
    "seq": 7,
    "time": "2026-11-22T19:00:00Z",
    "rollout": "lending/credit-scorer",
    "action": "analysis-failed",
    "reason": "CriticalGateFailed",
    "message": "equal-opportunity failed on sex=F,age_band=60+",
    "phase": "RollingBack",
    "step": 3,
    "canaryWeight": 25,
    "candidateRevision": "7d9f8c",
    "verdict": "Failed",
    "evidence": EVIDENCE,
    "prev_hash": "0" * 64,
    "hash": "f" * 64,
}


def webhook(fmt: str = "generic", key: str = "url") -> Notification:
    return Notification.model_validate(
        {"webhook": {"urlFrom": {"secretKeyRef": {"name": "hooks", "key": key}}, "format": fmt}}
    )


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def notifier_for(url: str, **options: Any) -> tuple[Notifier, list[tuple[str, str, str]], Sleeps]:
    asked: list[tuple[str, str, str]] = []
    sleeps = Sleeps()

    def resolve(namespace: str, secret: str, key: str) -> str:
        asked.append((namespace, secret, key))
        return url

    options.setdefault("timeout_seconds", 1.0)
    return Notifier(resolve, sleep=sleeps, **options), asked, sleeps


def event() -> DecisionEvent:
    return DecisionEvent.from_record("lending", "credit-scorer", RECORD)


class TestWhichActions:
    @pytest.mark.parametrize(
        "action",
        [
            "pause",
            "halt",
            "rollback",
            "analysis-failed",
            "inconclusive-rollback",
            "abort",
            "promote-full",
            "promotion-done",
            "failed",
            "candidate-unavailable",
            "Analysis_Failed",
            "guard-breached",
            "guard-fallback",
        ],
    )
    def test_pause_rollback_promotion_and_failure_are_announced(self, action: str) -> None:
        assert should_notify(action)

    @pytest.mark.parametrize(
        "action", ["advance", "hold", "step-done", "resume", "new-revision", "promote", ""]
    )
    def test_routine_actions_stay_quiet(self, action: str) -> None:
        assert not should_notify(action)

    def test_a_degrade_to_the_fallback_has_its_own_headline(self) -> None:
        assert notification_kind("guard-fallback") == "fallback"
        assert HEADLINES["fallback"][1] == "degraded to its fallback"

    def test_enums_are_read_by_value(self) -> None:
        class Action(StrEnum):
            ROLLBACK = "rollback"
            HOLD = "hold"

        assert should_notify(Action.ROLLBACK)
        assert not should_notify(Action.HOLD)


class TestPayloads:
    def test_generic_payload(self) -> None:
        assert generic_payload(event()) == {
            "rollout": "credit-scorer",
            "namespace": "lending",
            "action": "analysis-failed",
            "reason": "CriticalGateFailed",
            "phase": "RollingBack",
            "step": 3,
            "candidateRevision": "7d9f8c",
            "evidence": EVIDENCE,
            "time": "2026-11-22T19:00:00Z",
            "message": "equal-opportunity failed on sex=F,age_band=60+",
        }

    def test_worst_evidence_is_the_failure(self) -> None:
        worst = worst_evidence(EVIDENCE)
        assert worst is not None
        assert worst["gate"] == "equal-opportunity"

    def test_slack_message_names_the_worst_gate_and_slice(self) -> None:
        payload = slack_payload(event())
        assert payload["text"] == (
            ":rewind: lending/credit-scorer rolling back: CriticalGateFailed"
        )
        rendered = json.dumps(payload["blocks"])
        assert (
            "*Worst gate:* equal-opportunity (tpr_gap, critical) on sex=F,age_band=60+: fail"
            in (rendered)
        )
        assert "estimate 0.0812 [0.0611, 0.1023], maxIncrease 0.05" in rendered
        assert "samples 1200 candidate / 1180 stable" in rendered
        assert {block["type"] for block in payload["blocks"]} == {"section", "context"}

    def test_slack_escapes_markup(self) -> None:
        record = {**RECORD, "action": "pause", "reason": "<!channel> & co", "evidence": []}
        payload = slack_payload(DecisionEvent.from_record("ns", "r", record))
        assert "&lt;!channel&gt; &amp; co" in payload["text"]
        assert "<!channel>" not in json.dumps(payload)
        assert "Worst gate" not in json.dumps(payload)

    def test_unknown_format_is_refused(self) -> None:
        with pytest.raises(ValueError, match="unknown webhook format 'teams'; known: generic"):
            payload_for("teams", event())

    def test_evidence_models_are_accepted(self) -> None:
        from fairshift.api.status import GateEvidence

        model = GateEvidence.model_validate(EVIDENCE[1])
        record = {**RECORD, "evidence": [model]}
        built = DecisionEvent.from_record("lending", "credit-scorer", record)
        assert built.evidence[0]["candidateSamples"] == 1200


class TestDelivery:
    def test_posts_json_to_the_resolved_url(self, hook: HookServer) -> None:
        notifier, asked, _ = notifier_for(hook.url)

        results = notifier.deliver("lending", "credit-scorer", RECORD, [webhook("generic")])

        assert results == [True]
        assert asked == [("lending", "hooks", "url")]
        assert len(hook.received) == 1
        assert hook.received[0].path == SECRET_PATH
        assert hook.received[0].content_type == "application/json"
        assert hook.received[0].body["action"] == "analysis-failed"

    def test_each_webhook_in_its_own_format(self, hook: HookServer) -> None:
        notifier, _, _ = notifier_for(hook.url)

        results = notifier.deliver(
            "lending", "credit-scorer", RECORD, [webhook("slack"), webhook("generic")]
        )

        assert results == [True, True]
        assert set(hook.received[0].body) == {"text", "blocks"}
        assert hook.received[1].body["rollout"] == "credit-scorer"

    def test_unannounced_actions_send_nothing(self, hook: HookServer) -> None:
        notifier, asked, _ = notifier_for(hook.url)
        record = {**RECORD, "action": "advance"}

        assert notifier.deliver("lending", "credit-scorer", record, [webhook()]) == []
        assert asked == []
        assert hook.received == []

    def test_mlflow_notifications_are_left_to_their_own_sink(self, hook: HookServer) -> None:
        notifier, asked, _ = notifier_for(hook.url)
        mlflow = Notification.model_validate(
            {"mlflow": {"trackingUri": "http://mlflow:5000", "experiment": "credit-scorer"}}
        )

        assert notifier.deliver("lending", "credit-scorer", RECORD, [mlflow, webhook()]) == [True]
        assert notifier.deliver("lending", "credit-scorer", RECORD, [mlflow]) == []
        assert len(asked) == 1
        assert len(hook.received) == 1

    def test_notify_follows_the_reconciler_protocol_and_returns_nothing(
        self, hook: HookServer
    ) -> None:
        notifier, _, _ = notifier_for(hook.url)
        notifier.notify("lending", "credit-scorer", RECORD, [webhook()])
        notifier.notify("lending", "credit-scorer", RECORD)  # no webhooks: nothing to do
        assert len(hook.received) == 1

    def test_notify_can_hand_the_work_to_an_executor(self, hook: HookServer) -> None:
        with ThreadPoolExecutor(max_workers=1) as executor:
            notifier, _, _ = notifier_for(hook.url, executor=executor)
            notifier.notify("lending", "credit-scorer", RECORD, [webhook()])
        assert len(hook.received) == 1


class TestRetries:
    def test_500_then_200_is_retried_once(self, hook: HookServer) -> None:
        hook.statuses = [500, 200]
        notifier, _, sleeps = notifier_for(hook.url)

        assert notifier.deliver("lending", "credit-scorer", RECORD, [webhook()]) == [True]
        assert len(hook.received) == 2
        assert sleeps.calls == [0.5]

    def test_an_always_failing_hook_gives_up_with_backoff_and_does_not_raise(
        self, hook: HookServer
    ) -> None:
        hook.statuses = [503]
        notifier, _, sleeps = notifier_for(hook.url)

        assert notifier.deliver("lending", "credit-scorer", RECORD, [webhook()]) == [False]
        assert len(hook.received) == 3
        assert sleeps.calls == [0.5, 1.0]

    def test_a_failing_hook_does_not_stop_the_next_one(self, hook: HookServer) -> None:
        hook.statuses = [500, 500, 500, 200]
        notifier, _, _ = notifier_for(hook.url)

        results = notifier.deliver(
            "lending", "credit-scorer", RECORD, [webhook(key="a"), webhook(key="b")]
        )

        assert results == [False, True]

    @pytest.mark.parametrize("status", [400, 403, 404])
    def test_client_errors_are_not_retried(self, hook: HookServer, status: int) -> None:
        hook.statuses = [status]
        notifier, _, sleeps = notifier_for(hook.url)

        assert notifier.deliver("lending", "credit-scorer", RECORD, [webhook()]) == [False]
        assert len(hook.received) == 1
        assert sleeps.calls == []

    def test_timeouts_are_retried_within_bounds(self, hook: HookServer) -> None:
        hook.delay = 1.0
        notifier, _, sleeps = notifier_for(hook.url, timeout_seconds=0.1, attempts=2)
        started = time.monotonic()

        assert notifier.deliver("lending", "credit-scorer", RECORD, [webhook()]) == [False]
        assert time.monotonic() - started < 0.9
        assert len(sleeps.calls) == 1

    def test_no_retry_starts_after_the_deadline(self, hook: HookServer) -> None:
        hook.statuses = [500]
        now = iter([0.0, 8.8, 100.0])
        notifier, _, sleeps = notifier_for(hook.url, clock=lambda: next(now))

        assert notifier.deliver("lending", "credit-scorer", RECORD, [webhook()]) == [False]
        assert len(hook.received) == 1
        assert sleeps.calls == []

    def test_an_unreachable_hook_returns_false(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        notifier, _, sleeps = notifier_for(f"http://127.0.0.1:{port}/hook")

        assert notifier.deliver("lending", "credit-scorer", RECORD, [webhook()]) == [False]
        assert sleeps.calls == [0.5, 1.0]


class TestNeverRaises:
    def test_a_missing_secret_is_logged_not_raised(
        self, hook: HookServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        def resolve(namespace: str, secret: str, key: str) -> str:
            raise LookupError(f"Secret {namespace}/{secret} has no key {key!r}")

        notifier = Notifier(resolve)
        with caplog.at_level(logging.WARNING):
            assert notifier.deliver("lending", "credit-scorer", RECORD, [webhook()]) == [False]
        assert "has no key 'url'" in caplog.text
        assert hook.received == []

    @pytest.mark.parametrize("url", ["ftp://example.com/hook", "not a url", ""])
    def test_a_secret_without_an_http_url_is_refused(self, url: str) -> None:
        notifier, _, _ = notifier_for(url)
        assert notifier.deliver("lending", "credit-scorer", RECORD, [webhook()]) == [False]

    def test_the_url_is_never_logged_by_fairshift(
        self, hook: HookServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        hook.statuses = [500]
        notifier, _, _ = notifier_for(hook.url)
        with caplog.at_level(logging.DEBUG):
            notifier.deliver("lending", "credit-scorer", RECORD, [webhook()])
        ours = [r.getMessage() for r in caplog.records if r.name.startswith("fairshift")]
        assert any("webhook lending/hooks[url]" in message for message in ours)
        assert not any("very-secret-token" in message for message in ours)

    def test_a_broken_record_is_reported_not_raised(self, hook: HookServer) -> None:
        notifier, _, _ = notifier_for(hook.url)
        broken: dict[str, Any] = {"action": "rollback", "evidence": 42}
        assert notifier.deliver("lending", "credit-scorer", broken, [webhook()]) == [False]
        notifier.notify("lending", "credit-scorer", broken, [webhook()])

    def test_at_least_one_attempt(self) -> None:
        with pytest.raises(ValueError, match="at least one attempt"):
            Notifier(lambda *_: "", attempts=0)
