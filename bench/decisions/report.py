"""Markdown tables and matplotlib figures (Agg backend) of a run."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from bench.decisions.engine_rule import ENGINE_RULES
from bench.decisions.run import RULES, Outcome
from bench.decisions.summary import (
    Row,
    Verdict,
    event_tick,
    minutes,
)
from bench.decisions.world import HORIZON, SCENARIOS

HORIZON_MINUTES = HORIZON * 0.5
PRIMARY_RULES = {r.name for r in ENGINE_RULES if r.primary is not None}
MARKERS = {
    "fairshift": "o",
    "fairshift, primary: tpr gate": "P",
    "naive z-test": "s",
    "flagger": "^",
    "argo": "v",
    "kayenta": "D",
}


def fmt_minutes(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"> {HORIZON_MINUTES:g}" if math.isinf(value) else f"{value:.1f}"


def fmt_ratio(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return "inf" if math.isinf(value) else f"{value:.2f}"


def table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def ordered(rows: list[Row], scenario: str) -> list[Row]:
    chosen = [r for r in rows if r.scenario == scenario]
    return sorted(chosen, key=lambda r: (r.rps, RULES.index(r.rule)))


def false_rollback_table(rows: list[Row]) -> str:
    keep = [s.name for s in SCENARIOS if s.expect == "keep"]
    levels = sorted({r.rps for r in rows})
    header = ["rule"] + [f"{s} @ {rps} rps" for s in keep for rps in levels]
    body = []
    for rule in RULES:
        cells = [rule]
        for s in keep:
            for rps in levels:
                match = [r for r in rows if (r.scenario, r.rps, r.rule) == (s, rps, rule)]
                cells.append(f"{match[0].rate:.3f} ({match[0].events}/{match[0].rollouts})")
        body.append(cells)
    return table(header, body)


def detection_table(rows: list[Row], scenario: str) -> str:
    header = [
        "rps",
        "rule",
        "detected",
        "median min",
        "p90 min",
        "oracle min (1 cell)",
        "median / oracle",
        "p90 / oracle",
        "oracle min (Bonferroni)",
        "median / oracle B",
        "p90 / oracle B",
        "oracle min (primary share)",
        "median / oracle P",
    ]
    body = []
    for r in ordered(rows, scenario):
        single, split = r.oracle.single, r.oracle.bonferroni
        declared = r.rule in PRIMARY_RULES
        shared = [fmt_minutes(r.oracle.primary), fmt_ratio(r.ratio(r.median, r.oracle.primary))]
        body.append(
            [
                str(r.rps),
                r.rule,
                f"{r.rate:.2f} ({r.events}/{r.rollouts})",
                fmt_minutes(r.median),
                fmt_minutes(r.p90),
                fmt_minutes(single),
                fmt_ratio(r.ratio(r.median, single)),
                fmt_ratio(r.ratio(r.p90, single)),
                fmt_minutes(split),
                fmt_ratio(r.ratio(r.median, split)),
                fmt_ratio(r.ratio(r.p90, split)),
                *(shared if declared else ["", ""]),
            ]
        )
    return table(header, body)


def verdict_table(verdicts: list[Verdict]) -> str:
    body = [[v.target, v.where, v.rule, v.value, verdict_word(v)] for v in verdicts]
    return table(["target", "where", "rule", "value", "verdict"], body)


def verdict_word(v: Verdict) -> str:
    if "not judged" in v.target:
        return "n/a"
    return "met" if v.met else "**missed**"


def all_tables(rows: list[Row], verdicts: list[Verdict]) -> str:
    parts = ["### False rollbacks (scenarios where keeping the candidate is right)", ""]
    parts += [false_rollback_table(rows), ""]
    for s in SCENARIOS:
        if s.expect == "keep":
            continue
        what = "drift flagged" if s.expect == "warn" else "rolled back"
        parts += [f"### {s.name}: {s.description} ({what})", "", detection_table(rows, s.name), ""]
    parts += ["### fairshift against the targets", "", verdict_table(verdicts), ""]
    return "\n".join(parts)


# --- figures ----------------------------------------------------------------------------------


def tradeoff_figure(rows: list[Row], outcomes: list[Outcome], path: Path) -> None:
    """False rollback rate (A/A) against the median time to detect over regression rollouts."""
    levels = sorted({r.rps for r in rows})
    figure, axes = plt.subplots(1, len(levels), figsize=(4.2 * len(levels), 3.8), squeeze=False)
    regressions = {s.name: s for s in SCENARIOS if s.expect == "rollback"}
    for ax, rps in zip(axes[0], levels, strict=True):
        for rule in RULES:
            aa = [r for r in rows if (r.scenario, r.rps, r.rule) == ("a/a", rps, rule)]
            ticks = [
                event_tick(o, regressions[o.scenario])
                for o in outcomes
                if o.rps == rps and o.rule == rule and o.scenario in regressions
            ]
            median = float(np.quantile(minutes(ticks), 0.5, method="inverted_cdf"))
            shown = min(median, HORIZON_MINUTES * 1.05)
            ax.scatter(aa[0].rate, shown, marker=MARKERS[rule], s=60, label=rule)
        ax.axhline(HORIZON_MINUTES, color="grey", lw=0.8, ls=":")
        ax.axvline(0.05, color="grey", lw=0.8, ls="--")
        ax.set_xlim(-0.03, 1.03)
        ax.set_ylim(0, HORIZON_MINUTES * 1.12)
        ax.set_title(f"{rps} requests/s")
        ax.set_xlabel("false rollback rate, A/A")
        ax.set_ylabel("median minutes to detect (regressions)")
    axes[0][0].legend(fontsize=8, loc="center right")
    figure.suptitle("Above the dotted line: not detected within the 60-minute step", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def detection_figure(rows: list[Row], outcomes: list[Outcome], rps: int, path: Path) -> None:
    """Cumulative share of rollouts detected over time, per rule and regression scenario."""
    shown = [s for s in SCENARIOS if s.expect != "keep"]
    columns = 4
    lines = math.ceil(len(shown) / columns)
    figure, axes = plt.subplots(lines, columns, figsize=(16, 3.6 * lines), squeeze=False)
    grid = np.arange(0, HORIZON_MINUTES + 0.5, 0.5)
    for ax, s in zip(axes.flat, shown, strict=False):
        for rule in RULES:
            ticks = [
                event_tick(o, s)
                for o in outcomes
                if (o.scenario, o.rps, o.rule) == (s.name, rps, rule)
            ]
            times = minutes(ticks)
            share = [(times <= g).mean() for g in grid]
            ax.step(grid, share, where="post", label=rule)
        oracle = next(r.oracle for r in rows if (r.scenario, r.rps) == (s.name, rps))
        if math.isfinite(oracle.single) and oracle.single <= HORIZON_MINUTES:
            ax.axvline(oracle.single, color="black", ls="--", lw=0.8, label="oracle (1 cell)")
        if math.isfinite(oracle.bonferroni) and oracle.bonferroni <= HORIZON_MINUTES:
            ax.axvline(oracle.bonferroni, color="black", ls=":", lw=0.8, label="oracle (Bonf.)")
        ax.set_title(s.name, fontsize=10)
        ax.set_xlabel("minutes")
        ax.set_ylabel("share detected")
        ax.set_ylim(-0.02, 1.02)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    axes[0][0].legend(fontsize=7)
    figure.suptitle(f"Time to detect at {rps} requests/s (canary 25%)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
