"""What a decision notification says: which actions are announced and the two payload formats.

Only actions a person should hear about are announced: a pause, a rollback (a guard's switch
back too), a promotion, a failure and a guard's degrade to the fallback
(:func:`should_notify`). Action names are the decision and state-machine vocabulary
(``pause``, ``halt``, ``rollback``, ``analysis-failed``, ``promotion-done``...); anything
else, such as ``advance`` or ``hold``, is routine and stays quiet.

Formats: ``generic`` is the decision as JSON (``rollout``, ``namespace``, ``action``,
``reason``, ``phase``, ``step``, ``candidateRevision``, ``evidence``, ``time``, ``message``);
``slack`` is an incoming-webhook message (``text`` plus ``blocks``) naming the worst gate and
slice with its estimate, bounds and threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from fairshift.api.status import OUTCOME_RANK, Outcome

Kind = Literal["pause", "rollback", "promotion", "failure", "fallback"]
Payload = dict[str, Any]

ACTION_KINDS: Mapping[str, Kind] = {
    "pause": "pause",
    "paused": "pause",
    "halt": "pause",
    "rollback": "rollback",
    "analysis-failed": "rollback",
    "inconclusive-rollback": "rollback",
    "abort": "rollback",
    "promotion": "promotion",
    "promoted": "promotion",
    "promote-full": "promotion",
    "promotion-done": "promotion",
    "fail": "failure",
    "failed": "failure",
    "failure": "failure",
    "candidate-unavailable": "failure",
    "target-lost": "failure",
    "guard-breached": "rollback",
    "guard-fallback": "fallback",
}
"""Announced actions and what kind of news each is; every other action is not announced."""

HEADLINES: Mapping[Kind, tuple[str, str]] = {
    "pause": (":double_vertical_bar:", "paused"),
    "rollback": (":rewind:", "rolling back"),
    "promotion": (":white_check_mark:", "promoted"),
    "failure": (":x:", "failed"),
    "fallback": (":warning:", "degraded to its fallback"),
}

SLACK_TEXT_LIMIT = 2900  # Slack refuses section texts over 3000 characters


def action_name(action: str | Enum) -> str:
    """``"Analysis_Failed"`` and ``Event.ANALYSIS_FAILED`` both read ``analysis-failed``."""
    text = str(action.value) if isinstance(action, Enum) else str(action)
    return text.strip().lower().replace("_", "-")


def notification_kind(action: str | Enum) -> Kind | None:
    """The kind of news an action is, or None when it is not announced."""
    return ACTION_KINDS.get(action_name(action))


def should_notify(action: str | Enum) -> bool:
    """Whether webhooks hear about this action (pause, rollback, promotion, failure,
    fallback)."""
    return notification_kind(action) is not None


@dataclass(frozen=True)
class DecisionEvent:
    """One decision as webhooks see it; evidence items are status evidence (camelCase)."""

    namespace: str
    rollout: str
    action: str
    reason: str
    phase: str
    step: int | None
    candidate_revision: str | None
    evidence: tuple[Mapping[str, Any], ...]
    time: str
    message: str = ""

    @classmethod
    def from_record(cls, namespace: str, rollout: str, record: Mapping[str, Any]) -> DecisionEvent:
        """From an audit record (``action``, ``reason``, ``phase``, ``evidence``, ``time``...)."""
        step = record.get("step")
        revision = record.get("candidateRevision")
        return cls(
            namespace=namespace,
            rollout=rollout,
            action=action_name(record.get("action", "")),
            reason=str(record.get("reason", "")),
            phase=str(record.get("phase", "")),
            step=step if isinstance(step, int) else None,
            candidate_revision=None if revision is None else str(revision),
            evidence=tuple(evidence_items(record.get("evidence") or ())),
            time=str(record.get("time", "")),
            message=str(record.get("message", "")),
        )


def evidence_items(evidence: Iterable[Any]) -> list[Mapping[str, Any]]:
    """Evidence as camelCase mappings (pydantic models are dumped; other objects skipped)."""
    items: list[Mapping[str, Any]] = []
    for item in evidence:
        if isinstance(item, Mapping):
            items.append(item)
        elif callable(getattr(item, "model_dump", None)):
            items.append(item.model_dump(by_alias=True, mode="json"))
    return items


def generic_payload(event: DecisionEvent) -> Payload:
    """The decision as plain JSON."""
    return {
        "rollout": event.rollout,
        "namespace": event.namespace,
        "action": event.action,
        "reason": event.reason,
        "phase": event.phase,
        "step": event.step,
        "candidateRevision": event.candidate_revision,
        "evidence": [dict(item) for item in event.evidence],
        "time": event.time,
        "message": event.message,
    }


def outcome_rank(item: Mapping[str, Any]) -> tuple[int, int]:
    """Sort key: failures first, then warnings...; critical before warning gates."""
    try:
        rank = OUTCOME_RANK[Outcome(str(item.get("outcome", "")))]
    except ValueError:
        rank = len(OUTCOME_RANK)
    return rank, 0 if item.get("severity") == "critical" else 1


def worst_evidence(evidence: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The most alarming item (stable: the reconciler's own ordering breaks ties)."""
    ordered = sorted(evidence, key=outcome_rank)
    return ordered[0] if ordered else None


