"""The continuous guard: its statistic, graded health, persisted state, and simulated drifts."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairshift.api.analysis import Gate, Slices
from fairshift.engine.counts import BinaryCounts, Histogram, VersionCounts, slice_key
from fairshift.engine.guard import (
    Grade,
    GuardPlan,
    GuardPolicy,
    GuardState,
    log_e_values,
    log_threshold,
    mixture_log1p,
    plan_guard,
    shiryaev_roberts_step,
)
from fairshift.engine.harm import measure_gate

FIVE_MINUTES = 300.0
SEX = {"F": 0.4, "M": 0.6}
EQUAL_OPPORTUNITY = {"name": "equal-opportunity", "metric": "tpr_gap", "maxIncrease": 0.05}


def gate(**raw: Any) -> Gate:
    return Gate.model_validate(raw)


def expected_cell(
    n: float, *, tpr: float = 0.8, fpr: float = 0.1, base: float = 0.3
) -> BinaryCounts:
    """Counts without noise, every label known."""
    pos, neg = n * base, n * (1 - base)
    tp, fp = pos * tpr, neg * fpr
    return BinaryCounts(predictions=n, selected=tp + fp, tp=tp, fp=fp, fn=pos - tp, tn=neg - fp)


def sampled_cell(
    rng: np.random.Generator, n: int, *, tpr: float = 0.8, fpr: float = 0.1, base: float = 0.3
) -> BinaryCounts:
    """Binomial counts of ``n`` decisions, every label known."""
    pos = int(rng.binomial(n, base))
    tp = int(rng.binomial(pos, tpr))
    fp = int(rng.binomial(n - pos, fpr))
    return BinaryCounts(predictions=n, selected=tp + fp, tp=tp, fp=fp, fn=pos - tp, tn=n - pos - fp)


def by_sex(cells: Mapping[str, BinaryCounts]) -> VersionCounts:
    return VersionCounts(cells={slice_key({"sex": s}): c for s, c in cells.items()})


def expected_version(n: float, tpr: Mapping[str, float] | None = None) -> VersionCounts:
    rates = tpr or {}
    return by_sex({s: expected_cell(n * share, tpr=rates.get(s, 0.8)) for s, share in SEX.items()})


def sex_plan(
    *gates: Gate, reference_n: float = 2e6, policy: GuardPolicy | None = None
) -> GuardPlan:
    return plan_guard(
        gates,
        Slices(attributes=["sex"]),
        expected_version(reference_n),
        policy or GuardPolicy(FIVE_MINUTES),
    )


# --- the declared rate and the statistic ---------------------------------------------------


def test_ninety_days_of_five_minute_looks() -> None:
    policy = GuardPolicy(FIVE_MINUTES)
    assert policy.looks_in(policy.breach_days) == 90 * 288
    assert policy.looks_in(policy.warning_days) == 7 * 288


@pytest.mark.parametrize(
    "raw",
    [
        {"look_seconds": 0.0},
        {"look_seconds": FIVE_MINUTES, "breach_days": -1.0},
        {"look_seconds": FIVE_MINUTES, "warning_days": 100.0},
        {"look_seconds": FIVE_MINUTES, "shifts": ()},
        {"look_seconds": FIVE_MINUTES, "shifts": (1.0, 0.0)},
    ],
)
def test_a_policy_that_makes_no_sense_is_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        GuardPolicy(**raw)


def test_detectors_share_the_run_length() -> None:
    assert log_threshold(1000.0, 1) == pytest.approx(math.log(1001.0))
    assert log_threshold(1000.0, 12) == pytest.approx(math.log(12001.0))
    with pytest.raises(ValueError):
        log_threshold(1000.0, 0)


def test_shiryaev_roberts_recursion_in_log_space() -> None:
    e_values = [0.5, 3.0, 8.0, 0.1]
    r = 0.0
    s = np.zeros(1)
    for e in e_values:
        r = (1.0 + r) * e
        s = shiryaev_roberts_step(s, [math.log(e)])
    assert s[0] == pytest.approx(math.log1p(r))


def test_e_values_have_mean_one_on_the_boundary_and_less_inside() -> None:
    rng = np.random.default_rng(1)
    variance, shift = 0.04, 0.3
    on_boundary = rng.normal(0.0, math.sqrt(variance), 400_000)
    inside = on_boundary - 0.1
    assert np.exp(log_e_values(on_boundary, variance, shift)).mean() == pytest.approx(1.0, abs=0.01)
    assert np.exp(log_e_values(inside, variance, shift)).mean() < 0.6


def test_mixture_is_the_mean_of_the_statistics() -> None:
    s = np.log1p(np.array([[0.0, 3.0], [0.0, 0.0]]))
    assert mixture_log1p(s, axis=1) == pytest.approx([math.log1p(1.5), 0.0])


# --- the plan ---------------------------------------------------------------------------------


def test_plan_guards_every_slice_side_and_says_what_it_cannot() -> None:
    plan = sex_plan(
        gate(**EQUAL_OPPORTUNITY),
        gate(name="accuracy", metric="accuracy", maxDecrease=0.02),
        gate(name="drift", metric="score_ks", max=0.1),
        gate(name="errors", query="sum(rate(errors[5m]))", max=0.01),
    )
    sides = {c.key: c.sides for c in plan.cells}
    # the signed gap is judged by magnitude (both sides); accuracy may only fall
    assert sides == {
        "equal-opportunity|sex=F": ("upper", "lower"),
        "accuracy|overall": ("lower",),
        "accuracy|sex=F": ("lower",),
        "accuracy|sex=M": ("lower",),
    }
    assert plan.detectors == 5
    assert set(plan.unguarded) == {"drift", "errors"}
    assert "variance" in plan.unguarded["errors"]
    assert "no slice" in plan.unguarded["drift"]  # the reference has no score histograms


def test_a_ks_gate_is_left_to_other_rules_with_the_reason() -> None:
    scores = Histogram((0.5, 1.0), (1e4, 1e4))
    reference = VersionCounts(cells={(): expected_cell(1e4)}, scores={(): scores})
    plan = plan_guard(
        [
            gate(name="drift", metric="score_ks", max=0.1),
            gate(name="psi", metric="score_psi", max=0.1),
        ],
        Slices(attributes=[]),
        reference,
        GuardPolicy(FIVE_MINUTES),
    )
    assert "KS" in plan.unguarded["drift"]
    assert [c.key for c in plan.cells] == ["psi|overall"]


def test_nothing_to_guard_is_an_error() -> None:
    with pytest.raises(ValueError, match="nothing to guard"):
        plan_guard(
            [gate(**EQUAL_OPPORTUNITY)],
            Slices(attributes=["sex"], min_samples=10_000),
            expected_version(1000.0),
            GuardPolicy(FIVE_MINUTES),
        )


# --- graded health --------------------------------------------------------------------------


def test_fair_looks_stay_healthy() -> None:
    plan = sex_plan(gate(**EQUAL_OPPORTUNITY))
    state = plan.initial_state()
    for _ in range(100):
        looked = plan.look(state, expected_version(5000.0))
        state = looked.state
        assert looked.grade is Grade.HEALTHY
    assert state.cells["equal-opportunity|sex=F"]["looks"] == 100


def test_a_drift_goes_from_healthy_through_warning_to_breached() -> None:
    plan = sex_plan(gate(**EQUAL_OPPORTUNITY))
    state = plan.initial_state()
    grades = []
    for _ in range(60):
        looked = plan.look(state, expected_version(2000.0, tpr={"F": 0.70}))
        state = looked.state
        grades.append(looked.grade)
        if looked.grade is Grade.BREACHED:
            break
    assert grades[0] is Grade.HEALTHY
    assert grades[-1] is Grade.BREACHED
    assert Grade.WARNING in grades
    assert grades == sorted(grades, key=[Grade.HEALTHY, Grade.WARNING, Grade.BREACHED].index)
    levels = [c.level for c in looked.cells]
    assert max(levels) >= 1.0


def test_restarting_after_a_breach_clears_it() -> None:
    plan = sex_plan(gate(**EQUAL_OPPORTUNITY))
    state = plan.initial_state()
    for _ in range(60):
        state = plan.look(state, expected_version(2000.0, tpr={"F": 0.5})).state
    assert plan.look(state, expected_version(2000.0)).grade is Grade.BREACHED
    assert plan.look(plan.initial_state(), expected_version(2000.0)).grade is Grade.HEALTHY


def test_a_look_without_enough_data_does_not_move_the_statistic() -> None:
    plan = sex_plan(gate(**EQUAL_OPPORTUNITY))
    drifted = plan.look(plan.initial_state(), expected_version(2000.0, tpr={"F": 0.7})).state
    looked = plan.look(drifted, expected_version(50.0, tpr={"F": 0.7}))
    (cell,) = looked.cells
    assert not cell.judged
    assert "samples" in cell.reason
    assert looked.state == drifted


def test_a_missing_slice_is_reported_not_judged() -> None:
    plan = sex_plan(gate(**EQUAL_OPPORTUNITY))
    only_men = by_sex({"M": expected_cell(3000.0)})
    (cell,) = plan.look(plan.initial_state(), only_men).cells
    assert not cell.judged
    assert cell.reason == "no decisions of this slice in the look"


def test_a_look_with_negative_counts_is_not_judged_and_moves_nothing() -> None:
    """A reset subtracted as a plain difference: the men's counts went "down" by 500."""
    plan = sex_plan(
        gate(**EQUAL_OPPORTUNITY), gate(name="acc", metric="accuracy", maxDecrease=0.02)
    )
    drifted = plan.look(plan.initial_state(), expected_version(2000.0, tpr={"F": 0.7})).state
    broken = by_sex({"F": expected_cell(800.0, tpr=0.3), "M": expected_cell(-500.0)})
    looked = plan.look(drifted, broken)
    assert looked.state == drifted
    assert all(not c.judged and "sex=M" in c.reason for c in looked.cells)


