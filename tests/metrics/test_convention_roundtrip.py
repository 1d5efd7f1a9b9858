"""The convention end to end: what ``fairshift_instrument`` exposes, read back through PromQL.

A fake Prometheus stores two scrapes of a model server's exposition, one before the analysis
starts and one before it ends, and answers the source's pinned readings from them; the counts
must equal those the CSV reader builds from the decisions made in between.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fairshift_instrument import ModelMetrics
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_fake import Series, SeriesPrometheus

from fairshift.api.analysis import Analysis
from fairshift.engine.counts import Histogram, VersionCounts
from fairshift.metrics.csvfile import read_counts
from fairshift.metrics.prometheus import PrometheusSource
from fairshift.metrics.source import QueryContext

ATTRIBUTES = ("sex", "age_band")
START = 1_700_000_000.0
END = START + 600.0
SPAN = (datetime.fromtimestamp(START, UTC), datetime.fromtimestamp(END, UTC))
CANDIDATE = QueryContext("lending", "credit", "credit", "candidate", "credit-canary", *SPAN)
STABLE = QueryContext("lending", "credit", "credit-primary", "stable", "credit-primary", *SPAN)
CANDIDATE_POD = {"namespace": "lending", "pod": "credit-6d4f-aaaaa"}
STABLE_POD = {"namespace": "lending", "pod": "credit-primary-5c9b-bbbbb"}


def scrape(registry: CollectorRegistry, at: float, pod: dict[str, str]) -> list[Series]:
    """One scrape of the registry at ``at``: every sample a series of one point, with the pod's
    target labels and without empty labels, as Prometheus stores them."""
    series = []
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            labels = {k: v for k, v in sample.labels.items() if v != ""}
            series.append(Series({"__name__": sample.name, **pod, **labels}, [(at, sample.value)]))
    return series


def merged(*scrapes: list[Series]) -> list[Series]:
    """The scrapes as stored series: points of the same labels joined in time order."""
    stored: dict[tuple[tuple[str, str], ...], Series] = {}
    for scraped in scrapes:
        for one in scraped:
            key = tuple(sorted(one.labels.items()))
            stored.setdefault(key, Series(one.labels, [])).points.extend(one.points)
    return list(stored.values())


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


def record(metrics: ModelMetrics, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        cell = {attribute: row[attribute] for attribute in ATTRIBUTES}
        metrics.record_prediction(cell, row["prediction"], row["score"], row["latency_seconds"])
        if row["label"] is not None:
            metrics.record_outcome(cell, row["prediction"], row["label"], row["score"])


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


def served(
    seed: int, pod: dict[str, str], tmp_path: Path
) -> tuple[list[Series], VersionCounts, int]:
    """A model server that ran before the analysis started, scraped before it and before its
    end, and the counts the CSV reader builds from the decisions made in between."""
    before, during = decisions(seed, 150), decisions(seed + 100, 400)
    write_csv(during, tmp_path / f"{seed}.csv")
    registry = CollectorRegistry()
    metrics = ModelMetrics(ATTRIBUTES, registry=registry)
    record(metrics, before)
    at_start = scrape(registry, START - 10, pod)
    record(metrics, during)
    files = read_counts(tmp_path / f"{seed}.csv", ATTRIBUTES).counts
    return merged(at_start, scrape(registry, END - 10, pod)), files, len(during)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_prometheus_and_csv_give_the_same_counts(seed: int, tmp_path: Path) -> None:
    stable_series, stable_files, _ = served(seed + 10, STABLE_POD, tmp_path)
    candidate_series, candidate_files, candidate_decisions = served(seed, CANDIDATE_POD, tmp_path)
    fake = SeriesPrometheus(now=END)
    fake.series = [*stable_series, *candidate_series]
    fake.start()
    try:
        analysis = Analysis.model_validate(
            {
                "prometheus": {"address": fake.address},
                "slices": {"attributes": list(ATTRIBUTES)},
                "gates": [{"name": "accuracy", "metric": "accuracy", "maxDecrease": 0.02}],
            }
        )
        source = PrometheusSource(fake.address, 2.0, retries=0)
        pair = source.collect(analysis, STABLE, CANDIDATE)
    finally:
        fake.stop()

    assert_same_counts(pair.stable, stable_files)
    assert_same_counts(pair.candidate, candidate_files)
    assert pair.candidate.errors == 0
    total = sum(c.predictions for c in pair.candidate.cells.values())
    assert math.isclose(total, candidate_decisions)


def test_the_scrape_drops_empty_labels_like_prometheus() -> None:
    registry = CollectorRegistry()
    ModelMetrics(["sex"], registry=registry).record_prediction({"sex": "F"}, 1, score=0.2)
    buckets = [
        s
        for s in scrape(registry, START, CANDIDATE_POD)
        if s.labels["__name__"] == "fairshift_score_bucket"
    ]
    assert all("label" not in s.labels for s in buckets)
    assert len(buckets) == 21
