"""Traffic splits: how much of the live traffic goes to primary and canary, and what is mirrored.

The planner decides a ``Weights``; each router writes it into its own mesh object and reads it
back; status shows it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALL_TO_FALLBACK", "ALL_TO_PRIMARY", "Weights"]


@dataclass(frozen=True)
class Weights:
    """Traffic split: percent to primary, to canary and to the fallback (sum 100), and the
    percent mirrored to canary. ``fallback`` is above 0 only when the spec names a
    ``fallbackRef`` and a degrade or a kill sends traffic there."""

    primary: int
    canary: int
    mirror_percent: int = 0
    fallback: int = 0

    def __post_init__(self) -> None:
        shares = (self.primary, self.canary, self.fallback)
        if sum(shares) != 100 or min(shares) < 0:
            raise ValueError(f"weights must be non-negative numbers summing to 100: {self}")
        if not 0 <= self.mirror_percent <= 100:
            raise ValueError(f"mirror percent must be in 0..100: {self.mirror_percent}")

    @classmethod
    def canary_share(cls, canary: int, mirror_percent: int = 0, fallback: int = 0) -> Weights:
        return cls(100 - canary - fallback, canary, mirror_percent, fallback)


ALL_TO_PRIMARY = Weights(100, 0, 0)
ALL_TO_FALLBACK = Weights(0, 0, 0, fallback=100)
