"""The decision benchmark's primary rule: the declaration reaches the engine, and it reports."""

from __future__ import annotations

import math

import pytest
from bench.decisions.engine_rule import ENGINE_RULES, analysis, run_engine
from bench.decisions.lifecycle import promoted_share
from bench.decisions.oracle import OracleTimes, expected_look, primary_shares
from bench.decisions.run import Task, simulate_block
from bench.decisions.summary import Row, power_verdicts
from bench.decisions.world import HORIZON, PRIMARY_GATE, SCENARIOS, rollout_spec, scenario

from fairshift.api.spec import parse_spec
from fairshift.engine.gates import PRIMARY_SHARE


def critical_alphas(primary: str | None) -> dict[str, set[float]]:
    """The per-cell alphas the engine gives each critical gate on the TPR drop's counts."""
    look = expected_look(scenario("tpr-10pt-65+").population(), 1000, 40, primary)
    found: dict[str, set[float]] = {}
    for cell in look.cells:
        if cell.critical:
            found.setdefault(cell.gate.name, set()).add(round(cell.alpha, 12))
    return found


def test_the_primary_rule_declares_the_gate_in_the_users_spec() -> None:
    (primary_rule,) = [r for r in ENGINE_RULES if r.primary is not None]
    assert primary_rule.primary == PRIMARY_GATE
    spec = parse_spec(rollout_spec(PRIMARY_GATE))
    assert spec.analysis is not None
    declared = {g.name: g.primary for g in spec.analysis.gates}
    assert declared[PRIMARY_GATE] and sum(declared.values()) == 1
    assert not any(g.primary for g in analysis().gates)


def test_the_engine_gives_the_primary_gates_cells_a_larger_share_of_alpha() -> None:
    default, primary = critical_alphas(None), critical_alphas(PRIMARY_GATE)
    assert primary[PRIMARY_GATE] != default[PRIMARY_GATE]
    assert min(primary[PRIMARY_GATE]) > max(default[PRIMARY_GATE])
    assert max(primary["accuracy"]) < min(default["accuracy"])


def test_the_primary_rule_catches_the_tpr_drop_sooner_on_the_benchmarks_first_rollout() -> None:
    drop = [s.name for s in SCENARIOS].index("tpr-10pt-65+")
    cumulative = simulate_block(Task(drop, 1000, 0, 1, 20261122)).cumulative()
    default, primary = (run_engine(cumulative, HORIZON, False, rule) for rule in ENGINE_RULES)
    assert primary.rollback is not None and default.rollback is not None
    assert primary.rollback < default.rollback  # 5.5 minutes against 7.5 on this rollout


def test_the_primary_oracle_splits_alpha_as_the_engine_does() -> None:
    shares = primary_shares(scenario("a/a").population(), 1000)
    alpha = analysis(PRIMARY_GATE).alpha
    assert shares.primary == pytest.approx(PRIMARY_SHARE * alpha / 8)  # 8 slices of the gate
    assert shares.critical == pytest.approx((1 - PRIMARY_SHARE) * alpha / 29)


def test_an_unknown_primary_gate_is_refused() -> None:
    with pytest.raises(ValueError, match="no gate named 'fairness'"):
        rollout_spec("fairness")


def row(median: float) -> Row:
    return Row("tpr-10pt-65+", 1000, "fairshift", 16, 16, median, median, OracleTimes(4.5, 8.0))


def test_the_power_targets_compare_the_median_with_both_oracles() -> None:
    met = {v.target: v.met for v in power_verdicts(row(9.0), "here")}
    assert met == {
        "median TTD <= 2.0x oracle (1 cell)": True,
        "median TTD <= 1.2x oracle (Bonferroni)": True,
    }
    missed = {v.target: v.met for v in power_verdicts(row(10.0), "here")}
    assert missed == {
        "median TTD <= 2.0x oracle (1 cell)": False,
        "median TTD <= 1.2x oracle (Bonferroni)": False,
    }
    assert not power_verdicts(row(math.inf), "here")[0].met


def test_the_promoted_share_counts_promotions_with_a_clopper_pearson_interval() -> None:
    all_promoted = promoted_share([("promote", 120)] * 20)
    assert "20/20 (95% Clopper-Pearson interval 83.2% to 100.0%)" in all_promoted
    one_held = promoted_share([("promote", 120)] * 19 + [("hold", 120)])
    assert "19/20 (95% Clopper-Pearson interval 75.1% to 99.9%)" in one_held
