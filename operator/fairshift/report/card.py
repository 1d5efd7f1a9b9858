"""The live model card: a rollout's model, its guards, its evidence and its record, for a
compliance reviewer, as Markdown and as one self-contained HTML page.

Built from what the operator stores: the ModelRollout (spec and status) and its audit chain.
Sections: what the model is; which slices and gates guard it; the current value of every
gate per slice with its confidence bounds; the decisions so far; the alerts so far (every
look where a gate warned or failed on a slice, and the guard's warnings and breaches after
promotion); the audit chain's head and whether it verifies. The content is built once
(:class:`ModelCard`) and rendered twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from fairshift.api.analysis import Gate
from fairshift.api.spec import ModelRolloutSpec, SpecError, parse_spec
from fairshift.api.status import GateEvidence
from fairshift.report.page import STYLE
from fairshift.report.timeline import ReportInputError, parse_evidence

MARKDOWN_NAME = "model-card.md"
HTML_NAME = "model-card.html"
ALERT_OUTCOMES = ("fail", "warn")
GUARD_ALERTS = ("guard-warning", "guard-alert", "guard-breached", "guard-fallback")
GUARD_GRADES = ("warning", "breached")
KEPT_ALERTS = 50
MESSAGE_CHARS = 200


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Section:
    """A heading, a few sentences, and an optional table."""

    title: str
    text: tuple[str, ...] = ()
    table: Table | None = None


@dataclass(frozen=True)
class ModelCard:
    title: str
    subtitle: str
    sections: tuple[Section, ...]


def number(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def short(text: Any, limit: int = MESSAGE_CHARS) -> str:
    value = " ".join(str(text or "").split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def chain_note(problems: Sequence[str], records: int) -> str:
    """One line on the chain: intact, or how many problems ``audit verify`` will list."""
    if problems:
        return f"{len(problems)} problem(s) over {records} records: run fairshift audit verify"
    return f"intact ({records} records checked against the recorded head)"


def build_card(
    rollout: str,
    obj: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    chain_note: str,
    generated_at: datetime,
) -> ModelCard:
    """The card of ``rollout`` (``namespace/name``) from the object and its audit records."""
    status = obj.get("status") or {}
    spec, spec_problem = parsed_spec(obj.get("spec"))
    sections = (
        identity_section(rollout, spec, spec_problem, status),
        guards_section(spec),
        values_section(records, status),
        decisions_section(records),
        alerts_section(records),
        audit_section(status, records, chain_note),
    )
    return ModelCard(
        title=f"Model card: {rollout}",
        subtitle=(
            f"Live card generated {generated_at:%Y-%m-%d %H:%M:%S} UTC from the ModelRollout "
            "and its audit chain; it changes as the rollout goes on."
        ),
        sections=sections,
    )


def parsed_spec(raw: Any) -> tuple[ModelRolloutSpec | None, str]:
    if not isinstance(raw, Mapping):
        return None, "no spec given"
    try:
        return parse_spec(dict(raw)), ""
    except SpecError as error:
        return None, f"the spec is not valid: {error}"


def identity_section(
    rollout: str,
    spec: ModelRolloutSpec | None,
    spec_problem: str,
    status: Mapping[str, Any],
) -> Section:
    rows = [("Rollout (ModelRollout)", rollout)]
    if spec is not None:
        rows.append(("Serving Deployment", spec.target_ref.name))
    rows += [
        ("Stable revision (serving)", str(status.get("stableRevision") or "–")),
        ("Candidate revision", str(status.get("candidateRevision") or "–")),
        ("Phase", str(status.get("phase") or "–")),
        ("Latest verdict", str(status.get("verdict") or "–")),
    ]
    guard = status.get("guard") or {}
    if guard.get("health"):
        rows.append(("Guard health (live model)", guard_health(guard)))
    for notification in spec.notifications if spec is not None else []:
        settings = notification.mlflow
        if settings is None:
            continue
        rows.append(("MLflow experiment", f"{settings.experiment} at {settings.tracking_uri}"))
        model = settings.registered_model
        if model is not None:
            which = f"version {model.version}" if model.version else f"alias @{model.alias}"
            rows.append(("Registered model", f"{model.name} ({which})"))
    text = (spec_problem,) if spec_problem else ()
    return Section("What the model is", text, Table(("", ""), tuple(rows)))


def guard_health(guard: Mapping[str, Any]) -> str:
    since = f" since {guard['since']}" if guard.get("since") else ""
    return (
        f"{guard['health']}{since}: {guard.get('looks', 0)} looks, "
        f"{guard.get('breaches', 0)} breaches"
    )


def bound_text(gate: Gate) -> str:
    words = {
        "min": "at least",
        "max": "at most",
        "maxIncrease": "at most this much above stable:",
        "maxDecrease": "at most this much below stable:",
        "maxChange": "within this much of stable:",
    }
    return f"{words[gate.bound_kind]} {gate.threshold:g}"


def measured(gate: Gate) -> str:
    return gate.metric or f"PromQL: {short(gate.query, 80)}"


def guards_section(spec: ModelRolloutSpec | None) -> Section:
    if spec is None or spec.analysis is None:
        return Section("What guards it", ("No analysis is declared: no gate guards this model.",))
    analysis = spec.analysis
    slices = analysis.slices
    attributes = ", ".join(slices.attributes) or "none (the whole population only)"
    text: tuple[str, ...] = (
        f"Slices: by {attributes}"
        + (", and their intersections" if slices.intersections and slices.attributes else "")
        + f"; reference group: {slices.reference}; a slice is judged once it has at least "
        f"{slices.min_samples} samples.",
        f"Every gate is checked on every slice every {analysis.interval} with always-valid "
        f"(peeking-safe) confidence sequences; the whole rollout's false-rollback budget is "
        f"alpha = {analysis.alpha:g}.",
    )
    guard = spec.guard
    if spec.guarded:
        text += (
            f"After promotion the same gates keep judging the live model every {guard.interval}"
            f" (change detectors with at most one false breach per {guard.false_alarm_days:g} "
            f"days on average, warnings at one per {guard.warning_days:g} days); an hourly "
            "record on the audit chain attests that the guard kept looking.",
        )
    else:
        text += ("After promotion no guard watches the live model (spec.guard.enabled: false).",)
    rows = tuple(
        (
            gate.name,
            measured(gate),
            bound_text(gate),
            gate.severity,
            guard.response(gate) if spec.guarded else "–",
        )
        for gate in analysis.gates
    )
    headers = ("Gate", "Measures", "Bound", "Severity", "On a breach after promotion")
    return Section("What guards it", text, Table(headers, rows))


def latest_evidence(
    records: Sequence[Mapping[str, Any]], status: Mapping[str, Any]
) -> tuple[tuple[GateEvidence, ...], str]:
    """The evidence of the newest record that has some, else the status's."""
    for record in reversed(fresh_looks(records)):
        if record.get("evidence"):
            where = f"record {record.get('seq')}"
            return parse_evidence(record["evidence"], where), f"the look of {record.get('time')}"
    if status.get("evidence"):
        return parse_evidence(status["evidence"], "status"), "the rollout's status"
    return (), ""


