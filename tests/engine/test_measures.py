"""The metric families behind ``harm.measure_gate``: drift (JS, KS), calibration and the
registry that picks a family for every gate."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fairshift.api.analysis import Analysis, Gate, Slices
from fairshift.api.catalog import METRICS, MetricFamily
from fairshift.api.status import Outcome
from fairshift.engine import distributions
from fairshift.engine.counts import BinaryCounts, Histogram, VersionCounts, slice_key
from fairshift.engine.gates import evaluate, evidence
from fairshift.engine.harm import MEASURES, measure_for, measure_gate, population

BOUNDS = tuple(round(0.1 * i, 1) for i in range(1, 11))
MIDPOINTS = np.array(BOUNDS) - 0.05
SHARES = {"F": 0.4, "M": 0.6}


def analysis(*gates: dict[str, Any]) -> Analysis:
    return Analysis.model_validate(
        {
            "prometheus": {"address": "http://prometheus:9090"},
            "slices": {"attributes": ["sex"], "minSamples": 100},
            "gates": list(gates),
        }
    )


def scored(n: float, shares: np.ndarray, positive_rate: np.ndarray | None = None) -> VersionCounts:
    """``n`` decisions per version with score-bucket ``shares``; labels with ``positive_rate``
    per bucket (calibrated, the bucket midpoint, unless given)."""
    rate = MIDPOINTS if positive_rate is None else positive_rate
    cells, scores, labelled = {}, {}, {}
    for sex, share in SHARES.items():
        key = slice_key({"sex": sex})
        counts = n * share * shares
        cells[key] = BinaryCounts(predictions=n * share, selected=n * share / 2)
        scores[key] = Histogram(BOUNDS, tuple(counts))
        labelled[key] = {
            0: Histogram(BOUNDS, tuple(counts * (1 - rate))),
            1: Histogram(BOUNDS, tuple(counts * rate)),
        }
    return VersionCounts(cells=cells, scores=scores, labelled_scores=labelled)


SLICES = Slices.model_validate({"attributes": ["sex"]})
FLAT = np.full(10, 0.1)
SHIFTED = np.array([0.05] * 5 + [0.15] * 5)


def outcomes(spec: Analysis, stable: VersionCounts, candidate: VersionCounts) -> set[Outcome]:
    return {c.outcome for c in evaluate(spec, stable, candidate).cells}


def test_every_metric_family_has_one_measure() -> None:
    assert set(MEASURES) == set(MetricFamily)
    for name, info in METRICS.items():
        bound = "max"
        gate = Gate.model_validate({"name": "g", "metric": name, bound: 0.1})
        assert measure_for(gate) is MEASURES[info.family]


def test_js_matches_the_divergence_and_fails_a_shift_only() -> None:
    spec = analysis({"name": "js", "metric": "score_js", "max": 0.005})
    stable, same, shifted = scored(100_000, FLAT), scored(100_000, FLAT), scored(100_000, SHIFTED)
    assert outcomes(spec, stable, same) == {Outcome.PASS}
    result = evaluate(spec, stable, shifted)
    assert {c.outcome for c in result.cells} == {Outcome.FAIL}
    overall = next(c for c in result.cells if evidence(c).slice == "overall")
    expected = distributions.jensen_shannon(
        Histogram(BOUNDS, tuple(100_000 * FLAT)), Histogram(BOUNDS, tuple(100_000 * SHIFTED))
    )
    assert overall.measurement.candidate_value == pytest.approx(expected)
    assert overall.measurement.estimate is not None
    assert overall.measurement.estimate < overall.measurement.candidate_value  # bias-corrected


def test_js_bias_correction_centres_no_drift_near_zero() -> None:
    """Same distribution, 300 scores each: the raw divergence is noise, the estimate is ~0."""
    rng = np.random.default_rng(7)
    gate = Gate.model_validate({"name": "js", "metric": "score_js", "max": 0.005})
    raw, corrected = [], []
    for _ in range(40):
        stable, candidate = (Histogram(BOUNDS, tuple(rng.multinomial(300, FLAT))) for _ in "ab")
        (m,) = measure_gate(
            gate, SLICES, VersionCounts(scores={(): stable}), VersionCounts(scores={(): candidate})
        )
        raw.append(m.candidate_value)
        corrected.append(m.estimate)
    assert abs(float(np.mean(corrected))) < float(np.mean(raw)) / 3


def test_ks_is_the_largest_cdf_gap_with_a_band_that_narrows() -> None:
    spec = analysis({"name": "ks", "metric": "score_ks", "max": 0.1})
    shifted = scored(100_000, SHIFTED)
    result = evaluate(spec, scored(100_000, FLAT), shifted)
    overall = next(c for c in result.cells if evidence(c).slice == "overall")
    gap = float(np.max(np.abs(np.cumsum(FLAT) - np.cumsum(SHIFTED))))
    assert overall.measurement.candidate_value == pytest.approx(gap)  # 0.25
    assert overall.outcome is Outcome.FAIL
    assert overall.lower is not None and overall.lower > 0.1
    assert outcomes(spec, scored(100_000, FLAT), scored(100_000, FLAT)) == {Outcome.PASS}
    few = evaluate(spec, scored(300, FLAT), scored(300, SHIFTED))
    assert Outcome.FAIL not in {c.outcome for c in few.cells}


def test_calibration_in_the_large_fails_an_over_predicting_candidate() -> None:
    spec = analysis({"name": "calibration", "metric": "calibration", "maxChange": 0.05})
    calibrated = scored(100_000, FLAT)
    assert outcomes(spec, calibrated, scored(100_000, FLAT)) == {Outcome.PASS}
    over = scored(100_000, FLAT, positive_rate=np.clip(MIDPOINTS - 0.1, 0.0, 1.0))
    result = evaluate(spec, calibrated, over)
    assert {c.outcome for c in result.cells} == {Outcome.FAIL}
    overall = next(c for c in result.cells if evidence(c).slice == "overall")
    assert overall.measurement.candidate_value == pytest.approx(0.1, abs=0.01)


def test_ece_bounds_the_candidate_and_needs_labels() -> None:
    spec = analysis({"name": "ece", "metric": "ece", "max": 0.05})
    assert outcomes(spec, scored(100_000, FLAT), scored(100_000, FLAT)) == {Outcome.PASS}
    off = scored(100_000, FLAT, positive_rate=np.clip(MIDPOINTS + 0.15, 0.0, 1.0))
    assert outcomes(spec, scored(100_000, FLAT), off) == {Outcome.FAIL}
    unlabelled = VersionCounts(cells=off.cells, scores=off.scores)
    assert outcomes(spec, off, unlabelled) == {Outcome.INSUFFICIENT}


def test_groups_are_summed_once_per_version() -> None:
    counts = scored(1_000, FLAT)
    summed = population(counts, SLICES)
    overall = summed.scores[()]
    assert overall.total == pytest.approx(1_000)
    assert summed.labelled[(("sex", "F"),)][1].total == pytest.approx(
        counts.labelled_scores[(("sex", "F"),)][1].total
    )
    assert summed.scores is summed.scores  # computed once, then kept
    gate = Gate.model_validate({"name": "js", "metric": "score_js", "max": 0.1})
    assert len(measure_gate(gate, SLICES, counts, counts)) == 3
