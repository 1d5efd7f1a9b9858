"""How much client CPU one analysis' metric collection takes, from HTTP answers to counts.

A local HTTP server answers the five readings queries of one analysis (both versions, both
instants) with the raw series a convention-instrumented model server exposes: per pod,
predictions per cell and decision, outcomes per cell, decision and label, score buckets per
cell and label, latency buckets and errors. ``PrometheusSource.collect`` reads them as the
operator does; the figure is its thread CPU per analysis (the server runs on other threads).
Run: ``python -m bench.collect_speed``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import product
from typing import Any
from urllib.parse import parse_qs, urlparse

from fairshift_instrument.convention import LATENCY_BUCKETS, SCORE_BUCKETS

from fairshift.api.spec import Analysis
from fairshift.metrics.prometheus import PrometheusSource
from fairshift.metrics.source import QueryContext, Version

SLICES = {
    8: {"sex": ["F", "M"], "age_band": ["18-30", "30-45", "45-60", "60+"]},
    48: {
        "sex": ["F", "M"],
        "age_band": ["18-30", "30-45", "45-60", "60+"],
        "region": ["n", "e", "s", "w", "c", "x"],
    },
}
END = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
START = END - timedelta(minutes=10)


def bounds(finite: tuple[float, ...]) -> list[str]:
    return [*(repr(b) for b in finite), "+Inf"]


def series(name: str, cells: int, pods: int, version: str) -> Iterator[dict[str, str]]:
    """The label sets of one family's raw series for one version."""
    values = SLICES[cells]
    for pod in range(pods):
        target = {"namespace": "lending", "pod": f"{version}-{pod}", "instance": f"10.0.0.{pod}"}
        if name == "fairshift_request_duration_seconds_bucket":
            yield from ({**target, "le": le} for le in bounds(LATENCY_BUCKETS))
            continue
        if name == "fairshift_errors_total":
            yield {**target, "reason": "timeout"}
            continue
        for combination in product(*values.values()):
            cell = {**target, **dict(zip(values, combination, strict=True))}
            if name == "fairshift_predictions_total":
                yield from ({**cell, "decision": d} for d in "01")
            elif name == "fairshift_outcomes_total":
                yield from ({**cell, "decision": d, "label": y} for d in "01" for y in "01")
            else:
                for label, le in product(["", "0", "1"], bounds(SCORE_BUCKETS)):
                    yield {**cell, "le": le, **({"label": label} if label else {})}


def answer(name: str, cells: int, pods: int) -> bytes:
    """Both versions' readings at both instants, as Prometheus formats them."""
    result: list[dict[str, Any]] = []
    for version, (instant, value) in product(
        ("stable", "candidate"), (("start", "100"), ("end", "250"))
    ):
        markers = {"fairshift_version": version, "fairshift_reading": instant}
        result += [
            {"metric": {"__name__": name, **labels, **markers}, "value": [END.timestamp(), value]}
            for labels in series(name, cells, pods, version)
        ]
    body = {"status": "success", "data": {"resultType": "vector", "result": result}}
    return json.dumps(body).encode()


def serve(answers: dict[str, bytes]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlparse(self.path).query)["query"][0]
            body = next(b for name, b in answers.items() if f"({name}" in query)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def context(version: Version) -> QueryContext:
    deployment = "credit-primary" if version == "stable" else "credit"
    return QueryContext("lending", "credit", deployment, version, "svc", START, END)


def measure(cells: int, pods: int, repeats: int) -> tuple[float, int]:
    """Median client CPU seconds per analysis, and the elements per analysis."""
    names = [
        "fairshift_predictions_total",
        "fairshift_outcomes_total",
        "fairshift_score_bucket",
        "fairshift_request_duration_seconds_bucket",
        "fairshift_errors_total",
    ]
    answers = {name: answer(name, cells, pods) for name in names}
    elements = sum(len(json.loads(body)["data"]["result"]) for body in answers.values())
    server = serve(answers)
    address = f"http://127.0.0.1:{server.server_address[1]}"
    analysis = Analysis.model_validate(
        {
            "prometheus": {"address": address},
            "slices": {"attributes": list(SLICES[cells])},
            "gates": [{"name": "accuracy", "metric": "accuracy", "maxDecrease": 0.02}],
        }
    )
    source = PrometheusSource(address, 10.0, retries=0)
    stable, candidate = context("stable"), context("candidate")
    source.collect(analysis, stable, candidate)  # warm up
    times = []
    for _ in range(repeats):
        started = time.thread_time()
        source.collect(analysis, stable, candidate)
        times.append(time.thread_time() - started)
    server.shutdown()
    return statistics.median(times), elements


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print("| cells | pods per version | answer elements per analysis | client CPU per analysis |")
    print("|---:|---:|---:|---:|")
    for cells, pods in ((8, 1), (8, 3), (48, 1), (48, 3)):
        seconds, elements = measure(cells, pods, args.repeats)
        print(f"| {cells} | {pods} | {elements:,} | {seconds * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
