"""How long one analysis look takes: every gate on every slice, from counts to a decision.

Builds counts for three slice attributes (4 x 4 x 3 values: 11 marginal groups, 40 pairwise
and 48 three-way intersections, plus the whole population = 100 slices), evaluates 10 gates
(rates, fairness gaps, disparate impact, calibration, drift, latency) with the sequential
statistics the operator uses, and decides. Run: ``python -m bench.engine_speed``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from itertools import product

import numpy as np

from fairshift.api.analysis import Analysis
from fairshift.engine.counts import BinaryCounts, Histogram, VersionCounts, slice_key
from fairshift.engine.decision import StepClock, decide
from fairshift.engine.gates import evaluate

ATTRIBUTES = {
    "region": ["n", "e", "s", "w"],
    "income": ["q1", "q2", "q3", "q4"],
    "age": ["y", "m", "o"],
}
SCORE_BOUNDS = tuple(round(0.05 * i, 2) for i in range(1, 21))
LATENCY_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf"))
GATES = [
    {"name": "eo", "metric": "tpr_gap", "maxIncrease": 0.05},
    {"name": "fpr", "metric": "fpr_gap", "maxIncrease": 0.05},
    {"name": "di", "metric": "disparate_impact", "min": 0.8},
    {"name": "spd", "metric": "statistical_parity_difference", "maxIncrease": 0.05},
    {"name": "sel", "metric": "selection_rate", "maxChange": 0.05, "severity": "warning"},
    {"name": "acc", "metric": "accuracy", "maxDecrease": 0.02},
    {"name": "ppv", "metric": "ppv", "maxDecrease": 0.05},
    {"name": "cal", "metric": "calibration", "maxChange": 0.05, "severity": "warning"},
    {"name": "psi", "metric": "score_psi", "max": 0.1, "severity": "warning"},
    {"name": "lat", "metric": "latency_p99", "max": 0.5},
]


def counts(rng: np.random.Generator, per_cell: int) -> VersionCounts:
    cells, scores, labelled = {}, {}, {}
    for values in product(*ATTRIBUTES.values()):
        key = slice_key(dict(zip(ATTRIBUTES, values, strict=True)))
        n = float(rng.poisson(per_cell))
        tp, fp, fn = rng.binomial(int(n), [0.3, 0.1, 0.1])
        cells[key] = BinaryCounts(
            n, float(tp + fp), float(tp), float(fp), float(fn), n - tp - fp - fn
        )
        hist = rng.multinomial(int(n), np.full(20, 0.05)).astype(float)
        scores[key] = Histogram(SCORE_BOUNDS, tuple(hist))
        labelled[key] = {
            0: Histogram(SCORE_BOUNDS, tuple(hist / 2)),
            1: Histogram(SCORE_BOUNDS, tuple(hist / 2)),
        }
    latency = Histogram(
        LATENCY_BOUNDS,
        tuple(float(x) for x in rng.multinomial(100_000, [0.1] * 7 + [0.3, 0.0, 0.0, 0.0, 0.0])),
    )
    return VersionCounts(
        cells=cells, scores=scores, labelled_scores=labelled, latency=latency, requests=1e5
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    analysis = Analysis.model_validate(
        {"slices": {"attributes": list(ATTRIBUTES), "minSamples": 50}, "gates": GATES}
    )
    stable, candidate = counts(rng, 400), counts(rng, 400)
    evaluation = evaluate(analysis, stable, candidate)
    slices = {c.measurement.slice for c in evaluation.cells}
    timings = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        decide(evaluate(analysis, stable, candidate), StepClock(600, 300, 900))
        timings.append(time.perf_counter() - started)
    print(f"slices: {len(slices)}  gates: {len(GATES)}  cells judged: {len(evaluation.cells)}")
    print(
        f"one look (evaluate + decide): median {statistics.median(timings) * 1000:.0f} ms, "
        f"max {max(timings) * 1000:.0f} ms over {args.repeats} repeats"
    )


if __name__ == "__main__":
    main()
