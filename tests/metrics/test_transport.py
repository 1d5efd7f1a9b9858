"""Both Prometheus transports against a fake Prometheus: status codes, retries, timeouts,
observation. The blocking one (commands) and the asynchronous one (the operator, on its event
loop) must answer and fail alike; the asynchronous one also overlaps queries and bounds its
connections."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_fake import EMPTY, FakePrometheus, Reply, failure, vector

from fairshift.metrics.async_transport import AsyncPrometheusTransport
from fairshift.metrics.source import InvalidQueryError, MetricsError
from fairshift.metrics.transport import UNREADABLE, PrometheusTransport, Transport

Make = Callable[..., Transport]


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop in a thread of its own, like kopf's while reconciles run in workers."""
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    yield running
    running.call_soon_threadsafe(running.stop)
    thread.join(5)


@pytest.fixture(params=["blocking", "asynchronous"])
def make(request: pytest.FixtureRequest, loop: asyncio.AbstractEventLoop) -> Iterator[Make]:
    made: list[AsyncPrometheusTransport] = []

    def build(address: str, timeout: float, **options: Any) -> Transport:
        if request.param == "blocking":
            return PrometheusTransport(address, timeout, **options)
        made.append(AsyncPrometheusTransport(address, timeout, loop=loop, **options))
        return made[-1]

    yield build
    for transport in made:
        asyncio.run_coroutine_threadsafe(transport.close(), loop).result(5)


class RecordingObserver:
    def __init__(self) -> None:
        self.calls: list[tuple[float, bool]] = []

    def observe_query(self, seconds: float, ok: bool) -> None:
        self.calls.append((seconds, ok))


@pytest.fixture
def transport(make: Make) -> Callable[..., Transport]:
    def build(
        fake: FakePrometheus,
        retries: int = 0,
        observer: RecordingObserver | None = None,
        headers: dict[str, str] | None = None,
    ) -> Transport:
        return make(fake.address, 2.0, retries=retries, observer=observer, headers=headers)

    return build


class TestAnswers:
    def test_returns_the_decoded_document_of_an_instant_query(
        self, prometheus: FakePrometheus, transport: Callable[..., Transport]
    ) -> None:
        prometheus.answer("up", vector(({"job": "a"}, "1")))

        document = transport(prometheus).instant("up")

        assert document["data"]["result"] == [
            {"metric": {"job": "a"}, "value": [1_700_000_000.0, "1"]}
        ]
        assert prometheus.paths == ["/api/v1/query"]
        assert prometheus.times == [None]

    def test_sends_the_evaluation_time(
        self, prometheus: FakePrometheus, transport: Callable[..., Transport]
    ) -> None:
        transport(prometheus).instant("up", at=1_700_000_300.5)
        assert prometheus.times == ["1700000300.500"]

    def test_a_body_that_is_not_json_is_unreadable(
        self, prometheus: FakePrometheus, transport: Callable[..., Transport]
    ) -> None:
        prometheus.default = Reply(200, b"<html>proxy error</html>")
        assert transport(prometheus).instant("up") is UNREADABLE


class TestStatusCodes:
    @pytest.mark.parametrize("status", [400, 422])
    def test_refused_promql_is_an_invalid_query_with_the_servers_reason(
        self, prometheus: FakePrometheus, status: int, transport: Callable[..., Transport]
    ) -> None:
        prometheus.default = failure(status, "bad_data", "unexpected }")
        with pytest.raises(InvalidQueryError, match=f"HTTP {status}: bad_data: unexpected }}"):
            transport(prometheus).instant("sum(x")

    @pytest.mark.parametrize("status", [408, 429, 500])
    def test_later_statuses_and_server_errors_are_temporary(
        self, prometheus: FakePrometheus, status: int, transport: Callable[..., Transport]
    ) -> None:
        prometheus.default = failure(status, "internal", "boom")
        with pytest.raises(MetricsError, match=f"HTTP {status}") as raised:
            transport(prometheus).instant("up")
        assert not isinstance(raised.value, InvalidQueryError)

    def test_the_status_comes_from_the_response_not_the_text(
        self, prometheus: FakePrometheus, transport: Callable[..., Transport]
    ) -> None:
        prometheus.default = failure(503, "unavailable", "HTTP Status Code 400")
        with pytest.raises(MetricsError) as raised:
            transport(prometheus).instant("up")
        assert not isinstance(raised.value, InvalidQueryError)

    def test_an_error_body_that_is_not_json_is_quoted(
        self, prometheus: FakePrometheus, transport: Callable[..., Transport]
    ) -> None:
        prometheus.default = Reply(502, b"bad gateway")
        with pytest.raises(MetricsError, match="HTTP 502: bad gateway"):
            transport(prometheus).instant("up")


class TestRetriesAndTimeouts:
    def test_http_503_is_retried(
        self, prometheus: FakePrometheus, transport: Callable[..., Transport]
    ) -> None:
        prometheus.answer("up", failure(503, "unavailable"), vector(({}, "1")))

        document = transport(prometheus, retries=1).instant("up")

        assert document["data"]["result"][0]["value"][1] == "1"
        assert len(prometheus.queries) == 2

    def test_persistent_503_is_a_metrics_error(
        self, prometheus: FakePrometheus, transport: Callable[..., Transport]
    ) -> None:
        prometheus.default = failure(503, "unavailable", "overloaded")
        with pytest.raises(MetricsError, match="503"):
            transport(prometheus, retries=1).instant("up")
        assert len(prometheus.queries) == 2

    def test_timeout_is_a_metrics_error(self, prometheus: FakePrometheus, make: Make) -> None:
        prometheus.default = Reply(200, EMPTY.body, delay_seconds=2.0)
        slow = make(prometheus.address, 0.2, retries=0)
        started = time.monotonic()
        with pytest.raises(MetricsError, match="did not answer"):
            slow.instant("up")
        assert time.monotonic() - started < 1.5

    def test_unreachable_server_is_a_metrics_error(self, make: Make) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        unreachable = make(f"http://127.0.0.1:{port}", 1.0, retries=0)
        with pytest.raises(MetricsError, match="did not answer"):
            unreachable.instant("up")


