"""Binned distribution comparisons and quantiles, checked against scipy on the same ties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from fairshift.engine.counts import Histogram
from fairshift.engine.distributions import (
    bucket_midpoints,
    chi_square,
    exceedance,
    jensen_shannon,
    ks_bound,
    mann_whitney_binned,
    psi,
    quantile,
    wasserstein,
)

INF = math.inf
LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, INF)
FOUR = (1.0, 2.0, 4.0, INF)


def hist(counts: tuple[float, ...], bounds: tuple[float, ...] = FOUR) -> Histogram:
    return Histogram(bounds, counts)


def binned(values: np.ndarray, bounds: tuple[float, ...]) -> Histogram:
    """Bucket raw observations the Prometheus way: (lower, upper]."""
    index = np.searchsorted(np.asarray(bounds), values, side="left")
    return Histogram(bounds, tuple(np.bincount(index, minlength=len(bounds)).astype(float)))


counts_of_four = st.tuples(*[st.integers(0, 60) for _ in range(4)]).filter(lambda c: sum(c) > 0)
histograms = counts_of_four.map(lambda c: hist(tuple(float(x) for x in c)))
# Every bucket well filled (20..60 in each of four): no bucket needs merging for a chi-square
# test (expected counts >= 5 everywhere), so the test is always defined.
well_filled = st.tuples(*[st.integers(20, 60) for _ in range(4)]).map(
    lambda c: hist(tuple(float(x) for x in c))
)


class TestMidpoints:
    def test_first_bucket_starts_at_zero_and_inf_collapses(self) -> None:
        assert list(bucket_midpoints(FOUR)) == [0.5, 1.5, 3.0, 4.0]

    def test_cap_for_the_inf_bucket(self) -> None:
        assert list(bucket_midpoints((0.5, INF), cap=1.0)) == [0.25, 0.75]


class TestQuantile:
    def test_prometheus_interpolation(self) -> None:
        h = hist((2, 2, 4, 0))  # cumulative 2, 4, 8, 8
        assert quantile(h, 0.5) == pytest.approx(2.0)  # rank 4: top of (1, 2]
        assert quantile(h, 0.25) == pytest.approx(1.0)  # rank 2: top of (0, 1]
        assert quantile(h, 0.75) == pytest.approx(3.0)  # rank 6: half way through (2, 4]
        assert quantile(h, 0.125) == pytest.approx(0.5)  # rank 1: half of the first bucket

    def test_inf_bucket_returns_last_finite_bound(self) -> None:
        assert quantile(hist((1, 0, 0, 9)), 0.99) == 4.0

    def test_zero_quantile_is_the_lower_edge_of_the_first_occupied_bucket(self) -> None:
        assert quantile(hist((0, 3, 1, 0)), 0.0) == 1.0

    def test_empty_histogram_has_no_quantile(self) -> None:
        assert quantile(hist((0, 0, 0, 0)), 0.5) is None

    def test_nonpositive_first_bound(self) -> None:
        h = Histogram((0.0, 1.0, INF), (5.0, 5.0, 0.0))
        assert quantile(h, 0.2) == 0.0

    def test_q_outside_unit_interval_is_rejected(self) -> None:
        with pytest.raises(ValueError):
            quantile(hist((1, 1, 1, 1)), 1.5)

    def test_close_to_the_raw_quantile_for_fine_buckets(self) -> None:
        rng = np.random.default_rng(0)
        bounds = (*tuple(np.linspace(0.01, 1.0, 100)), INF)
        values = rng.random(20_000)
        q99 = quantile(binned(values, bounds), 0.99)
        assert q99 == pytest.approx(np.quantile(values, 0.99), abs=0.01)

    @given(histograms, st.floats(0, 1), st.floats(0, 1))
    def test_monotone_in_q(self, h: Histogram, q1: float, q2: float) -> None:
        low, high = sorted((q1, q2))
        low_value, high_value = quantile(h, low), quantile(h, high)
        assert low_value is not None and high_value is not None
        assert low_value <= high_value + 1e-12
        assert 0.0 <= low_value <= 4.0

    @given(st.tuples(*[st.floats(0, 1e6) for _ in range(4)]).filter(lambda c: sum(c) > 0))
    def test_fractional_counts_from_prometheus_reach_every_q(
        self, counts: tuple[float, ...]
    ) -> None:
        h = hist(counts)
        for q in (0.0, 0.5, 0.999, 1.0):
            value = quantile(h, q)
            assert value is not None and 0.0 <= value <= 4.0


class TestExceedance:
    def test_threshold_on_a_bound_counts_whole_buckets(self) -> None:
        p = exceedance(hist((2, 3, 4, 1)), 2.0)
        assert (p.successes, p.trials) == (5.0, 10.0)

    def test_threshold_inside_a_bucket_interpolates(self) -> None:
        # (2, 4] holds 4 observations; a quarter of its width lies above 3.5.
        p = exceedance(hist((2, 3, 4, 1)), 3.5)
        assert p.successes == pytest.approx(4 * 0.25 + 1)

    def test_inf_bucket_counts_as_above_a_threshold_beyond_the_last_bound(self) -> None:
        assert exceedance(hist((2, 3, 4, 1)), 100.0).successes == 1.0

    def test_everything_is_above_zero(self) -> None:
        assert exceedance(hist((2, 3, 4, 1)), 0.0).value == 1.0

    def test_empty_histogram_is_undefined(self) -> None:
        assert exceedance(hist((0, 0, 0, 0)), 1.0).value is None

    @given(histograms, st.floats(0, 5), st.floats(0, 5))
    def test_decreasing_in_the_threshold(self, h: Histogram, t1: float, t2: float) -> None:
        low, high = sorted((t1, t2))
        assert exceedance(h, low).successes >= exceedance(h, high).successes - 1e-9


class TestPsiAndJensenShannon:
    def test_psi_by_hand_without_smoothing(self) -> None:
        expected, actual = hist((50, 50, 0, 0)), hist((25, 75, 0, 0))
        # Empty bins on both sides contribute nothing: (0.25-0.5)ln(0.5) + (0.75-0.5)ln(1.5).
        value = psi(expected, actual, pseudo_count=0.0)
        assert value == pytest.approx(-0.25 * math.log(0.5) + 0.25 * math.log(1.5))

    def test_psi_infinite_without_smoothing_when_one_side_is_empty(self) -> None:
        assert psi(hist((10, 0, 0, 0)), hist((5, 5, 0, 0)), pseudo_count=0.0) == INF

    def test_smoothing_keeps_psi_finite(self) -> None:
        value = psi(hist((10, 0, 0, 0)), hist((5, 5, 0, 0)))
        assert value is not None and math.isfinite(value) and value > 0

    def test_js_matches_scipy(self) -> None:
        a, b = hist((3, 9, 1, 0)), hist((5, 2, 7, 1))
        p = (np.array(a.counts) + 0.5) / (a.total + 2)
        q = (np.array(b.counts) + 0.5) / (b.total + 2)
        assert jensen_shannon(a, b) == pytest.approx(jensenshannon(p, q) ** 2, abs=1e-12)

    def test_js_of_disjoint_supports_is_ln2(self) -> None:
        value = jensen_shannon(hist((4, 0, 0, 0)), hist((0, 0, 4, 0)), pseudo_count=0.0)
        assert value == pytest.approx(math.log(2))

    def test_empty_or_mismatched(self) -> None:
        assert psi(hist((0, 0, 0, 0)), hist((1, 0, 0, 0))) is None
        assert jensen_shannon(hist((1, 0, 0, 0)), hist((0, 0, 0, 0))) is None
        with pytest.raises(ValueError):
            psi(hist((1, 0, 0, 0)), Histogram((1.0, INF), (1.0, 0.0)))
        with pytest.raises(ValueError):
            psi(hist((1, 0, 0, 0)), hist((1, 0, 0, 0)), pseudo_count=-1)

    @given(histograms, histograms)
    def test_psi_nonnegative_and_symmetric(self, a: Histogram, b: Histogram) -> None:
        forward, backward = psi(a, b), psi(b, a)
        assert forward is not None and backward is not None
        assert forward >= 0.0
        assert forward == pytest.approx(backward, abs=1e-12)

    @given(histograms, histograms)
    def test_js_symmetric_and_bounded(self, a: Histogram, b: Histogram) -> None:
        forward, backward = jensen_shannon(a, b), jensen_shannon(b, a)
        assert forward is not None and backward is not None
        assert 0.0 <= forward <= math.log(2)
        assert forward == pytest.approx(backward, abs=1e-12)

    @given(histograms, st.integers(1, 5))
    def test_zero_for_identical_shapes(self, a: Histogram, factor: int) -> None:
        scaled = hist(tuple(c * factor for c in a.counts))
        assert psi(a, a) == 0.0
        assert jensen_shannon(a, a) == pytest.approx(0.0, abs=1e-15)
        assert psi(a, scaled, pseudo_count=0.0) == pytest.approx(0.0, abs=1e-12)


class TestChiSquare:
    def test_matches_scipy_when_no_bins_are_sparse(self) -> None:
        a, b = hist((30, 40, 50, 20)), hist((35, 30, 60, 25))
        result = chi_square(a, b)
        reference = stats.chi2_contingency([a.counts, b.counts], correction=False)
        assert result is not None
        assert result.statistic == pytest.approx(reference.statistic)
        assert result.p_value == pytest.approx(reference.pvalue)
        assert (result.dof, result.bins) == (3, 4)

    def test_sparse_bins_are_merged_with_neighbours(self) -> None:
        a, b = hist((40, 1, 2, 30)), hist((40, 2, 1, 50))
        result = chi_square(a, b)
        # Each column needs 5 * 166 / 73 observations; buckets 2 and 3 join bucket 4.
        merged = stats.chi2_contingency([[40, 1 + 2 + 30], [40, 2 + 1 + 50]], correction=False)
        assert result is not None
        assert (result.bins, result.dof) == (2, 1)
        assert result.statistic == pytest.approx(merged.statistic)
        assert result.p_value == pytest.approx(merged.pvalue)

    def test_too_little_data_for_two_columns(self) -> None:
        assert chi_square(hist((1, 1, 0, 0)), hist((1, 0, 1, 0))) is None

    def test_detects_a_real_shift(self) -> None:
        rng = np.random.default_rng(1)
        a = binned(rng.gamma(2.0, 1.0, 2000), FOUR)
        b = binned(rng.gamma(2.0, 1.3, 2000), FOUR)
        result = chi_square(a, b)
        assert result is not None and result.p_value < 1e-6

    @given(well_filled, well_filled)
    def test_well_filled_buckets_are_tested_unmerged(self, a: Histogram, b: Histogram) -> None:
        result = chi_square(a, b)
        assert result is not None
        assert (result.bins, result.dof) == (4, 3)
        assert 0.0 <= result.p_value <= 1.0

    @given(histograms, histograms)
    def test_p_value_is_a_probability(self, a: Histogram, b: Histogram) -> None:
        result = chi_square(a, b)
        assume(result is not None)  # too little data is covered above; an all-None run fails
        assert result is not None
        assert 0.0 <= result.p_value <= 1.0
        assert result.dof == result.bins - 1 >= 1


class TestKsAndWasserstein:
    def test_ks_bound_by_hand(self) -> None:
        # CDFs at the bounds: a 0.5, 1, 1, 1; b 0, 0.5, 1, 1.
        assert ks_bound(hist((2, 2, 0, 0)), hist((0, 2, 2, 0))) == pytest.approx(0.5)

    @pytest.mark.parametrize("seed", range(3))
    def test_ks_bound_never_exceeds_the_raw_ks_statistic(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        x, y = rng.lognormal(-3, 0.7, 800), rng.lognormal(-2.8, 0.8, 900)
        bound = ks_bound(binned(x, LATENCY), binned(y, LATENCY))
        assert bound is not None
        assert 0.0 < bound <= stats.ks_2samp(x, y).statistic + 1e-12

    def test_wasserstein_of_a_shift_by_one_bucket(self) -> None:
        bounds = (1.0, 2.0, 3.0, 4.0)
        a, b = hist((5, 5, 0, 0), bounds), hist((0, 5, 5, 0), bounds)
        assert wasserstein(a, b) == pytest.approx(1.0)

    def test_wasserstein_matches_scipy_on_midpoints(self) -> None:
        rng = np.random.default_rng(2)
        a = binned(rng.lognormal(-3, 0.7, 500), LATENCY)
        b = binned(rng.lognormal(-2.5, 0.7, 500), LATENCY)
        mids = bucket_midpoints(LATENCY)
        raw_a = np.repeat(mids, np.array(a.counts, dtype=int))
        raw_b = np.repeat(mids, np.array(b.counts, dtype=int))
        assert wasserstein(a, b) == pytest.approx(stats.wasserstein_distance(raw_a, raw_b))

    @given(histograms, histograms)
    def test_symmetric_and_nonnegative(self, a: Histogram, b: Histogram) -> None:
        for measure in (ks_bound, wasserstein):
            forward, backward = measure(a, b), measure(b, a)
            assert forward is not None and backward is not None
            assert forward >= 0.0
            assert forward == pytest.approx(backward, abs=1e-12)
        ks = ks_bound(a, b)
        assert ks is not None and ks <= 1.0 + 1e-12

    def test_empty_is_none(self) -> None:
        assert ks_bound(hist((0, 0, 0, 0)), hist((1, 0, 0, 0))) is None
        assert wasserstein(hist((1, 0, 0, 0)), hist((0, 0, 0, 0))) is None


class TestMannWhitney:
    @pytest.mark.parametrize("seed", range(6))
    def test_agrees_with_scipy_on_the_same_ties(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        counts_a = rng.integers(0, 40, size=len(LATENCY))
        counts_b = rng.integers(0, 40, size=len(LATENCY))
        # One value per bucket: every observation in a bucket is tied, as in the histogram.
        x = np.repeat(np.arange(len(LATENCY)), counts_a)
        y = np.repeat(np.arange(len(LATENCY)), counts_b)
        ours = mann_whitney_binned(
            Histogram(LATENCY, tuple(counts_a.astype(float))),
            Histogram(LATENCY, tuple(counts_b.astype(float))),
        )
        reference = stats.mannwhitneyu(x, y, use_continuity=False, method="asymptotic")
        assert ours is not None
        assert ours.u == pytest.approx(reference.statistic, abs=1e-9)
        assert ours.p_two_sided == pytest.approx(reference.pvalue, abs=1e-9)

    def test_sign_of_z_follows_the_first_sample(self) -> None:
        slower, faster = hist((0, 2, 10, 5)), hist((10, 5, 2, 0))
        result = mann_whitney_binned(slower, faster)
        assert result is not None
        assert result.z > 0 and result.p_two_sided < 0.001
        u, z, p = mann_whitney_binned(faster, slower) or (0.0, 0.0, 0.0)
        assert z == pytest.approx(-result.z)
        assert p == pytest.approx(result.p_two_sided)
        assert u + result.u == pytest.approx(17 * 17)

    def test_undefined_without_data_or_without_spread(self) -> None:
        assert mann_whitney_binned(hist((0, 0, 0, 0)), hist((1, 2, 0, 0))) is None
        assert mann_whitney_binned(hist((0, 3, 0, 0)), hist((0, 5, 0, 0))) is None

    @given(histograms, histograms)
    def test_u_within_range_and_p_a_probability(self, a: Histogram, b: Histogram) -> None:
        result = mann_whitney_binned(a, b)
        occupied = sum(1 for x, y in zip(a.counts, b.counts, strict=True) if x + y > 0)
        if occupied == 1:  # every observation tied: no spread, so no test
            assert result is None
            return
        assert result is not None
        assert 0.0 <= result.u <= a.total * b.total
        assert 0.0 <= result.p_two_sided <= 1.0
