"""The report as one self-contained HTML page: facts, charts as data URIs, tables.

Everything taken from the inputs is escaped; the page loads nothing from anywhere.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from fairshift.api.status import GateEvidence
from fairshift.report.timeline import Look, ReportData

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #212121; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border-bottom: 1px solid #e0e0e0; padding: 3px 8px; text-align: left; }
th { background: #f5f5f5; }
figure { margin: 1.5em 0; } figcaption { color: #616161; font-size: 0.85em; }
img { max-width: 100%; border: 1px solid #eeeeee; }
.fail { color: #c62828; font-weight: bold; } .warn { color: #ef6c00; }
.pass { color: #2e7d32; } .muted { color: #757575; }
"""


@dataclass(frozen=True)
class Chart:
    """One chart: its file name, heading, what it shows, and the PNG."""

    name: str
    title: str
    caption: str
    png: bytes

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def number(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def facts_html(facts: Sequence[tuple[str, str]]) -> str:
    if not facts:
        return ""
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
    return f"<table>{rows}</table>"


def chart_html(chart: Chart) -> str:
    return (
        f"<figure><h3>{escape(chart.title)}</h3>"
        f'<img src="{chart.data_uri()}" alt="{escape(chart.title)}">'
        f"<figcaption>{escape(chart.caption)} ({escape(chart.name)})</figcaption></figure>"
    )


def evidence_html(evidence: Sequence[GateEvidence]) -> str:
    head = (
        "<tr><th>gate</th><th>slice</th><th>reference</th><th>stable</th><th>candidate</th>"
        "<th>estimate</th><th>bounds</th><th>limit</th><th>n (stable/candidate)</th>"
        "<th>outcome</th><th>reason</th></tr>"
    )
    rows = []
    for e in evidence:
        bounds = (
            "–"
            if e.lower is None and e.upper is None
            else (f"[{number(e.lower)}, {number(e.upper)}]")
        )
        rows.append(
            f"<tr><td>{escape(e.gate)} ({escape(e.severity)})</td><td>{escape(e.slice)}</td>"
            f"<td>{escape(e.reference or '–')}</td><td>{number(e.stable)}</td>"
            f"<td>{number(e.candidate)}</td><td>{number(e.estimate)}</td><td>{bounds}</td>"
            f"<td>{escape(e.bound)} {e.threshold:g}</td>"
            f"<td>{e.stable_samples:.0f}/{e.candidate_samples:.0f}</td>"
            f'<td class="{escape(e.outcome.value)}">{escape(e.outcome.value)}</td>'
            f"<td>{escape(e.reason)}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def decisions_html(looks: Sequence[Look]) -> str:
    head = (
        "<tr><th>time (UTC)</th><th>action</th><th>reason</th><th>phase</th><th>step</th>"
        "<th>canary %</th><th>mirror %</th></tr>"
    )
    rows = [
        f"<tr><td>{look.time:%Y-%m-%d %H:%M:%S}</td><td>{escape(look.action)}</td>"
        f"<td>{escape(look.reason)}</td><td>{escape(look.phase)}</td>"
        f"<td>{'–' if look.step is None else look.step + 1}</td>"
        f"<td>{'–' if look.canary_weight is None else look.canary_weight}</td>"
        f"<td>{'–' if look.mirror_percent is None else look.mirror_percent}</td></tr>"
        for look in looks
    ]
    return f"<table>{head}{''.join(rows)}</table>"


def render_page(data: ReportData, charts: Sequence[Chart], generated_at: datetime) -> str:
    """The whole HTML document."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>fairshift report: {escape(data.title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>fairshift report: {escape(data.title)}</h1>",
        f'<p class="muted">generated {generated_at:%Y-%m-%d %H:%M:%S} UTC</p>',
        facts_html(data.facts),
    ]
    if charts:
        parts.append("<h2>Charts</h2>")
        parts += [chart_html(chart) for chart in charts]
    if data.snapshot:
        parts += [f"<h2>Gate evidence: {escape(data.snapshot_label)}</h2>"]
        parts.append(evidence_html(data.snapshot))
    if data.looks:
        parts.append("<h2>Decisions</h2>")
        if data.timeline_note:
            parts.append(f'<p class="muted">{escape(data.timeline_note)}</p>')
        parts.append(decisions_html(data.looks))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
