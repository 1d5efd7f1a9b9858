"""Gate outcomes and per-tick decisions on synthetic counts with known truth."""

from __future__ import annotations

from typing import Any

import pytest

from fairshift.api.analysis import Analysis
from fairshift.api.status import Outcome, Verdict
from fairshift.engine.counts import BinaryCounts, Histogram, VersionCounts, slice_key
from fairshift.engine.decision import Action, StepClock, decide
from fairshift.engine.gates import evaluate, evidence

GROUPS = {("F", "old"): 0.1, ("F", "young"): 0.3, ("M", "old"): 0.2, ("M", "young"): 0.4}
LATENCY_BOUNDS = (0.05, 0.1, 0.25, 0.5, 1.0, float("inf"))
SCORE_BOUNDS = tuple(round(0.1 * i, 1) for i in range(1, 11))


def cell(n: float, selection: float, tpr: float, fpr: float, base: float = 0.5) -> BinaryCounts:
    """Expected counts (no noise) of a slice with the given rates, every label known."""
    pos, neg = n * base, n * (1 - base)
    tp, fp = pos * tpr, neg * fpr
    return BinaryCounts(
        predictions=n, selected=n * selection, tp=tp, fp=fp, fn=pos - tp, tn=neg - fp
    )


def version(
    n: float,
    *,
    tpr: dict[tuple[str, str], float] | None = None,
    selection: dict[tuple[str, str], float] | None = None,
    latency: tuple[float, ...] = (0.5, 0.3, 0.15, 0.045, 0.005, 0.0),
    scores: tuple[float, ...] = (0.1,) * 10,
) -> VersionCounts:
    cells = {}
    score_hists = {}
    for (sex, age), share in GROUPS.items():
        group_tpr = (tpr or {}).get((sex, age), 0.8)
        sel = (selection or {}).get((sex, age), 0.5 * group_tpr + 0.5 * 0.2)
        key = slice_key({"sex": sex, "age": age})
        cells[key] = cell(n * share, sel, group_tpr, 0.2)
        score_hists[key] = Histogram(SCORE_BOUNDS, tuple(n * share * s for s in scores))
    return VersionCounts(
        cells=cells,
        scores=score_hists,
        latency=Histogram(LATENCY_BOUNDS, tuple(n * s for s in latency)),
        requests=n,
        errors=0.001 * n,
    )


def analysis(*gates: dict[str, Any], min_samples: int = 100, alpha: float = 0.05) -> Analysis:
    return Analysis.model_validate(
        {
            "prometheus": {"address": "http://prometheus:9090"},
            "slices": {"attributes": ["sex", "age"], "minSamples": min_samples},
            "alpha": alpha,
            "gates": list(gates),
        }
    )


TPR_GAP = {"name": "equal-opportunity", "metric": "tpr_gap", "maxIncrease": 0.05}
CLOCK_DONE = StepClock(elapsed=600, minimum=300, budget=900)


def test_identical_versions_pass_every_slice_and_advance() -> None:
    spec = analysis(TPR_GAP, {"name": "acc", "metric": "accuracy", "maxDecrease": 0.05})
    result = evaluate(spec, version(200_000), version(200_000))
    assert {c.outcome for c in result.cells} == {Outcome.PASS}
    assert decide(result, CLOCK_DONE).action is Action.ADVANCE
    assert decide(result, CLOCK_DONE, last_step=True).action is Action.PROMOTE
    early = decide(result, StepClock(elapsed=100, minimum=300, budget=900))
    assert early.action is Action.HOLD


def test_tpr_drop_in_one_intersection_fails_there_only() -> None:
    spec = analysis(TPR_GAP)
    candidate = version(200_000, tpr={("F", "old"): 0.6})
    result = evaluate(spec, version(200_000), candidate)
    failed = {evidence(c).slice for c in result.cells if c.outcome is Outcome.FAIL}
    assert "age=old,sex=F" in failed
    assert all("age=young" not in s for s in failed)
    decision = decide(result, CLOCK_DONE)
    assert decision.action is Action.ROLLBACK and decision.verdict is Verdict.FAILED
    assert "equal-opportunity" in decision.message and "sex=F" in decision.message
    assert decide(result, CLOCK_DONE, on_failure="pause").action is Action.PAUSE


def test_small_slices_are_insufficient_never_pass() -> None:
    spec = analysis(TPR_GAP, min_samples=1000)
    result = evaluate(spec, version(2_000), version(2_000))
    assert Outcome.PASS not in {c.outcome for c in result.cells}
    assert {c.outcome for c in result.cells} == {Outcome.INSUFFICIENT}
    assert decide(result, CLOCK_DONE).action is Action.HOLD
    spent = decide(result, StepClock(elapsed=900, minimum=300, budget=900))
    assert spent.action is Action.PAUSE and spent.verdict is Verdict.INCONCLUSIVE
    rollback = decide(result, StepClock(900, 300, 900), on_inconclusive="rollback")
    assert rollback.action is Action.ROLLBACK


def test_four_fifths_does_not_fail_a_fair_group_at_point_nine() -> None:
    selection = {("F", "old"): 0.45, ("F", "young"): 0.45, ("M", "old"): 0.5, ("M", "young"): 0.5}
    spec = analysis({"name": "di", "metric": "disparate_impact", "min": 0.8})
    result = evaluate(
        spec, version(5_000, selection=selection), version(5_000, selection=selection)
    )
    assert Outcome.FAIL not in {c.outcome for c in result.cells}


