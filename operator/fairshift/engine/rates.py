"""The per-slice rates of a binary classifier, each kept as a proportion (successes of trials).

Keeping numerator and denominator (rather than a float) lets the statistics derive variances,
and makes 0/0 explicit: an empty denominator is *undefined* (``None``), never 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fairshift.engine.counts import BinaryCounts


@dataclass(frozen=True)
class Proportion:
    """``successes`` out of ``trials``."""

    successes: float
    trials: float

    @property
    def value(self) -> float | None:
        """The rate, or None when there are no trials (0/0 is undefined)."""
        if self.trials <= 0:
            return None
        return self.successes / self.trials

    @property
    def variance(self) -> float | None:
        """Binomial variance of the rate estimate, p(1-p)/n; None when undefined."""
        p = self.value
        if p is None:
            return None
        return p * (1.0 - p) / self.trials


def selection_rate(c: BinaryCounts) -> Proportion:
    """Share of decisions that are positive (all decisions, label known or not)."""
    return Proportion(c.selected, c.predictions)


def true_positive_rate(c: BinaryCounts) -> Proportion:
    """Recall: positives the model selected."""
    return Proportion(c.tp, c.tp + c.fn)


def false_positive_rate(c: BinaryCounts) -> Proportion:
    """Negatives the model selected."""
    return Proportion(c.fp, c.fp + c.tn)


def positive_predictive_value(c: BinaryCounts) -> Proportion:
    """Precision: selected decisions whose label is 1."""
    return Proportion(c.tp, c.tp + c.fp)


def accuracy(c: BinaryCounts) -> Proportion:
    """Labelled decisions that were right."""
    return Proportion(c.tp + c.tn, c.labelled)


def label_rate(c: BinaryCounts) -> Proportion:
    """Base rate: labelled decisions whose label is 1."""
    return Proportion(c.positives, c.labelled)


RATES: dict[str, Callable[[BinaryCounts], Proportion]] = {
    "selection_rate": selection_rate,
    "tpr": true_positive_rate,
    "fpr": false_positive_rate,
    "ppv": positive_predictive_value,
    "accuracy": accuracy,
    "base_rate": label_rate,
}


def rate(name: str, counts: BinaryCounts) -> Proportion:
    """The named rate; raises on an unknown name (registries never default silently)."""
    try:
        return RATES[name](counts)
    except KeyError:
        raise KeyError(f"unknown rate {name!r}; known: {', '.join(sorted(RATES))}") from None
