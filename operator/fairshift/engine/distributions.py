"""Comparisons of two binned distributions (Prometheus-style histograms) and quantiles of one.

Everything here works on :class:`~fairshift.engine.counts.Histogram` buckets, never on raw
observations, because that is all Prometheus keeps. Conventions shared by every function:

- Bucket ``i`` holds the observations in ``(bounds[i-1], bounds[i]]``; the first bucket starts
  at 0 (as in Prometheus ``histogram_quantile``) unless its upper bound is not positive, in which
  case it is the single point ``bounds[0]``.
- Where a bucket must be reduced to one value (Wasserstein, calibration) its *midpoint* is used;
  a ``+Inf`` bucket has no midpoint, so its upper edge is capped (at the last finite bound unless
  a caller gives another cap, e.g. 1 for scores).
- Comparisons need the two histograms to share their bounds (ValueError otherwise) and return
  None when either histogram is empty: there is nothing to compare, and "no data" is never 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import special, stats

from fairshift.engine.counts import Histogram
from fairshift.engine.rates import Proportion

FloatArray = npt.NDArray[np.float64]

DEFAULT_PSEUDO_COUNT = 0.5
"""Additive (Laplace-style) smoothing for PSI and JS: half an observation added to every bin.

Without smoothing one empty bin makes PSI infinite; 0.5 (the Jeffreys pseudo-count) keeps the
estimate finite while moving large samples by a negligible amount.
"""

MIN_EXPECTED_COUNT = 5.0
"""Chi-square bins are merged with their neighbours until every expected count reaches this."""


def _counts(h: Histogram) -> FloatArray:
    return np.asarray(h.counts, dtype=np.float64)


def _require_same_bounds(a: Histogram, b: Histogram) -> None:
    if a.bounds != b.bounds:
        raise ValueError("histograms must share their bucket bounds to be compared")


def _both_observed(a: Histogram, b: Histogram) -> bool:
    _require_same_bounds(a, b)
    return a.total > 0 and b.total > 0


def bucket_edges(
    bounds: tuple[float, ...], cap: float | None = None
) -> tuple[FloatArray, FloatArray]:
    """Lower and upper edges of every bucket, with ``+Inf`` replaced by ``cap``.

    Without ``cap`` a ``+Inf`` upper edge becomes the bucket's lower edge (the last finite
    bound), so the bucket collapses onto that point. A cap below the lower edge is raised to it.
    """
    upper = np.asarray(bounds, dtype=np.float64)
    first_lower = 0.0 if upper[0] > 0 else upper[0]
    lower = np.concatenate(([first_lower], upper[:-1]))
    infinite = np.isinf(upper)
    replacement = lower if cap is None else np.maximum(lower, cap)
    upper = np.where(infinite, replacement, upper)
    return lower, upper


def bucket_midpoints(bounds: tuple[float, ...], cap: float | None = None) -> FloatArray:
    """The midpoint of every bucket (see :func:`bucket_edges` for the first and last bucket)."""
    lower, upper = bucket_edges(bounds, cap)
    midpoints: FloatArray = (lower + upper) / 2.0
    return midpoints


def _smoothed_probabilities(h: Histogram, pseudo_count: float) -> FloatArray:
    if pseudo_count < 0:
        raise ValueError("the smoothing pseudo-count must not be negative")
    smoothed = _counts(h) + pseudo_count
    probabilities: FloatArray = smoothed / smoothed.sum()
    return probabilities


def psi(
    expected: Histogram, actual: Histogram, pseudo_count: float = DEFAULT_PSEUDO_COUNT
) -> float | None:
    """Population stability index ``sum((p_a - p_e) * ln(p_a / p_e))`` (natural log, >= 0).

    ``expected`` is the baseline (stable model), ``actual`` the one that may have drifted.
    Each bin gets ``pseudo_count`` extra observations before normalising; with
    ``pseudo_count=0`` an empty bin on one side makes the index infinite.
    """
    if not _both_observed(expected, actual):
        return None
    p_e = _smoothed_probabilities(expected, pseudo_count)
    p_a = _smoothed_probabilities(actual, pseudo_count)
    return float(np.sum(special.rel_entr(p_a, p_e) + special.rel_entr(p_e, p_a)))


def jensen_shannon(
    a: Histogram, b: Histogram, pseudo_count: float = DEFAULT_PSEUDO_COUNT
) -> float | None:
    """Jensen–Shannon divergence in nats (between 0 and ln 2; symmetric), smoothed like PSI."""
    if not _both_observed(a, b):
        return None
    p = _smoothed_probabilities(a, pseudo_count)
    q = _smoothed_probabilities(b, pseudo_count)
    m = (p + q) / 2.0
    divergence = 0.5 * np.sum(special.rel_entr(p, m)) + 0.5 * np.sum(special.rel_entr(q, m))
    return float(min(max(divergence, 0.0), math.log(2.0)))


@dataclass(frozen=True)
class ChiSquareTest:
    """A chi-square test of homogeneity of two binned samples (after merging sparse bins)."""

    statistic: float
    dof: int
    p_value: float
    bins: int


def _merged_columns(table: FloatArray, min_column_total: float) -> FloatArray:
    """Merge adjacent columns left to right until each column total reaches the minimum.

    A short remainder at the right end joins the last complete column.
    """
    merged: list[FloatArray] = []
    pending = np.zeros(table.shape[0], dtype=np.float64)
    for column in table.T:
        pending = pending + column
        if pending.sum() >= min_column_total:
            merged.append(pending)
            pending = np.zeros(table.shape[0], dtype=np.float64)
    if pending.sum() > 0:
        if merged:
            merged[-1] = merged[-1] + pending
        else:
            merged.append(pending)
    return np.column_stack(merged) if merged else np.zeros((table.shape[0], 0))


def chi_square(a: Histogram, b: Histogram) -> ChiSquareTest | None:
    """Chi-square homogeneity test of the 2 x k table of bucket counts (no Yates correction).

    Adjacent buckets are merged until every expected count is at least
    :data:`MIN_EXPECTED_COUNT`: the smallest expected count in a column is
    ``column_total * min(n_a, n_b) / n``. None when fewer than two columns remain.
    """
    if not _both_observed(a, b):
        return None
    table = np.vstack((_counts(a), _counts(b)))
    row_totals = table.sum(axis=1)
    min_column_total = MIN_EXPECTED_COUNT * row_totals.sum() / row_totals.min()
    merged = _merged_columns(table, min_column_total)
    if merged.shape[1] < 2:
        return None
    result = stats.chi2_contingency(merged, correction=False)
    return ChiSquareTest(
        statistic=float(result.statistic),
        dof=int(result.dof),
        p_value=float(result.pvalue),
        bins=int(merged.shape[1]),
    )


def _cdf_at_bounds(h: Histogram) -> FloatArray:
    cumulative: FloatArray = np.cumsum(_counts(h)) / h.total
    return cumulative


def ks_bound(a: Histogram, b: Histogram) -> float | None:
    """The largest gap between the two CDFs at the bucket bounds.

    Both CDFs are known exactly at the bounds, so this is a lower bound on the
    Kolmogorov–Smirnov distance of the unbinned samples.
    """
    if not _both_observed(a, b):
        return None
    return float(np.max(np.abs(_cdf_at_bounds(a) - _cdf_at_bounds(b))))


def wasserstein(a: Histogram, b: Histogram) -> float | None:
    """Earth mover's (Wasserstein-1) distance with every observation at its bucket midpoint.

    The ``+Inf`` bucket sits at the last finite bound, so distances beyond it are not seen.
    """
    if not _both_observed(a, b):
        return None
    locations = bucket_midpoints(a.bounds)
    return float(
        stats.wasserstein_distance(locations, locations, u_weights=_counts(a), v_weights=_counts(b))
    )


def quantile(h: Histogram, q: float) -> float | None:
    """The ``q``-quantile with Prometheus ``histogram_quantile`` semantics.

    The bucket holding rank ``q * total`` is found and the value is interpolated linearly
    inside it (the first bucket starts at 0). If that bucket is the ``+Inf`` one, the last
    finite bound is returned. ``q = 0`` gives the lower edge of the first non-empty bucket.
    None for an empty histogram or one with no finite bound.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"a quantile must be between 0 and 1, got {q}")
    counts = _counts(h)
    cumulative = np.cumsum(counts)
    total = float(cumulative[-1])
    finite = [bound for bound in h.bounds if math.isfinite(bound)]
    if total <= 0 or not finite:
        return None
    rank = q * total
    bucket = int(np.flatnonzero((cumulative >= rank) & (counts > 0))[0])
    if math.isinf(h.bounds[bucket]):
        return finite[-1]
    if bucket == 0 and h.bounds[0] <= 0:
        return h.bounds[0]
    lower, upper = bucket_edges(h.bounds)
    below = float(cumulative[bucket] - counts[bucket])
    fraction = min(max((rank - below) / counts[bucket], 0.0), 1.0)
    return float(lower[bucket] + (upper[bucket] - lower[bucket]) * fraction)


