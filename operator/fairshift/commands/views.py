"""How rollouts look on a terminal: pure functions from ModelRollout dicts to rich renderables.

Nothing here reads the cluster or the clock; ``now`` comes in, so every view is testable.
Status is read leniently: fields this CLI does not know (a newer operator) are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from fairshift.api.names import ACTION_ANNOTATION
from fairshift.api.status import (
    Condition,
    DecisionRecord,
    FallbackShare,
    GateEvidence,
    GuardStatus,
    ModelRolloutStatus,
    Phase,
)
from fairshift.api.times import parse_time
from fairshift.engine.audit import describe_summary
from fairshift.engine.machine import ACTIVE, DESIRED

HASH_CHARS = 12
PHASE_STYLE = {
    Phase.SHADOW: "cyan",
    Phase.CANARY: "blue",
    Phase.PAUSED: "yellow",
    Phase.PROMOTING: "green",
    Phase.SUCCEEDED: "bold green",
    Phase.ROLLING_BACK: "red",
    Phase.ROLLED_BACK: "bold red",
    Phase.FAILED: "bold red",
    Phase.FALLBACK: "bold yellow",
    Phase.KILLED: "bold red",
}
VERDICT_STYLE = {
    "Successful": "green",
    "Failed": "bold red",
    "Inconclusive": "yellow",
    "Error": "red",
}
OUTCOME_STYLE = {
    "pass": "green",
    "fail": "bold red",
    "warn": "yellow",
    "inconclusive": "yellow",
    "no-data": "red",
    "insufficient": "dim",
    "skipped": "dim",
}
CONDITION_MARK = {"True": "[green]✓[/]", "False": "[dim]✗[/]", "Unknown": "[yellow]?[/]"}


class StatusError(ValueError):
    """A status this CLI cannot read (a phase or verdict it does not know)."""


# --- reading ----------------------------------------------------------------------------------


def known_fields(model: type[BaseModel], data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` without the keys ``model`` does not declare (by alias or by name)."""
    names = {f.alias or n for n, f in model.model_fields.items()} | set(model.model_fields)
    return {k: v for k, v in data.items() if k in names}


def parse_status(obj: Mapping[str, Any]) -> ModelRolloutStatus:
    """The status of a ModelRollout dict; a missing status is a fresh one (Initializing)."""
    raw = dict(known_fields(ModelRolloutStatus, obj.get("status") or {}))
    for key, model in (("evidence", GateEvidence), ("conditions", Condition)):
        raw[key] = [known_fields(model, item) for item in raw.get(key) or []]
    raw["decisions"] = [known_fields(DecisionRecord, item) for item in raw.get("decisions") or []]
    try:
        return ModelRolloutStatus.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise StatusError(f"status.{where}: {first['msg']}") from None


