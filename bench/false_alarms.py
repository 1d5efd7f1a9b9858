"""False alarms and power when a gate is checked at every analysis interval.

Two binomial streams (stable and candidate, 100 decisions each per look) are compared at each
of 100 looks; a rule raises an alarm at its first rejection. Under an A/A comparison every
alarm is a false rollback. Compared rules:

- naive z-test: the fixed-sample 95% test repeated at every look (what a per-tick check does);
- Bonferroni over looks: the same test at alpha / 100 per look (needs the number of looks
  in advance);
- single look: the 95% z-test once, at the last look (the fixed-sample oracle; no peeking);
- fairshift CS: the two-sided normal-mixture confidence sequence excludes 0 (tau tuned to a
  margin of 0.05; a second table varies that margin);
- fairshift fail rule: the one-sided lower bound exceeds 0 (``mixture_e_value`` "greater").

A last table repeats the A/A comparison for rare events and for a small canary (2.5% of
decisions, then 12.5%), where the Gaussian approximation behind every rule is weakest.

Reproducible: seeded numpy; prints tables. Run ``python bench/false_alarms.py``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fairshift.engine.intervals import two_sided_z
from fairshift.engine.sequential import (
    log_mixture_e_values,
    normal_mixture_half_widths,
    proportion_variances,
    tau_for_margin,
)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

ALPHA = 0.05
MARGIN = 0.05
STABLE_RATE = 0.3


@dataclass(frozen=True)
class Streams:
    """Cumulative candidate-minus-stable differences per replication (rows) and look (columns)."""

    difference: FloatArray
    floored_variance: FloatArray
    plain_variance: FloatArray


def simulate(
    rng: np.random.Generator,
    stable: float,
    candidate: float,
    replications: int,
    per_stable: npt.NDArray[np.int64],
    per_candidate: npt.NDArray[np.int64],
) -> Streams:
    """Decisions per look for each version are given per look (a canary's share may change)."""
    shape = (replications, per_stable.size)
    n_stable = np.broadcast_to(per_stable.cumsum(), shape)
    n_candidate = np.broadcast_to(per_candidate.cumsum(), shape)
    x_stable = rng.binomial(per_stable, stable, shape).cumsum(axis=1)
    x_candidate = rng.binomial(per_candidate, candidate, shape).cumsum(axis=1)
    p_stable, p_candidate = x_stable / n_stable, x_candidate / n_candidate
    return Streams(
        difference=p_candidate - p_stable,
        floored_variance=proportion_variances(x_candidate, n_candidate)
        + proportion_variances(x_stable, n_stable),
        plain_variance=p_stable * (1 - p_stable) / n_stable
        + p_candidate * (1 - p_candidate) / n_candidate,
    )


def small_canary(looks: int, per_look: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Decisions per look for (stable, candidate): a 2.5% canary, then 12.5% after half the looks.

    ``per_look`` decisions per version per look on average, as in the balanced comparison.
    """
    total = 2 * per_look
    share = np.where(np.arange(looks) < looks // 2, 0.025, 0.125)
    per_candidate = np.rint(total * share).astype(np.int64)
    return total - per_candidate, per_candidate


def naive_z(s: Streams) -> BoolArray:
    alarms: BoolArray = np.abs(s.difference) > two_sided_z(ALPHA) * np.sqrt(s.plain_variance)
    return alarms


def bonferroni_over_looks(s: Streams) -> BoolArray:
    looks = s.difference.shape[1]
    z = two_sided_z(ALPHA / looks)
    alarms: BoolArray = np.abs(s.difference) > z * np.sqrt(s.plain_variance)
    return alarms


def single_look(s: Streams) -> BoolArray:
    alarms = np.zeros_like(s.difference, dtype=bool)
    alarms[:, -1] = naive_z(s)[:, -1]
    return alarms


def confidence_sequence(s: Streams, margin: float = MARGIN) -> BoolArray:
    tau = tau_for_margin(margin, ALPHA)
    alarms: BoolArray = np.abs(s.difference) > normal_mixture_half_widths(
        s.floored_variance, ALPHA, tau
    )
    return alarms


def one_sided_fail_rule(s: Streams) -> BoolArray:
    tau = tau_for_margin(MARGIN, ALPHA)
    log_e = log_mixture_e_values(s.difference, s.floored_variance, 0.0, tau, "greater")
    alarms: BoolArray = log_e >= math.log(1.0 / ALPHA)
    return alarms


RULES: dict[str, Callable[[Streams], BoolArray]] = {
    "naive z-test every look": naive_z,
    "Bonferroni over looks": bonferroni_over_looks,
    "single look at the end": single_look,
    "fairshift CS excludes 0": confidence_sequence,
    "fairshift one-sided (fail)": one_sided_fail_rule,
}


def alarm_rate(alarms: BoolArray) -> tuple[float, float]:
    """Share of replications with an alarm at some look, and its Monte-Carlo standard error."""
    rate = float(alarms.any(axis=1).mean())
    return rate, math.sqrt(rate * (1 - rate) / alarms.shape[0])


def median_first_look(alarms: BoolArray) -> float:
    raised = alarms.any(axis=1)
    if not raised.any():
        return math.nan
    return float(np.median(alarms.argmax(axis=1)[raised] + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=10_000)
    parser.add_argument("--looks", type=int, default=100)
    parser.add_argument("--per-look", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20261122)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(
        f"{args.replications} replications, {args.looks} looks, {args.per_look} decisions per "
        f"version per look, stable rate {STABLE_RATE}, alpha {ALPHA}, "
        f"tau = tau_for_margin({MARGIN}) = {tau_for_margin(MARGIN, ALPHA):.4f}, seed {args.seed}"
    )
    differences = (0.0, 0.02, 0.05, 0.1)
    balanced = np.full(args.looks, args.per_look, dtype=np.int64)
    streams = {
        d: simulate(rng, STABLE_RATE, STABLE_RATE + d, args.replications, balanced, balanced)
        for d in differences
    }
    header = f"{'rule':28} {'A/A false alarms':>18}" + "".join(
        f" {'power d=' + str(d):>12} {'med look':>8}" for d in differences[1:]
    )
    print(header)
    print("-" * len(header))
    for name, rule in RULES.items():
        rate, se = alarm_rate(rule(streams[0.0]))
        row = f"{name:28} {rate:>10.4f} ± {se:.4f}"
        for d in differences[1:]:
            alarms = rule(streams[d])
            row += f" {alarm_rate(alarms)[0]:>12.4f} {median_first_look(alarms):>8.0f}"
        print(row)
    print()
    print_tau_sensitivity(streams)
    print()
    print_scenarios(rng, args.replications, args.looks, args.per_look)
    print("(canary: 2.5% of the decisions per look, 12.5% from the middle look on)")


def print_tau_sensitivity(streams: dict[float, Streams]) -> None:
    """How the margin ``tau`` is tuned to trades early against late detection."""
    differences = sorted(streams)[1:]
    header = f"{'CS tuned to margin':20} {'tau':>7} {'A/A false alarms':>17}" + "".join(
        f" {'power d=' + str(d):>12} {'med look':>8}" for d in differences
    )
    print(header)
    print("-" * len(header))
    for margin in (0.01, 0.02, 0.05, 0.1, 0.2):
        row = f"{margin:<20} {tau_for_margin(margin, ALPHA):>7.4f}"
        row += f" {alarm_rate(confidence_sequence(streams[0.0], margin))[0]:>17.4f}"
        for d in differences:
            alarms = confidence_sequence(streams[d], margin)
            row += f" {alarm_rate(alarms)[0]:>12.4f} {median_first_look(alarms):>8.0f}"
        print(row)


def print_scenarios(rng: np.random.Generator, replications: int, looks: int, per_look: int) -> None:
    """A/A false alarms where the Gaussian approximation is weakest: rare events, small canary."""
    balanced = np.full(looks, per_look, dtype=np.int64)
    allocations = {"balanced": (balanced, balanced), "canary": small_canary(looks, per_look)}
    rates = (0.01, 0.05, 0.3)
    scenarios = {
        f"{allocation} {rate}": simulate(rng, rate, rate, replications, *sizes)
        for allocation, sizes in allocations.items()
        for rate in rates
    }
    header = f"{'A/A false alarms, by rate':28}" + "".join(f" {name:>13}" for name in scenarios)
    print(header)
    print("-" * len(header))
    for name, rule in RULES.items():
        with np.errstate(divide="ignore", invalid="ignore"):
            rates_row = [alarm_rate(rule(streams))[0] for streams in scenarios.values()]
        print(f"{name:28}" + "".join(f" {rate:>13.4f}" for rate in rates_row))


if __name__ == "__main__":
    main()
