"""A fake Prometheus HTTP API on 127.0.0.1: canned ``/api/v1/query`` answers chosen by query text.

Imported by the tests of this directory as ``prometheus_fake``; the fixture lives in conftest.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass(frozen=True)
class Reply:
    """What the fake answers: an HTTP status and a body, optionally after a delay."""

    status: int = 200
    body: bytes = b""
    delay_seconds: float = 0.0


def vector(*samples: tuple[dict[str, str], str]) -> Reply:
    """A successful instant-vector answer from ``(labels, value)`` pairs."""
    result = [{"metric": labels, "value": [1_700_000_000.0, value]} for labels, value in samples]
    return success(result, "vector")


def scalar(value: str) -> Reply:
    return success([1_700_000_000.0, value], "scalar")


def success(result: Any, result_type: str = "vector") -> Reply:
    body = {"status": "success", "data": {"resultType": result_type, "result": result}}
    return Reply(200, json.dumps(body).encode())


def failure(status: int, error_type: str = "bad_data", error: str = "parse error") -> Reply:
    body = {"status": "error", "errorType": error_type, "error": error}
    return Reply(status, json.dumps(body).encode())


EMPTY = vector()


class FakePrometheus:
    """Answers each query with the reply of the first rule whose text occurs in the query."""

    def __init__(self) -> None:
        self.rules: list[tuple[str, list[Reply]]] = []
        self.queries: list[str] = []
        self.paths: list[str] = []
        self.times: list[str | None] = []
        self.headers: list[dict[str, str]] = []
        self.default = EMPTY
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer(self, fragment: str, *replies: Reply) -> None:
        """Answer queries containing ``fragment`` with ``replies`` in turn, the last one repeated.

        Earlier rules win.
        """
        self.rules.append((fragment, list(replies)))

    def reply_for(self, query: str) -> Reply:
        with self._lock:
            for fragment, replies in self.rules:
                if fragment in query:
                    return replies.pop(0) if len(replies) > 1 else replies[0]
        return self.default

    def queries_containing(self, fragment: str) -> Sequence[str]:
        return [query for query in self.queries if fragment in query]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _record(self, path: str, query: str, at: str | None, headers: dict[str, str]) -> None:
        with self._lock:
            self.headers.append(headers)
            self.paths.append(path)
            self.queries.append(query)
            self.times.append(at)

    def _arrived(self, change: int) -> None:
        with self._lock:
            self.in_flight += change
            self.most_in_flight = max(self.most_in_flight, self.in_flight)

    def _handler(self) -> Callable[..., BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._arrived(+1)
                try:
                    reply = self.prepare()
                finally:
                    # Out of flight before the reply is written: once the client has it, it
                    # may send its next request on the same connection, which must not be
                    # counted beside this one (it was, under load: 3 in flight on a pool of 2).
                    fake._arrived(-1)
                self.send(reply)

            def prepare(self) -> Reply:
                url = urlparse(self.path)
                params = parse_qs(url.query)
                query = params.get("query", [""])[0]
                fake._record(url.path, query, params.get("time", [None])[0], dict(self.headers))
                reply = fake.reply_for(query) if url.path == "/api/v1/query" else failure(404)
                if reply.delay_seconds:
                    time.sleep(reply.delay_seconds)
                return reply

            def send(self, reply: Reply) -> None:
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


LOOKBACK_SECONDS = 300.0
"""How far back an instant selector looks for a series' latest sample (Prometheus' default)."""

MATCHER = re.compile(r'(\w+)\s*(=~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
READING = re.compile(
    r"label_replace\(label_replace\((?P<name>\w+)(?:\{(?P<selector>.*?)\})? @ (?P<at>[\d.]+), "
    r'"fairshift_reading", "(?P<instant>\w+)", "", ""\), '
    r'"fairshift_version", "(?P<version>\w+)", "", ""\)'
)
INCREASE = re.compile(
    r"^sum(?: by \((?P<by>[^)]*)\))? ?\(increase\((?P<name>\w+)(?:\{(?P<selector>.*)\})?"
    r"\[(?P<window>\d+)s\]\)\)$"
)


@dataclass
class Series:
    """One stored series: its labels (``__name__`` included) and its ``(time, value)`` samples.

    ``ends_at``: when its target went away (Prometheus marks it stale); absent from then on.
    """

    labels: dict[str, str]
    points: list[tuple[float, float]]
    ends_at: float | None = None

    def value_at(self, at: float) -> float | None:
        """What an instant selector reads at ``at``: the latest sample within the lookback."""
        if self.ends_at is not None and at >= self.ends_at:
            return None
        seen = [v for t, v in self.points if at - LOOKBACK_SECONDS < t <= at]
        return seen[-1] if seen else None

    def in_range(self, start: float, end: float) -> list[tuple[float, float]]:
        return [(t, v) for t, v in self.points if start < t <= end]


def counter(
    name: str, labels: dict[str, str], first: float, values: Sequence[float], every: float = 30.0
) -> Series:
    """A counter scraped every ``every`` seconds from ``first`` on."""
    points = [(first + i * every, float(v)) for i, v in enumerate(values)]
    return Series({"__name__": name, **labels}, points)


def matches(labels: dict[str, str], selector: str | None) -> bool:
    """Whether ``labels`` satisfy a selector's ``=``, ``!=`` and ``=~`` matchers."""
    for name, op, raw in MATCHER.findall(selector or ""):
        value = raw.replace('\\"', '"').replace("\\\\", "\\")
        have = labels.get(name, "")
        if op == "=" and have != value:
            return False
        if op == "!=" and have == value:
            return False
        if op == "=~" and not re.fullmatch(value, have):
            return False
    return True


