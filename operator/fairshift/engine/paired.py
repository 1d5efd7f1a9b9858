"""Paired comparisons: when stable and candidate decided the same rows, only disagreements count.

In CI both models usually score the same evaluation set. The change of a rate on one slice is
then a difference of two proportions on the *same* rows, and its variance comes from the
discordant pairs alone (McNemar): rows where stable succeeded and the candidate did not
(``lost``) and the reverse (``gained``). Two identical models have no discordant pair and a
change of exactly zero; independent-sample intervals would still be as wide as the sampling
noise of each rate.

The variance is Bonett and Price's adjusted Wald variance for a paired difference of
proportions (one pseudo-row added to each discordant cell, so it is never zero)::

    p12 = (lost + 1) / (n + 2), p21 = (gained + 1) / (n + 2)
    var = (p12 + p21 - (p21 - p12) ** 2) / (n + 2)

A fairness gap's change (a difference in differences between a group and its reference) is the
difference of two such changes on disjoint rows, so the variances add. Only relative gates on
rates with a fixed denominator are paired: ``selection_rate``, ``tpr``, ``fpr``,
``accuracy`` and the gaps built on them (``statistical_parity_difference``, ``tpr_gap``,
``fpr_gap``). Others (``ppv``, whose denominator depends on the model, ratios, calibration,
drift, latency) keep their independent-sample statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from fairshift.engine.counts import SliceKey
from fairshift.engine.measures.base import FixedLook, Measurement, is_relative

PAIRED_RATES = {"selection_rate": "selection", "tpr": "tpr", "fpr": "fpr", "accuracy": "accuracy"}
"""Relative rate gates tested paired, and the rate (with its rows) each one changes."""

PAIRED_GAPS = {"statistical_parity_difference": "selection", "tpr_gap": "tpr", "fpr_gap": "fpr"}
"""Relative fairness gates tested paired, and the rate whose gap between groups they bound."""

BASES = ("selection", "tpr", "fpr", "accuracy")
PAIRED_NOTE = "paired on the same rows: variance from the discordant pairs (McNemar-type)"


@dataclass(frozen=True)
class Discordance:
    """One rate on one slice's rows: how many rows count, and on how many the versions differ."""

    rows: float
    lost: float  # stable succeeded, candidate did not
    gained: float  # candidate succeeded, stable did not

    @property
    def variance(self) -> float:
        """Bonett-Price adjusted variance of (candidate rate - stable rate); never zero."""
        n = self.rows + 2.0
        p12, p21 = (self.lost + 1.0) / n, (self.gained + 1.0) / n
        return (p12 + p21 - (p21 - p12) ** 2) / n


class PairedRows:
    """The rows both versions decided, with each row's finest cell, label and two predictions.

    ``label`` is NaN where the outcome is unknown. Discordances are summed per finest cell once
    and then per grouping once, so asking for every slice costs rows plus cells.
    """

    def __init__(
        self,
        cells: Sequence[SliceKey],
        codes: npt.NDArray[np.intp],
        label: npt.NDArray[np.float64],
        stable: npt.NDArray[np.float64],
        candidate: npt.NDArray[np.float64],
    ) -> None:
        self.cells = tuple(cells)
        self.rows = len(codes)
        self.discordant = int(np.count_nonzero(stable != candidate))
        per_cell = [
            _per_cell(codes, len(self.cells), *_base(b, label, stable, candidate)) for b in BASES
        ]
        self._per_cell = np.stack(per_cell, axis=1)  # cells x bases x (rows, lost, gained)
        self._groupings: dict[tuple[str, ...], dict[SliceKey, npt.NDArray[np.float64]]] = {}

    def discordance(self, base: str, key: SliceKey) -> Discordance:
        """Rows, lost and gained of ``base`` (selection, tpr, fpr, accuracy) on slice ``key``."""
        grouping = tuple(attribute for attribute, _ in key)
        groups = self._groupings.get(grouping)
        if groups is None:
            groups = self._groupings[grouping] = self._sum(grouping)
        sums = groups.get(key)
        if sums is None:
            return Discordance(0.0, 0.0, 0.0)
        rows, lost, gained = (float(x) for x in sums[BASES.index(base)])
        return Discordance(rows, lost, gained)

    def _sum(self, grouping: tuple[str, ...]) -> dict[SliceKey, npt.NDArray[np.float64]]:
        wanted = set(grouping)
        index: dict[SliceKey, int] = {}
        rows = [
            index.setdefault(tuple((a, v) for a, v in cell if a in wanted), len(index))
            for cell in self.cells
        ]
        sums = np.zeros((len(index), *self._per_cell.shape[1:]))
        np.add.at(sums, rows, self._per_cell)
        return {key: sums[i] for key, i in index.items()}


def _base(
    base: str,
    label: npt.NDArray[np.float64],
    stable: npt.NDArray[np.float64],
    candidate: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Which rows count for ``base``, and where each version succeeded on them."""
    if base == "selection":
        return np.ones(len(label), dtype=bool), stable == 1, candidate == 1
    if base == "tpr":
        return label == 1, stable == 1, candidate == 1
    if base == "fpr":
        return label == 0, stable == 1, candidate == 1
    known = ~np.isnan(label)
    return known, known & (stable == label), known & (candidate == label)


def _per_cell(
    codes: npt.NDArray[np.intp],
    cells: int,
    counted: npt.NDArray[np.bool_],
    stable_success: npt.NDArray[np.bool_],
    candidate_success: npt.NDArray[np.bool_],
) -> npt.NDArray[np.float64]:
    lost = counted & stable_success & ~candidate_success
    gained = counted & candidate_success & ~stable_success
    columns = [np.bincount(codes, weights=w, minlength=cells) for w in (counted, lost, gained)]
    return np.stack(columns, axis=1).astype(np.float64)


def paired_measurement(m: Measurement, rows: PairedRows) -> Measurement:
    """``m`` with its variance from the discordant pairs, when its gate can be tested paired."""
    metric = str(m.gate.metric)
    if not is_relative(m.gate) or m.estimate is None or m.log_scale:
        return m
    if metric in PAIRED_RATES:
        variance = rows.discordance(PAIRED_RATES[metric], m.slice).variance
    elif metric in PAIRED_GAPS and m.reference is not None:
        base = PAIRED_GAPS[metric]
        group, reference = rows.discordance(base, m.slice), rows.discordance(base, m.reference)
        variance = group.variance + reference.variance
    else:
        return m
    note = f"{m.note}; {PAIRED_NOTE}" if m.note else PAIRED_NOTE
    return replace(m, variance=variance, fixed=FixedLook("wald"), note=note)
