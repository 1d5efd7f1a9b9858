"""Drift gates per slice: the candidate's score distribution against stable's.

PSI and Jensen-Shannon are bias-corrected against their no-drift expectation (both grow like
``dof (1/n_s + 1/n_c)`` under no drift, JS with a factor 1/8) with a delta-method variance;
KS is the largest CDF gap at the bucket bounds, judged with a time-uniform DKW band.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from fairshift.api.analysis import Gate
from fairshift.engine import distributions
from fairshift.engine.counts import Histogram, SliceKey
from fairshift.engine.measures.base import INF, Measurement, Versions, margin_scale


def time_uniform_dkw(samples: float, alpha: float) -> float:
    """Half-width of a time-uniform DKW band for an empirical CDF (Howard & Ramdas, 2022)."""
    if samples <= 0:
        return INF
    n = max(samples, 1.0)
    return 0.85 * math.sqrt((math.log(math.log(math.e * n)) + 0.8 * math.log(1612 / alpha)) / n)


def common(gate: Gate, key: SliceKey, stable: Histogram, candidate: Histogram) -> Measurement:
    return Measurement(
        gate=gate,
        slice=key,
        reference=None,
        stable_value=0.0,
        candidate_value=None,
        estimate=None,
        variance=None,
        acceptable=(-INF, gate.threshold),
        stable_samples=stable.total,
        candidate_samples=candidate.total,
        margin_scale=margin_scale(gate),
    )


def ks_measurement(
    gate: Gate, key: SliceKey, stable: Histogram, candidate: Histogram
) -> Measurement:
    """The largest CDF gap, with a band that holds at every look (two DKW bands at alpha/2)."""
    value = distributions.ks_bound(stable, candidate)
    n_s, n_c = stable.total, candidate.total
    return replace(
        common(gate, key, stable, candidate),
        candidate_value=value,
        estimate=value,
        uniform_band=lambda alpha: (
            time_uniform_dkw(n_s, alpha / 2) + time_uniform_dkw(n_c, alpha / 2)
        ),
        note="time-uniform DKW band",
    )


Divergence = Callable[[Histogram, Histogram], float | None]


def divergence_measure(divergence: Divergence, scale: float) -> DriftFunction:
    """A divergence bias-corrected by ``scale * dof * (1/n_s + 1/n_c)``, its no-drift mean."""

    def measurement(
        gate: Gate, key: SliceKey, stable: Histogram, candidate: Histogram
    ) -> Measurement:
        n_s, n_c = stable.total, candidate.total
        occupied = sum(1 for a, b in zip(stable.counts, candidate.counts, strict=True) if a + b)
        dof = max(occupied - 1, 1)
        inverse_n = (1 / n_s + 1 / n_c) if n_s > 0 and n_c > 0 else INF
        raw = divergence(stable, candidate)
        estimate = None if raw is None else raw - scale * dof * inverse_n
        variance = None
        if raw is not None and inverse_n < INF:
            variance = scale * scale * (2 * dof * inverse_n**2 + 4 * raw * inverse_n)
        return replace(
            common(gate, key, stable, candidate),
            candidate_value=raw,
            estimate=estimate,
            variance=variance,
            note="bias-corrected against the no-drift expectation",
        )

    return measurement


DriftFunction = Callable[[Gate, SliceKey, Histogram, Histogram], Measurement]

DRIFTS: dict[str, DriftFunction] = {
    "score_psi": divergence_measure(distributions.psi, 1.0),
    "score_js": divergence_measure(distributions.jensen_shannon, 1.0 / 8.0),
    "score_ks": ks_measurement,
}


class DriftMeasure:
    """Per slice with scores in both versions (same buckets): one drift statistic."""

    def measure(self, gate: Gate, versions: Versions) -> list[Measurement]:
        drift = DRIFTS[str(gate.metric)]
        stable, candidate = versions.stable.scores, versions.candidate.scores
        found: list[Measurement] = []
        for key in versions.slice_keys():
            s_hist, c_hist = stable.get(key), candidate.get(key)
            if s_hist is None or c_hist is None or s_hist.bounds != c_hist.bounds:
                continue
            found.append(drift(gate, key, s_hist, c_hist))
        return found
