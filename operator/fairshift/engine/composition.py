"""Compare like with like: the cells both versions have, and whether their traffic splits agree.

A marginal group is a sum of finest cells. When one version has a cell the other has not seen
yet (a rare group), the two marginal sums mix different populations and identical models look
different. Only cells present in both versions (with decisions in both) enter a comparison.

That a slice's share of traffic differs between the versions is itself worth knowing: a
routing rule that sends one group elsewhere, a candidate that drops one group's requests.
``sample_ratios`` tests, per slice, that the slice's share of decisions is the same in both
versions, with an anytime-valid two-sided mixture e-value, and reports the slices where it is
not as their own warning (sample-ratio mismatch). Checked at every look, a mismatch is
reported for equal splits with probability at most ``SAMPLE_RATIO_ALPHA`` per analysis.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from fairshift.api.analysis import Slices
from fairshift.engine import sequential
from fairshift.engine.counts import BinaryCounts, SliceKey, VersionCounts
from fairshift.engine.rates import Proportion
from fairshift.engine.slices import aggregate, groupings

T = TypeVar("T")

SAMPLE_RATIO_ALPHA = 0.001
"""Chance per analysis that an equal split is reported as a mismatch somewhere (Bonferroni
over slices). Small on purpose: a mismatch holds a rollout, so it must almost never be noise."""

RELATIVE_SHIFT = 0.1
"""The share difference the test is tuned for, relative to the slice's share (10%)."""


def comparable(stable: VersionCounts, candidate: VersionCounts) -> tuple[VersionCounts, ...]:
    """Both versions restricted to the finest cells both of them have data for."""
    cells = shared(stable.cells, candidate.cells, lambda c: c.predictions > 0)
    scores = shared(stable.scores, candidate.scores, lambda h: h.total > 0)
    labelled = shared(stable.labelled_scores, candidate.labelled_scores, lambda m: bool(m))
    return tuple(
        replace(
            version,
            cells={k: version.cells[k] for k in cells},
            scores={k: version.scores[k] for k in scores},
            labelled_scores={k: version.labelled_scores[k] for k in labelled},
        )
        for version in (stable, candidate)
    )


def shared(
    first: Mapping[SliceKey, T], second: Mapping[SliceKey, T], has_data: Callable[[T], bool]
) -> list[SliceKey]:
    """Keys with data in both mappings, in a stable order."""
    both = first.keys() & second.keys()
    return sorted(k for k in both if has_data(first[k]) and has_data(second[k]))


@dataclass(frozen=True)
class SampleRatio:
    """One slice's share of decisions in each version, and whether they differ."""

    slice: SliceKey
    stable_share: Proportion
    candidate_share: Proportion
    e_value: float
    mismatched: bool

    @property
    def reason(self) -> str:
        s, c = self.stable_share.value or 0.0, self.candidate_share.value or 0.0
        return (
            f"the slice's share of decisions differs between versions: candidate {c:.4g}, "
            f"stable {s:.4g}; comparisons on it may be biased (sample-ratio mismatch)"
        )


def sample_ratios(
    stable: VersionCounts, candidate: VersionCounts, slices: Slices
) -> list[SampleRatio]:
    """Every analysed slice's share test; ``mismatched`` where equal shares are rejected."""
    s_total = sum(c.predictions for c in stable.cells.values())
    c_total = sum(c.predictions for c in candidate.cells.values())
    if s_total <= 0 or c_total <= 0:
        return []
    keys = slice_keys(stable.cells, candidate.cells, slices)
    threshold = max(len(keys), 1) / SAMPLE_RATIO_ALPHA
    found = []
    for key, (s_count, c_count) in keys.items():
        s_share, c_share = Proportion(s_count, s_total), Proportion(c_count, c_total)
        e_value = share_e_value(s_share, c_share)
        found.append(SampleRatio(key, s_share, c_share, e_value, e_value >= threshold))
    return found


def slice_keys(
    stable: Mapping[SliceKey, BinaryCounts],
    candidate: Mapping[SliceKey, BinaryCounts],
    slices: Slices,
) -> dict[SliceKey, tuple[float, float]]:
    """Decisions per analysed group in each version (0 where a version lacks the group)."""
    counts: dict[SliceKey, tuple[float, float]] = {}
    for grouping in groupings(slices.attributes, slices.intersections):
        s_groups, c_groups = aggregate(stable, grouping), aggregate(candidate, grouping)
        for key in sorted(s_groups.keys() | c_groups.keys()):
            s = s_groups[key].predictions if key in s_groups else 0.0
            c = c_groups[key].predictions if key in c_groups else 0.0
            counts[key] = (s, c)
    return counts


def share_e_value(stable: Proportion, candidate: Proportion) -> float:
    """Two-sided mixture e-value against equal shares (an e-process across looks)."""
    s_var, c_var = sequential.proportion_variance(stable), sequential.proportion_variance(candidate)
    if s_var is None or c_var is None or stable.value is None or candidate.value is None:
        return 1.0
    pooled = (stable.successes + candidate.successes) / (stable.trials + candidate.trials)
    tau = sequential.tau_for_margin(RELATIVE_SHIFT * pooled, SAMPLE_RATIO_ALPHA, floor=1e-4)
    return sequential.mixture_e_value(candidate.value - stable.value, s_var + c_var, 0.0, tau)
