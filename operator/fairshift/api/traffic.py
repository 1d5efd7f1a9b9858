"""Traffic splits: how much of the live traffic goes to primary and canary, and what is mirrored.

The planner decides a ``Weights``; each router writes it into its own mesh object and reads it
back; status shows it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALL_TO_PRIMARY", "Weights"]


@dataclass(frozen=True)
class Weights:
    """Traffic split: percent to primary and to canary (sum 100), percent mirrored to canary."""

    primary: int
    canary: int
    mirror_percent: int = 0

    def __post_init__(self) -> None:
        if self.primary + self.canary != 100 or min(self.primary, self.canary) < 0:
            raise ValueError(f"weights must be two non-negative numbers summing to 100: {self}")
        if not 0 <= self.mirror_percent <= 100:
            raise ValueError(f"mirror percent must be in 0..100: {self.mirror_percent}")

    @classmethod
    def canary_share(cls, canary: int, mirror_percent: int = 0) -> Weights:
        return cls(primary=100 - canary, canary=canary, mirror_percent=mirror_percent)


ALL_TO_PRIMARY = Weights(100, 0, 0)
