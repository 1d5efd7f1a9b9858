"""Like with like: any group's regression is caught whatever group is the reference, only
cells both versions have enter a comparison, and a traffic split that differs by slice is
flagged as a sample-ratio mismatch."""

from __future__ import annotations

from typing import Any

import pytest

from fairshift.api.analysis import Analysis
from fairshift.api.status import Outcome
from fairshift.engine.counts import BinaryCounts, VersionCounts, slice_key
from fairshift.engine.decision import Action, StepClock, decide
from fairshift.engine.gates import evaluate, evidence

CLOCK_DONE = StepClock(elapsed=600, minimum=300, budget=900)


def analysis(gate: dict[str, Any], attributes: tuple[str, ...] = ("sex",)) -> Analysis:
    return Analysis.model_validate(
        {
            "prometheus": {"address": "http://prometheus:9090"},
            "slices": {"attributes": list(attributes), "intersections": True, "minSamples": 100},
            "gates": [gate],
        }
    )


def by_sex(n: float, women_share: float, women_selection: float) -> VersionCounts:
    """Expected counts: men selected at 0.4, women at ``women_selection``."""
    women, men = n * women_share, n * (1 - women_share)
    return VersionCounts(
        cells={
            slice_key({"sex": "F"}): BinaryCounts(women, women * women_selection),
            slice_key({"sex": "M"}): BinaryCounts(men, men * 0.4),
        }
    )


@pytest.mark.parametrize("women_share", [0.495, 0.505])
@pytest.mark.parametrize(
    "gate",
    [
        {"name": "impact-change", "metric": "disparate_impact", "maxDecrease": 0.05},
        {"name": "parity-change", "metric": "statistical_parity_difference", "maxDecrease": 0.02},
    ],
)
def test_a_cut_for_women_fails_whether_or_not_they_are_the_reference(
    women_share: float, gate: dict[str, Any]
) -> None:
    """A 15% cut in women's selection rate, women 49.5% (men the reference) or 50.5%."""
    stable = by_sex(400_000, women_share, 0.4)
    candidate = by_sex(400_000, women_share, 0.4 * 0.85)
    result = evaluate(analysis(gate), stable, candidate)
    assert Outcome.FAIL in {c.outcome for c in result.cells}, [evidence(c) for c in result.cells]
    assert decide(result, CLOCK_DONE).action is Action.ROLLBACK


def test_identical_models_still_pass_when_women_are_the_reference() -> None:
    gate = {"name": "impact-change", "metric": "disparate_impact", "maxDecrease": 0.05}
    same = by_sex(400_000, 0.505, 0.4)
    result = evaluate(analysis(gate), same, same)
    assert {c.outcome for c in result.cells} == {Outcome.PASS}


CELLS = {("F", "young"): 0.45, ("F", "old"): 0.005, ("M", "young"): 0.3, ("M", "old"): 0.245}


def aged(n: float, *, without: tuple[str, str] | None = None, women: float = 1.0) -> VersionCounts:
    """Women old selected at 0.05, everyone else at 0.5; ``women`` scales women's traffic."""
    cells = {}
    for (sex, age), share in CELLS.items():
        if (sex, age) == without:
            continue
        count = n * share * (women if sex == "F" else 1.0)
        selection = 0.05 if (sex, age) == ("F", "old") else 0.5
        cells[slice_key({"sex": sex, "age": age})] = BinaryCounts(count, count * selection)
    return VersionCounts(cells=cells)


def test_a_rare_cell_the_candidate_has_not_seen_does_not_fail_identical_models() -> None:
    gate = {"name": "selection", "metric": "selection_rate", "maxChange": 0.005}
    spec = analysis(gate, ("sex", "age"))
    result = evaluate(spec, aged(2_000_000), aged(600_000, without=("F", "old")))
    assert Outcome.FAIL not in {c.outcome for c in result.cells}
    women = [c for c in result.cells if evidence(c).slice == "sex=F" and c.gate.name == "selection"]
    assert [c.outcome for c in women] == [Outcome.PASS]


def test_a_slice_missing_from_one_version_is_a_sample_ratio_warning() -> None:
    gate = {"name": "selection", "metric": "selection_rate", "maxChange": 0.05}
    spec = analysis(gate, ("sex", "age"))
    result = evaluate(spec, aged(2_000_000), aged(600_000, without=("F", "old")))
    mismatched = {evidence(c).slice: c for c in result.cells if c.gate.name == "sample-ratio"}
    assert "age=old,sex=F" in mismatched
    assert mismatched["age=old,sex=F"].outcome is Outcome.WARN
    assert "share of decisions" in mismatched["age=old,sex=F"].reason
    assert all(c.outcome is not Outcome.FAIL for c in result.cells)
    assert decide(result, CLOCK_DONE).action is Action.HOLD


def test_a_shifted_traffic_split_warns_and_a_fair_split_does_not() -> None:
    gate = {"name": "selection", "metric": "selection_rate", "maxChange": 0.05}
    spec = analysis(gate)
    fair = evaluate(spec, aged(2_000_000), aged(600_000))
    assert not [c for c in fair.cells if c.gate.name == "sample-ratio"]
    skewed = evaluate(spec, aged(2_000_000), aged(600_000, women=0.8))
    warned = {evidence(c).slice for c in skewed.cells if c.outcome is Outcome.WARN}
    assert warned == {"sex=F", "sex=M"}
    assert decide(skewed, StepClock(900, 300, 900)).action is Action.PAUSE


def pooled(women_selection: float, n: float = 400_000) -> VersionCounts:
    """A day's counts pooled: women 40% of traffic, men selected at 0.4."""
    return by_sex(n, 0.4, women_selection)


FOUR_FIFTHS = {"name": "four-fifths", "metric": "disparate_impact", "min": 0.8}


def test_a_mix_shift_both_versions_share_never_rolls_back() -> None:
    """Pooled over a day whose mix moved, both identical models show a ratio of 1.35, beyond
    the four-fifths region (0.8 to 1.25): the candidate is no worse than stable."""
    same = pooled(0.54)
    result = evaluate(analysis(FOUR_FIFTHS), same, same)
    women = next(c for c in result.cells if evidence(c).slice == "sex=F")
    assert women.outcome is Outcome.PENDING
    assert "no worse than stable" in women.reason
    assert decide(result, StepClock(900, 300, 900)).action is not Action.ROLLBACK


def test_an_absolute_bound_still_fails_a_candidate_worse_than_a_failing_stable() -> None:
    result = evaluate(analysis(FOUR_FIFTHS), pooled(0.54), pooled(0.64))
    women = next(c for c in result.cells if evidence(c).slice == "sex=F")
    assert women.outcome is Outcome.FAIL
    assert decide(result, CLOCK_DONE).action is Action.ROLLBACK