def test_four_fifths_fails_a_group_at_point_six() -> None:
    selection = {("F", "old"): 0.3, ("F", "young"): 0.3, ("M", "old"): 0.5, ("M", "young"): 0.5}
    spec = analysis({"name": "di", "metric": "disparate_impact", "min": 0.8})
    result = evaluate(spec, version(50_000), version(50_000, selection=selection))
    fails = [evidence(c) for c in result.cells if c.outcome is Outcome.FAIL]
    assert any(e.slice == "sex=F" and e.candidate == pytest.approx(0.6) for e in fails)
    assert all(e.upper is not None and e.upper < 0.8 for e in fails)


def test_latency_regression_fails() -> None:
    spec = analysis({"name": "latency", "metric": "latency_p99", "max": 0.5})
    slow = version(100_000, latency=(0.3, 0.3, 0.2, 0.1, 0.05, 0.05))
    result = evaluate(spec, version(100_000), slow)
    assert [c.outcome for c in result.cells] == [Outcome.FAIL]
    assert evaluate(spec, version(100_000), version(100_000)).cells[0].outcome is Outcome.PASS


def test_warning_drift_holds_then_pauses_never_rolls_back() -> None:
    spec = analysis({"name": "drift", "metric": "score_psi", "max": 0.1, "severity": "warning"})
    shifted = version(100_000, scores=(0.02,) * 5 + (0.18,) * 5)
    result = evaluate(spec, version(100_000), shifted)
    assert Outcome.WARN in {c.outcome for c in result.cells}
    assert decide(result, CLOCK_DONE).action is Action.HOLD
    spent = decide(result, StepClock(900, 300, 900), on_inconclusive="rollback")
    assert spent.action is Action.PAUSE


def test_missing_query_data_never_advances() -> None:
    spec = analysis({"name": "errors", "query": "sum(rate(x[1m]))", "max": 0.01})
    result = evaluate(spec, version(10_000), version(10_000))
    assert result.cells[0].outcome is Outcome.NO_DATA
    assert decide(result, CLOCK_DONE).action is Action.HOLD
    with_value = VersionCounts(cells=version(10).cells, custom={"errors": 0.001})
    passed = evaluate(spec, version(10_000), with_value)
    assert passed.cells[0].outcome is Outcome.PASS


def test_single_look_uses_fixed_intervals_that_are_narrower() -> None:
    spec = analysis(TPR_GAP)
    s, c = version(20_000), version(20_000)
    sequential = evaluate(spec, s, c).cells[0]
    single = evaluate(spec, s, c, single_look=True).cells[0]
    assert single.lower is not None and sequential.lower is not None
    assert single.lower > sequential.lower


def test_four_fifths_catches_the_reference_group_falling_behind() -> None:
    """Men (60% of GROUPS, so the reference) selected at 0.3 against women at 0.5: DI 1.67."""
    selection = {("F", "old"): 0.5, ("F", "young"): 0.5, ("M", "old"): 0.3, ("M", "young"): 0.3}
    spec = analysis({"name": "di", "metric": "disparate_impact", "min": 0.8})
    result = evaluate(spec, version(50_000), version(50_000, selection=selection))
    fails = [evidence(c) for c in result.cells if c.outcome is Outcome.FAIL]
    assert any(e.slice == "sex=F" and e.reference == "sex=M" for e in fails)


def test_a_gap_that_flips_sign_is_a_growing_gap() -> None:
    """Equal opportunity: stable fair, candidate favours the reference's group less: caught."""
    tpr = {("M", "old"): 0.6, ("M", "young"): 0.6}  # the reference (majority) loses recall
    result = evaluate(analysis(TPR_GAP), version(200_000), version(200_000, tpr=tpr))
    assert any(c.outcome is Outcome.FAIL and evidence(c).slice == "sex=F" for c in result.cells)


def test_a_group_never_selected_in_either_version_is_judged_not_raised() -> None:
    """Zero positive decisions for women in both versions, relative disparate impact."""
    never = {("F", "old"): 0.0, ("F", "young"): 0.0}
    spec = analysis({"name": "di", "metric": "disparate_impact", "maxDecrease": 0.05})
    result = evaluate(spec, version(5_000, selection=never), version(5_000, selection=never))
    women = [c for c in result.cells if evidence(c).slice == "sex=F"]
    assert women and all(c.outcome is not Outcome.FAIL for c in women)
    assert all(c.lower is not None and c.upper is not None for c in women)


def test_counts_the_engine_cannot_judge_are_no_data_with_a_reason() -> None:
    """Score buckets that changed between labels (a redeployed model server) hold, never raise."""
    spec = analysis(
        {"name": "calibration", "metric": "ece", "max": 0.1},
        {"name": "acc", "metric": "accuracy", "maxDecrease": 0.05},
    )
    mismatched = {
        key: {0: Histogram((0.5, 1.0), (10.0, 5.0)), 1: Histogram((0.3, 1.0), (4.0, 9.0))}
        for key in version(10).cells
    }
    stable = VersionCounts(cells=version(20_000).cells, labelled_scores=mismatched)
    candidate = stable
    result = evaluate(spec, stable, candidate)
    broken = [c for c in result.cells if c.gate.name == "calibration"]
    assert broken and {c.outcome for c in broken} == {Outcome.NO_DATA}
    assert all("bucket bounds" in c.reason for c in broken)
    assert {c.outcome for c in result.cells if c.gate.name == "acc"} == {Outcome.PASS}
    assert decide(result, CLOCK_DONE).action is Action.HOLD