def pending_request(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """An earlier request the operator has not handled yet (None when there is none)."""
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(ACTION_ANNOTATION)
    if not raw:
        return None
    try:
        request = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(request, dict):
        return None
    handled = (obj.get("status") or {}).get("handledAction")
    return None if request.get("id") == handled else request


# --- small formats ----------------------------------------------------------------------------


def readable_time(value: str | datetime | None) -> datetime | None:
    """An RFC 3339 time, or None when absent or unreadable (a person's input)."""
    try:
        return parse_time(value)
    except ValueError:
        return None


def age(value: str | datetime | None, now: datetime) -> str:
    """How long ago, as kubectl prints it: ``45s``, ``12m``, ``3h``, ``5d``."""
    then = readable_time(value)
    if then is None:
        return "-"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size, shown_from in (("d", 86400, 172800), ("h", 3600, 10800), ("m", 60, 120)):
        if seconds >= shown_from:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def short_hash(value: str | None) -> str:
    return "-" if not value else value[:HASH_CHARS]


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def styled(value: str, styles: Mapping[Any, str]) -> str:
    style = styles.get(value)
    return f"[{style}]{value}[/]" if style else value


def step_text(status: ModelRolloutStatus) -> str:
    """``3/7`` (1-based), ``shadow`` before the first canary step, ``-`` when idle."""
    if status.current_step is None:
        return "shadow" if status.phase is Phase.SHADOW else "-"
    total = status.step_count
    shown = status.current_step + 1 if total is None else min(status.current_step + 1, total)
    return f"{shown}/{total}" if total is not None else str(shown)


# --- get --------------------------------------------------------------------------------------


def rollouts_table(
    rollouts: Sequence[Mapping[str, Any]], now: datetime, all_namespaces: bool = False
) -> Table:
    """One row per rollout: name, phase, step, weights, verdict, reason, age."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    columns = ["NAMESPACE"] if all_namespaces else []
    columns += ["NAME", "PHASE", "STEP", "CANARY%", "MIRROR%", "VERDICT", "REASON", "AGE"]
    for column in columns:
        table.add_column(column, overflow="fold")
    for obj in sorted(rollouts, key=sort_key):
        table.add_row(*rollout_row(obj, now, all_namespaces))
    return table


def sort_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return (str(metadata.get("namespace", "")), str(metadata.get("name", "")))


def rollout_row(obj: Mapping[str, Any], now: datetime, all_namespaces: bool) -> list[str]:
    metadata = obj.get("metadata") or {}
    try:
        status = parse_status(obj)
    except StatusError as error:
        unreadable = [str(metadata.get("name")), "[red]?[/]", "-", "-", "-", "-", str(error)]
        return [str(metadata.get("namespace"))] * all_namespaces + [*unreadable, "-"]
    row = [
        str(metadata.get("name", "")),
        styled(status.phase.value, PHASE_STYLE),
        step_text(status),
        str(status.canary_weight),
        str(status.mirror_percent),
        styled(status.verdict.value, VERDICT_STYLE),
        status.reason or "-",
        age(metadata.get("creationTimestamp"), now),
    ]
    return [str(metadata.get("namespace", ""))] * all_namespaces + row


# --- status -----------------------------------------------------------------------------------


def render_status(obj: Mapping[str, Any], now: datetime) -> Tree:
    """The whole story of one rollout as a tree (raises ``StatusError`` if unreadable)."""
    status = parse_status(obj)
    metadata = obj.get("metadata") or {}
    title = Text.from_markup(
        f"[bold]{metadata.get('namespace', '')}/{metadata.get('name', '')}[/]  "
        f"{styled(status.phase.value, PHASE_STYLE)}"
        + (f"  [dim]({status.reason})[/]" if status.reason else "")
    )
    tree = Tree(title)
    tree.add(Text(status.message or "(no message)"))
    tree.add(Text.from_markup(revisions_line(status)))
    tree.add(Text.from_markup(progress_line(status, now)))
    tree.add(Text.from_markup(analysis_line(status, now)))
    if status.guard is not None:
        tree.add(Text.from_markup(guard_line(status.guard, now)))
    if status.killed is not None:
        killed = status.killed
        where = ", all traffic on the fallback" if killed.fallback else ""
        tree.add(
            Text.from_markup(
                f"[red]killed[/] {age(killed.at, now)} ago by {killed.by or '?'}{where}: "
                f"{killed.reason}"
            )
        )
    if status.fallback is not None:
        tree.add(Text.from_markup(fallback_line(status.fallback, now)))
    pending = pending_request(obj)
    if pending is not None:
        tree.add(Text.from_markup(pending_line(pending, now)))
    if status.conditions:
        add_conditions(tree.add("[bold]conditions[/]"), status.conditions, now)
    if status.evidence:
        tree.add("[bold]gates[/] [dim](worst first)[/]").add(evidence_table(status.evidence))
    if status.decisions:
        tree.add("[bold]decisions[/]").add(decisions_table(status, now))
    return tree


def fallback_line(share: FallbackShare, now: datetime) -> str:
    """A degrade in force: how much goes to which fallback, since when, and why."""
    return (
        f"[yellow]degraded[/] {age(share.at, now)} ago: [bold]{share.percent}%[/] of traffic on "
        f"the fallback [bold]{share.fallback}[/] (gate {share.gate or '?'})"
    )


def revisions_line(status: ModelRolloutStatus) -> str:
    stable = status.stable_revision or "-"
    candidate = status.candidate_revision or "-"
    return f"revisions  stable [bold]{stable}[/]  candidate [bold]{candidate}[/]"


def progress_line(status: ModelRolloutStatus, now: datetime) -> str:
    step = f"step [bold]{step_text(status)}[/]"
    if status.step_started_at and status.phase in ACTIVE:
        step += f" [dim](for {age(status.step_started_at, now)})[/]"
    paused = f"  paused: {status.paused_reason}" if status.paused_reason else ""
    return (
        f"{step}  canary [bold]{status.canary_weight}%[/]  "
        f"mirror [bold]{status.mirror_percent}%[/]"
        + (f"  fallback [bold]{status.fallback_weight}%[/]" if status.fallback_weight else "")
        + paused
    )


HEALTH_STYLE = {"Healthy": "green", "Warning": "yellow", "Breached": "red", "Degraded": "yellow"}


def guard_line(guard: GuardStatus, now: datetime) -> str:
    """The guard at a glance: health, looks, breaches, the latest look and what it said."""
    health = styled(guard.health.value, HEALTH_STYLE)
    parts = [f"guard {health}", f"{guard.looks} looks", f"{guard.breaches} breaches"]
    if guard.looked_until is not None:
        parts.append(f"last look up to {age(guard.looked_until, now)} ago")
    if guard.escalation is not None:
        parts.append("[red]escalated: awaits kubectl fairshift ack[/]")
    line = "  ".join(parts)
    return f"{line}\n[dim]{guard.message}[/]" if guard.message else line


def analysis_line(status: ModelRolloutStatus, now: datetime) -> str:
    verdict = styled(status.verdict.value, VERDICT_STYLE)
    parts = [f"verdict {verdict}"]
    if status.analysis_started_at and DESIRED[status.phase].analyse:
        parts.append(f"analysing for {age(status.analysis_started_at, now)}")
    if status.last_analysis_at:
        parts.append(f"last look {age(status.last_analysis_at, now)} ago")
    if status.consecutive_errors:
        parts.append(f"[red]{status.consecutive_errors} consecutive errors[/]")
    return "  ".join(parts)


def pending_line(request: Mapping[str, Any], now: datetime) -> str:
    requested = age(str(request.get("requestedAt") or ""), now)
    return (
        f"[yellow]requested {request.get('action', '?')}[/] {requested} ago, "
        f"not handled yet [dim](id {request.get('id', '?')})[/]"
    )


def add_conditions(branch: Tree, conditions: Sequence[Condition], now: datetime) -> None:
    for condition in conditions:
        since = age(condition.last_transition_time, now)
        detail = f" {condition.message}" if condition.message else ""
        branch.add(
            Text.from_markup(
                f"{CONDITION_MARK[condition.status]} {condition.type}"
                f"  [dim]{condition.reason or '-'} {since}[/]"
            ).append(detail)
        )


def bounds_text(e: GateEvidence) -> str:
    if e.lower is None and e.upper is None:
        return "-"
    return f"[{number(e.lower)}, {number(e.upper)}]"


def evidence_table(evidence: Sequence[GateEvidence]) -> Table:
    """Gate, slice, stable, candidate, estimate with its confidence bounds, limit, outcome."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("gate", "slice", "stable", "candidate", "estimate", "bounds", "limit", "n"):
        table.add_column(column, overflow="fold")
    table.add_column("outcome")
    for e in evidence:
        table.add_row(
            f"{e.gate} ({e.severity[0]})",
            e.slice,
            number(e.stable),
            number(e.candidate),
            number(e.estimate),
            Text(bounds_text(e)),
            f"{e.bound} {e.threshold:g}",
            f"{e.stable_samples:.0f}/{e.candidate_samples:.0f}",
            styled(e.outcome.value, OUTCOME_STYLE),
        )
    return table


def decisions_table(status: ModelRolloutStatus, now: datetime) -> Table:
    """The last decisions, newest last, with short audit hashes; the head is marked."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("seq", "age", "action", "reason", "phase", "step", "hash"):
        table.add_column(column, overflow="fold")
    for record in status.decisions:
        table.add_row(
            str(record.seq),
            age(record.time, now),
            record.action,
            record.reason,
            record.phase,
            "-" if record.step is None else str(record.step + 1),
            short_hash(record.hash) + (" (head)" if record.hash == status.audit_head else ""),
        )
    return table


# --- history ----------------------------------------------------------------------------------


def history_table(
    records: Sequence[Mapping[str, Any]],
    dropped: int = 0,
    summary: Mapping[str, Any] | None = None,
) -> Table:
    """The audit chain as stored: one row per record with its link to the previous one, and
    what the trimmed records held (their summary), if any were trimmed."""
    caption = f"{dropped} older records were trimmed from the store" if dropped else None
    if caption and summary is not None:
        caption += f": {describe_summary(summary)}"
    table = Table(header_style="bold", caption=caption)
    columns = ("seq", "time", "action", "reason", "phase", "step", "canary%", "verdict")
    for column in (*columns, "prev", "hash"):
        table.add_column(column, overflow="fold")
    for record in records:
        step = record.get("step")
        table.add_row(
            str(record.get("seq", "?")),
            str(record.get("time", "-")),
            str(record.get("action", "-")),
            str(record.get("reason", "-")),
            str(record.get("phase", "-")),
            "-" if step is None else str(int(step) + 1),
            str(record.get("canaryWeight", "-")),
            styled(str(record.get("verdict") or "-"), VERDICT_STYLE),
            short_hash(record.get("prev_hash")),
            short_hash(record.get("hash")),
        )
    return table
