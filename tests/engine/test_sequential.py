"""Always-valid inference: the mixture formulas, their consistency, and peeking simulations."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate
from scipy.stats import norm

from fairshift.engine.intervals import two_sided_z
from fairshift.engine.rates import Proportion
from fairshift.engine.sequential import (
    DEFAULT_TAU_FLOOR,
    MIXING_SCALES,
    anytime_p_value,
    grid_bounds,
    grid_e_value,
    grid_one_sided_width,
    log_grid_e_values,
    log_mixture_e_values,
    mixture_e_value,
    normal_mixture_bounds,
    normal_mixture_cs,
    normal_mixture_half_widths,
    normal_mixture_lower_bound,
    normal_mixture_one_sided_width,
    normal_mixture_upper_bound,
    optimal_variance_ratio,
    proportion_variance,
    proportion_variances,
    sum_of_variances,
    tau_for_margin,
    tau_for_variance,
    taus_for_margin,
)

ALPHAS = st.sampled_from([0.01, 0.05, 0.1, 0.2])
VARIANCES = st.floats(min_value=1e-8, max_value=10.0)
TAUS = st.floats(min_value=1e-3, max_value=3.0)
ESTIMATES = st.floats(min_value=-2.0, max_value=2.0)

BoolArray = npt.NDArray[np.bool_]


class TestProportionVariance:
    def test_undefined_without_trials(self) -> None:
        assert proportion_variance(Proportion(0, 0)) is None

    @pytest.mark.parametrize("successes", [0, 50])
    def test_never_zero_at_the_edges(self, successes: int) -> None:
        variance = proportion_variance(Proportion(successes, 50))
        # "plus four": p_tilde = 2/54 (or 52/54), variance p_tilde (1 - p_tilde) / 54
        assert variance == pytest.approx((2 / 54) * (52 / 54) / 54)

    def test_close_to_binomial_for_large_counts(self) -> None:
        variance = proportion_variance(Proportion(3000, 10000))
        assert variance is not None
        assert variance == pytest.approx(0.3 * 0.7 / 10000, rel=1e-3)
        assert variance < 0.3 * 0.7 / 10000

    @given(
        trials=st.floats(min_value=0.5, max_value=1e6),
        share=st.floats(min_value=0.0, max_value=1.0),
    )
    def test_positive_and_at_most_the_worst_case(self, trials: float, share: float) -> None:
        variance = proportion_variance(Proportion(share * trials, trials))
        assert variance is not None
        assert 0.0 < variance <= 0.25 / (trials + 4.0) + 1e-15

    def test_array_version_agrees(self) -> None:
        counts = [(0, 10), (3, 10), (10, 10), (2.5, 7.5)]
        arrays = proportion_variances([x for x, _ in counts], [n for _, n in counts])
        scalars = [proportion_variance(Proportion(x, n)) for x, n in counts]
        assert arrays.tolist() == pytest.approx(scalars)

    def test_array_version_rejects_impossible_counts(self) -> None:
        with pytest.raises(ValueError):
            proportion_variances([3], [2])
        with pytest.raises(ValueError):
            proportion_variances([0], [0])

    def test_sum_of_variances(self) -> None:
        assert sum_of_variances([0.1, 0.2]) == pytest.approx(0.3)
        assert sum_of_variances([0.1, None]) is None
        assert sum_of_variances([]) == 0.0


class TestConfidenceSequence:
    def test_known_half_width(self) -> None:
        # V = 1, tau = 1: sqrt(1 * 2 / 1 * (ln 2 + 2 ln 20)) = sqrt(13.3692) = 3.65639
        interval = normal_mixture_cs(0.5, 1.0, 0.05, 1.0)
        assert interval.upper - interval.estimate == pytest.approx(3.65639, abs=1e-5)
        assert interval.estimate - interval.lower == pytest.approx(3.65639, abs=1e-5)
        assert interval.alpha == 0.05

    @pytest.mark.parametrize("variance", [None, math.inf])
    def test_unknown_variance_is_unbounded(self, variance: float | None) -> None:
        interval = normal_mixture_cs(0.3, variance, 0.05, 0.1)
        assert interval.lower == -math.inf and interval.upper == math.inf
        assert normal_mixture_lower_bound(0.3, variance, 0.05, 0.1) == -math.inf
        assert normal_mixture_upper_bound(0.3, variance, 0.05, 0.1) == math.inf
        assert mixture_e_value(0.3, variance, 0.0, 0.1) == 1.0

    @pytest.mark.parametrize("variance", [0.0, -1.0, math.nan])
    def test_claimed_certainty_is_an_error(self, variance: float) -> None:
        with pytest.raises(ValueError, match="variance"):
            normal_mixture_cs(0.3, variance, 0.05, 0.1)
        with pytest.raises(ValueError, match="variance"):
            mixture_e_value(0.3, variance, 0.0, 0.1)

    @pytest.mark.parametrize("tau", [0.0, -0.1, math.inf])
    def test_tau_must_be_positive_and_finite(self, tau: float) -> None:
        with pytest.raises(ValueError, match="tau"):
            normal_mixture_cs(0.3, 0.01, 0.05, tau)

    @given(variance=VARIANCES, tau=TAUS, alpha=ALPHAS)
    def test_wider_than_the_fixed_sample_interval(
        self, variance: float, tau: float, alpha: float
    ) -> None:
        interval = normal_mixture_cs(0.0, variance, alpha, tau)
        assert interval.upper > two_sided_z(alpha) * math.sqrt(variance)

    @given(variance=VARIANCES, tau=TAUS, alpha=ALPHAS)
    def test_narrows_as_the_variance_shrinks(
        self, variance: float, tau: float, alpha: float
    ) -> None:
        wide, narrow = normal_mixture_half_widths([variance, variance / 2.0], alpha, tau)
        assert narrow < wide

    @given(estimate=ESTIMATES, variance=VARIANCES, tau=TAUS, alpha=ALPHAS)
    def test_boundary_is_where_the_e_value_reaches_one_over_alpha(
        self, estimate: float, variance: float, tau: float, alpha: float
    ) -> None:
        interval = normal_mixture_cs(estimate, variance, alpha, tau)
        for edge in (interval.lower, interval.upper):
            log_e = log_mixture_e_values([estimate], [variance], edge, tau)[0]
            assert log_e == pytest.approx(math.log(1.0 / alpha), abs=1e-6)


class TestEValues:
    @pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
    def test_expectation_is_one_under_the_null(self, alternative: str) -> None:
        variance, tau = 0.04, 0.3
        sd = math.sqrt(variance)

        def integrand(x: float) -> float:
            e = mixture_e_value(x, variance, 0.0, tau, alternative)  # type: ignore[arg-type]
            return e * float(norm.pdf(x, scale=sd))

        expectation, _ = integrate.quad(integrand, -12 * sd, 12 * sd, limit=200)
        assert expectation == pytest.approx(1.0, abs=1e-6)

    def test_one_sided_is_a_supermartingale_inside_the_composite_null(self) -> None:
        variance, tau, truth = 0.04, 0.3, -0.1
        sd = math.sqrt(variance)

        def integrand(x: float) -> float:
            return mixture_e_value(x, variance, 0.0, tau, "greater") * float(
                norm.pdf(x, loc=truth, scale=sd)
            )

        expectation, _ = integrate.quad(integrand, truth - 12 * sd, truth + 12 * sd, limit=200)
        assert expectation < 1.0

    @given(estimate=ESTIMATES, variance=VARIANCES, tau=TAUS)
    def test_two_sided_is_the_average_of_the_one_sided(
        self, estimate: float, variance: float, tau: float
    ) -> None:
        logs = [
            log_mixture_e_values([estimate], [variance], 0.1, tau, alternative)[0]
            for alternative in ("two-sided", "greater", "less")
        ]
        two_sided, greater, less = logs
        assert np.logaddexp(greater, less) == pytest.approx(two_sided + math.log(2.0), abs=1e-9)

    def test_one_sided_evidence_points_one_way(self) -> None:
        assert mixture_e_value(0.5, 0.001, 0.0, 0.2, "greater") > 1e6
        # Evidence against the other side decays only polynomially (half-normal prior mass).
        assert mixture_e_value(0.5, 0.001, 0.0, 0.2, "less") < 0.01

    def test_far_tails_are_finite_on_the_log_scale(self) -> None:
        logs = log_mixture_e_values([-50.0, 50.0], [1e-4, 1e-4], 0.0, 0.1, "greater")
        assert np.all(np.isfinite(logs))
        assert logs[0] < 0.0 < logs[1]
        assert mixture_e_value(50.0, 1e-6, 0.0, 0.1, "greater") == math.inf

    def test_unknown_alternative_is_an_error(self) -> None:
        with pytest.raises(ValueError, match="alternative"):
            log_mixture_e_values([0.0], [1.0], 0.0, 1.0, "sideways")  # type: ignore[arg-type]

    def test_anytime_p_value(self) -> None:
        assert anytime_p_value(40.0) == 0.025
        assert anytime_p_value(0.5) == 1.0
        assert anytime_p_value(math.inf) == 0.0
        with pytest.raises(ValueError):
            anytime_p_value(-1.0)


class TestOneSidedBounds:
    @given(estimate=ESTIMATES, variance=VARIANCES, tau=TAUS, alpha=ALPHAS)
    def test_lower_bound_is_where_the_greater_e_value_reaches_one_over_alpha(
        self, estimate: float, variance: float, tau: float, alpha: float
    ) -> None:
        lower = normal_mixture_lower_bound(estimate, variance, alpha, tau)
        upper = normal_mixture_upper_bound(estimate, variance, alpha, tau)
        greater = log_mixture_e_values([estimate], [variance], lower, tau, "greater")[0]
        less = log_mixture_e_values([estimate], [variance], upper, tau, "less")[0]
        assert greater == pytest.approx(math.log(1.0 / alpha), abs=1e-6)
        assert less == pytest.approx(math.log(1.0 / alpha), abs=1e-6)

    @given(variance=VARIANCES, tau=TAUS, alpha=st.sampled_from([0.01, 0.05, 0.1]))
    def test_between_the_two_sided_sequences_at_alpha_and_twice_alpha(
        self, variance: float, tau: float, alpha: float
    ) -> None:
        one_sided = normal_mixture_one_sided_width(variance, alpha, tau)
        at_alpha, at_twice_alpha = (
            normal_mixture_half_widths([variance], level, tau)[0] for level in (alpha, 2 * alpha)
        )
        assert at_twice_alpha < one_sided < at_alpha

    @pytest.mark.parametrize("variance", [1e-300, 1e-20, 1e12, 1e300])
    @pytest.mark.parametrize("tau", [1e-6, 1e6])
    def test_finite_and_ordered_at_extreme_scales(self, variance: float, tau: float) -> None:
        one_sided = normal_mixture_one_sided_width(variance, 1e-4, tau)
        two_sided = normal_mixture_half_widths([variance], 1e-4, tau)[0]
        assert 0.0 < one_sided < two_sided < math.inf

    def test_bounds_interval_carries_its_two_sided_miscoverage(self) -> None:
        interval = normal_mixture_bounds(0.02, 1e-4, 0.05, 0.05)
        assert interval.alpha == pytest.approx(0.1)
        assert interval.lower == pytest.approx(normal_mixture_lower_bound(0.02, 1e-4, 0.05, 0.05))
        with pytest.raises(ValueError, match="alpha"):
            normal_mixture_bounds(0.02, 1e-4, 0.5, 0.05)


class TestTau:
    def test_optimal_ratio_solves_its_equation(self) -> None:
        ratio = optimal_variance_ratio(0.05)
        assert ratio == pytest.approx(8.212, abs=1e-3)
        assert ratio == pytest.approx(math.log1p(ratio) + 2 * math.log(20.0))

    @given(margin=st.floats(min_value=0.011, max_value=5.0), alpha=ALPHAS)
    def test_half_width_reaches_the_margin_where_it_is_tightest(
        self, margin: float, alpha: float
    ) -> None:
        tau = tau_for_margin(margin, alpha)
        target = margin**2 / (1.0 + optimal_variance_ratio(alpha))
        at_target = normal_mixture_half_widths([target], alpha, tau)[0]
        assert at_target == pytest.approx(margin, rel=1e-9)
        for other_tau in (tau * 0.8, tau * 1.25):
            assert normal_mixture_half_widths([target], alpha, other_tau)[0] > at_target

    def test_known_value(self) -> None:
        assert tau_for_margin(0.05, 0.05) == pytest.approx(0.05 * math.sqrt(8.212 / 9.212), 1e-4)
        assert tau_for_margin(-0.05, 0.05) == tau_for_margin(0.05, 0.05)

    def test_zero_margin_uses_the_floor(self) -> None:
        assert tau_for_margin(0.0, 0.05) == pytest.approx(
            DEFAULT_TAU_FLOOR * tau_for_margin(1.0, 0.05)
        )
        assert tau_for_margin(0.0, 0.05, floor=0.2) == pytest.approx(tau_for_margin(0.2, 0.05))
        with pytest.raises(ValueError, match="floor"):
            tau_for_margin(0.0, 0.05, floor=0.0)

    def test_tau_for_variance(self) -> None:
        assert tau_for_variance(0.01, 0.05) == pytest.approx(math.sqrt(0.08212), abs=1e-5)
        with pytest.raises(ValueError):
            tau_for_variance(0.0, 0.05)


# --- simulations: peeking at every look ------------------------------------------------------

LOOKS = 100
PER_LOOK = 100
ALPHA = 0.05
MARGIN = 0.05


def _ab_stream(
    rng: np.random.Generator,
    stable: float,
    candidate: float,
    replications: int,
    candidate_share: npt.NDArray[np.float64] | float = 0.5,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Cumulative candidate-minus-stable rate differences at every look, with two variances:
    the floored one the engine uses and the plain binomial one a naive test uses.

    Each look brings ``2 * PER_LOOK`` decisions, split by ``candidate_share`` (per look).
    """
    share = np.broadcast_to(candidate_share, (LOOKS,))
    per_candidate = np.rint(2 * PER_LOOK * share).astype(np.int64)
    per_stable = 2 * PER_LOOK - per_candidate
    shape = (replications, LOOKS)
    n_stable = np.broadcast_to(per_stable.cumsum(), shape)
    n_candidate = np.broadcast_to(per_candidate.cumsum(), shape)
    x_stable = rng.binomial(per_stable, stable, shape).cumsum(axis=1)
    x_candidate = rng.binomial(per_candidate, candidate, shape).cumsum(axis=1)
    p_stable, p_candidate = x_stable / n_stable, x_candidate / n_candidate
    difference = p_candidate - p_stable
    floored = proportion_variances(x_candidate, n_candidate) + proportion_variances(
        x_stable, n_stable
    )
    plain = p_stable * (1 - p_stable) / n_stable + p_candidate * (1 - p_candidate) / n_candidate
    return difference, floored, plain