class TestObservation:
    def test_answers_are_observed_as_ok(
        self, prometheus: FakePrometheus, transport: Callable[..., Transport]
    ) -> None:
        observer = RecordingObserver()
        client = transport(prometheus, observer=observer)
        client.instant("up")
        client.instant("up")
        assert len(observer.calls) == 2
        assert all(ok and seconds >= 0 for seconds, ok in observer.calls)

    def test_failures_are_observed_as_failed(
        self, prometheus: FakePrometheus, transport: Callable[..., Transport]
    ) -> None:
        prometheus.default = failure(500)
        observer = RecordingObserver()
        with pytest.raises(MetricsError):
            transport(prometheus, observer=observer).instant("up")
        assert [ok for _, ok in observer.calls] == [False]

    def test_proxies_come_from_the_environment_read_once(
        self, prometheus: FakePrometheus, monkeypatch: pytest.MonkeyPatch, make: Make
    ) -> None:
        for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.delenv(name, raising=False)
        for name in ("http_proxy", "HTTP_PROXY"):
            monkeypatch.setenv(name, prometheus.address)  # the fake answers as the proxy
        behind_a_proxy = make("http://prometheus.invalid:9090", 2.0, retries=0)
        for name in ("http_proxy", "HTTP_PROXY"):
            monkeypatch.delenv(name)

        behind_a_proxy.instant("up")

        assert prometheus.paths == ["/api/v1/query"]
        assert prometheus.headers[0]["Host"] == "prometheus.invalid:9090"

    def test_headers_are_sent(
        self, prometheus: FakePrometheus, transport: Callable[..., Transport]
    ) -> None:
        transport(prometheus, headers={"X-Scope-OrgID": "lending"}).instant("up")
        assert prometheus.headers[0]["X-Scope-OrgID"] == "lending"


class TestAsynchronous:
    @pytest.fixture
    def made(self, loop: asyncio.AbstractEventLoop) -> Iterator[list[AsyncPrometheusTransport]]:
        made: list[AsyncPrometheusTransport] = []
        yield made
        for client in made:
            asyncio.run_coroutine_threadsafe(client.close(), loop).result(5)

    def test_the_queries_of_a_batch_overlap(
        self,
        prometheus: FakePrometheus,
        loop: asyncio.AbstractEventLoop,
        made: list[AsyncPrometheusTransport],
    ) -> None:
        prometheus.default = Reply(200, EMPTY.body, delay_seconds=0.5)
        client = AsyncPrometheusTransport(prometheus.address, 5.0, loop=loop, retries=0)
        made.append(client)
        started = time.monotonic()

        documents = client.instant_many([(f"q{index}", 1.0) for index in range(5)])

        assert len(documents) == 5
        assert time.monotonic() - started < 1.5  # one after the other would take 2.5 s
        assert prometheus.most_in_flight >= 2

    def test_answers_come_back_in_the_order_asked(
        self,
        prometheus: FakePrometheus,
        loop: asyncio.AbstractEventLoop,
        made: list[AsyncPrometheusTransport],
    ) -> None:
        prometheus.answer("slow", Reply(200, vector(({}, "1")).body, delay_seconds=0.3))
        prometheus.answer("fast", vector(({}, "2")))
        client = AsyncPrometheusTransport(prometheus.address, 5.0, loop=loop, retries=0)
        made.append(client)

        slow, fast = client.instant_many([("slow", None), ("fast", None)])

        assert slow["data"]["result"][0]["value"][1] == "1"
        assert fast["data"]["result"][0]["value"][1] == "2"

    def test_connections_are_bounded_by_the_pool(
        self,
        prometheus: FakePrometheus,
        loop: asyncio.AbstractEventLoop,
        made: list[AsyncPrometheusTransport],
    ) -> None:
        prometheus.default = Reply(200, EMPTY.body, delay_seconds=0.1)
        client = AsyncPrometheusTransport(
            prometheus.address, 5.0, loop=loop, retries=0, pool_size=2
        )
        made.append(client)

        client.instant_many([(f"q{index}", None) for index in range(8)])

        assert len(prometheus.queries) == 8
        assert prometheus.most_in_flight == 2

    def test_one_failed_query_fails_the_batch(
        self,
        prometheus: FakePrometheus,
        loop: asyncio.AbstractEventLoop,
        made: list[AsyncPrometheusTransport],
    ) -> None:
        prometheus.answer("broken", failure(400, "bad_data", "unexpected }"))
        client = AsyncPrometheusTransport(prometheus.address, 5.0, loop=loop, retries=0)
        made.append(client)
        with pytest.raises(InvalidQueryError, match="broken"):
            client.instant_many([("up", None), ("broken", None)])


def test_every_query_of_a_batch_is_asked_and_the_first_error_raised(
    prometheus: FakePrometheus, make: Make
) -> None:
    prometheus.answer("broken", failure(400, "bad_data", "unexpected }"))
    prometheus.answer("down", failure(500, "internal", "boom"))
    client = make(prometheus.address, 2.0, retries=0)
    with pytest.raises(InvalidQueryError, match="broken"):
        client.instant_many([("broken", None), ("up", None), ("down", None)])
    assert sorted(prometheus.queries) == ["broken", "down", "up"]
