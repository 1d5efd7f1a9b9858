"""The counted query (Prometheus sums the counts) against ``promtool test rules``, and its
answer against the client-side rule of ``metrics.readings`` on the same readings.

The series: a steady process, a process that restarted (one of its series went down, so all
of its series count their end reading), a series that appeared after the start, and one whose
pod is gone before the end. promtool evaluates the real PromQL; the expected values come from
the client-side functions, so the two rules cannot drift apart unnoticed.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from fairshift.metrics.answers import Answer, Sample
from fairshift.metrics.promql import convention_queries, readings_of
from fairshift.metrics.readings import (
    VersionReadings,
    restarted_processes,
    series_counts,
    summed_by,
)
from fairshift.metrics.source import QueryContext

START, END = 300, 1200  # seconds: the analysis start and its end (minute 5 and 20)
MINUTES = 21

# (version, pod, sex, values per minute 0..20; None = no sample)
SERIES: list[tuple[str, str, str, list[float | None]]] = [
    ("stable", "steady", "F", [float(m) for m in range(MINUTES)]),
    ("stable", "steady", "M", [3.0] * MINUTES),
    ("stable", "restarted", "F", [10.0 * m if m <= 10 else float(m - 11) for m in range(MINUTES)]),
    ("stable", "restarted", "M", [2.0 * m for m in range(MINUTES)]),
    ("stable", "new", "F", [None if m < 12 else float(m - 12) for m in range(MINUTES)]),
    ("stable", "gone", "M", [float(m) if m <= 4 else None for m in range(MINUTES)]),
    ("candidate", "c1", "F", [2.0 * m for m in range(MINUTES)]),
]
SERIES_NAME = "fairshift_predictions_total"


def values_text(values: list[float | None]) -> str:
    return " ".join("_" if value is None else f"{value:g}" for value in values)


def labels_of(version: str, pod: str, sex: str) -> dict[str, str]:
    return {"namespace": "ns", "version": version, "pod": pod, "sex": sex, "decision": "approve"}


def at_minute(values: list[float | None], seconds: int) -> float | None:
    """The reading an instant selector returns (the latest sample within five minutes)."""
    minute = seconds // 60
    for earlier in range(minute, max(-1, minute - 6), -1):
        if values[earlier] is not None:
            return values[earlier]
    return None


def client_side_counts(version: str) -> Answer:
    readings = VersionReadings()
    for series_version, pod, sex, values in SERIES:
        if series_version != version:
            continue
        labels = {
            **labels_of(version, pod, sex),
            "__name__": SERIES_NAME,
            "fairshift_version": version,
            "fairshift_reading": "",
        }
        for instant, seconds in (("start", START), ("end", END)):
            value = at_minute(values, seconds)
            if value is not None:
                readings.add(labels, instant, value)
    restarted = restarted_processes(readings.series.values(), ["sex"])
    return summed_by(series_counts(readings.series, restarted, ["sex"]), ["sex", "decision"])


def counted_predictions_query() -> str:
    readings = []
    for version in ("stable", "candidate"):
        context = QueryContext(
            namespace="ns",
            rollout="r",
            deployment="d",
            version=version,  # type: ignore[arg-type]
            service="s",
            start=datetime.fromtimestamp(START, UTC),
            end=datetime.fromtimestamp(END, UTC),
        )
        readings += readings_of(context, f'namespace="ns",version="{version}"')
    return convention_queries(["sex"], readings, counted=True).predictions.query


def expected_samples() -> list[dict[str, object]]:
    expected = []
    for version in ("stable", "candidate"):
        for sample in client_side_counts(version).samples:
            labels = {**sample.labels, "fairshift_version": version}
            text = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            expected.append({"labels": "{" + text + "}", "value": sample.value})
    return expected


def test_the_client_side_rule_gives_what_the_expectations_say() -> None:
    """The expectations themselves, by hand: steady 15 + restarted 9 (its end) + new 8 for F;
    steady 0 + restarted 40 (its end, the process restarted) + gone 0 for M."""
    stable = {s.labels["sex"]: s.value for s in client_side_counts("stable").samples}
    assert stable == {"F": 32.0, "M": 40.0}
    assert client_side_counts("candidate").samples == (
        Sample({"sex": "F", "decision": "approve"}, 30.0),
    )


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_prometheus_sums_the_counts_as_the_client_side_rule_does(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text("groups: []\n")
    series = [
        {
            "series": SERIES_NAME
            + "{"
            + ", ".join(f'{k}="{v}"' for k, v in labels_of(version, pod, sex).items())
            + "}",
            "values": values_text(values),
        }
        for version, pod, sex, values in SERIES
    ]
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": counted_predictions_query(),
                        "eval_time": f"{END}s",
                        "exp_samples": expected_samples(),
                    }
                ],
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))

    done = subprocess.run(
        ["promtool", "test", "rules", "test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
