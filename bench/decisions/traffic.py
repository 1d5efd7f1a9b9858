"""Simulated traffic: per-interval counts per version, cell and confusion cell, vectorised.

Per replication, interval, version and finest cell: requests are Poisson (total rate times
version weight times cell share times 30 s); each request's (label, decision) pair is a
multinomial draw over (tp, fn, fp, tn); its score falls in one of ten buckets (drawn
independently of the decision); each version's requests fall in latency buckets. A share
``LABEL_SHARE`` of requests gets a label, ``LABEL_DELAY`` intervals later. Cumulative sums of
these arrays are what the operator's counter readings (at the step's start and now) return.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench.decisions.world import (
    CANARY_WEIGHT,
    INTERVAL_SECONDS,
    LABEL_DELAY,
    LABEL_SHARE,
    SHARES,
    Population,
)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Stream:
    """Per-interval (not cumulative) counts of ``reps`` rollouts over ``intervals`` intervals.

    Shapes: ``requests`` (R, T, 2, 6); ``outcomes`` (R, T, 2, 6, 4) for every decision (tp,
    fn, fp, tn: used for selections); ``labelled`` (R, T, 2, 6, 4) the confusion counts whose
    labels arrived in that interval; ``scores`` (R, T, 2, 6, 10); ``latency`` (R, T, 2, L).
    """

    requests: IntArray
    outcomes: IntArray
    labelled: IntArray
    scores: IntArray
    latency: IntArray

    @property
    def selected(self) -> IntArray:
        """Positive decisions (tp + fp) of every request, labelled or not."""
        result: IntArray = self.outcomes[..., 0] + self.outcomes[..., 2]
        return result

    def cumulative(self) -> Stream:
        return Stream(*(np.cumsum(a, axis=1) for a in self.arrays()))

    def arrays(self) -> tuple[IntArray, ...]:
        return (self.requests, self.outcomes, self.labelled, self.scores, self.latency)

    def rep(self, index: int) -> Stream:
        return Stream(*(a[index : index + 1] for a in self.arrays()))


def mean_requests(rps: float) -> FloatArray:
    """Expected requests per interval per version (stable, candidate) and cell, shape (2, 6)."""
    weights = np.array([1.0 - CANARY_WEIGHT, CANARY_WEIGHT])
    result: FloatArray = rps * INTERVAL_SECONDS * weights[:, None] * SHARES[None, :]
    return result


def delayed(arrivals: IntArray, delay: int) -> IntArray:
    """Shift along the interval axis: what was decided at ``t`` is labelled at ``t + delay``."""
    shifted = np.zeros_like(arrivals)
    if delay < arrivals.shape[1]:
        shifted[:, delay:] = arrivals[:, : arrivals.shape[1] - delay]
    return shifted


def simulate(
    rng: np.random.Generator, population: Population, rps: float, reps: int, intervals: int
) -> Stream:
    """Draw ``reps`` independent rollouts of ``intervals`` intervals each."""
    requests = rng.poisson(mean_requests(rps), size=(reps, intervals, 2, 6))
    outcomes = rng.multinomial(requests, population.confusion())
    labelled = delayed(rng.binomial(outcomes, LABEL_SHARE), LABEL_DELAY)
    scores = rng.multinomial(requests, population.scores)
    latency = rng.multinomial(requests.sum(axis=-1), population.latency)
    return Stream(requests, outcomes, labelled, scores, latency)


def expected_cumulative(population: Population, rps: float, intervals: float) -> Stream:
    """Noise-free cumulative counts after ``intervals`` intervals (floats; for the oracle)."""
    n = mean_requests(rps) * intervals
    outcomes = n[..., None] * population.confusion()
    labelled_intervals = max(intervals - LABEL_DELAY, 0.0)
    labelled = outcomes * LABEL_SHARE * labelled_intervals / max(intervals, 1e-12)
    scores = n[..., None] * population.scores
    latency = n.sum(axis=-1)[..., None] * population.latency
    return Stream(*(a[None, None] for a in (n, outcomes, labelled, scores, latency)))
