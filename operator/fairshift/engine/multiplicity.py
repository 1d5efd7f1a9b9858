"""Multiple testing across gates and slices: which hypotheses to reject, given a budget.

A rollout tests many (gate, slice) cells at once; without correction the chance that *some*
healthy cell looks harmful grows with their number. Each function takes one p-value (or
e-value) per hypothesis and returns, in the same order, whether each is rejected.

- ``bonferroni`` / ``holm``: family-wise error rate (FWER) at ``alpha`` under any dependence;
  Holm's step-down rejects everything Bonferroni rejects and possibly more. Used for critical
  gates: ``alpha`` is the false-rollback budget of the whole rollout.
- ``benjamini_hochberg``: false discovery rate (FDR) at ``q`` for independent or positively
  dependent (PRDS) p-values; used for warning gates.
- ``e_benjamini_hochberg``: e-BH (Wang & Ramdas 2022), FDR at ``alpha`` from e-values under
  **any** dependence.

Checked at every look: Bonferroni and Holm need only that each p-value be valid, and the
anytime-valid p-values ``1/e`` of ``engine.sequential`` are valid at every stopping time, so a
union bound over the true nulls keeps the FWER across all looks. e-BH applied to e-processes
evaluated at a stopping time likewise keeps its FDR guarantee (an e-process stopped at any time
is an e-value). Plain BH on fixed-sample p-values has no such guarantee when peeked at.
"""

from __future__ import annotations

from collections.abc import Sequence

Rejections = tuple[bool, ...]


def _check_level(level: float, name: str) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {level}")


def _check_p_values(p_values: Sequence[float]) -> None:
    for p in p_values:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p-values must lie in [0, 1], got {p}")


def _ascending_order(values: Sequence[float]) -> list[int]:
    """Indices that sort ``values`` ascending (stable, so ties keep their input order)."""
    return sorted(range(len(values)), key=lambda index: values[index])


def bonferroni_alpha(alpha: float, tests: int) -> float:
    """The level each of ``tests`` hypotheses is tested at so the FWER stays within ``alpha``."""
    _check_level(alpha, "alpha")
    if tests < 1:
        raise ValueError(f"need at least one test, got {tests}")
    return alpha / tests


def bonferroni(p_values: Sequence[float], alpha: float) -> Rejections:
    """Reject ``H_i`` when ``p_i <= alpha / m``."""
    _check_level(alpha, "alpha")
    _check_p_values(p_values)
    if not p_values:
        return ()
    level = bonferroni_alpha(alpha, len(p_values))
    return tuple(p <= level for p in p_values)


def holm(p_values: Sequence[float], alpha: float) -> Rejections:
    """Holm's step-down: walk p-values ascending, reject the k-th (1-based) while
    ``p_(k) <= alpha / (m - k + 1)``, and stop at the first that is not."""
    _check_level(alpha, "alpha")
    _check_p_values(p_values)
    m = len(p_values)
    rejected = [False] * m
    for rank, index in enumerate(_ascending_order(p_values)):
        if p_values[index] > alpha / (m - rank):
            break
        rejected[index] = True
    return tuple(rejected)


def _reject_first(order: Sequence[int], count: int, m: int) -> Rejections:
    """Reject the hypotheses at the first ``count`` positions of ``order``."""
    rejected = [False] * m
    for index in order[:count]:
        rejected[index] = True
    return tuple(rejected)


def benjamini_hochberg(p_values: Sequence[float], q: float) -> Rejections:
    """Benjamini-Hochberg step-up: reject the ``k`` smallest p-values, where ``k`` is the
    largest rank with ``p_(k) <= k q / m`` (none if there is no such rank)."""
    _check_level(q, "q")
    _check_p_values(p_values)
    m = len(p_values)
    order = _ascending_order(p_values)
    count = 0
    for rank, index in enumerate(order, start=1):
        if p_values[index] <= rank * q / m:
            count = rank
    return _reject_first(order, count, m)


def e_benjamini_hochberg(e_values: Sequence[float], alpha: float) -> Rejections:
    """e-BH: reject the ``k`` largest e-values, where ``k`` is the largest rank with
    ``e_(k) >= m / (alpha k)`` (``e_(k)`` the k-th largest); FDR <= alpha under any dependence.

    It is BH applied to ``1 / e``; infinite e-values are allowed (overwhelming evidence).
    """
    _check_level(alpha, "alpha")
    for e in e_values:
        if not e >= 0.0:
            raise ValueError(f"e-values must be non-negative, got {e}")
    m = len(e_values)
    order = sorted(range(m), key=lambda index: -e_values[index])
    count = 0
    for rank, index in enumerate(order, start=1):
        if e_values[index] >= m / (alpha * rank):
            count = rank
    return _reject_first(order, count, m)