def test_a_traffic_mix_shift_over_the_day_never_alarms() -> None:
    """Each look is fair (disparate impact 1.11 by day, 1.15 by night) while the counts
    pooled over the day are not (about 1.5): only the pooled view would alarm."""
    four_fifths = gate(name="four-fifths", metric="disparate_impact", min=0.8)
    day = by_sex({"F": _selected(1000, 0.30), "M": _selected(9000, 0.27)})
    night = by_sex({"F": _selected(5000, 0.60), "M": _selected(5000, 0.52)})
    plan = plan_guard([four_fifths], Slices(attributes=["sex"]), day, GuardPolicy(FIVE_MINUTES))
    pooled = by_sex({"F": day.cells[_F] + night.cells[_F], "M": day.cells[_M] + night.cells[_M]})
    (pooled_m,) = measure_gate(four_fifths, plan.slices, day, pooled)
    assert pooled_m.estimate is not None and pooled_m.estimate > pooled_m.acceptable[1]
    state = plan.initial_state()
    for look in range(288 * 3):
        looked = plan.look(state, day if (look // 144) % 2 == 0 else night)
        state = looked.state
        assert looked.grade is Grade.HEALTHY


_F, _M = slice_key({"sex": "F"}), slice_key({"sex": "M"})


def _selected(n: float, rate: float) -> BinaryCounts:
    return BinaryCounts(predictions=n, selected=n * rate)


# --- the persisted state --------------------------------------------------------------------


def test_state_round_trips_through_json_and_continues_identically() -> None:
    plan = sex_plan(
        gate(**EQUAL_OPPORTUNITY), gate(name="acc", metric="accuracy", maxDecrease=0.02)
    )
    state = plan.initial_state()
    for _ in range(5):
        state = plan.look(state, expected_version(2000.0, tpr={"F": 0.74})).state
    restored = GuardState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored == state
    increment = expected_version(2000.0, tpr={"F": 0.74})
    assert plan.look(restored, increment) == plan.look(state, increment)


def test_state_is_small_floats_per_gate_and_slice() -> None:
    plan = sex_plan(gate(**EQUAL_OPPORTUNITY))
    stored = plan.initial_state().to_dict()
    assert list(stored) == ["equal-opportunity|sex=F"]
    assert stored["equal-opportunity|sex=F"] == {
        "upper@0.5": 0.0, "upper@1": 0.0, "upper@2": 0.0, "upper@4": 0.0,
        "lower@0.5": 0.0, "lower@1": 0.0, "lower@2": 0.0, "lower@4": 0.0,
        "looks": 0.0,
    }  # fmt: skip


@pytest.mark.parametrize(
    "raw",
    [
        [],
        {"g|overall": 3.0},
        {"g|overall": {"upper@1": -1.0}},
        {"g|overall": {"upper@1": float("nan")}},
        {"g|overall": {"upper@1": "1.0"}},
        {"g|overall": {"upper@1": True}},
    ],
)
def test_a_malformed_state_is_refused_with_its_key(raw: Any) -> None:
    with pytest.raises(ValueError, match="guard state"):
        GuardState.from_dict(raw)


def test_a_state_from_other_gates_is_dropped_and_new_cells_start_afresh() -> None:
    plan = sex_plan(gate(**EQUAL_OPPORTUNITY))
    stale = GuardState({"gone|overall": {"upper@1": 5.0, "looks": 3.0}})
    looked = plan.look(stale, expected_version(2000.0))
    assert set(looked.state.cells) == {"equal-opportunity|sex=F"}
    assert looked.state.cells["equal-opportunity|sex=F"]["looks"] == 1.0


# --- simulations: the false-alarm rate and drift detection ----------------------------------


def overall_accuracy_plan(run_length_looks: float) -> GuardPlan:
    """One detector (overall accuracy may fall by 2 points) with a short declared run length."""
    days = run_length_looks * FIVE_MINUTES / 86_400.0
    return plan_guard(
        [gate(name="accuracy", metric="accuracy", maxDecrease=0.02)],
        Slices(attributes=[]),
        VersionCounts(cells={(): expected_cell(1e7)}),
        GuardPolicy(FIVE_MINUTES, breach_days=days, warning_days=days),
    )


def test_false_alarms_on_the_boundary_stay_below_the_declared_rate() -> None:
    """The worst case of no harm: live accuracy exactly 2 points below the reference. With a
    declared run length of 50 looks, 10 runs of 300 looks (restarting after each alarm) may
    raise at most 60 alarms; the Shiryaev-Roberts bound says fewer on average."""
    run_length = 50.0
    plan = overall_accuracy_plan(run_length)
    reference_accuracy = 0.3 * 0.8 + 0.7 * 0.9
    tpr = 0.8 - 0.02 / 0.3 * 0.5  # lose 1 point of accuracy on positives ...
    fpr = 0.1 + 0.02 / 0.7 * 0.5  # ... and 1 point on negatives
    alarms, looks = 0, 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        state = plan.initial_state()
        for _ in range(300):
            increment = VersionCounts(cells={(): sampled_cell(rng, 5000, tpr=tpr, fpr=fpr)})
            looked = plan.look(state, increment)
            looks += 1
            state = looked.state
            if looked.grade is Grade.BREACHED:
                alarms += 1
                state = plan.initial_state()
    assert 0.3 * tpr + 0.7 * (1 - fpr) == pytest.approx(reference_accuracy - 0.02)
    assert alarms <= looks / run_length
    assert alarms > 0  # on the boundary it does alarm now and then: the test can fail


@pytest.mark.parametrize("metric,drift", [("tpr", 0.15), ("fpr", 0.20)])
def test_a_fifteen_to_twenty_percent_shift_for_one_group_is_caught_within_hours(
    metric: str, drift: float
) -> None:
    """At 2 requests/s per group (600 decisions a look, every label known), the women's TPR
    falls by 15% (0.80 to 0.68) or their FPR rises by 20% (0.10 to 0.12), with the default
    90-day false-alarm rate. Nothing alarms in the day before; the shift is caught in every
    run within 6 hours."""
    gap = gate(name="gap", metric=f"{metric}_gap", maxIncrease=0.0)
    plan = plan_guard(
        [gap],
        Slices(attributes=["sex"]),
        by_sex({s: expected_cell(4e6 * share) for s, share in SEX.items()}),
        GuardPolicy(FIVE_MINUTES),
    )
    shifted = {"tpr": 0.8 * (1 - drift), "fpr": 0.1}
    if metric == "fpr":
        shifted = {"tpr": 0.8, "fpr": 0.1 * (1 + drift)}
    for seed in range(5):
        rng = np.random.default_rng(100 + seed)
        state = plan.initial_state()
        for look in range(288 + 72):
            after = look >= 288
            women = sampled_cell(rng, 600, **(shifted if after else {}))
            increment = by_sex({"F": women, "M": sampled_cell(rng, 900)})
            looked = plan.look(state, increment)
            state = looked.state
            if looked.grade is Grade.BREACHED:
                assert after, f"seed {seed}: false alarm at look {look}"
                break
        else:
            pytest.fail(f"seed {seed}: the shift was not caught within 6 hours")


COUNTS = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)


@st.composite
def binary_counts(draw: st.DrawFn) -> BinaryCounts:
    tp, fp, fn, tn = (draw(COUNTS) for _ in range(4))
    labelled = tp + fp + fn + tn
    predictions = labelled + draw(COUNTS)
    selected = draw(st.floats(min_value=0.0, max_value=predictions))
    return BinaryCounts(predictions=predictions, selected=selected, tp=tp, fp=fp, fn=fn, tn=tn)


GUARDED = (
    gate(**EQUAL_OPPORTUNITY),
    gate(name="four-fifths", metric="disparate_impact", min=0.8),
    gate(name="impact", metric="disparate_impact", maxDecrease=0.05),
    gate(name="accuracy", metric="accuracy", maxDecrease=0.02),
    gate(name="fpr", metric="fpr", max=0.3),
)


@settings(max_examples=60)
@given(st.dictionaries(st.sampled_from(["F", "M", "X"]), binary_counts(), max_size=3))
def test_any_counts_give_a_verdict_never_an_exception(cells: dict[str, BinaryCounts]) -> None:
    plan = sex_plan(*GUARDED)
    looked = plan.look(plan.initial_state(), by_sex(cells))
    assert {c.key for c in looked.cells} == {c.key for c in plan.cells}
    for values in looked.state.cells.values():
        assert all(math.isfinite(v) and v >= 0.0 for v in values.values())
    for cell in looked.cells:
        assert cell.judged or cell.reason