def values_section(records: Sequence[Mapping[str, Any]], status: Mapping[str, Any]) -> Section:
    try:
        evidence, source = latest_evidence(records, status)
    except ReportInputError as error:
        return Section("Current values per slice", (f"The evidence cannot be read: {error}",))
    if not evidence:
        return Section("Current values per slice", ("No analysis has looked at this model yet.",))
    rows = tuple(
        (
            e.gate,
            e.slice,
            number(e.estimate),
            f"[{number(e.lower)}, {number(e.upper)}]",
            f"{e.bound} {e.threshold:g}",
            e.outcome.value,
            f"{e.candidate_samples:g}",
        )
        for e in evidence
    )
    text = (f"From {source}: the worst cells, with the confidence bounds the decision used.",)
    headers = ("Gate", "Slice", "Estimate", "Bounds", "Bound", "Outcome", "Samples")
    return Section("Current values per slice", text, Table(headers, rows))


def decisions_section(records: Sequence[Mapping[str, Any]]) -> Section:
    decisions = [r for r in records if r.get("action") != "hold"]
    looks = len(records) - len(decisions)
    text = (f"{len(decisions)} decisions and {looks} analysis looks are recorded.",)
    rows = tuple(
        (
            str(r.get("seq")),
            str(r.get("time")),
            str(r.get("action")),
            str(r.get("reason")),
            str(r.get("candidateRevision") or "–"),
            short(r.get("message")),
        )
        for r in decisions
    )
    headers = ("Seq", "Time", "Decision", "Reason", "Revision", "Why")
    return Section("Decisions so far", text, Table(headers, rows))


