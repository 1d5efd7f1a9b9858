"""The convention end to end: what ``fairshift_instrument`` exposes, read back through PromQL.

A fake Prometheus evaluates the source's ``sum by (...) (increase(series{...}[w]))`` queries over
a model server's exposition (as if the window covered the server's whole life, and dropping
empty labels as Prometheus does), so the counts must equal those the CSV reader builds from the
same decisions.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from fairshift_instrument import ModelMetrics
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_fake import FakePrometheus, Reply, vector

from fairshift.api.spec import Analysis
from fairshift.engine.counts import Histogram, VersionCounts
from fairshift.metrics.csvfile import read_counts
from fairshift.metrics.prometheus import PrometheusSource
from fairshift.metrics.source import QueryContext

QUERY = re.compile(
    r"^sum(?: by \((?P<by>[^)]*)\))? ?\(increase\((?P<series>\w+)(?:\{.*\})?\[\d+s\]\)\)$"
)
ATTRIBUTES = ("sex", "age_band")
CONTEXT = QueryContext("lending", "credit", "credit", "candidate", "credit-canary", 600)


def evaluate(query: str, registry: CollectorRegistry) -> Reply:
    """``sum by`` over the registry's current samples of one series."""
    match = QUERY.match(query)
    assert match is not None, f"unexpected query shape: {query}"
    by = [name.strip() for name in (match["by"] or "").split(",") if name.strip()]
    sums: dict[tuple[tuple[str, str], ...], float] = defaultdict(float)
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if sample.name != match["series"]:
                continue
            labels = {k: v for k, v in sample.labels.items() if k in by and v != ""}
            sums[tuple(sorted(labels.items()))] += sample.value
    return vector(*[(dict(labels), repr(total)) for labels, total in sums.items()])


class RegistryPrometheus(FakePrometheus):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def reply_for(self, query: str) -> Reply:
        return evaluate(query, self.registry)


def decisions(seed: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        score = round(rng.random(), 3)
        label = rng.choice([0, 1, None])
        rows.append(
            {
                "sex": rng.choice(["F", "M", "X"]),
                "age_band": rng.choice(["18-30", "30-60", "60+"]),
                "prediction": int(score >= 0.5),
                "label": label,
                "score": score,
                "latency_seconds": round(rng.expovariate(20.0), 4),
            }
        )
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    header = list(rows[0])
    lines = [",".join(header)]
    lines += [",".join("" if row[k] is None else str(row[k]) for k in header) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def instrumented(rows: list[dict[str, Any]]) -> CollectorRegistry:
    registry = CollectorRegistry()
    metrics = ModelMetrics(ATTRIBUTES, registry=registry)
    for row in rows:
        cell = {attribute: row[attribute] for attribute in ATTRIBUTES}
        metrics.record_prediction(cell, row["prediction"], row["score"], row["latency_seconds"])
        if row["label"] is not None:
            metrics.record_outcome(cell, row["prediction"], row["label"], row["score"])
    return registry


def zero_like(histogram: Histogram) -> Histogram:
    return Histogram(histogram.bounds, tuple(0.0 for _ in histogram.counts))


def assert_same_counts(prometheus: VersionCounts, files: VersionCounts) -> None:
    assert prometheus.cells == files.cells
    assert prometheus.scores == files.scores
    assert set(prometheus.labelled_scores) == set(files.labelled_scores)
    for key, by_label in files.labelled_scores.items():
        for label, histogram in by_label.items():
            # the CSV reader keeps a zero histogram for a label not seen in a cell
            assert prometheus.labelled_scores[key].get(label, zero_like(histogram)) == histogram
    assert prometheus.latency == files.latency
    assert prometheus.requests == files.requests


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_prometheus_and_csv_give_the_same_counts(seed: int, tmp_path: Path) -> None:
    rows = decisions(seed, 400)
    write_csv(rows, tmp_path / "decisions.csv")
    fake = RegistryPrometheus(instrumented(rows))
    fake.start()
    try:
        analysis = Analysis.model_validate(
            {
                "prometheus": {"address": fake.address},
                "slices": {"attributes": list(ATTRIBUTES)},
                "gates": [{"name": "accuracy", "metric": "accuracy", "maxDecrease": 0.02}],
            }
        )
        counts = PrometheusSource(fake.address, 2.0, retries=0).collect(analysis, CONTEXT)
    finally:
        fake.stop()

    files = read_counts(tmp_path / "decisions.csv", ATTRIBUTES).counts
    assert_same_counts(counts, files)
    assert counts.errors == 0
    assert math.isclose(sum(c.predictions for c in counts.cells.values()), len(rows))


def test_the_fake_drops_empty_labels_like_prometheus() -> None:
    registry = CollectorRegistry()
    ModelMetrics(["sex"], registry=registry).record_prediction({"sex": "F"}, 1, score=0.2)
    reply = evaluate("sum by (sex, label, le) (increase(fairshift_score_bucket[60s]))", registry)
    result = json.loads(reply.body)["data"]["result"]
    assert all("label" not in item["metric"] for item in result)
    assert len(result) == 21
