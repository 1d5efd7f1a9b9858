"""A synthetic model-metrics exporter: stable and candidate series for one namespace.

``python -m bench.scale.exporter --attributes sex,age_band --stable-port P --candidate-port Q``
serves two Prometheus endpoints on 127.0.0.1, each a :class:`fairshift_instrument.ModelMetrics`
fed with synthetic predictions and outcomes (identical behaviour for both versions, so gates
hold rather than fail). The scale benchmark registers the two endpoints as file-sd targets with
the labels ``namespace`` and ``version``, which the rollouts' selector matches.

The process stops on SIGTERM/SIGINT, or after ``--max-seconds`` whatever happens.
"""

from __future__ import annotations

import argparse
import itertools
import random
import signal
import threading
import time
from collections.abc import Sequence
from types import FrameType

from fairshift_instrument import ModelMetrics
from prometheus_client import CollectorRegistry, start_http_server

SLICE_VALUES: dict[str, tuple[str, ...]] = {
    "sex": ("female", "male"),
    "age_band": ("18-30", "30-45", "45-60", "60plus"),
    "region": ("north", "south", "east", "west", "centre", "islands"),
}
"""Values per attribute; the three attributes give 48 finest slices, the first two give 8."""


def slices_of(attributes: Sequence[str]) -> list[dict[str, str]]:
    """Every finest slice of ``attributes`` (the Cartesian product of their values)."""
    values = [SLICE_VALUES[name] for name in attributes]
    return [dict(zip(attributes, combo, strict=True)) for combo in itertools.product(*values)]


class Version:
    """One model version's endpoint: a registry, its ModelMetrics and an HTTP server."""

    def __init__(self, attributes: Sequence[str], port: int, seed: int) -> None:
        self.registry = CollectorRegistry()
        self.metrics = ModelMetrics(attributes, self.registry)
        self.slices = slices_of(attributes)
        self.random = random.Random(seed)
        start_http_server(port, addr="127.0.0.1", registry=self.registry)

    def emit(self, count: int) -> None:
        """``count`` predictions with immediate outcomes, spread over every slice."""
        rng = self.random
        for _ in range(count):
            where = rng.choice(self.slices)
            score = rng.betavariate(2.0, 2.0)
            decision = int(score >= 0.5)
            label = int(rng.random() < score)
            latency = rng.uniform(0.01, 0.08)
            self.metrics.record_prediction(where, decision, score, latency)
            self.metrics.record_outcome(where, decision, label, score)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attributes", default="sex,age_band")
    parser.add_argument("--stable-port", type=int, required=True)
    parser.add_argument("--candidate-port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=40.0, help="predictions per second each")
    parser.add_argument("--max-seconds", type=float, default=4 * 3600.0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    attributes = [name for name in args.attributes.split(",") if name]
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    versions = [
        Version(attributes, args.stable_port, seed=1),
        Version(attributes, args.candidate_port, seed=2),
    ]
    period = 0.5
    per_period = max(1, round(args.rate * period))
    deadline = time.monotonic() + args.max_seconds
    while not stop.is_set() and time.monotonic() < deadline:
        for version in versions:
            version.emit(per_period)
        stop.wait(period)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