def alerts_of(record: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """A look's gates that warned or failed on a slice, and a guard alert's worst cells."""
    rows: list[tuple[str, ...]] = [
        (
            str(record.get("time")),
            str(cell.get("gate")),
            str(cell.get("slice")),
            str(cell.get("outcome")),
            f"{number(cell.get('estimate'))} [{number(cell.get('lower'))}, "
            f"{number(cell.get('upper'))}]",
            str(record.get("action")),
        )
        for cell in record.get("evidence") or []
        if cell.get("outcome") in ALERT_OUTCOMES
    ]
    if str(record.get("action")) in GUARD_ALERTS:
        rows += [
            (
                str(record.get("time")),
                str(cell.get("gate")),
                str(cell.get("slice")),
                f"guard {cell.get('grade')}",
                f"{number(cell.get('estimate'))} (detector at {number(cell.get('level'))} of "
                "its breach threshold)",
                str(record.get("action")),
            )
            for cell in (record.get("guard") or {}).get("worst") or []
            if cell.get("grade") in GUARD_GRADES
        ]
    return rows


def fresh_looks(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The records, less those repeating the previous record's evidence (a transition
    carries the look that caused it, and the next transition the same again)."""
    fresh, previous = [], None
    for record in records:
        evidence = record.get("evidence") or None
        if evidence is None or evidence != previous or str(record.get("action")) in GUARD_ALERTS:
            fresh.append(record)
        previous = evidence or previous
    return fresh


def alerts_section(records: Sequence[Mapping[str, Any]]) -> Section:
    alerts = [row for record in fresh_looks(records) for row in alerts_of(record)]
    if not alerts:
        return Section("Alerts so far", ("No gate has warned or failed on any slice.",))
    kept = alerts[-KEPT_ALERTS:]
    text = (
        f"{len(alerts)} alert(s): a gate warned or failed on a slice"
        + (f"; the latest {len(kept)} are listed." if len(kept) < len(alerts) else "."),
    )
    headers = ("Time", "Gate", "Slice", "Outcome", "Estimate", "Decision")
    return Section("Alerts so far", text, Table(headers, tuple(kept)))


def audit_section(
    status: Mapping[str, Any], records: Sequence[Mapping[str, Any]], chain_note: str
) -> Section:
    head = status.get("auditHead") or (records[-1].get("hash") if records else None)
    seq = status.get("auditSeq") or (records[-1].get("seq") if records else None)
    rows = (
        ("Head (SHA-256)", str(head or "–")),
        ("Records", f"{seq or 0} ({len(records)} kept in the store)"),
        ("Verification", chain_note),
    )
    text = (
        "Every decision and analysis look is a record of a SHA-256 hash chain; the head "
        "changes with every record. kubectl fairshift audit verify NAME checks it.",
    )
    return Section("Audit chain", text, Table(("", ""), rows))


# --- rendering --------------------------------------------------------------------------------


def md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def card_markdown(card: ModelCard) -> str:
    """The card as GitHub-flavoured Markdown."""
    lines = [f"# {card.title}", "", f"_{card.subtitle}_", ""]
    for section in card.sections:
        lines += [f"## {section.title}", ""]
        for paragraph in section.text:
            lines += [paragraph, ""]
        if section.table is not None and section.table.rows:
            headers = section.table.headers
            lines.append("| " + " | ".join(md_cell(h) for h in headers) + " |")
            lines.append("|" + "---|" * len(headers))
            for row in section.table.rows:
                lines.append("| " + " | ".join(md_cell(c) for c in row) + " |")
            lines.append("")
    return "\n".join(lines)


def table_html(table: Table) -> str:
    head = ""
    if any(table.headers):
        head = "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in table.headers) + "</tr>"
    body = "".join(
        "<tr>" + "".join(cell_html(i, c, table) for i, c in enumerate(row)) + "</tr>"
        for row in table.rows
    )
    return f"<table>{head}{body}</table>"


def cell_html(index: int, text: str, table: Table) -> str:
    if not any(table.headers) and index == 0:
        return f"<th>{escape(text)}</th>"
    css = f' class="{text}"' if text in ("fail", "warn", "pass") else ""
    return f"<td{css}>{escape(text)}</td>"


def card_html(card: ModelCard) -> str:
    """The card as one self-contained HTML page (everything escaped, nothing loaded)."""
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f"<title>{escape(card.title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(card.title)}</h1><p class=muted>{escape(card.subtitle)}</p>",
    ]
    for section in card.sections:
        parts.append(f"<h2>{escape(section.title)}</h2>")
        parts += [f"<p>{escape(paragraph)}</p>" for paragraph in section.text]
        if section.table is not None and section.table.rows:
            parts.append(table_html(section.table))
    parts.append("</body></html>")
    return "\n".join(parts)


def card_files(card: ModelCard) -> dict[str, str]:
    """The card's two files by name: ``model-card.md`` and ``model-card.html``."""
    return {MARKDOWN_NAME: card_markdown(card), HTML_NAME: card_html(card)}
