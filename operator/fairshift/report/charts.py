"""The report's charts, drawn with matplotlib's object API (Agg via ``Figure``; no pyplot).

- ``gate_timeline_figure``: one gate, one panel per slice: the estimate with its confidence
  bounds at every look, coloured by outcome, the acceptable region shaded and its limits as
  dashed lines, and the rollout's decisions (other than holds) as faint vertical lines.
- ``weights_figure``: canary weight and mirror percent over time, with every decision as a
  marker labelled by its action.
- ``forest_figure``: one look at one gate: estimate and bounds per slice against the limits.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from datetime import datetime

from matplotlib import dates as mdates
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from fairshift.api.status import GateEvidence
from fairshift.report.regions import Region, acceptable_region, estimate_label
from fairshift.report.timeline import Look

OUTCOME_COLOR = {
    "pass": "#2e7d32",
    "fail": "#c62828",
    "warn": "#ef6c00",
    "pending": "#1565c0",
    "inconclusive": "#8e24aa",
    "insufficient": "#9e9e9e",
    "no-data": "#616161",
    "skipped": "#bdbdbd",
}
ACTION_COLOR = {
    "hold": "#9e9e9e",
    "advance": "#2e7d32",
    "step-done": "#2e7d32",
    "shadow-done": "#2e7d32",
    "steps-done": "#2e7d32",
    "promote": "#1565c0",
    "promote-full": "#1565c0",
    "promotion-done": "#1565c0",
    "halt": "#ef6c00",
    "pause": "#ef6c00",
    "resume": "#00838f",
    "resume-shadow": "#00838f",
    "rollback": "#c62828",
    "analysis-failed": "#c62828",
    "inconclusive-rollback": "#c62828",
    "abort": "#c62828",
    "rollback-done": "#c62828",
}
QUIET_ACTIONS = ("hold",)
LIMIT_COLOR = "#c62828"
REGION_COLOR = "#43a047"
DPI = 110


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def outcome_color(outcome: str) -> str:
    return OUTCOME_COLOR.get(outcome, "#616161")


def action_color(action: str) -> str:
    return ACTION_COLOR.get(action, "#455a64")


# --- shared drawing ---------------------------------------------------------------------------


def widen(ax: Axes, region: Region, vertical: bool = False) -> tuple[float, float]:
    """Widen the value axis to show the region's limits (call after drawing the data)."""
    current = ax.get_xlim() if vertical else ax.get_ylim()
    low, high = min([current[0], *region.limits]), max([current[1], *region.limits])
    pad = 0.08 * ((high - low) or 1.0)
    low, high = low - pad, high + pad
    if vertical:
        ax.set_xlim(low, high)
    else:
        ax.set_ylim(low, high)
    return low, high


def shade(ax: Axes, region: Region, span: tuple[float, float], vertical: bool = False) -> None:
    """Shade the acceptable part of ``span`` and draw the region's limits as dashed lines."""
    shade_low, shade_high = max(region.low, span[0]), min(region.high, span[1])
    fill, line = (ax.axvspan, ax.axvline) if vertical else (ax.axhspan, ax.axhline)
    if shade_low < shade_high:
        fill(shade_low, shade_high, color=REGION_COLOR, alpha=0.08, lw=0)
    for limit in region.limits:
        line(limit, color=LIMIT_COLOR, ls="--", lw=1.2)


def error_extents(evidence: Sequence[GateEvidence]) -> tuple[list[float], list[float]]:
    """Distances from each estimate down to ``lower`` and up to ``upper`` (0 when absent)."""
    below, above = [], []
    for e in evidence:
        estimate = e.estimate if e.estimate is not None else 0.0
        below.append(max(0.0, estimate - e.lower) if e.lower is not None else 0.0)
        above.append(max(0.0, e.upper - estimate) if e.upper is not None else 0.0)
    return below, above


def estimates(evidence: Sequence[GateEvidence]) -> list[float]:
    """The estimates (callers keep only evidence that has one)."""
    return [e.estimate if e.estimate is not None else math.nan for e in evidence]


def date_numbers(times: Sequence[datetime]) -> list[float]:
    """Times as matplotlib date numbers (days since the epoch, UTC)."""
    return [float(mdates.date2num(t)) for t in times]  # type: ignore[no-untyped-call]


def time_axis(ax: Axes) -> None:
    """Date ticks on the x axis (data given as ``date_numbers``)."""
    locator = mdates.AutoDateLocator(minticks=3, maxticks=7)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(
        mdates.ConciseDateFormatter(locator)  # type: ignore[no-untyped-call]
    )


# --- gate over time ---------------------------------------------------------------------------


