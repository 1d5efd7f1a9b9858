"""A fake Prometheus HTTP API on 127.0.0.1: canned ``/api/v1/query`` answers chosen by query text.

Imported by the tests of this directory as ``prometheus_fake``; the fixture lives in conftest.
"""

from __future__ import annotations

import json
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

    def _handler(self) -> Callable[..., BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                params = parse_qs(url.query)
                query = params.get("query", [""])[0]
                fake._record(url.path, query, params.get("time", [None])[0], dict(self.headers))
                reply = fake.reply_for(query) if url.path == "/api/v1/query" else failure(404)
                if reply.delay_seconds:
                    time.sleep(reply.delay_seconds)
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
