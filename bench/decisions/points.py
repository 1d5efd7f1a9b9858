"""Per-interval point estimates per version and slice, vectorised: what peers' queries see.

Peers (Flagger, Argo Rollouts, Kayenta) judge each interval's own value of a metric (a
PromQL ``rate(...[30s])``-style query), not cumulative evidence. Here every version's
metric is computed per interval for the same slices fairshift analyses: the overall
population, both marginal groupings and their intersections; fairness metrics compare each
group with the majority group of its grouping, as the engine does. 0/0 gives NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench.decisions.traffic import Stream
from bench.decisions.world import CELLS, LATENCY_BOUNDS, SCORE_BOUNDS

FloatArray = npt.NDArray[np.float64]

SLICES: tuple[tuple[str | None, str | None], ...] = (
    (None, None),
    ("F", None),
    ("M", None),
    (None, "18-39"),
    (None, "40-64"),
    (None, "65+"),
    *CELLS,
)
"""Overall, sex, age_band, then the six intersections (``(sex, age_band)``, None = any)."""

MEMBERS = np.array(
    [[(s is None or s == cs) and (a is None or a == ca) for cs, ca in CELLS] for s, a in SLICES],
    dtype=float,
)
REFERENCES = {1: 2, 3: 3, 4: 3, 5: 3, **{i: 9 for i in range(6, 12)}}
"""Each slice's reference: the majority group of its grouping (M, 18-39, M & 18-39)."""
FAIR_PAIRS = tuple((g, r) for g, r in REFERENCES.items() if g != r)
GROUPS = np.array([g for g, _ in FAIR_PAIRS])
REFS = np.array([r for _, r in FAIR_PAIRS])


def slice_name(index: int) -> str:
    sex, age = SLICES[index]
    parts = ([f"sex={sex}"] if sex else []) + ([f"age_band={age}"] if age else [])
    return ",".join(parts) or "overall"


def by_slice(counts: npt.ArrayLike, cell_axis: int) -> FloatArray:
    """Sum the finest cells into the 12 slices along ``cell_axis`` (moved to the end)."""
    moved = np.moveaxis(np.asarray(counts, dtype=float), cell_axis, -1)
    return np.moveaxis(moved @ MEMBERS.T, -1, cell_axis)


def ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def histogram_quantile(counts: FloatArray, bounds: tuple[float, ...], q: float) -> FloatArray:
    """Prometheus ``histogram_quantile`` over the last axis (buckets), NaN when empty."""
    cumulative = np.cumsum(counts, axis=-1)
    total = cumulative[..., -1]
    rank = q * total
    reached = (cumulative >= rank[..., None]) & (counts > 0)
    bucket = np.argmax(reached, axis=-1)
    finite = np.array([b for b in bounds if np.isfinite(b)])
    upper_edges = np.array([b if np.isfinite(b) else finite[-1] for b in bounds])
    lower_edges = np.concatenate([[0.0], upper_edges[:-1]])
    in_bucket = np.take_along_axis(counts, bucket[..., None], -1)[..., 0]
    below = np.take_along_axis(cumulative, bucket[..., None], -1)[..., 0] - in_bucket
    fraction = np.clip(ratio(rank - below, in_bucket), 0.0, 1.0)
    value = lower_edges[bucket] + (upper_edges[bucket] - lower_edges[bucket]) * fraction
    value = np.where(np.isinf(np.array(bounds))[bucket], finite[-1], value)
    return np.where(total > 0, value, np.nan)


def psi(stable: FloatArray, candidate: FloatArray, pseudo: float = 0.5) -> FloatArray:
    """PSI over the last axis with the engine's smoothing (half a count per bucket)."""
    p = (stable + pseudo) / (stable + pseudo).sum(axis=-1, keepdims=True)
    q = (candidate + pseudo) / (candidate + pseudo).sum(axis=-1, keepdims=True)
    value = np.sum((q - p) * np.log(q / p), axis=-1)
    observed = (stable.sum(axis=-1) > 0) & (candidate.sum(axis=-1) > 0)
    return np.where(observed, value, np.nan)


@dataclass(frozen=True)
class Points:
    """Per-interval values, shapes (R, T, 2, K): version axis 2 (stable, candidate)."""

    tpr_gap: FloatArray  # K = 8 fairness pairs: reference TPR minus group TPR
    impact: FloatArray  # K = 8: group selection rate over the reference's
    accuracy: FloatArray  # K = 12 slices
    p99: FloatArray  # K = 1
    mean_score: FloatArray  # K = 12 slices
    psi: FloatArray  # (R, T, 12): candidate against stable, per slice


def points(stream: Stream) -> Points:
    """Every per-interval value the peers' rules need, from a per-interval ``Stream``."""
    labelled = by_slice(stream.labelled, 3)  # (R, T, 2, 12, 4)
    tp, fn, fp, tn = (labelled[..., i] for i in range(4))
    tpr = ratio(tp, tp + fn)
    accuracy = ratio(tp + tn, tp + fn + fp + tn)
    selection = ratio(by_slice(stream.selected, 3), by_slice(stream.requests, 3))
    scores = by_slice(stream.scores, 3)  # (R, T, 2, 12, 10)
    mids = np.array(SCORE_BOUNDS) - 0.05
    return Points(
        tpr_gap=tpr[..., REFS] - tpr[..., GROUPS],
        impact=ratio(selection[..., GROUPS], selection[..., REFS]),
        accuracy=accuracy,
        p99=histogram_quantile(stream.latency.astype(float), LATENCY_BOUNDS, 0.99)[..., None],
        mean_score=ratio((scores * mids).sum(axis=-1), scores.sum(axis=-1)),
        psi=psi(scores[:, :, 0], scores[:, :, 1]),
    )