def gate_series(looks: Sequence[Look], gate: str) -> dict[str, list[tuple[datetime, GateEvidence]]]:
    """Per slice, the gate's evidence at each look that reported it (in time order)."""
    series: dict[str, list[tuple[datetime, GateEvidence]]] = {}
    for look in looks:
        for e in look.evidence:
            if e.gate != gate or e.estimate is None:
                continue
            points = series.setdefault(e.slice, [])
            if not points or not same_look(points[-1][1], e):
                points.append((look.time, e))
    return series


def same_look(a: GateEvidence, b: GateEvidence) -> bool:
    """Whether ``b`` repeats ``a`` (a transition record carries the last look's evidence)."""
    keys = ("estimate", "lower", "upper", "candidate_samples", "outcome")
    return all(getattr(a, key) == getattr(b, key) for key in keys)


def gate_names(looks: Sequence[Look]) -> list[str]:
    """Gates with at least one estimate, in order of first appearance."""
    names: dict[str, None] = {}
    for look in looks:
        for e in look.evidence:
            if e.estimate is not None:
                names.setdefault(e.gate, None)
    return list(names)


def gate_timeline_figure(gate: str, looks: Sequence[Look]) -> Figure:
    """Small multiples: one panel per slice of ``gate``, sharing both axes."""
    series = gate_series(looks, gate)
    if not series:
        raise ValueError(f"gate {gate}: no estimates to draw")
    slices = sorted(series)
    columns = min(3, len(slices))
    rows = math.ceil(len(slices) / columns)
    figure = Figure(figsize=(max(7.5, 4.4 * columns), 2.7 * rows + 1.1))
    axes = figure.subplots(rows, columns, sharex=True, sharey=True, squeeze=False)
    first = series[slices[0]][0][1]
    events = [look for look in looks if look.action not in QUIET_ACTIONS]
    for ax, name in zip(axes.flat, slices, strict=False):
        draw_slice(ax, name, series[name], events)
    for ax in list(axes.flat)[len(slices) :]:
        ax.set_visible(False)
    region = acceptable_region(first)
    span = widen(axes.flat[0], region)  # the y axis is shared: this sets every panel's range
    for ax in list(axes.flat)[: len(slices)]:
        shade(ax, region, span)
    for ax in axes[:, 0]:
        ax.set_ylabel("estimate")
    for ax in axes[-1, :]:
        ax.set_xlabel("time (UTC)")
    figure.suptitle(
        f"{gate} ({first.severity})\n{estimate_label(first)}; acceptable: {region.label}",
        fontsize=11,
    )
    handles, labels = outcome_legend(series)
    figure.legend(handles, labels, loc="lower center", ncol=8, fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    return figure


def draw_slice(
    ax: Axes,
    name: str,
    points: Sequence[tuple[datetime, GateEvidence]],
    events: Sequence[Look],
) -> None:
    times = date_numbers([t for t, _ in points])
    evidence = [e for _, e in points]
    values = estimates(evidence)
    for look in events:
        ax.axvline(date_numbers([look.time])[0], color=action_color(look.action), alpha=0.25, lw=1)
    ax.plot(times, values, color="#607d8b", lw=0.8, zorder=2)
    ax.errorbar(
        times,
        values,
        yerr=error_extents(evidence),
        fmt="none",
        ecolor="#78909c",
        elinewidth=1,
        capsize=2,
        zorder=2,
    )
    colors = [outcome_color(e.outcome.value) for e in evidence]
    ax.scatter(times, values, c=colors, s=18, zorder=3)
    ax.set_title(name, fontsize=9)
    ax.grid(alpha=0.25)
    time_axis(ax)


def outcome_legend(
    series: dict[str, list[tuple[datetime, GateEvidence]]],
) -> tuple[list[Artist], list[str]]:
    outcomes = sorted({e.outcome.value for points in series.values() for _, e in points})
    handles: list[Artist] = []
    for outcome in outcomes:
        handles.append(
            Line2D([], [], marker="o", ls="", color=outcome_color(outcome), markersize=5)
        )
    handles.append(Line2D([], [], color=LIMIT_COLOR, ls="--"))
    handles.append(Line2D([], [], color="#455a64", alpha=0.4))
    return handles, [*outcomes, "limit", "decision (not hold)"]


# --- weights and decisions --------------------------------------------------------------------


def weights_figure(looks: Sequence[Look], note: str = "") -> Figure:
    """Canary weight and mirror over time; decisions as markers labelled by action."""
    if not looks:
        raise ValueError("no decisions to draw")
    figure = Figure(figsize=(11, 4.2))
    ax = figure.subplots()
    weighted = [look for look in looks if look.canary_weight is not None]
    if weighted:
        ax.step(
            date_numbers([x.time for x in weighted]),
            [float(x.canary_weight or 0) for x in weighted],
            where="post",
            color="#1565c0",
            lw=2,
            label="canary weight %",
        )
    mirrored = [look for look in looks if look.mirror_percent is not None]
    if any(look.mirror_percent for look in mirrored):
        ax.step(
            date_numbers([x.time for x in mirrored]),
            [float(x.mirror_percent or 0) for x in mirrored],
            where="post",
            color="#8e24aa",
            lw=1.5,
            ls="--",
            label="mirror %",
        )
    draw_decisions(ax, looks)
    ax.set_ylim(-5, 118)
    ax.set_ylabel("% of traffic")
    ax.set_xlabel("time (UTC)")
    ax.grid(alpha=0.25)
    time_axis(ax)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.set_title("canary weight and decisions" + (f" ({note})" if note else ""), fontsize=11)
    figure.tight_layout()
    return figure


def draw_decisions(ax: Axes, looks: Sequence[Look]) -> None:
    """Markers at each decision; every action other than hold gets a label."""
    previous_label = None
    for index, look in enumerate(looks):
        x = date_numbers([look.time])[0]
        y = float(look.canary_weight or 0)
        quiet = look.action in QUIET_ACTIONS
        ax.plot(
            [x],
            [y],
            marker="." if quiet else "D",
            ls="",
            color=action_color(look.action),
            markersize=5 if quiet else 7,
            zorder=4,
        )
        if quiet or (look.action, y) == previous_label:
            continue
        previous_label = (look.action, y)
        ax.annotate(
            look.action,
            (x, y),
            xytext=(4, 8 + 10 * (index % 2)),
            textcoords="offset points",
            fontsize=8,
            rotation=25,
            color=action_color(look.action),
        )


# --- one look ---------------------------------------------------------------------------------


def forest_figure(gate: str, evidence: Sequence[GateEvidence]) -> Figure:
    """Estimate and bounds per slice (one row each) for one gate, against its limits."""
    rows = [e for e in evidence if e.gate == gate and e.estimate is not None]
    if not rows:
        raise ValueError(f"gate {gate}: no estimates to draw")
    figure = Figure(figsize=(8.5, 1.3 + 0.42 * len(rows)))
    ax = figure.subplots()
    positions = list(range(len(rows)))[::-1]
    ax.errorbar(
        estimates(rows),
        positions,
        xerr=error_extents(rows),
        fmt="none",
        ecolor="#78909c",
        elinewidth=1.5,
        capsize=3,
    )
    ax.scatter(
        estimates(rows), positions, c=[outcome_color(e.outcome.value) for e in rows], s=30, zorder=3
    )
    ax.set_yticks(positions, [f"{e.slice}  [{e.outcome.value}]" for e in rows], fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    region = acceptable_region(rows[0])
    shade(ax, region, widen(ax, region, vertical=True), vertical=True)
    ax.set_xlabel(estimate_label(rows[0]))
    ax.grid(axis="x", alpha=0.25)
    ax.set_title(f"{gate} ({rows[0].severity}): acceptable {region.label}", fontsize=11)
    figure.tight_layout()
    return figure


HEALTH_LEVELS = {"Healthy": 0, "Warning": 1, "Breached": 2, "Degraded": 3}


def guard_figure(looks: Sequence[Look]) -> Figure:
    """The guard over time: its health at each of its records (attestations, warnings,
    breaches) and how close the worst detector came to its breach level."""
    guarded = [look for look in looks if look.guard_health in HEALTH_LEVELS]
    if not guarded:
        raise ValueError("no guard records to draw")
    figure = Figure(figsize=(11, 3.6))
    ax = figure.subplots()
    times = date_numbers([x.time for x in guarded])
    ax.step(
        times,
        [HEALTH_LEVELS[str(x.guard_health)] for x in guarded],
        where="post",
        color="#37474f",
        lw=2,
        marker="o",
        ms=3,
        label="health (at each guard record)",
    )
    ax.set_yticks(list(HEALTH_LEVELS.values()), list(HEALTH_LEVELS))
    ax.set_ylim(-0.5, 3.5)
    levels = [
        (t, x.guard_level) for t, x in zip(times, guarded, strict=True) if x.guard_level is not None
    ]
    if levels:
        level_ax = ax.twinx()
        level_ax.plot(
            [t for t, _ in levels],
            [v for _, v in levels],
            "o-",
            color="#c62828",
            ms=3,
            lw=1,
            label="worst detector / breach level",
        )
        level_ax.axhline(1.0, color="#c62828", ls=":", lw=1)
        level_ax.set_ylabel("worst detector / breach level", fontsize=8)
        level_ax.set_ylim(bottom=0)
    ax.set_xlabel("time (UTC)")
    ax.grid(alpha=0.25)
    time_axis(ax)
    ax.set_title("the guard after promotion", fontsize=11)
    figure.tight_layout()
    return figure
