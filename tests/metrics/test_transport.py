"""PrometheusTransport against a fake Prometheus: status codes, retries, timeouts, observation."""

from __future__ import annotations

import socket
import time

import pytest
from prometheus_fake import EMPTY, FakePrometheus, Reply, failure, vector

from fairshift.metrics.source import InvalidQueryError, MetricsError
from fairshift.metrics.transport import UNREADABLE, PrometheusTransport


class RecordingObserver:
    def __init__(self) -> None:
        self.calls: list[tuple[float, bool]] = []

    def observe_query(self, seconds: float, ok: bool) -> None:
        self.calls.append((seconds, ok))


def transport(
    fake: FakePrometheus,
    retries: int = 0,
    observer: RecordingObserver | None = None,
    headers: dict[str, str] | None = None,
) -> PrometheusTransport:
    return PrometheusTransport(
        fake.address, 2.0, retries=retries, observer=observer, headers=headers
    )


class TestAnswers:
    def test_returns_the_decoded_document_of_an_instant_query(
        self, prometheus: FakePrometheus
    ) -> None:
        prometheus.answer("up", vector(({"job": "a"}, "1")))

        document = transport(prometheus).instant("up")

        assert document["data"]["result"] == [
            {"metric": {"job": "a"}, "value": [1_700_000_000.0, "1"]}
        ]
        assert prometheus.paths == ["/api/v1/query"]
        assert prometheus.times == [None]

    def test_sends_the_evaluation_time(self, prometheus: FakePrometheus) -> None:
        transport(prometheus).instant("up", at=1_700_000_300.5)
        assert prometheus.times == ["1700000300.500"]

    def test_a_body_that_is_not_json_is_unreadable(self, prometheus: FakePrometheus) -> None:
        prometheus.default = Reply(200, b"<html>proxy error</html>")
        assert transport(prometheus).instant("up") is UNREADABLE


class TestStatusCodes:
    @pytest.mark.parametrize("status", [400, 422])
    def test_refused_promql_is_an_invalid_query_with_the_servers_reason(
        self, prometheus: FakePrometheus, status: int
    ) -> None:
        prometheus.default = failure(status, "bad_data", "unexpected }")
        with pytest.raises(InvalidQueryError, match=f"HTTP {status}: bad_data: unexpected }}"):
            transport(prometheus).instant("sum(x")

    @pytest.mark.parametrize("status", [408, 429, 500])
    def test_later_statuses_and_server_errors_are_temporary(
        self, prometheus: FakePrometheus, status: int
    ) -> None:
        prometheus.default = failure(status, "internal", "boom")
        with pytest.raises(MetricsError, match=f"HTTP {status}") as raised:
            transport(prometheus).instant("up")
        assert not isinstance(raised.value, InvalidQueryError)

    def test_the_status_comes_from_the_response_not_the_text(
        self, prometheus: FakePrometheus
    ) -> None:
        prometheus.default = failure(503, "unavailable", "HTTP Status Code 400")
        with pytest.raises(MetricsError) as raised:
            transport(prometheus).instant("up")
        assert not isinstance(raised.value, InvalidQueryError)

    def test_an_error_body_that_is_not_json_is_quoted(self, prometheus: FakePrometheus) -> None:
        prometheus.default = Reply(502, b"bad gateway")
        with pytest.raises(MetricsError, match="HTTP 502: bad gateway"):
            transport(prometheus).instant("up")


class TestRetriesAndTimeouts:
    def test_http_503_is_retried(self, prometheus: FakePrometheus) -> None:
        prometheus.answer("up", failure(503, "unavailable"), vector(({}, "1")))

        document = transport(prometheus, retries=1).instant("up")

        assert document["data"]["result"][0]["value"][1] == "1"
        assert len(prometheus.queries) == 2

    def test_persistent_503_is_a_metrics_error(self, prometheus: FakePrometheus) -> None:
        prometheus.default = failure(503, "unavailable", "overloaded")
        with pytest.raises(MetricsError, match="503"):
            transport(prometheus, retries=1).instant("up")
        assert len(prometheus.queries) == 2

    def test_timeout_is_a_metrics_error(self, prometheus: FakePrometheus) -> None:
        prometheus.default = Reply(200, EMPTY.body, delay_seconds=2.0)
        slow = PrometheusTransport(prometheus.address, 0.2, retries=0)
        started = time.monotonic()
        with pytest.raises(MetricsError, match="did not answer"):
            slow.instant("up")
        assert time.monotonic() - started < 1.5

    def test_unreachable_server_is_a_metrics_error(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        unreachable = PrometheusTransport(f"http://127.0.0.1:{port}", 1.0, retries=0)
        with pytest.raises(MetricsError, match="did not answer"):
            unreachable.instant("up")


class TestObservation:
    def test_answers_are_observed_as_ok(self, prometheus: FakePrometheus) -> None:
        observer = RecordingObserver()
        client = transport(prometheus, observer=observer)
        client.instant("up")
        client.instant("up")
        assert len(observer.calls) == 2
        assert all(ok and seconds >= 0 for seconds, ok in observer.calls)

    def test_failures_are_observed_as_failed(self, prometheus: FakePrometheus) -> None:
        prometheus.default = failure(500)
        observer = RecordingObserver()
        with pytest.raises(MetricsError):
            transport(prometheus, observer=observer).instant("up")
        assert [ok for _, ok in observer.calls] == [False]

    def test_proxies_come_from_the_environment_read_once(
        self, prometheus: FakePrometheus, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.delenv(name, raising=False)
        for name in ("http_proxy", "HTTP_PROXY"):
            monkeypatch.setenv(name, prometheus.address)  # the fake answers as the proxy
        behind_a_proxy = PrometheusTransport("http://prometheus.invalid:9090", 2.0, retries=0)
        for name in ("http_proxy", "HTTP_PROXY"):
            monkeypatch.delenv(name)

        behind_a_proxy.instant("up")

        assert prometheus.paths == ["/api/v1/query"]
        assert prometheus.headers[0]["Host"] == "prometheus.invalid:9090"

    def test_headers_are_sent(self, prometheus: FakePrometheus) -> None:
        transport(prometheus, headers={"X-Scope-OrgID": "lending"}).instant("up")
        assert prometheus.headers[0]["X-Scope-OrgID"] == "lending"
