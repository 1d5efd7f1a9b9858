"""One false-rollback budget per candidate revision, across all of its analysis windows.

Every analysis window (shadow, each ``analyze`` step, a resumed or retried step) starts its
counts afresh. Judged alone, each window would spend the whole ``alpha``, and a candidate
exactly on its margin would be rolled back more often the more windows it passes through.
Instead each critical cell keeps, per side of its acceptable region, the natural log of its
fail-side mixture e-value (over the grid of mixing scales, ``engine.sequential``): the
evidence that the harm lies beyond the bound.

Within a window that e-value is an e-process (``engine.sequential``). The windows' data are
disjoint, so the product of the e-values each window ended with, times the current window's,
is again a test supermartingale under "the harm is within the bound"; by Ville's inequality it
ever reaches ``1/alpha_cell`` with probability at most ``alpha_cell``. A cell fails when

    carried log e (closed windows) + current log e (this window) >= log(1 / alpha_cell)

and with Bonferroni across cells the rollout's false-rollback chance stays within ``alpha``
over its whole life. Carried values are exact, negative logs included: a window that looked
fine makes the next one need more evidence, which is the price of the guarantee.

The ledger is keyed ``gate/slice/side`` (``above``: harm beyond the upper bound, ``below``:
under the lower). ``Budget.folded()`` is what to persist when a window closes; a new candidate
revision starts from an empty ledger. Drift gates judged with a uniform band (KS) and PromQL
point values carry nothing. An absolute bound carries the smaller of its two e-values, beyond
the bound and worse than stable (see ``inference.worse_than_stable``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from fairshift.engine import sequential
from fairshift.engine.counts import slice_name
from fairshift.engine.measures.base import Measurement
from fairshift.engine.sequential import Alternative

Side = Literal["above", "below"]


def ledger_key(m: Measurement, side: Side) -> str:
    return f"{m.gate.name}/{slice_name(m.slice)}/{side}"


def fail_log_e_values(m: Measurement, alpha: float) -> dict[str, float]:
    """This window's log e-values that the harm is beyond each finite side of the region."""
    if m.point_only or m.uniform_band is not None or m.estimate is None:
        return {}
    if m.variance is None or not (m.variance > 0 and math.isfinite(m.variance)):
        return {}
    low, high = m.acceptable
    taus = sequential.taus_for_margin(m.margin_scale, alpha)
    found: dict[str, float] = {}
    sides: tuple[tuple[Side, float, Alternative], ...] = (
        ("above", high, "greater"),
        ("below", low, "less"),
    )
    versus = m.versus_stable
    for side, bound, alternative in sides:
        if not math.isfinite(bound):
            continue
        (log_e,) = sequential.log_grid_e_values(
            [m.estimate], [m.variance], bound, taus, alternative
        )
        if versus is not None and versus[1] > 0:  # and surely worse than stable (min: valid)
            (versus_e,) = sequential.log_grid_e_values(
                [versus[0]], [versus[1]], 0.0, taus, alternative
            )
            log_e = min(log_e, versus_e)
        found[ledger_key(m, side)] = float(log_e)
    return found


@dataclass(frozen=True)
class Budget:
    """The evidence of one look: carried from closed windows, this window's, and thresholds."""

    carried: Mapping[str, float] = field(default_factory=dict)
    current: Mapping[str, float] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)  # log(1 / alpha_cell)

    def total(self, key: str) -> float:
        return self.carried.get(key, 0.0) + self.current.get(key, 0.0)

    def crossed(self, key: str) -> bool:
        return key in self.thresholds and self.total(key) >= self.thresholds[key]

    def folded(self) -> dict[str, float]:
        """What to carry into the next window: every key's carried plus current log e-value."""
        keys = set(self.carried) | set(self.current)
        return {key: round(self.total(key), 9) for key in sorted(keys)}

    @property
    def used(self) -> float:
        """How far the most-evidenced critical cell is towards a rollback (0 to 1)."""
        shares = [
            max(self.total(key), 0.0) / threshold
            for key, threshold in self.thresholds.items()
            if threshold > 0
        ]
        return min(max(shares, default=0.0), 1.0)
