"""Figures from the outcomes: event rates, time-to-detect quantiles, oracle ratios, targets.

Times are minutes from the start of the step to the look at which the rule acted (look ``k``
happens after ``k + 1`` intervals of 30 s). A rollout in which the rule never acted has an
infinite time, so a median is infinite when fewer than half the rollouts were detected
within the horizon (shown as "> 60").
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace

import numpy as np

from bench.decisions.engine_rule import ENGINE_RULES
from bench.decisions.oracle import OracleTimes
from bench.decisions.run import Outcome
from bench.decisions.world import HORIZON, INTERVAL_SECONDS, SCENARIOS, Scenario

MINUTES_PER_LOOK = INTERVAL_SECONDS / 60.0
ALPHA = 0.05
MEDIAN_TARGET = 1.2
P90_TARGET = 1.8
POWER_SCENARIO = "tpr-10pt-65+"
"""The power targets: the median time to detect this drop within these multiples of the
one-cell and the Bonferroni oracles (at traffic levels where the one-cell oracle fits)."""
POWER_SINGLE_TARGET = 2.0
POWER_BONFERRONI_TARGET = 1.2


@dataclass(frozen=True)
class Row:
    """One rule on one scenario at one traffic level."""

    scenario: str
    rps: int
    rule: str
    rollouts: int
    events: int
    median: float
    p90: float
    oracle: OracleTimes

    @property
    def rate(self) -> float:
        return self.events / self.rollouts if self.rollouts else math.nan

    def ratio(self, value: float, oracle: float) -> float:
        if not math.isfinite(oracle):
            return math.nan
        return value / oracle


def event_tick(outcome: Outcome, scenario: Scenario) -> int | None:
    """The tick that counts: the drift flag in the drift scenario, the rollback otherwise."""
    return outcome.warn if scenario.expect == "warn" else outcome.rollback


def minutes(ticks: list[int | None]) -> np.ndarray:
    return np.array([math.inf if t is None else (t + 1) * MINUTES_PER_LOOK for t in ticks])


def quantile(values: np.ndarray, q: float) -> float:
    if values.size == 0:
        return math.nan
    return float(np.quantile(values, q, method="inverted_cdf"))


def rows(outcomes: list[Outcome], oracles: dict[tuple[str, int], OracleTimes]) -> list[Row]:
    grouped: dict[tuple[str, int, str], list[int | None]] = defaultdict(list)
    by_name = {s.name: s for s in SCENARIOS}
    for o in outcomes:
        grouped[(o.scenario, o.rps, o.rule)].append(event_tick(o, by_name[o.scenario]))
    result = []
    for (scenario, rps, rule), ticks in grouped.items():
        times = minutes(ticks)
        result.append(
            Row(
                scenario,
                rps,
                rule,
                len(ticks),
                int(np.isfinite(times).sum()),
                quantile(times, 0.5),
                quantile(times, 0.9),
                oracles.get((scenario, rps), OracleTimes(math.inf, math.inf)),
            )
        )
    return result


@dataclass(frozen=True)
class Verdict:
    target: str
    where: str
    value: str
    met: bool
    rule: str = "fairshift"


def fairshift_verdicts(table: list[Row]) -> list[Verdict]:
    """The targets, checked on the rows of each of fairshift's rules."""
    by_name = {s.name: s for s in SCENARIOS}
    rules = [r.name for r in ENGINE_RULES]
    verdicts: list[Verdict] = []
    mine = [r for r in table if r.rule in rules]
    for row in sorted(mine, key=lambda r: (r.scenario, r.rps, rules.index(r.rule))):
        expect = by_name[row.scenario].expect
        where = f"{row.scenario} @ {row.rps} rps"
        if row.scenario == "a/a":
            text, met = f"{row.rate:.3f}", row.rate <= ALPHA
            verdicts.append(Verdict("A/A false rollbacks <= alpha", where, text, met, row.rule))
        elif expect == "keep":
            text, met = f"{row.events}", row.events == 0
            verdicts.append(Verdict("never rolls back the fair model", where, text, met, row.rule))
        else:
            found = detection_verdicts(row, where)
            if row.scenario == POWER_SCENARIO:
                found += power_verdicts(row, where)
            verdicts.extend(replace(v, rule=row.rule) for v in found)
    return verdicts


def power_verdicts(row: Row, where: str) -> list[Verdict]:
    """The power targets on the TPR drop, against the one-cell and the Bonferroni oracles."""
    if row.oracle.single > HORIZON * MINUTES_PER_LOOK:
        return []
    found = []
    for label, oracle, target in (
        ("median TTD <= 2.0x oracle (1 cell)", row.oracle.single, POWER_SINGLE_TARGET),
        ("median TTD <= 1.2x oracle (Bonferroni)", row.oracle.bonferroni, POWER_BONFERRONI_TARGET),
    ):
        ratio = row.ratio(row.median, oracle)
        text = "n/a" if math.isnan(ratio) else f"{ratio:.2f}"
        found.append(Verdict(label, where, text, bool(ratio <= target)))
    return found


def detection_verdicts(row: Row, where: str) -> list[Verdict]:
    """Ratios to the 1-cell oracle; not judged when even the oracle needs more than the step."""
    oracle = row.oracle.single
    if oracle > HORIZON * MINUTES_PER_LOOK:
        text = f"oracle needs {oracle:.0f} min > the step"
        return [Verdict("TTD vs oracle: not judged", where, text, True)]
    found = []
    for label, value, target in (
        ("median TTD <= 1.2x oracle", row.median, MEDIAN_TARGET),
        ("p90 TTD <= 1.8x oracle", row.p90, P90_TARGET),
    ):
        ratio = row.ratio(value, oracle)
        text = "n/a" if math.isnan(ratio) else f"{ratio:.2f}"
        found.append(Verdict(label, where, text, bool(ratio <= target)))
    return found
