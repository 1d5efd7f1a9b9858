"""One simulated model server: an HTTP scoring endpoint that emits fairshift's metric convention.

``GET /predict?id=<person id>`` scores the applicant with that id (see ``population``), sleeps
the simulated latency, and answers ``{"decision", "score"}`` (or HTTP 500 for a simulated
error). Every request is timed with :class:`fairshift_instrument.ModelMetrics`; the ground
truth of each answered request is recorded ``label_delay_s`` later (labels arrive late, as in
lending). ``GET /metrics`` is the Prometheus exposition of the server's own registry.

A production server (one of the ``<target>-primary`` Deployment) switches to
:meth:`ModelBehaviour.in_production` ``production_after_s`` seconds after it started, when the
model declares a ``production_bias``: the drift a guard must catch after promotion.

Each server has its own registry and port on 127.0.0.1, like a pod has its own process.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fairshift_instrument import ModelMetrics
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from e2e.dataplane.population import ATTRIBUTES, ModelBehaviour, person, predict

HOST = "127.0.0.1"


class ModelServer:
    """A model version serving on ``127.0.0.1:<port>`` until :meth:`stop`."""

    def __init__(self, name: str, model: ModelBehaviour, *, production: bool = False) -> None:
        self.name = name
        self.model = model
        self.drifted = model.in_production() if production and model.production_bias else None
        self.started_at: float | None = None
        self.registry = CollectorRegistry()
        self.metrics = ModelMetrics(ATTRIBUTES, self.registry)
        self.requests = 0
        self.failures = 0
        self._lock = threading.Lock()
        self._pending: collections.deque[tuple[float, dict[str, str], int, int, float]] = (
            collections.deque()
        )
        self._stopping = threading.Event()
        self.httpd = ThreadingHTTPServer((HOST, 0), self._handler())
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._threads = [
            threading.Thread(target=self.httpd.serve_forever, name=f"{name}-http", daemon=True),
            threading.Thread(target=self._deliver_labels, name=f"{name}-labels", daemon=True),
        ]

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def drifts_at(self) -> float | None:
        """The wall time from which this server adds its ``production_bias``, if it does."""
        if self.drifted is None or self.started_at is None:
            return None
        return self.started_at + self.model.production_after_s

    def behaviour(self, now: float) -> ModelBehaviour:
        """The model this server answers with at wall time ``now``."""
        drifts_at = self.drifts_at
        if self.drifted is not None and drifts_at is not None and now >= drifts_at:
            return self.drifted
        return self.model

    def start(self) -> ModelServer:
        self.started_at = time.time()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    # -- requests ----------------------------------------------------------------------------

    def score(self, person_id: int) -> tuple[int, dict[str, Any]]:
        """Answer one request: (HTTP status, body)."""
        who = person(person_id)
        answer = predict(self.behaviour(time.time()), who)
        with self.metrics.timed():
            time.sleep(answer.latency_s)
            if answer.failed:
                self.metrics.record_error("simulated")
        with self._lock:
            self.requests += 1
            self.failures += answer.failed
        if answer.failed:
            return 500, {"error": "simulated failure"}
        self.metrics.record_prediction(who.slice, answer.decision, answer.score)
        due = time.monotonic() + self.model.label_delay_s
        self._pending.append((due, who.slice, answer.decision, who.label, answer.score))
        return 200, {"decision": answer.decision, "score": round(answer.score, 4)}

    def _deliver_labels(self) -> None:
        """Record each outcome once its delay has passed (FIFO: the delay is constant)."""
        while not self._stopping.is_set():
            now = time.monotonic()
            while self._pending and self._pending[0][0] <= now:
                _, slice_values, decision, label, score = self._pending.popleft()
                self.metrics.record_outcome(slice_values, decision, label, score)
            self._stopping.wait(0.2)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: one connection per client thread

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                if url.path == "/metrics":
                    self._send(200, generate_latest(server.registry), CONTENT_TYPE_LATEST)
                    return
                if url.path != "/predict":
                    self._send(404, b"not found\n", "text/plain")
                    return
                try:
                    person_id = int(urllib.parse.parse_qs(url.query)["id"][0])
                except (KeyError, ValueError):
                    self._send(400, b'{"error": "id required"}', "application/json")
                    return
                code, body = server.score(person_id)
                self._send(code, json.dumps(body).encode(), "application/json")

            def _send(self, code: int, data: bytes, content_type: str) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client went away (a scrape cut short)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
