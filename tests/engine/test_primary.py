"""Alpha weighted towards the primary gates: the budget still sums to alpha, and it buys power."""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from fairshift.api.analysis import Analysis, Gate
from fairshift.api.status import Outcome
from fairshift.engine.counts import BinaryCounts, VersionCounts, slice_key
from fairshift.engine.gates import PRIMARY_SHARE, evaluate, family_alphas
from fairshift.engine.inference import unmeasurable

KINDS = st.sampled_from(["primary", "critical", "warning", "point"])


def cell(kind: str, index: int):  # type: ignore[no-untyped-def]
    gate = Gate(
        name=f"g{index}",
        metric="selection_rate",
        maxIncrease=0.02,
        severity="warning" if kind == "warning" else "critical",
        primary=kind == "primary",
    )
    return replace(unmeasurable(gate, ValueError("x")), point_only=kind == "point")


@given(st.lists(KINDS, min_size=1, max_size=60), st.sampled_from([0.01, 0.05, 0.2]))
def test_critical_cells_never_share_more_than_alpha(kinds: list[str], alpha: float) -> None:
    """The union bound: the rollout falsely rolls back with chance <= the sum of these."""
    cells = [cell(kind, i) for i, kind in enumerate(kinds)]
    alphas = family_alphas(cells, alpha)
    spent = sum(alphas.of(c) for c in cells if c.gate.critical and not c.point_only)
    assert spent <= alpha * (1 + 1e-12)
    if "critical" in kinds and "primary" in kinds:
        primary = kinds.count("primary")
        assert alphas.of(cells[kinds.index("primary")]) == PRIMARY_SHARE * alpha / primary
    if "primary" not in kinds or "critical" not in kinds:  # nothing to weight: Bonferroni
        judged = sum(k in ("primary", "critical") for k in kinds)
        critical = [c for c in cells if c.gate.critical and not c.point_only]
        assert all(alphas.of(c) == alpha / max(judged, 1) for c in critical)


def test_a_single_look_ignores_the_weights() -> None:
    cells = [cell("primary", 0), cell("critical", 1), cell("critical", 2)]
    alphas = family_alphas(cells, 0.05, weighted=False)
    assert {alphas.of(c) for c in cells} == {0.05 / 3}


SPEC: dict = {
    "prometheus": {"address": "http://prometheus:9090"},
    "slices": {"attributes": ["sex"], "minSamples": 100},
    "gates": [
        {"name": "selection", "metric": "selection_rate", "maxIncrease": 0.02},
        *({"name": f"other-{i}", "metric": "selection_rate", "min": 0.0} for i in range(6)),
    ],
}


def versions(rate: float) -> tuple[VersionCounts, VersionCounts]:
    def counts(r: float) -> VersionCounts:
        return VersionCounts(
            cells={slice_key({"sex": s}): BinaryCounts(5000.0, 5000.0 * r) for s in "FM"}
        )

    return counts(0.30), counts(rate)


def test_declaring_the_gate_primary_catches_its_regression_sooner() -> None:
    plain = Analysis.model_validate(SPEC)
    gates = [{**SPEC["gates"][0], "primary": True}, *SPEC["gates"][1:]]
    weighted = Analysis.model_validate({**SPEC, "gates": gates})
    stable, candidate = versions(0.344)
    outcome = {
        name: {
            c.outcome for c in evaluate(a, stable, candidate).cells if c.gate.name == "selection"
        }
        for name, a in (("plain", plain), ("weighted", weighted))
    }
    assert Outcome.FAIL not in outcome["plain"]
    assert Outcome.FAIL in outcome["weighted"]
    cells = evaluate(weighted, stable, candidate).cells
    selection = [c for c in cells if c.gate.name == "selection"]
    assert math.isclose(selection[0].alpha, PRIMARY_SHARE * 0.05 / len(selection))
