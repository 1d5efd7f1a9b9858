"""Fixed-sample (single look) confidence intervals, and the interval type the engine shares.

These intervals are valid when the data are looked at **once**, as the offline ``gate`` command
does. Checking them at every analysis interval inflates false alarms; the operator's periodic
checks use the confidence sequences of ``engine.sequential`` instead, which return the same
``ConfidenceInterval`` type.

- ``wilson_interval``: Wilson score interval for one proportion (Wilson 1927).
- ``newcombe_difference_interval``: Newcombe's hybrid score interval for ``p1 - p2``, method 10
  of Newcombe (1998), "Interval estimation for the difference between independent
  proportions", Statistics in Medicine 17:873-890.
- ``katz_ratio_interval``: Katz et al. (1978) log interval for the ratio ``p1 / p2``, with the
  usual 0.5 correction (to every cell of the 2x2 table) when a success count is zero.
- ``wald_interval``: the normal interval ``estimate +- z * sqrt(variance)`` for any estimate
  with a variance (e.g. a difference-in-differences).

Counts may be fractional (Prometheus ``increase`` extrapolates); the formulas accept that.
A proportion with no trials is undefined, and so is every interval built on it (``None``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import norm

from fairshift.engine.rates import Proportion

KATZ_CONTINUITY_CORRECTION = 0.5
"""Added to every cell of the 2x2 table when a success count is zero (Katz log ratio)."""


@dataclass(frozen=True)
class ConfidenceInterval:
    """An estimate with a two-sided interval ``[lower, upper]`` at miscoverage ``alpha``.

    Bounds may be infinite (no information yet). For a confidence sequence from
    ``engine.sequential`` the coverage holds simultaneously over every look.
    """

    estimate: float
    lower: float
    upper: float
    alpha: float

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if math.isnan(self.lower) or math.isnan(self.upper):
            raise ValueError("interval bounds must not be NaN")
        if self.lower > self.upper:
            raise ValueError(f"lower bound {self.lower} exceeds upper bound {self.upper}")

    @property
    def width(self) -> float:
        return self.upper - self.lower

    @property
    def is_bounded(self) -> bool:
        """Both bounds are finite."""
        return math.isfinite(self.lower) and math.isfinite(self.upper)

    def contains(self, value: float) -> bool:
        return self.lower <= value <= self.upper

    def is_above(self, threshold: float) -> bool:
        """The whole interval lies beyond ``threshold`` (the harm surely exceeds it)."""
        return self.lower > threshold

    def is_below(self, threshold: float) -> bool:
        """The whole interval lies below ``threshold`` (the harm is surely within it)."""
        return self.upper < threshold


@dataclass(frozen=True)
class LogRatio:
    """``log(p1 / p2)`` with its Katz (delta method) variance, continuity-corrected if needed."""

    estimate: float
    variance: float
    corrected: bool


def two_sided_z(alpha: float) -> float:
    """The standard normal quantile ``z`` with ``P(|Z| > z) = alpha``."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return float(norm.ppf(1.0 - alpha / 2.0))


def wald_interval(estimate: float, variance: float | None, alpha: float) -> ConfidenceInterval:
    """``estimate +- z * sqrt(variance)``; infinitely wide when the variance is unknown."""
    z = two_sided_z(alpha)
    if variance is None or not math.isfinite(variance):
        return ConfidenceInterval(estimate, -math.inf, math.inf, alpha)
    if variance < 0.0:
        raise ValueError(f"variance must be non-negative, got {variance}")
    half_width = z * math.sqrt(variance)
    return ConfidenceInterval(estimate, estimate - half_width, estimate + half_width, alpha)


def _check_counts(p: Proportion) -> None:
    if p.successes < 0.0 or p.successes > p.trials:
        raise ValueError(f"successes must lie in [0, trials], got {p.successes} of {p.trials}")


def wilson_interval(p: Proportion, alpha: float) -> ConfidenceInterval | None:
    """Wilson score interval for one proportion; ``None`` when there are no trials.

    The bounds are the two roots in ``pi`` of ``(p_hat - pi)^2 = z^2 pi (1 - pi) / n``; they
    stay inside [0, 1] and do not collapse when ``p_hat`` is 0 or 1. The estimate is ``p_hat``.
    """
    _check_counts(p)
    p_hat = p.value
    if p_hat is None:
        return None
    z = two_sided_z(alpha)
    n, x = p.trials, p.successes
    denominator = n + z * z
    centre = (x + z * z / 2.0) / denominator
    half_width = (z / denominator) * math.sqrt(x * (n - x) / n + z * z / 4.0)
    lower = max(0.0, centre - half_width)
    upper = min(1.0, centre + half_width)
    return ConfidenceInterval(p_hat, min(lower, p_hat), max(upper, p_hat), alpha)


def newcombe_difference_interval(
    p1: Proportion, p2: Proportion, alpha: float
) -> ConfidenceInterval | None:
    """Newcombe's hybrid score interval (method 10) for ``p1 - p2``; ``None`` if undefined.

    With Wilson intervals ``[l1, u1]`` and ``[l2, u2]`` for each proportion, the bounds are
    ``d - sqrt((p1 - l1)^2 + (u2 - p2)^2)`` and ``d + sqrt((u1 - p1)^2 + (p2 - l2)^2)``,
    where ``d = p1 - p2``.
    """
    first = wilson_interval(p1, alpha)
    second = wilson_interval(p2, alpha)
    if first is None or second is None:
        return None
    difference = first.estimate - second.estimate
    below = math.hypot(first.estimate - first.lower, second.upper - second.estimate)
    above = math.hypot(first.upper - first.estimate, second.estimate - second.lower)
    return ConfidenceInterval(difference, difference - below, difference + above, alpha)


def katz_log_ratio(p1: Proportion, p2: Proportion) -> LogRatio | None:
    """``log(p1 / p2)`` and its variance ``1/x1 - 1/n1 + 1/x2 - 1/n2``; ``None`` if undefined.

    When either success count is zero the log ratio is infinite, so 0.5 is added to every cell
    of the 2x2 table (each success count gains 0.5, each trial count 1).
    """
    _check_counts(p1)
    _check_counts(p2)
    if p1.trials <= 0.0 or p2.trials <= 0.0:
        return None
    x1, n1, x2, n2 = p1.successes, p1.trials, p2.successes, p2.trials
    corrected = x1 == 0.0 or x2 == 0.0
    if corrected:
        c = KATZ_CONTINUITY_CORRECTION
        x1, n1, x2, n2 = x1 + c, n1 + 2 * c, x2 + c, n2 + 2 * c
    estimate = math.log(x1 / n1) - math.log(x2 / n2)
    variance = max(0.0, 1.0 / x1 - 1.0 / n1 + 1.0 / x2 - 1.0 / n2)
    return LogRatio(estimate, variance, corrected)


def katz_ratio_interval(p1: Proportion, p2: Proportion, alpha: float) -> ConfidenceInterval | None:
    """Katz log interval for the ratio ``p1 / p2`` (e.g. disparate impact), on the ratio scale.

    ``exp(log_ratio +- z * sqrt(variance))``; the estimate is the (possibly corrected) ratio.
    """
    log_ratio = katz_log_ratio(p1, p2)
    if log_ratio is None:
        return None
    on_log_scale = wald_interval(log_ratio.estimate, log_ratio.variance, alpha)
    return ConfidenceInterval(
        math.exp(on_log_scale.estimate),
        math.exp(on_log_scale.lower),
        math.exp(on_log_scale.upper),
        alpha,
    )
