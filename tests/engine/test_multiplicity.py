"""Multiple testing: Bonferroni, Holm, Benjamini-Hochberg and e-BH."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy.stats import false_discovery_control, norm

from fairshift.engine.multiplicity import (
    benjamini_hochberg,
    bonferroni,
    bonferroni_alpha,
    e_benjamini_hochberg,
    holm,
)
from fairshift.engine.sequential import log_mixture_e_values

P_VALUES = st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=30)
E_VALUES = st.lists(st.floats(min_value=0.0, max_value=1e6), min_size=1, max_size=30)
LEVELS = st.sampled_from([0.01, 0.05, 0.1, 0.25])

Procedure = Callable[[Sequence[float], float], tuple[bool, ...]]
P_VALUE_PROCEDURES = pytest.mark.parametrize(
    "procedure", [bonferroni, holm, benjamini_hochberg], ids=["bonferroni", "holm", "bh"]
)

# Benjamini & Hochberg (1995), section 4.
BH_1995 = [
    0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344,
    0.0459, 0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.0000,
]  # fmt: skip


def _subset(smaller: tuple[bool, ...], larger: tuple[bool, ...]) -> bool:
    return all(big or not small for small, big in zip(smaller, larger, strict=True))


class TestKnownExamples:
    def test_benjamini_hochberg_1995(self) -> None:
        assert sum(benjamini_hochberg(BH_1995, 0.05)) == 4
        assert sum(holm(BH_1995, 0.05)) == 3
        assert sum(bonferroni(BH_1995, 0.05)) == 3
        assert benjamini_hochberg(BH_1995, 0.05)[:4] == (True,) * 4

    def test_holm_steps_down_beyond_bonferroni(self) -> None:
        # alpha/3 = 0.0167, alpha/2 = 0.025, alpha/1 = 0.05
        p_values = [0.04, 0.01, 0.02]
        assert bonferroni(p_values, 0.05) == (False, True, False)
        assert holm(p_values, 0.05) == (True, True, True)

    def test_holm_stops_at_the_first_acceptance(self) -> None:
        assert holm([0.001, 0.03, 0.04], 0.05) == (True, False, False)

    def test_benjamini_hochberg_steps_up(self) -> None:
        # 0.03 > 1 * 0.05 / 2 but 0.04 <= 2 * 0.05 / 2: both rejected.
        assert benjamini_hochberg([0.04, 0.03], 0.05) == (True, True)

    def test_e_bh_steps_up(self) -> None:
        # m / (alpha k) for m = 4, alpha = 0.1: 40, 20, 13.3, 10.
        assert e_benjamini_hochberg([100.0, 30.0, 5.0, 0.5], 0.1) == (True, True, False, False)
        assert e_benjamini_hochberg([15.0, 100.0, 14.0, 0.5], 0.1) == (True, True, True, False)
        assert e_benjamini_hochberg([math.inf, 1.0], 0.05) == (True, False)

    def test_bonferroni_alpha(self) -> None:
        assert bonferroni_alpha(0.05, 10) == pytest.approx(0.005)
        with pytest.raises(ValueError):
            bonferroni_alpha(0.05, 0)

    def test_empty_families(self) -> None:
        for procedure in (bonferroni, holm, benjamini_hochberg, e_benjamini_hochberg):
            assert procedure([], 0.05) == ()

    @pytest.mark.parametrize("bad", [-0.1, 1.1, math.nan])
    def test_invalid_p_values_are_errors(self, bad: float) -> None:
        for procedure in (bonferroni, holm, benjamini_hochberg):
            with pytest.raises(ValueError, match="p-values"):
                procedure([0.01, bad], 0.05)

    @pytest.mark.parametrize("bad", [-1.0, math.nan])
    def test_invalid_e_values_are_errors(self, bad: float) -> None:
        with pytest.raises(ValueError, match="e-values"):
            e_benjamini_hochberg([2.0, bad], 0.05)

    @pytest.mark.parametrize("level", [0.0, 1.0])
    def test_invalid_levels_are_errors(self, level: float) -> None:
        with pytest.raises(ValueError):
            holm([0.01], level)
        with pytest.raises(ValueError):
            benjamini_hochberg([0.01], level)


class TestProperties:
    @given(p_values=P_VALUES, alpha=LEVELS)
    def test_holm_rejects_a_superset_of_bonferroni(
        self, p_values: list[float], alpha: float
    ) -> None:
        assert _subset(bonferroni(p_values, alpha), holm(p_values, alpha))

    @given(p_values=P_VALUES, alpha=LEVELS)
    def test_bh_rejects_a_superset_of_holm(self, p_values: list[float], alpha: float) -> None:
        assert _subset(holm(p_values, alpha), benjamini_hochberg(p_values, alpha))

    @given(p_values=P_VALUES, q=LEVELS)
    def test_bh_matches_scipy_adjusted_p_values(self, p_values: list[float], q: float) -> None:
        adjusted = false_discovery_control(p_values, method="bh")
        expected = tuple(bool(a <= q * (1 + 1e-12)) for a in adjusted)
        borderline = np.isclose(adjusted, q, rtol=1e-9)
        ours = benjamini_hochberg(p_values, q)
        assert all(o == e for o, e, b in zip(ours, expected, borderline, strict=True) if not b)

    @given(e_values=E_VALUES, alpha=LEVELS)
    def test_e_bh_is_bh_on_reciprocal_e_values(self, e_values: list[float], alpha: float) -> None:
        p_values = [min(1.0, 1.0 / e) if e > 0 else 1.0 for e in e_values]
        ours = e_benjamini_hochberg(e_values, alpha)
        by_p = benjamini_hochberg(p_values, alpha)
        # Equal up to ties at the threshold, where m / (alpha k) and k alpha / m round apart.
        m = len(e_values)
        exact = [
            not any(math.isclose(e * alpha * k, m, rel_tol=1e-9) for k in range(1, m + 1) if e > 0)
            for e in e_values
        ]
        assume(all(exact))
        assert ours == by_p

    @P_VALUE_PROCEDURES
    @given(p_values=P_VALUES, alpha=LEVELS, data=st.data())
    def test_smaller_p_value_never_removes_a_rejection(
        self, procedure: Procedure, p_values: list[float], alpha: float, data: st.DataObject
    ) -> None:
        index = data.draw(st.integers(min_value=0, max_value=len(p_values) - 1))
        shrink = data.draw(st.floats(min_value=0.0, max_value=1.0))
        smaller = list(p_values)
        smaller[index] *= shrink
        assert _subset(procedure(p_values, alpha), procedure(smaller, alpha))

    @P_VALUE_PROCEDURES
    @given(p_values=P_VALUES)
    def test_larger_level_never_removes_a_rejection(
        self, procedure: Procedure, p_values: list[float]
    ) -> None:
        assert _subset(procedure(p_values, 0.01), procedure(p_values, 0.1))

    @given(e_values=E_VALUES, alpha=LEVELS, data=st.data())
    def test_larger_e_value_never_removes_a_rejection(
        self, e_values: list[float], alpha: float, data: st.DataObject
    ) -> None:
        index = data.draw(st.integers(min_value=0, max_value=len(e_values) - 1))
        grow = data.draw(st.floats(min_value=1.0, max_value=100.0))
        larger = list(e_values)
        larger[index] *= grow
        assert _subset(e_benjamini_hochberg(e_values, alpha), e_benjamini_hochberg(larger, alpha))

    @P_VALUE_PROCEDURES
    @given(p_values=P_VALUES, alpha=LEVELS, seed=st.integers(0, 2**32 - 1))
    def test_order_of_hypotheses_does_not_matter(
        self, procedure: Procedure, p_values: list[float], alpha: float, seed: int
    ) -> None:
        permutation = np.random.default_rng(seed).permutation(len(p_values))
        shuffled = [p_values[i] for i in permutation]
        original = procedure(p_values, alpha)
        assert procedure(shuffled, alpha) == tuple(original[i] for i in permutation)


class TestErrorRates:
    REPLICATIONS = 2000
    ALPHA = 0.05

    def test_holm_on_anytime_p_values_keeps_the_fwer_across_looks(self) -> None:
        """Ten healthy gates, each checked at 100 looks: any rejection is a false rollback."""
        rng = np.random.default_rng(17)
        gates, looks = 10, np.arange(1, 101)
        observations = rng.standard_normal((self.REPLICATIONS, gates, looks.size))
        means = observations.cumsum(axis=2) / looks
        log_e = log_mixture_e_values(means, np.broadcast_to(1.0 / looks, means.shape), 0.0, 0.2)
        # Holm rejects something at some look iff it does on each gate's smallest p-value so far.
        smallest_p = np.exp(-np.maximum(log_e.max(axis=2), 0.0))
        false_rollbacks = sum(any(holm(list(row), self.ALPHA)) for row in smallest_p)
        assert false_rollbacks / self.REPLICATIONS <= self.ALPHA + 0.01

    def test_bh_and_e_bh_keep_the_fdr(self) -> None:
        rng = np.random.default_rng(23)
        nulls, alternatives, shift = 15, 5, 3.0
        z = rng.standard_normal((self.REPLICATIONS, nulls + alternatives))
        z[:, nulls:] += shift
        p_values = norm.sf(z)
        e_values = np.exp(shift * z - shift**2 / 2)  # likelihood ratios: mean 1 under the null
        for procedure, values in ((benjamini_hochberg, p_values), (e_benjamini_hochberg, e_values)):
            proportions = []
            for row in values:
                rejected = np.array(procedure(list(row), self.ALPHA))
                proportions.append(rejected[:nulls].sum() / max(1, rejected.sum()))
            assert float(np.mean(proportions)) <= self.ALPHA + 0.01