def number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "n/a"


def describe_evidence(item: Mapping[str, Any]) -> str:
    """``equal-opportunity (tpr_gap, critical) on sex=F: fail; estimate 0.08 [0.06, 0.1]...``."""
    gate = f"{item.get('gate', '?')} ({item.get('metric', '?')}, {item.get('severity', '?')})"
    interval = f"[{number(item.get('lower'))}, {number(item.get('upper'))}]"
    samples = (
        f"samples {number(item.get('candidateSamples'))} candidate"
        f" / {number(item.get('stableSamples'))} stable"
    )
    return (
        f"{gate} on {item.get('slice', '?')}: {item.get('outcome', '?')}; "
        f"estimate {number(item.get('estimate'))} {interval}, "
        f"{item.get('bound', 'bound')} {number(item.get('threshold'))}; {samples}"
    )


def slack_escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text[:SLACK_TEXT_LIMIT]}


def slack_payload(event: DecisionEvent) -> Payload:
    """A readable Slack message: headline, facts, the worst gate and slice, the time."""
    emoji, verb = HEADLINES.get(notification_kind(event.action) or "pause", ("", event.action))
    who = slack_escape(f"{event.namespace}/{event.rollout}")
    text = f"{emoji} {who} {verb}: {slack_escape(event.reason or event.action)}"
    facts = [
        mrkdwn(f"*Action*\n{slack_escape(event.action)}"),
        mrkdwn(f"*Phase*\n{slack_escape(event.phase)}"),
        mrkdwn(f"*Step*\n{'n/a' if event.step is None else event.step}"),
        mrkdwn(f"*Candidate*\n{slack_escape(event.candidate_revision or 'n/a')}"),
    ]
    blocks: list[Payload] = [
        {"type": "section", "text": mrkdwn(f"*{text}*\n{slack_escape(event.message)}".rstrip())},
        {"type": "section", "fields": facts},
    ]
    worst = worst_evidence(event.evidence)
    if worst is not None:
        detail = slack_escape(describe_evidence(worst))
        blocks.append({"type": "section", "text": mrkdwn(f"*Worst gate:* {detail}")})
    blocks.append({"type": "context", "elements": [mrkdwn(f"fairshift · {event.time}")]})
    return {"text": text, "blocks": blocks}


FORMATS: Mapping[str, Callable[[DecisionEvent], Payload]] = {
    "generic": generic_payload,
    "slack": slack_payload,
}


def payload_for(format: str, event: DecisionEvent) -> Payload:
    """The payload in ``format``; raises ValueError naming the known formats."""
    try:
        build = FORMATS[format]
    except KeyError:
        raise ValueError(
            f"unknown webhook format {format!r}; known: {', '.join(sorted(FORMATS))}"
        ) from None
    return build(event)
