"""Always-valid inference: normal-mixture confidence sequences and e-values for a harm.

The operator checks every gate every 30 s and stops at the first decisive look. A fixed-sample
interval checked that often fails an A/A comparison far more often than its ``alpha``; the
confidence sequences here hold **simultaneously over every look**, so the first time one
excludes a value is a valid stopping rule.

Model. A harm estimate ``X`` (a mean, a difference of rates, a log ratio ...) is treated as
Gaussian around the true harm ``theta`` with variance ``V`` (``sigma^2 / n``, shrinking as
data accrue). The likelihood ratio of ``theta`` against ``theta_0`` given ``X`` is
``phi(X; theta, V) / phi(X; theta_0, V)``; with i.i.d. observations it equals the likelihood
ratio of all observations so far, so for fixed ``theta`` it is a martingale under
``theta_0``. Mixing it over a prior ``theta ~ N(theta_0, tau^2)`` gives the mSPRT statistic
of Robbins (1970) and Johari, Koomen, Pekelis & Walsh (2017, 2022):

    Lambda = sqrt(V / (V + tau^2)) * exp( tau^2 (X - theta_0)^2 / (2 V (V + tau^2)) ),

still a non-negative martingale with mean 1 under ``theta_0``, i.e. an **e-process**. By
Ville's inequality ``P(exists n: Lambda_n >= 1/alpha) <= alpha``. The set of ``theta_0`` not
rejected, ``{theta_0 : Lambda < 1/alpha}``, is therefore a ``1 - alpha`` confidence sequence:

    |X - theta_0| < sqrt( V (V + tau^2) / tau^2 * ( ln((V + tau^2) / V) + 2 ln(1/alpha) ) ).

Exact for Gaussian data with known variance; with a plug-in variance (binomial rates) it is the
asymptotic confidence sequence of Waudby-Smith et al. (2021), and the simulations in the tests
show it keeps its error rate for rate differences checked at every look.

One-sided versions mix over a half-normal prior on ``theta - theta_0 > 0`` (or ``< 0``):

    Lambda_greater = 2 * Lambda * Phi( tau (X - theta_0) / sqrt(V (V + tau^2)) ).

Each component ``exp(delta (S_n - n theta_0) / sigma^2 - n delta^2 / (2 sigma^2))`` with
``delta > 0`` is a supermartingale under every ``theta <= theta_0``, so ``Lambda_greater`` is
an e-process for the **composite** null ``theta <= theta_0``: exactly the claim "the harm is
within the margin" that a ``fail`` rejects (and ``Lambda_less`` for ``theta >= theta_0``, which
a ``pass`` rejects). ``Lambda_greater + Lambda_less = 2 Lambda``; a one-sided bound is about as
tight as the two-sided sequence at ``2 alpha``.

Unequal and changing traffic splits (a 5% canary, then 25%) need no special care: for a
difference of two cumulative means, ``Cov(X_s, X_t) = V_t`` for every earlier look ``s``, the
covariance of a single running mean, so ``X_t / V_t`` is a Brownian motion in the information
time ``1 / V_t`` and the mixture stays a martingale in the Gaussian approximation. Likewise a
difference-in-differences or a difference of log ratios (variances summed).

``tau`` sets where the sequence is tightest; ``tau_for_margin`` tunes it to the gate's margin.
A harm several times the margin shows first at a larger variance than the one ``tau`` was tuned
for, where a single ``tau`` is slow. The gates therefore mix over a **grid** of scales
(``MIXING_SCALES`` times the margin-tuned ``tau``, equal weights): an average of e-processes
is an e-process, so Ville's inequality still bounds its false alarms by ``alpha``, and it
reaches ``1/alpha`` about as soon as its best component does at ``alpha / len(grid)``
(``log_grid_e_values``, ``grid_bounds``).
Variances of rates are floored (``proportion_variance``) so a rate of 0 or 1 never claims
certainty. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq
from scipy.special import erfcx, log_ndtr, logsumexp

from fairshift.engine.intervals import ConfidenceInterval
from fairshift.engine.rates import Proportion

Alternative = Literal["two-sided", "greater", "less"]
FloatArray = npt.NDArray[np.float64]

MIXING_SCALES: tuple[float, ...] = (1.0, 3.0, 10.0)
"""Multiples of the margin-tuned ``tau`` that the gates' e-processes mix over, with equal
weights: tightest at the margin, and at harms about 3 and 10 times as visible (a 10-point drop
against a 2-point margin), for about ``ln 3`` more evidence than one ``tau`` needs at its own
optimum."""

DEFAULT_TAU_FLOOR = 0.01
"""Smallest ``tau`` ``tau_for_margin`` returns: a margin of 0 still needs a scale (one
percentage point on a rate; pass a ``floor`` on the metric's own scale for other metrics)."""

PSEUDO_COUNT = 2.0
"""Pseudo-successes and pseudo-failures added before computing a rate's variance ("plus four")."""


# --- variances -------------------------------------------------------------------------------


def proportion_variance(p: Proportion) -> float | None:
    """Variance of a rate estimate, floored so that a rate of 0 or 1 never has variance 0.

    Agresti & Coull's "plus four" (1998): with ``p_tilde = (x + 2) / (n + 4)`` (about the
    centre of the 95% Wilson interval), the variance is ``p_tilde (1 - p_tilde) / (n + 4)``.
    It equals ``p_hat (1 - p_hat) / n`` to first order when ``x`` and ``n - x`` are large, and
    stays positive at ``x = 0`` or ``x = n`` (about ``2 / n^2``), where the plain binomial
    variance would turn a few zero counts into certainty.

    Why two pseudo-counts rather than Agresti-Caffo's one: a plug-in variance is small exactly
    when a small arm's rate happens to be low, which makes the asymptotic confidence sequence
    anti-conservative for rare events in a small canary. Simulated A/A comparisons (rate 0.05,
    a 2.5% then 12.5% canary, 200 decisions per look, 100 looks) raise false alarms about 8% of
    the time with one pseudo-count, 4% with two and 70% with none (alpha 5%); for common rates
    one and two agree. ``None`` when there are no trials (0/0 is undefined).
    """
    if p.trials <= 0.0:
        return None
    if not 0.0 <= p.successes <= p.trials:
        raise ValueError("need 0 <= successes <= trials and trials > 0")
    n_tilde = p.trials + 2.0 * PSEUDO_COUNT
    p_tilde = (p.successes + PSEUDO_COUNT) / n_tilde
    return p_tilde * (1.0 - p_tilde) / n_tilde


def proportion_variances(successes: npt.ArrayLike, trials: npt.ArrayLike) -> FloatArray:
    """``proportion_variance`` element-wise over arrays of counts (every trial count > 0)."""
    x = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    if np.any(~(n > 0.0)) or np.any(~(x >= 0.0)) or np.any(x > n):
        raise ValueError("need 0 <= successes <= trials and trials > 0")
    n_tilde = n + 2.0 * PSEUDO_COUNT
    p_tilde = (x + PSEUDO_COUNT) / n_tilde
    variances: FloatArray = p_tilde * (1.0 - p_tilde) / n_tilde
    return variances


def sum_of_variances(variances: Iterable[float | None]) -> float | None:
    """Variance of a sum or difference of independent estimates; ``None`` if any is unknown."""
    total = 0.0
    for variance in variances:
        if variance is None:
            return None
        total += variance
    return total


# --- the mixture statistics ------------------------------------------------------------------


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _check_tau(tau: float) -> None:
    if not (tau > 0.0 and math.isfinite(tau)):
        raise ValueError(f"tau must be positive and finite, got {tau}")


def _known_variance(variance: float | None) -> float | None:
    """The variance, or ``None`` when it is unknown (``None`` or ``inf``: no information yet).

    Zero, negative or NaN variances are errors: a zero variance would claim certainty.
    """
    if variance is None or variance == math.inf:
        return None
    if not variance > 0.0:
        raise ValueError(
            f"variance must be positive (got {variance}); floor rate variances with "
            "proportion_variance so an estimate never claims certainty"
        )
    return variance


def _mixture_scale(variance: FloatArray, tau: float) -> FloatArray:
    """``sqrt(V (V + tau^2)) / tau``: distances in this unit are the mixture's z-statistic."""
    scale: FloatArray = np.sqrt(variance) * (np.sqrt(variance + tau * tau) / tau)
    return scale


def _log_variance_ratio(variance: FloatArray, tau: float) -> FloatArray:
    """``ln((V + tau^2) / V) = ln(1 + exp(ln tau^2 - ln V))``, stable at both extremes."""
    ratio: FloatArray = np.logaddexp(0.0, 2.0 * math.log(tau) - np.log(variance))
    return ratio


def _log_half_normal_factor(u: FloatArray) -> FloatArray:
    """``ln(2 exp(u^2 / 2) Phi(u))``, computed without overflow or cancellation.

    For ``u < 0`` it equals ``ln(erfcx(-u / sqrt 2))``; for ``u >= 0``
    ``u^2 / 2 + ln 2 + ln Phi(u)``. It increases strictly in ``u``.
    """
    negative = np.minimum(u, 0.0)
    positive = np.maximum(u, 0.0)
    left: FloatArray = np.log(erfcx(-negative / math.sqrt(2.0)))
    right: FloatArray = positive * positive / 2.0 + math.log(2.0) + log_ndtr(positive)
    result: FloatArray = np.where(u < 0.0, left, right)
    return result


def log_mixture_e_values(
    estimates: npt.ArrayLike,
    variances: npt.ArrayLike,
    null_value: float,
    tau: float,
    alternative: Alternative = "two-sided",
) -> FloatArray:
    """Natural logs of the mixture e-values, element-wise over arrays (for simulations).

    ``variances`` must be positive; use ``mixture_e_value`` for scalars with unknown variance.
    """
    _check_tau(tau)
    x = np.asarray(estimates, dtype=np.float64)
    v = np.asarray(variances, dtype=np.float64)
    if np.any(~(v > 0.0)):
        raise ValueError("variances must be positive")
    u = (x - null_value) / _mixture_scale(v, tau)
    log_shrinkage = -0.5 * _log_variance_ratio(v, tau)
    if alternative == "two-sided":
        two_sided: FloatArray = log_shrinkage + u * u / 2.0
        return two_sided
    if alternative == "greater":
        greater: FloatArray = log_shrinkage + _log_half_normal_factor(u)
        return greater
    if alternative == "less":
        less: FloatArray = log_shrinkage + _log_half_normal_factor(-u)
        return less
    raise ValueError(f"unknown alternative {alternative!r}; known: two-sided, greater, less")


def mixture_e_value(
    estimate: float,
    variance: float | None,
    null_value: float,
    tau: float,
    alternative: Alternative = "two-sided",
) -> float:
    """The normal-mixture likelihood ratio against ``theta = null_value``: an e-process.

    ``alternative="two-sided"`` tests ``theta = null_value`` (prior ``N(null_value, tau^2)``);
    ``"greater"`` tests the composite null ``theta <= null_value`` (evidence the harm exceeds
    it; half-normal prior above); ``"less"`` tests ``theta >= null_value``. Under the null the
    value exceeds ``1/alpha`` at *any* look with probability at most ``alpha`` (Ville), so
    ``anytime_p_value(e)`` is an anytime-valid p-value. Returns 1 (no evidence) when the
    variance is unknown, and may return ``inf`` when the evidence overflows a float.
    """
    _check_tau(tau)
    known = _known_variance(variance)
    if known is None:
        return 1.0
    log_e = log_mixture_e_values([estimate], [known], null_value, tau, alternative)
    with np.errstate(over="ignore"):
        return float(np.exp(log_e[0]))


def anytime_p_value(e_value: float) -> float:
    """``min(1, 1/e)``: valid at any stopping time when ``e`` is an e-process (Ville)."""
    if e_value < 0.0 or math.isnan(e_value):
        raise ValueError(f"an e-value is non-negative, got {e_value}")
    if e_value <= 1.0:
        return 1.0
    return 1.0 / e_value


# --- confidence sequences --------------------------------------------------------------------


def normal_mixture_half_widths(variances: npt.ArrayLike, alpha: float, tau: float) -> FloatArray:
    """Half-widths of the two-sided normal-mixture confidence sequence, element-wise.

    ``sqrt( V (V + tau^2) / tau^2 * ( ln((V + tau^2) / V) + 2 ln(1/alpha) ) )``; infinite where
    ``V`` is infinite.
    """
    _check_alpha(alpha)
    _check_tau(tau)
    v = np.asarray(variances, dtype=np.float64)
    if np.any(~(v > 0.0)):
        raise ValueError("variances must be positive (or inf when unknown)")
    finite = np.isfinite(v)
    v_safe = np.where(finite, v, 1.0)
    radius = np.sqrt(_log_variance_ratio(v_safe, tau) + 2.0 * math.log(1.0 / alpha))
    half_widths: FloatArray = np.where(finite, _mixture_scale(v_safe, tau) * radius, np.inf)
    return half_widths


def normal_mixture_cs(
    estimate: float, variance: float | None, alpha: float, tau: float
) -> ConfidenceInterval:
    """The two-sided ``1 - alpha`` normal-mixture confidence sequence for a Gaussian estimate.

    Derivation (see the module docstring): the mixture likelihood ratio
    ``Lambda(theta_0) = sqrt(V / (V + tau^2)) exp(tau^2 (X - theta_0)^2 / (2 V (V + tau^2)))``
    is a test martingale under ``theta_0``; Ville's inequality bounds the chance that it ever
    reaches ``1/alpha`` by ``alpha``; solving ``Lambda(theta_0) < 1/alpha`` for ``theta_0``
    gives ``|X - theta_0| < sqrt(V (V + tau^2) / tau^2 (ln((V + tau^2)/V) + 2 ln(1/alpha)))``.
    The interval covers the true value at every look simultaneously with probability at least
    ``1 - alpha``. Unbounded when the variance is unknown (``None`` or ``inf``).
    """
    _check_alpha(alpha)
    _check_tau(tau)
    known = _known_variance(variance)
    if known is None:
        return ConfidenceInterval(estimate, -math.inf, math.inf, alpha)
    half_width = float(normal_mixture_half_widths([known], alpha, tau)[0])
    return ConfidenceInterval(estimate, estimate - half_width, estimate + half_width, alpha)


def normal_mixture_one_sided_width(variance: float | None, alpha: float, tau: float) -> float:
    """Distance from the estimate to a one-sided ``1 - alpha`` normal-mixture bound.

    Solves ``Lambda_greater = 1/alpha`` for the distance: with ``u`` the standardised distance,
    ``ln(2 exp(u^2/2) Phi(u)) = ln(1/alpha) + ln(1 + tau^2/V) / 2``; the left side increases in
    ``u``, so the root is unique. Infinite when the variance is unknown.
    """
    _check_alpha(alpha)
    _check_tau(tau)
    known = _known_variance(variance)
    if known is None:
        return math.inf
    variance_array = np.array([known])
    target = math.log(1.0 / alpha) + 0.5 * float(_log_variance_ratio(variance_array, tau)[0])
    u_root = _half_normal_root(target)
    return u_root * float(_mixture_scale(variance_array, tau)[0])


def _half_normal_root(target: float) -> float:
    """The ``u`` with ``ln(2 exp(u^2/2) Phi(u)) = target`` (``target > ln 2``, so ``u > 0``).

    Newton's method from ``sqrt(2 target)``, which lies above the root: for ``u > 0`` the left
    side is convex (its second derivative is ``1 + d/du [phi/Phi] > 0``), so the iterates
    decrease monotonically onto the root. Brent's method is the fallback.
    """
    u = math.sqrt(2.0 * target)
    for _ in range(60):
        phi_over_cdf = math.exp(-0.5 * u * u - _log_cdf(u)) / math.sqrt(2.0 * math.pi)
        excess = 0.5 * u * u + math.log(2.0) + _log_cdf(u) - target
        step = excess / (u + phi_over_cdf)
        u -= step
        if abs(step) < 1e-13:
            return u
    return float(
        brentq(
            lambda v: float(_log_half_normal_factor(np.array([v]))[0]) - target,
            -2.0,
            math.sqrt(2.0 * target) + 1.0,
            xtol=1e-12,
        )
    )


def _log_cdf(u: float) -> float:
    """``ln Phi(u)`` for ``u >= 0`` (where it is between ln 0.5 and 0, no cancellation)."""
    return math.log(0.5 * math.erfc(-u / math.sqrt(2.0)))


def normal_mixture_lower_bound(
    estimate: float, variance: float | None, alpha: float, tau: float
) -> float:
    """A one-sided ``1 - alpha`` lower confidence sequence: ``P(ever above theta) <= alpha``.

    ``lower > margin`` exactly when ``mixture_e_value(..., margin, tau, "greater") > 1/alpha``:
    the rule for ``fail`` (harm surely beyond the margin).
    """
    return estimate - normal_mixture_one_sided_width(variance, alpha, tau)


def normal_mixture_upper_bound(
    estimate: float, variance: float | None, alpha: float, tau: float
) -> float:
    """A one-sided ``1 - alpha`` upper confidence sequence: ``P(ever below theta) <= alpha``.

    ``upper < margin`` exactly when ``mixture_e_value(..., margin, tau, "less") > 1/alpha``:
    the rule for ``pass`` (non-inferiority: harm surely within the margin).
    """
    return estimate + normal_mixture_one_sided_width(variance, alpha, tau)


def normal_mixture_bounds(
    estimate: float, variance: float | None, alpha: float, tau: float
) -> ConfidenceInterval:
    """``[lower, upper]`` where **each** bound is a one-sided ``1 - alpha`` sequence.

    For a gate: ``fail`` if ``lower > margin`` (false-fail chance <= alpha), ``pass`` if
    ``upper < margin`` (false-pass chance <= alpha). As a two-sided interval it covers with
    probability ``1 - 2 alpha``, which is the ``alpha`` it carries; so ``alpha < 0.5``.
    """
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha for one-sided bounds must be in (0, 0.5), got {alpha}")
    width = normal_mixture_one_sided_width(variance, alpha, tau)
    return ConfidenceInterval(estimate, estimate - width, estimate + width, 2.0 * alpha)


# --- tuning tau ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def optimal_variance_ratio(alpha: float) -> float:
    """The ratio ``r = tau^2 / V*`` that makes the sequence tightest at variance ``V*``.

    Minimising the half-width over ``tau`` at fixed ``V*`` gives ``r = ln(1 + r) + 2 ln(1/alpha)``
    (Howard, Ramdas, McAuliffe & Sekhon 2021, section 3.5, with ``rho = sigma^4 / tau^2``);
    about 8.21 at ``alpha = 0.05``. Solved exactly (bracket ``[2L, 4L + 1]``, ``L = ln(1/alpha)``).
    """
    _check_alpha(alpha)
    log_inverse_alpha = math.log(1.0 / alpha)

    def excess(r: float) -> float:
        return r - math.log1p(r) - 2.0 * log_inverse_alpha

    return float(brentq(excess, 2.0 * log_inverse_alpha, 4.0 * log_inverse_alpha + 1.0))


def tau_for_variance(target_variance: float, alpha: float) -> float:
    """The ``tau`` that makes the confidence sequence tightest when ``V = target_variance``."""
    if not (target_variance > 0.0 and math.isfinite(target_variance)):
        raise ValueError(f"target variance must be positive and finite, got {target_variance}")
    return math.sqrt(optimal_variance_ratio(alpha) * target_variance)


def tau_for_margin(margin: float, alpha: float, *, floor: float = DEFAULT_TAU_FLOOR) -> float:
    """``tau`` tuned so the sequence is tightest where a harm of size ``margin`` is detectable.

    With ``tau^2 = r V*`` (``r = optimal_variance_ratio(alpha)``), the half-width at ``V*`` is
    ``sqrt((1 + r) V*)``. A harm of size ``margin`` becomes distinguishable from 0 when the
    half-width shrinks to ``margin``, i.e. at ``V* = margin^2 / (1 + r)``; tuning ``tau`` for
    that ``V*`` gives

        tau = |margin| * sqrt(r / (1 + r))       (about 0.944 |margin| at alpha = 0.05),

    independent of the noise level. This follows Johari et al.'s advice to match ``tau`` to the
    effect sizes that matter; the optimum is flat (halving ``alpha`` moves ``tau`` by about 1%),
    so the same ``tau`` serves the one-sided bounds. ``|margin|`` is floored at ``floor`` so a
    margin of 0 (no degradation tolerated) still yields a usable sequence.
    """
    if not floor > 0.0:
        raise ValueError(f"floor must be positive, got {floor}")
    if not math.isfinite(margin):
        raise ValueError(f"margin must be finite, got {margin}")
    ratio = optimal_variance_ratio(alpha)
    return max(abs(margin), floor) * math.sqrt(ratio / (1.0 + ratio))


def taus_for_margin(
    margin: float,
    alpha: float,
    *,
    floor: float = DEFAULT_TAU_FLOOR,
    scales: tuple[float, ...] = MIXING_SCALES,
) -> tuple[float, ...]:
    """The grid of mixing scales for a gate: ``scales`` times ``tau_for_margin``."""
    if not scales or any(not (s > 0.0 and math.isfinite(s)) for s in scales):
        raise ValueError(f"mixing scales must be positive and finite, got {scales}")
    tau = tau_for_margin(margin, alpha, floor=floor)
    return tuple(tau * s for s in scales)


# --- a mixture over a grid of mixing scales --------------------------------------------------


def log_grid_e_values(
    estimates: npt.ArrayLike,
    variances: npt.ArrayLike,
    null_value: float,
    taus: tuple[float, ...],
    alternative: Alternative = "two-sided",
) -> FloatArray:
    """Logs of the equal-weight average of the mixture e-values over ``taus``, element-wise.

    Each component is an e-process under the null (``log_mixture_e_values``); so is their
    average (a convex combination of test supermartingales is one), whose false alarms Ville's
    inequality bounds by ``alpha``. Taking the *largest* component instead would not be valid.
    """
    if not taus:
        raise ValueError("need at least one mixing scale")
    logs = np.stack(
        [log_mixture_e_values(estimates, variances, null_value, t, alternative) for t in taus]
    )
    result: FloatArray = logsumexp(logs, axis=0) - math.log(len(taus))
    return result


def grid_e_value(
    estimate: float,
    variance: float | None,
    null_value: float,
    taus: tuple[float, ...],
    alternative: Alternative = "two-sided",
) -> float:
    """``mixture_e_value`` averaged over a grid of scales (1 when the variance is unknown)."""
    known = _known_variance(variance)
    if known is None:
        return 1.0
    log_e = log_grid_e_values([estimate], [known], null_value, taus, alternative)
    with np.errstate(over="ignore"):
        return float(np.exp(log_e[0]))


def grid_one_sided_width(variance: float | None, alpha: float, taus: tuple[float, ...]) -> float:
    """Distance from the estimate to the one-sided ``1 - alpha`` bound of the grid mixture.

    Solves ``ln(mean_k Lambda_greater_k) = ln(1/alpha)`` for the distance ``w``. With
    ``u_k = w / scale_k`` each component's log is ``shrink_k + ln(2 exp(u_k^2/2) Phi(u_k))``,
    increasing and convex in ``w`` for ``w >= 0``, and so is their log-sum-exp. Newton's
    method starts above the root (where one component alone, at ``u_k^2 / 2`` at least, brings
    the average to ``1/alpha``) and decreases onto it.
    """
    _check_alpha(alpha)
    known = _known_variance(variance)
    if known is None:
        return math.inf
    for tau in taus:
        _check_tau(tau)
    if len(taus) == 1:
        return normal_mixture_one_sided_width(known, alpha, taus[0])
    target = math.log(1.0 / alpha) + math.log(len(taus))  # ln sum_k, not ln mean_k
    scales = [math.sqrt(known * (known + t * t)) / t for t in taus]
    shrinks = [-0.5 * math.log1p(t * t / known) for t in taus]
    width = min(
        scale * math.sqrt(2.0 * max(target - shrink, 0.0))
        for scale, shrink in zip(scales, shrinks, strict=True)
    )
    for _ in range(100):
        logs, slopes = [], []
        for scale, shrink in zip(scales, shrinks, strict=True):
            u = width / scale
            log_cdf = _log_cdf(u)
            logs.append(shrink + 0.5 * u * u + math.log(2.0) + log_cdf)
            phi_over_cdf = math.exp(-0.5 * u * u - log_cdf) / math.sqrt(2.0 * math.pi)
            slopes.append((u + phi_over_cdf) / scale)
        top = max(logs)
        weights = [math.exp(value - top) for value in logs]
        total = sum(weights)
        excess = top + math.log(total) - target
        slope = sum(w * d for w, d in zip(weights, slopes, strict=True)) / total
        step = excess / slope
        width = max(width - step, 0.0)
        if abs(step) <= 1e-12 * max(width, 1e-300):
            break
    return width


def grid_bounds(
    estimate: float, variance: float | None, alpha: float, taus: tuple[float, ...]
) -> ConfidenceInterval:
    """``normal_mixture_bounds`` for the grid mixture: each bound a one-sided ``1 - alpha``
    sequence, ``lower > margin`` exactly when ``grid_e_value(..., margin, "greater")`` exceeds
    ``1/alpha``."""
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha for one-sided bounds must be in (0, 0.5), got {alpha}")
    width = grid_one_sided_width(variance, alpha, taus)
    return ConfidenceInterval(estimate, estimate - width, estimate + width, 2.0 * alpha)
