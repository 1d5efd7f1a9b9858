"""Slices: which groups are analysed, how their counts are summed, and which is the reference.

The finest cells carry every slice attribute. A *grouping* is a set of attributes; its groups
are sums of the cells that share those attribute values. Marginal groupings have one
attribute; intersections have two or more (the fairness harms that hide in older women while
women and older people look fine).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Literal, TypeVar

import numpy as np

from fairshift.engine.counts import BinaryCounts, Histogram, SliceKey, slice_name

T = TypeVar("T", BinaryCounts, Histogram)

Grouping = tuple[str, ...]


def groupings(attributes: Sequence[str], intersections: bool) -> list[Grouping]:
    """Marginal groupings first, then (if asked) every intersection of two or more."""
    ordered = sorted(dict.fromkeys(attributes))
    result: list[Grouping] = [(a,) for a in ordered]
    if intersections:
        for size in range(2, len(ordered) + 1):
            result.extend(combinations(ordered, size))
    return result


def project(key: SliceKey, grouping: Grouping) -> SliceKey:
    """The key of the group in ``grouping`` that a finer cell belongs to."""
    wanted = set(grouping)
    return tuple((a, v) for a, v in key if a in wanted)


def aggregate(cells: Mapping[SliceKey, T], grouping: Grouping) -> dict[SliceKey, T]:
    """Sum finest cells into the groups of ``grouping`` (empty grouping: the overall total).

    One pass over the cells and one numpy sum per field or bucket, so summing tens of
    thousands of cells takes milliseconds.
    """
    wanted = set(grouping)
    index: dict[SliceKey, int] = {}
    rows: list[int] = []
    members: list[T] = []
    for key, value in cells.items():
        group = tuple((a, v) for a, v in key if a in wanted)
        if len(group) == len(wanted):
            rows.append(index.setdefault(group, len(index)))
            members.append(value)
    if not members:
        return {}
    first = members[0]
    if isinstance(first, BinaryCounts):
        sums = _sum_counts(members, rows, len(index))
    else:
        sums = _sum_histograms(members, rows, len(index))
    return dict(zip(index, sums, strict=True))


def _sum_counts(
    members: Sequence[BinaryCounts], rows: list[int], groups: int
) -> list[BinaryCounts]:
    fields = np.array(
        [(c.predictions, c.selected, c.tp, c.fp, c.fn, c.tn) for c in members], dtype=np.float64
    )
    sums = np.zeros((groups, fields.shape[1]))
    np.add.at(sums, rows, fields)
    return [BinaryCounts(*row) for row in sums.tolist()]


def _sum_histograms(members: Sequence[Histogram], rows: list[int], groups: int) -> list[Histogram]:
    bounds = members[0].bounds
    if any(h.bounds != bounds for h in members):  # rare: add one by one (raises if they meet)
        summed: dict[int, Histogram] = {}
        for row, histogram in zip(rows, members, strict=True):
            summed[row] = summed[row] + histogram if row in summed else histogram
        return [summed[row] for row in range(groups)]
    counts = np.array([h.counts for h in members], dtype=np.float64)
    sums = np.zeros((groups, len(bounds)))
    np.add.at(sums, rows, counts)
    return [Histogram(bounds, tuple(row)) for row in sums.tolist()]


def aggregate_all(
    cells: Mapping[SliceKey, T], grouping_list: Iterable[Grouping]
) -> dict[Grouping, dict[SliceKey, T]]:
    """Groups of every grouping, keyed by grouping."""
    return {g: aggregate(cells, g) for g in grouping_list}


@dataclass(frozen=True)
class ReferencePolicy:
    """How the reference group of a grouping is chosen.

    ``majority``: the group with the most decisions. ``worst``: the group with the lowest value
    of the metric being compared (chosen by the caller through ``score``) among the groups with
    at least ``min_samples`` decisions (the majority when none has that many). ``explicit``:
    the group with the given attribute values; for a grouping the explicit values do not fully
    cover, the majority group is used.
    """

    kind: Literal["majority", "worst", "explicit"] = "majority"
    explicit: Mapping[str, str] | None = None
    min_samples: float = 0.0

    @classmethod
    def parse(cls, text: str | Mapping[str, str], min_samples: float = 0.0) -> ReferencePolicy:
        """``majority``, ``worst``, ``sex=M,race=white`` or a mapping."""
        if isinstance(text, Mapping):
            if not text:
                raise ValueError("an explicit reference needs at least one attribute=value")
            return cls("explicit", {str(k): str(v) for k, v in text.items()}, min_samples)
        if text in ("majority", "worst"):
            return cls(text, None, min_samples)  # type: ignore[arg-type]
        pairs: dict[str, str] = {}
        for part in text.split(","):
            name, sep, value = part.partition("=")
            if not sep or not name.strip() or not value.strip():
                raise ValueError(
                    f"reference must be 'majority', 'worst' or attribute=value, got {text!r}"
                )
            pairs[name.strip()] = value.strip()
        return cls("explicit", pairs, min_samples)

    def check_attributes(self, attributes: Sequence[str]) -> None:
        """Refuse (ValueError) an explicit reference on an attribute that is not sliced."""
        unknown = sorted(set(self.explicit or {}) - set(attributes))
        if self.kind == "explicit" and unknown:
            raise ValueError(
                f"reference names attribute(s) {', '.join(unknown)} not among the slice"
                f" attributes ({', '.join(attributes) or 'none'})"
            )

    def check_present(self, groups: Mapping[SliceKey, BinaryCounts], grouping: Grouping) -> None:
        """Refuse (ValueError) an explicit reference group that has no decisions in ``groups``.

        The message names the group and the values the data has, so ``race=caucasian`` for
        ``Caucasian`` is seen at once.
        """
        wanted = self.explicit_key(grouping)
        if wanted is None or groups.get(wanted, BinaryCounts()).predictions > 0:
            return
        seen = sorted({slice_name(key) for key, counts in groups.items() if counts.predictions})
        raise ValueError(
            f"reference group {slice_name(wanted)} has no decisions in the data"
            f" (groups of {', '.join(grouping)}: {', '.join(seen) or 'none'})"
        )

    def explicit_key(self, grouping: Grouping) -> SliceKey | None:
        """The explicit reference's key in ``grouping``, when its values cover the grouping."""
        if self.kind != "explicit" or not self.explicit or not set(grouping) <= set(self.explicit):
            return None
        return tuple(sorted((a, self.explicit[a]) for a in grouping))

    def choose(
        self,
        groups: Mapping[SliceKey, BinaryCounts],
        grouping: Grouping,
        score: Callable[[BinaryCounts], float | None] | None = None,
    ) -> SliceKey | None:
        """The reference key among ``groups`` (None when no group qualifies)."""
        if not groups:
            return None
        wanted = self.explicit_key(grouping)
        if wanted is not None:
            return wanted if wanted in groups else None
        if self.kind == "worst" and score is not None:
            scored = [
                (s, k)
                for k, c in groups.items()
                if c.predictions >= self.min_samples and (s := score(c)) is not None
            ]
            if scored:
                return min(scored)[1]
        return max(groups.items(), key=lambda item: (item[1].predictions, item[0]))[0]