def extrapolated_increase(points: list[tuple[float, float]], start: float, end: float) -> float:
    """Prometheus' ``increase``: reset-corrected, extrapolated towards the range's edges."""
    first_t, first_v = points[0]
    last_t, last_v = points[-1]
    result = last_v - first_v
    previous = 0.0
    for _, value in points:
        if value < previous:
            result += previous
        previous = value
    to_start, to_end = first_t - start, end - last_t
    sampled = last_t - first_t
    average = sampled / (len(points) - 1)
    if result > 0 and first_v >= 0:
        to_start = min(to_start, sampled * (first_v / result))
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    return result * (interval / sampled)


class SeriesPrometheus(FakePrometheus):
    """A fake Prometheus over stored series: it evaluates fairshift's pinned readings and, to
    show what they replace, ``sum by (...) (increase(...[w]))`` as Prometheus does."""

    def __init__(self, now: float) -> None:
        super().__init__()
        self.series: list[Series] = []
        self.now = now

    def reply_for(self, query: str) -> Reply:
        if any(fragment in query for fragment, _ in self.rules):
            return super().reply_for(query)
        if READING.search(query):
            return self.readings(query)
        found = INCREASE.match(query)
        if found:
            return self.increase(found)
        return self.default

    def readings(self, query: str) -> Reply:
        samples = []
        for part in READING.finditer(query):
            markers = {"fairshift_reading": part["instant"], "fairshift_version": part["version"]}
            for series in self.selected(part["name"], part["selector"]):
                value = series.value_at(float(part["at"]))
                if value is not None:
                    samples.append(({**series.labels, **markers}, repr(value)))
        return vector(*samples)

    def increase(self, found: re.Match[str]) -> Reply:
        by = [name.strip() for name in (found["by"] or "").split(",") if name.strip()]
        end = self.now
        start = end - float(found["window"])
        sums: dict[tuple[tuple[str, str], ...], float] = {}
        for series in self.selected(found["name"], found["selector"]):
            points = series.in_range(start, end)
            if len(points) < 2:
                continue
            key = tuple((k, series.labels[k]) for k in by if k in series.labels)
            sums[key] = sums.get(key, 0.0) + extrapolated_increase(points, start, end)
        return vector(*[(dict(key), repr(total)) for key, total in sums.items()])

    def selected(self, name: str, selector: str | None) -> list[Series]:
        return [
            s for s in self.series if s.labels["__name__"] == name and matches(s.labels, selector)
        ]
