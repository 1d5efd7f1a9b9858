"""Fixed-sample intervals: Wilson, Newcombe, Katz and Wald, against published values and scipy."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binomtest
from scipy.stats.contingency import relative_risk

from fairshift.engine.intervals import (
    ConfidenceInterval,
    katz_log_ratio,
    katz_ratio_interval,
    newcombe_difference_interval,
    two_sided_z,
    wald_interval,
    wilson_interval,
)
from fairshift.engine.rates import Proportion

ALPHAS = st.sampled_from([0.01, 0.05, 0.1, 0.2])


@st.composite
def proportions(draw: st.DrawFn, max_trials: int = 400) -> Proportion:
    trials = draw(st.integers(min_value=1, max_value=max_trials))
    successes = draw(st.integers(min_value=0, max_value=trials))
    return Proportion(successes, trials)


class TestConfidenceInterval:
    def test_rejects_reversed_bounds(self) -> None:
        with pytest.raises(ValueError, match="exceeds"):
            ConfidenceInterval(0.0, 1.0, -1.0, 0.05)

    @pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1])
    def test_rejects_alpha_outside_unit_interval(self, alpha: float) -> None:
        with pytest.raises(ValueError, match="alpha"):
            ConfidenceInterval(0.0, -1.0, 1.0, alpha)

    def test_rejects_nan_bounds(self) -> None:
        with pytest.raises(ValueError, match="NaN"):
            ConfidenceInterval(0.0, math.nan, 1.0, 0.05)

    def test_above_and_below_are_strict(self) -> None:
        interval = ConfidenceInterval(0.2, 0.1, 0.3, 0.05)
        assert interval.is_above(0.05) and not interval.is_above(0.1)
        assert interval.is_below(0.35) and not interval.is_below(0.3)
        assert interval.contains(0.1) and not interval.contains(0.31)
        assert interval.width == pytest.approx(0.2)
        assert interval.is_bounded

    def test_unbounded_interval_decides_nothing(self) -> None:
        interval = ConfidenceInterval(0.2, -math.inf, math.inf, 0.05)
        assert not interval.is_bounded
        assert not interval.is_above(-1e9) and not interval.is_below(1e9)


class TestWald:
    def test_known_value(self) -> None:
        interval = wald_interval(0.1, 0.0004, 0.05)
        assert interval.lower == pytest.approx(0.1 - 1.959964 * 0.02, abs=1e-6)
        assert interval.upper == pytest.approx(0.1 + 1.959964 * 0.02, abs=1e-6)

    @pytest.mark.parametrize("variance", [None, math.inf])
    def test_unknown_variance_gives_an_unbounded_interval(self, variance: float | None) -> None:
        interval = wald_interval(0.1, variance, 0.05)
        assert interval.lower == -math.inf and interval.upper == math.inf
        assert interval.estimate == 0.1

    def test_negative_variance_is_an_error(self) -> None:
        with pytest.raises(ValueError, match="non-negative"):
            wald_interval(0.1, -1.0, 0.05)

    def test_z_quantile(self) -> None:
        assert two_sided_z(0.05) == pytest.approx(1.959964, abs=1e-6)
        with pytest.raises(ValueError):
            two_sided_z(1.5)


class TestWilson:
    @given(p=proportions(), alpha=ALPHAS)
    def test_matches_scipy(self, p: Proportion, alpha: float) -> None:
        interval = wilson_interval(p, alpha)
        assert interval is not None
        expected = binomtest(int(p.successes), int(p.trials)).proportion_ci(
            confidence_level=1.0 - alpha, method="wilson"
        )
        assert interval.lower == pytest.approx(expected.low, abs=1e-9)
        assert interval.upper == pytest.approx(expected.high, abs=1e-9)
        assert interval.estimate == p.value

    def test_does_not_collapse_at_zero_or_all(self) -> None:
        none = wilson_interval(Proportion(0, 20), 0.05)
        every = wilson_interval(Proportion(20, 20), 0.05)
        assert none is not None and every is not None
        assert none.lower == 0.0 and none.upper > 0.1
        assert every.upper == 1.0 and every.lower < 0.9

    def test_no_trials_is_undefined(self) -> None:
        assert wilson_interval(Proportion(0, 0), 0.05) is None

    def test_impossible_counts_are_errors(self) -> None:
        with pytest.raises(ValueError, match="successes"):
            wilson_interval(Proportion(5, 4), 0.05)

    def test_accepts_fractional_counts(self) -> None:
        interval = wilson_interval(Proportion(12.5, 40.2), 0.05)
        assert interval is not None and interval.lower < 12.5 / 40.2 < interval.upper

    @given(p=proportions(max_trials=200), alpha=ALPHAS)
    def test_narrows_as_the_sample_grows(self, p: Proportion, alpha: float) -> None:
        small = wilson_interval(p, alpha)
        large = wilson_interval(Proportion(p.successes * 4, p.trials * 4), alpha)
        assert small is not None and large is not None
        assert large.width < small.width


class TestNewcombe:
    @pytest.mark.parametrize(
        ("first", "second", "lower", "upper"),
        [
            # Newcombe (1998), Table II, method 10, examples (a)-(h).
            ((56, 70), (48, 80), 0.0524, 0.3339),
            ((9, 10), (3, 10), 0.1705, 0.8090),
            ((6, 7), (2, 7), 0.0582, 0.8062),
            ((5, 56), (0, 29), -0.0381, 0.1926),
            ((0, 10), (0, 20), -0.1611, 0.2775),
            ((0, 10), (0, 10), -0.2775, 0.2775),
            ((10, 10), (0, 20), 0.6791, 1.0000),
            ((10, 10), (0, 10), 0.6075, 1.0000),
        ],
    )
    def test_matches_newcombe_table_ii(
        self,
        first: tuple[int, int],
        second: tuple[int, int],
        lower: float,
        upper: float,
    ) -> None:
        interval = newcombe_difference_interval(Proportion(*first), Proportion(*second), 0.05)
        assert interval is not None
        assert interval.lower == pytest.approx(lower, abs=5e-5)
        assert interval.upper == pytest.approx(upper, abs=5e-5)

    @given(p1=proportions(), p2=proportions(), alpha=ALPHAS)
    def test_swapping_the_groups_mirrors_the_interval(
        self, p1: Proportion, p2: Proportion, alpha: float
    ) -> None:
        forward = newcombe_difference_interval(p1, p2, alpha)
        backward = newcombe_difference_interval(p2, p1, alpha)
        assert forward is not None and backward is not None
        assert forward.lower == pytest.approx(-backward.upper, abs=1e-12)
        assert forward.upper == pytest.approx(-backward.lower, abs=1e-12)

    @given(p1=proportions(), p2=proportions(), alpha=ALPHAS)
    def test_contains_the_estimate_within_the_possible_range(
        self, p1: Proportion, p2: Proportion, alpha: float
    ) -> None:
        interval = newcombe_difference_interval(p1, p2, alpha)
        assert interval is not None
        assert -1.0 - 1e-12 <= interval.lower <= interval.estimate
        assert interval.estimate <= interval.upper <= 1.0 + 1e-12

    def test_undefined_when_a_group_is_empty(self) -> None:
        assert newcombe_difference_interval(Proportion(1, 2), Proportion(0, 0), 0.05) is None


class TestKatz:
    @given(
        p1=proportions().filter(lambda p: p.successes > 0),
        p2=proportions().filter(lambda p: p.successes > 0),
        alpha=ALPHAS,
    )
    def test_matches_scipy_relative_risk(
        self, p1: Proportion, p2: Proportion, alpha: float
    ) -> None:
        interval = katz_ratio_interval(p1, p2, alpha)
        assert interval is not None
        expected = relative_risk(
            int(p1.successes), int(p1.trials), int(p2.successes), int(p2.trials)
        )
        bounds = expected.confidence_interval(confidence_level=1.0 - alpha)
        assert interval.estimate == pytest.approx(expected.relative_risk, rel=1e-9)
        assert interval.lower == pytest.approx(bounds.low, rel=1e-9)
        assert interval.upper == pytest.approx(bounds.high, rel=1e-9)

    def test_known_value(self) -> None:
        # log(0.5) +- 1.96 sqrt(1/10 - 1/100 + 1/20 - 1/100) = log(0.5) +- 0.7067
        interval = katz_ratio_interval(Proportion(10, 100), Proportion(20, 100), 0.05)
        assert interval is not None
        assert interval.lower == pytest.approx(0.2466, abs=1e-4)
        assert interval.upper == pytest.approx(1.0136, abs=1e-4)

    def test_zero_count_is_corrected_to_a_finite_interval(self) -> None:
        log_ratio = katz_log_ratio(Proportion(0, 50), Proportion(10, 50))
        assert log_ratio is not None and log_ratio.corrected
        assert log_ratio.estimate == pytest.approx(math.log((0.5 / 51) / (10.5 / 51)))
        assert log_ratio.variance == pytest.approx(1 / 0.5 - 1 / 51 + 1 / 10.5 - 1 / 51)
        interval = katz_ratio_interval(Proportion(0, 50), Proportion(10, 50), 0.05)
        assert interval is not None and interval.is_bounded and interval.lower > 0.0

    def test_no_correction_without_zero_counts(self) -> None:
        log_ratio = katz_log_ratio(Proportion(3, 50), Proportion(10, 50))
        assert log_ratio is not None and not log_ratio.corrected

    @given(p1=proportions(), p2=proportions(), alpha=ALPHAS)
    def test_swapping_the_groups_inverts_the_interval(
        self, p1: Proportion, p2: Proportion, alpha: float
    ) -> None:
        forward = katz_ratio_interval(p1, p2, alpha)
        backward = katz_ratio_interval(p2, p1, alpha)
        assert forward is not None and backward is not None
        assert forward.lower == pytest.approx(1.0 / backward.upper, rel=1e-9)
        assert forward.upper == pytest.approx(1.0 / backward.lower, rel=1e-9)

    def test_undefined_when_a_group_is_empty(self) -> None:
        assert katz_ratio_interval(Proportion(0, 0), Proportion(1, 2), 0.05) is None