def exceedance(h: Histogram, threshold: float) -> Proportion:
    """The observations above ``threshold``, out of all observations.

    Observations are taken as spread uniformly inside their bucket, so a threshold inside a
    bucket counts the share of that bucket lying above it. The ``+Inf`` bucket has no width to
    interpolate in, so it always counts as above: when the threshold lies beyond the last
    finite bound the histogram cannot tell, and counting it is the conservative reading for
    latency.
    """
    counts = _counts(h)
    lower, upper = bucket_edges(h.bounds)
    width = upper - lower
    spread = np.clip((upper - threshold) / np.where(width > 0, width, 1.0), 0.0, 1.0)
    share_above = np.where(width > 0, spread, (upper > threshold).astype(np.float64))
    share_above = np.where(np.isinf(np.asarray(h.bounds)), 1.0, share_above)
    return Proportion(float(np.sum(counts * share_above)), float(counts.sum()))


class MannWhitney(NamedTuple):
    """A Mann–Whitney U test on binned samples (normal approximation, tie-corrected)."""

    u: float
    z: float
    p_two_sided: float


def mann_whitney_binned(a: Histogram, b: Histogram) -> MannWhitney | None:
    """Mann–Whitney U of ``a`` against ``b`` where every bucket is one tied value.

    Observations sharing a bucket get the bucket's midrank; ``u`` counts the pairs where the
    ``a`` observation is larger (ties count one half), matching ``scipy.stats.mannwhitneyu``'s
    statistic for its first sample. ``z`` uses the tie-corrected variance without continuity
    correction (counts from Prometheus need not be integers) and is positive when ``a`` tends
    to be larger. None when either sample is empty or all observations share one bucket.
    """
    if not _both_observed(a, b):
        return None
    count_a, count_b = _counts(a), _counts(b)
    n_a, n_b = float(count_a.sum()), float(count_b.sum())
    n = n_a + n_b
    b_below = np.cumsum(count_b) - count_b
    u = float(np.sum(count_a * (b_below + count_b / 2.0)))
    tied = count_a + count_b
    tie_term = float(np.sum(tied**3 - tied)) / (n * (n - 1.0))
    variance = n_a * n_b / 12.0 * ((n + 1.0) - tie_term)
    if variance <= 0:
        return None
    z = (u - n_a * n_b / 2.0) / math.sqrt(variance)
    return MannWhitney(u=u, z=z, p_two_sided=float(2.0 * stats.norm.sf(abs(z))))
