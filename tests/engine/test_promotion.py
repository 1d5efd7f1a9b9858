"""Good rollouts with many slices are promoted within the step's budget."""

from __future__ import annotations

from fairshift.api.analysis import Analysis
from fairshift.api.status import Outcome
from fairshift.engine.counts import BinaryCounts, VersionCounts, slice_key
from fairshift.engine.decision import Action, StepClock, decide
from fairshift.engine.gates import evaluate

SELECTION = {"name": "selection", "metric": "selection_rate", "maxChange": 0.05}
EARLY, SPENT = StepClock(600, 300, 900), StepClock(900, 300, 900)


def analysis(attributes: list[str], intersections: bool = False) -> Analysis:
    return Analysis.model_validate(
        {
            "prometheus": {"address": "http://prometheus:9090"},
            "slices": {"attributes": attributes, "intersections": intersections},
            "gates": [SELECTION],
        }
    )


def test_two_hundred_identical_slices_pass_without_a_bonferroni_share() -> None:
    """Promotion needs every cell to pass, so each may pass at alpha (intersection-union);
    only a failure, which one cell suffices for, needs its Bonferroni share."""
    same = VersionCounts(
        cells={slice_key({"zip": f"{i:03d}"}): BinaryCounts(1600, 480) for i in range(200)}
    )
    result = evaluate(analysis(["zip"]), same, same)
    assert {c.outcome for c in result.cells} == {Outcome.PASS}
    assert decide(result, EARLY, last_step=True).action is Action.PROMOTE


def test_a_rare_intersection_below_min_samples_does_not_hold_a_good_rollout_forever() -> None:
    cells = {
        slice_key({"sex": s, "age": a}): BinaryCounts(n, 0.3 * n)
        for (s, a), n in {("F", "young"): 40_000, ("F", "old"): 60, ("M", "young"): 50_000}.items()
    }
    same = VersionCounts(cells=cells)
    result = evaluate(analysis(["sex", "age"], intersections=True), same, same)
    assert Outcome.INSUFFICIENT in {c.outcome for c in result.cells}
    assert decide(result, EARLY).action is Action.HOLD
    decision = decide(result, SPENT, last_step=True)
    assert decision.action is Action.PROMOTE
    assert "fewer than minSamples" in decision.message


def test_a_slice_still_pending_at_the_budget_passes_on_a_final_look_within_its_bound() -> None:
    """A small slice whose always-valid bounds are still wider than the margin, but whose
    estimate is well inside it, is judged once more when the budget is spent."""
    cells = {
        slice_key({"zip": z}): BinaryCounts(n, 0.3 * n) for z, n in (("a", 60_000), ("b", 800))
    }
    same = VersionCounts(cells=cells)
    result = evaluate(analysis(["zip"]), same, same)
    assert Outcome.PENDING in {c.outcome for c in result.cells}
    assert decide(result, EARLY).action is Action.HOLD
    decision = decide(result, SPENT, last_step=True)
    assert decision.action is Action.PROMOTE
    assert "final one-sided look" in decision.message


def test_nothing_judged_at_all_still_pauses() -> None:
    few = VersionCounts(cells={slice_key({"zip": "001"}): BinaryCounts(20, 6)})
    result = evaluate(analysis(["zip"]), few, few)
    assert decide(result, SPENT).action is Action.PAUSE
