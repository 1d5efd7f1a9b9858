"""How long ``fairshift gate`` takes on wide slices: drift and calibration gates on many cells.

Writes two decision files per scenario (stable and candidate, same population, scores and
labels) and times ``fairshift gate --format json`` on them, each run in its own process with a
time limit. Scenarios:

- ``area-x-sex``: 100,000 rows, an attribute with 4,000 values and sex, with intersections;
  a PSI drift gate (about 12,000 slices).
- ``zip-x-sex-x-race``: 100,000 rows, zip (2,000 values) x sex x race (5 values) with
  intersections; PSI drift and calibration gates (about 40,000 slices).

Run: ``python -m bench.offline_speed`` (``--limit 400`` seconds per run by default).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROWS = 100_000


@dataclass(frozen=True)
class Scenario:
    name: str
    attributes: dict[str, int]  # attribute -> number of values
    gates: list[dict[str, object]]


SCENARIOS = (
    Scenario(
        "area-x-sex",
        {"area": 4000, "sex": 2},
        [{"name": "drift", "metric": "score_psi", "max": 0.1, "severity": "warning"}],
    ),
    Scenario(
        "zip-x-sex-x-race",
        {"zip": 2000, "sex": 2, "race": 5},
        [
            {"name": "drift", "metric": "score_psi", "max": 0.1, "severity": "warning"},
            {"name": "calibration", "metric": "calibration", "maxChange": 0.05},
        ],
    ),
)


def policy(scenario: Scenario) -> dict[str, object]:
    return {
        "apiVersion": "fairshift.io/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": "bench"},
        "spec": {
            "targetRef": {"name": "bench"},
            "service": {"port": 8080},
            "routing": {"replicas": {}},
            "strategy": {"canary": {"steps": [{"analyze": {"duration": "1m"}}]}},
            "analysis": {
                "prometheus": {"address": "http://prometheus:9090"},
                "slices": {"attributes": list(scenario.attributes), "minSamples": 30},
                "gates": scenario.gates,
            },
        },
    }


def population(scenario: Scenario, rng: np.random.Generator) -> pd.DataFrame:
    columns = {
        name: rng.integers(0, values, size=ROWS).astype(str)
        for name, values in scenario.attributes.items()
    }
    frame = pd.DataFrame(columns)
    frame["label"] = rng.integers(0, 2, size=ROWS)
    return frame


def decisions(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    score = np.clip(0.3 + 0.4 * frame["label"] + rng.normal(0, 0.2, size=len(frame)), 0, 1)
    result = frame.copy()
    result["score"] = np.round(score, 4)
    result["prediction"] = (score > 0.5).astype(int)
    return result


def write_inputs(scenario: Scenario, folder: Path) -> list[str]:
    rng = np.random.default_rng(7)
    frame = population(scenario, rng)
    files = {"stable": decisions(frame, rng), "candidate": decisions(frame, rng)}
    for name, data in files.items():
        data.to_csv(folder / f"{name}.csv", index=False)
    (folder / "policy.yaml").write_text(yaml.safe_dump(policy(scenario)))
    return [
        "--policy",
        str(folder / "policy.yaml"),
        "--stable",
        str(folder / "stable.csv"),
        "--candidate",
        str(folder / "candidate.csv"),
        "--format",
        "json",
    ]


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_gate(arguments: list[str], limit: float) -> str:
    """Wall and CPU time of one ``fairshift gate`` run in a fresh process (CPU time is what
    to compare on a shared machine), or ``> limit`` when it was stopped."""
    command = [sys.executable, "-m", "fairshift.cli", "gate", *arguments]
    start, cpu = time.perf_counter(), child_cpu_seconds()
    try:
        done = subprocess.run(command, capture_output=True, timeout=limit, check=False)
    except subprocess.TimeoutExpired:
        return f"> {limit:.0f} s wall, {child_cpu_seconds() - cpu:.0f} s CPU (stopped)"
    elapsed, cpu = time.perf_counter() - start, child_cpu_seconds() - cpu
    if done.returncode == 2:
        return f"error: {done.stderr.decode().strip()}"
    slices = len({g["slice"] for g in json.loads(done.stdout)["gates"]})
    return f"{elapsed:.1f} s wall, {cpu:.1f} s CPU ({slices} slices, exit {done.returncode})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=400.0, help="seconds per run")
    parser.add_argument("--only", help="run one scenario by name")
    args = parser.parse_args()
    for scenario in SCENARIOS:
        if args.only and scenario.name != args.only:
            continue
        with tempfile.TemporaryDirectory() as folder:
            arguments = write_inputs(scenario, Path(folder))
            print(f"{scenario.name}: {timed_gate(arguments, args.limit)}", flush=True)


if __name__ == "__main__":
    main()