def _alarm_rate(alarms: BoolArray) -> float:
    """Share of replications that raise an alarm at some look (stop at the first)."""
    return float(alarms.any(axis=1).mean())


def _confidence_sequence_alarms(
    difference: npt.NDArray[np.float64], variance: npt.NDArray[np.float64]
) -> BoolArray:
    half_widths = normal_mixture_half_widths(variance, ALPHA, tau_for_margin(MARGIN, ALPHA))
    alarms: BoolArray = np.abs(difference) > half_widths
    return alarms


def _naive_alarms(
    difference: npt.NDArray[np.float64], variance: npt.NDArray[np.float64]
) -> BoolArray:
    alarms: BoolArray = np.abs(difference) > two_sided_z(ALPHA) * np.sqrt(variance)
    return alarms


class TestPeeking:
    REPLICATIONS = 2000

    def test_a_a_false_alarms_stay_within_alpha_at_every_look(self) -> None:
        difference, floored, plain = _ab_stream(
            np.random.default_rng(20240601), 0.3, 0.3, self.REPLICATIONS
        )
        ours = _alarm_rate(_confidence_sequence_alarms(difference, floored))
        naive = _alarm_rate(_naive_alarms(difference, plain))
        assert ours <= ALPHA + 0.01
        assert naive > 0.25

    def test_one_sided_e_value_rule_stays_within_alpha(self) -> None:
        difference, floored, _ = _ab_stream(np.random.default_rng(7), 0.3, 0.3, self.REPLICATIONS)
        tau = tau_for_margin(MARGIN, ALPHA)
        log_e = log_mixture_e_values(difference, floored, 0.0, tau, "greater")
        assert _alarm_rate(log_e >= math.log(1.0 / ALPHA)) <= ALPHA + 0.01

    def test_fail_rule_at_the_margin_boundary_stays_within_alpha(self) -> None:
        """A harm exactly at the margin is not 'beyond' it: lower > margin must stay rare."""
        difference, floored, _ = _ab_stream(
            np.random.default_rng(11), 0.3, 0.3 + MARGIN, self.REPLICATIONS
        )
        tau = tau_for_margin(MARGIN, ALPHA)
        log_e = log_mixture_e_values(difference, floored, MARGIN, tau, "greater")
        assert _alarm_rate(log_e >= math.log(1.0 / ALPHA)) <= ALPHA + 0.01

    def test_a_difference_of_ten_points_is_detected(self) -> None:
        difference, floored, _ = _ab_stream(np.random.default_rng(3), 0.3, 0.4, self.REPLICATIONS)
        alarms = _confidence_sequence_alarms(difference, floored)
        assert _alarm_rate(alarms) >= 0.99
        first_look = alarms.argmax(axis=1) + 1
        assert float(np.median(first_look)) <= 10

    def test_small_canary_with_a_rare_event(self) -> None:
        """A 2.5% then 12.5% canary and a 5% event rate, judged from the very first look: the
        plug-in variance is at its least reliable; the "plus four" floor keeps alpha (with
        one pseudo-count this rate is about 0.077; with the plain variance about 0.7)."""
        canary_share = np.where(np.arange(LOOKS) < LOOKS // 2, 0.025, 0.125)
        difference, floored, _ = _ab_stream(
            np.random.default_rng(29), 0.05, 0.05, self.REPLICATIONS, canary_share
        )
        assert _alarm_rate(_confidence_sequence_alarms(difference, floored)) <= ALPHA + 0.01

    def test_gaussian_stream_with_a_thousand_looks(self) -> None:
        """Exact setting of the theory: unit-variance Gaussian observations, one per look."""
        rng = np.random.default_rng(5)
        looks = np.arange(1, 1001)
        means = rng.standard_normal((self.REPLICATIONS, looks.size)).cumsum(axis=1) / looks
        half_widths = normal_mixture_half_widths(1.0 / looks, ALPHA, tau_for_variance(0.01, ALPHA))
        assert _alarm_rate(np.abs(means) > half_widths) <= ALPHA + 0.01


class TestGridMixture:
    """The mixture over a grid of mixing scales: its bound, its power and its validity."""

    @given(VARIANCES, ALPHAS)
    def test_bound_is_where_the_grid_e_value_reaches_one_over_alpha(
        self, variance: float, alpha: float
    ) -> None:
        taus = taus_for_margin(0.02, alpha)
        width = grid_one_sided_width(variance, alpha, taus)
        log_e = log_grid_e_values([width], [variance], 0.0, taus, "greater")[0]
        assert log_e == pytest.approx(math.log(1.0 / alpha), abs=1e-7)
        assert grid_e_value(0.0, variance, width, taus, "less") == pytest.approx(
            1.0 / alpha, rel=1e-6
        )

    @given(VARIANCES, ALPHAS)
    def test_between_its_best_component_at_alpha_and_at_alpha_over_the_grid(
        self, variance: float, alpha: float
    ) -> None:
        taus = taus_for_margin(0.02, alpha)
        width = grid_one_sided_width(variance, alpha, taus)
        at_alpha = min(normal_mixture_one_sided_width(variance, alpha, t) for t in taus)
        split = min(normal_mixture_one_sided_width(variance, alpha / len(taus), t) for t in taus)
        assert at_alpha * (1 - 1e-9) <= width <= split * (1 + 1e-9)

    def test_one_scale_is_the_single_mixture(self) -> None:
        tau = tau_for_margin(0.02, ALPHA)
        assert grid_one_sided_width(1e-4, ALPHA, (tau,)) == normal_mixture_one_sided_width(
            1e-4, ALPHA, tau
        )
        bounds = grid_bounds(0.1, 1e-4, ALPHA, (tau,))
        assert (bounds.lower, bounds.upper) == pytest.approx(
            (
                normal_mixture_lower_bound(0.1, 1e-4, ALPHA, tau),
                normal_mixture_upper_bound(0.1, 1e-4, ALPHA, tau),
            )
        )

    def test_unknown_variance_and_bad_scales(self) -> None:
        taus = taus_for_margin(0.02, ALPHA)
        assert grid_one_sided_width(None, ALPHA, taus) == math.inf
        assert grid_e_value(1.0, None, 0.0, taus) == 1.0
        with pytest.raises(ValueError, match="mixing scales"):
            taus_for_margin(0.02, ALPHA, scales=(1.0, 0.0))
        with pytest.raises(ValueError, match="at least one"):
            log_grid_e_values([0.0], [1.0], 0.0, ())

    def test_a_harm_five_times_the_margin_is_seen_sooner(self) -> None:
        """A 10-point drop against a 2-point margin at alpha / 37: where its estimate has a
        standard error of 2 points, the grid's bound is within 8.5 points of it (the drop is
        about to show) while the margin-tuned tau's is still 10 points away."""
        alpha = ALPHA / 37
        variance = 0.02**2
        single = normal_mixture_one_sided_width(variance, alpha, tau_for_margin(0.02, alpha))
        grid = grid_one_sided_width(variance, alpha, taus_for_margin(0.02, alpha))
        assert grid < 0.085 < single

    def test_false_alarms_stay_within_alpha_and_a_sum_over_the_grid_does_not(self) -> None:
        """Gaussian means checked at each of 1000 looks (the exact setting of the theory): the
        default grid's *average* e-value reaches ``1/alpha`` at most ``alpha`` of the time;
        summing the components instead (forgetting the weights) breaks the guarantee."""
        rng = np.random.default_rng(17)
        looks = np.arange(1, 1001)
        means = rng.standard_normal((4000, looks.size)).cumsum(axis=1) / looks
        variances = np.broadcast_to(1.0 / looks, means.shape)
        taus = tuple(s * tau_for_variance(0.01, ALPHA) for s in MIXING_SCALES)
        log_e = log_grid_e_values(means, variances, 0.0, taus, "greater")
        threshold = math.log(1.0 / ALPHA)
        assert _alarm_rate(log_e >= threshold) <= ALPHA + 0.01
        assert _alarm_rate(log_e + math.log(len(taus)) >= threshold) > ALPHA + 0.02

    def test_fail_rule_on_the_margin_keeps_alpha_with_rates(self) -> None:
        """Binomial rate differences exactly on the margin (plug-in variances), every look."""
        difference, floored, _ = _ab_stream(np.random.default_rng(13), 0.3, 0.3 + MARGIN, 2000)
        taus = taus_for_margin(MARGIN, ALPHA)
        log_e = log_grid_e_values(difference, floored, MARGIN, taus, "greater")
        assert _alarm_rate(log_e >= math.log(1.0 / ALPHA)) <= ALPHA + 0.01
