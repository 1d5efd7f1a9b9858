"""Is the paired test of ``fairshift gate`` valid on its margin, and what does pairing buy?

Size: a rate on ``n`` rows drops by exactly the margin (0.05) between stable and candidate;
``churn`` is the share of rows on which the two models swap decisions in both directions on top
of that drop (noise that pairing must account for). The one-sided test at alpha 0.05 (Wald with
the Bonett-Price paired variance, as ``engine.paired``) should fail the candidate in at most 5%
of runs. Power: the same data judged as independent samples (the variance of two independent
proportions, Wald) at a true drop of 0.074 (the 7.4-point case of the tests).

Run: ``python -m bench.paired_size`` (a few seconds).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from fairshift.engine.paired import Discordance

ALPHA = 0.05
MARGIN = 0.05
RUNS = 4000


def failure_rate(
    n: int, drop: float, churn: float, paired: bool, rng: np.random.Generator
) -> float:
    """Share of runs in which the candidate is judged to drop the rate by more than MARGIN."""
    base = 0.8
    z = norm.ppf(1 - ALPHA)
    failed = 0
    for _ in range(RUNS):
        lost = rng.binomial(n, drop + churn)
        gained = rng.binomial(n - lost, churn / (1 - drop - churn))
        estimate = (lost - gained) / n
        if paired:
            variance = Discordance(n, lost, gained).variance
        else:
            stable = rng.binomial(n, base) / n
            candidate = stable - estimate
            variance = (stable * (1 - stable) + candidate * (1 - candidate)) / n
        failed += estimate - z * variance**0.5 > MARGIN
    return failed / RUNS


def main() -> None:
    rng = np.random.default_rng(1)
    print(f"size on the margin (drop {MARGIN}), paired, alpha {ALPHA}, {RUNS} runs each")
    print("| rows | churn 0 | churn 0.02 | churn 0.10 |")
    print("|---:|---:|---:|---:|")
    for n in (200, 1000, 5000):
        rates = [failure_rate(n, MARGIN, churn, True, rng) for churn in (0.0, 0.02, 0.1)]
        print(f"| {n} | " + " | ".join(f"{r:.3f}" for r in rates) + " |")
    print(f"\npower at a drop of 0.074 (margin {MARGIN}), churn 0.02")
    print("| rows | paired | independent |")
    print("|---:|---:|---:|")
    for n in (500, 1500, 5000):
        paired = failure_rate(n, 0.074, 0.02, True, rng)
        independent = failure_rate(n, 0.074, 0.02, False, rng)
        print(f"| {n} | {paired:.3f} | {independent:.3f} |")


if __name__ == "__main__":
    main()
