"""Draw every chart a ``ReportData`` supports and write them, with the page, to a directory.

Charts: ``canary-weight.png`` (when there are decisions), ``gate-<gate>.png`` for each gate
with estimates over time, ``forest-<gate>.png`` for each gate of the snapshot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fairshift.report.page import Chart, render_page
from fairshift.report.timeline import ReportData

PAGE_NAME = "report.html"


@dataclass(frozen=True)
class ReportFiles:
    """What was written."""

    page: Path
    charts: tuple[Path, ...]


def slug(name: str) -> str:
    """A file-name-safe form of a gate name."""
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", name).strip("-") or "gate"


def snapshot_gates(data: ReportData) -> list[str]:
    names: dict[str, None] = {}
    for e in data.snapshot:
        if e.estimate is not None:
            names.setdefault(e.gate, None)
    return list(names)


def build_charts(data: ReportData) -> list[Chart]:
    """Every chart the data supports, in page order.

    matplotlib is imported here, when a chart is drawn: the operator loads this module at
    start but draws only when a rollout ends, and matplotlib is 27 MiB of resident memory.
    """
    from fairshift.report import charts as figures

    charts: list[Chart] = []
    if data.looks:
        charts.append(
            Chart(
                "canary-weight.png",
                "Canary weight and decisions",
                "share of live traffic on the candidate (and mirrored to it) over time; "
                "each marker is a decision, labelled by its action",
                figures.png_bytes(figures.weights_figure(data.looks, data.timeline_note)),
            )
        )
    if any(look.guard_health for look in data.looks):
        charts.append(
            Chart(
                "guard-health.png",
                "The guard after promotion",
                "the guarded model's health at each of the guard's records (hourly attestations, "
                "warnings, breaches) and the worst detector against its breach level (1 = breach)",
                figures.png_bytes(figures.guard_figure(data.looks)),
            )
        )
    for gate in figures.gate_names(data.looks):
        charts.append(
            Chart(
                f"gate-{slug(gate)}.png",
                f"Gate {gate} over time",
                "estimate with its confidence bounds at each decision, per slice; "
                "dashed lines are the gate's limits, the shaded band is acceptable",
                figures.png_bytes(figures.gate_timeline_figure(gate, data.looks)),
            )
        )
    for gate in snapshot_gates(data):
        charts.append(
            Chart(
                f"forest-{slug(gate)}.png",
                f"Gate {gate}: {data.snapshot_label}",
                "estimate and confidence bounds per slice against the gate's limits",
                figures.png_bytes(figures.forest_figure(gate, data.snapshot)),
            )
        )
    return charts


def write_report(data: ReportData, out_dir: Path, generated_at: datetime) -> ReportFiles:
    """Write the PNGs and ``report.html`` (with the same PNGs embedded) into ``out_dir``."""
    charts = build_charts(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [write_bytes(out_dir / chart.name, chart.png) for chart in charts]
    page = out_dir / PAGE_NAME
    page.write_text(render_page(data, charts, generated_at), encoding="utf-8")
    return ReportFiles(page, tuple(written))


def write_bytes(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path
