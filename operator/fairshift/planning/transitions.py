"""Phase changes: the engine's transition table applied to the draft, with the record of why.

Every transition becomes an audit record (appended before any of its writes happen) and a
Kubernetes Event. ``replay`` re-applies records that were appended but never reached status
(a crash between the two): decisions already taken are redone, never decided again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fairshift.api.status import (
    DecisionRecord,
    FallbackShare,
    GuardStatus,
    Kill,
    ModelRolloutStatus,
    Phase,
    Verdict,
)
from fairshift.api.times import format_time, parse_time
from fairshift.engine.machine import Effect, Event, accepts, transition
from fairshift.planning.draft import MESSAGE_LIMIT, Draft
from fairshift.planning.plan import AuditEntry, EventKind

KEPT_DECISIONS = 10
WARNING_PHASES = (Phase.ROLLING_BACK, Phase.PAUSED, Phase.FAILED)


@dataclass(frozen=True)
class Happening:
    """An event with why it happens: a sentence and a reason word, or the routine cause.

    ``request`` is the id of the manual request behind it, recorded so a replay marks the
    request handled.
    """

    event: Event
    cause: str | None = None
    reason: str | None = None
    request: str | None = None
    detail: Mapping[str, Any] | None = None  # recorded with it (e.g. who asked and why)


def event_kind(target: Phase) -> EventKind:
    return "Warning" if target in WARNING_PHASES else "Normal"


def camel_case(name: str) -> str:
    """``analysis-failed`` -> ``AnalysisFailed`` (the reason of a routine transition)."""
    return "".join(part.capitalize() for part in name.split("-"))


def apply(draft: Draft, happening: Happening) -> None:
    """Move to the next phase by the table, run the row's effect and record why."""
    previous = draft.phase
    row = transition(previous, happening.event)
    apply_effect(draft, row.effect)
    draft.set(phase=row.target)
    if row.target is not previous:
        draft.set(phase_started_at=draft.now)
    if row.target is not Phase.PAUSED and previous is Phase.PAUSED:
        draft.set(paused_reason=None)
    record_transition(draft, happening, previous, row.target)


def apply_effect(draft: Draft, effect: Effect) -> None:
    status = draft.status
    if effect is Effect.START:
        ledger = status.alpha_ledger
        if ledger is not None and ledger.revision != status.candidate_revision:
            draft.set(alpha_ledger=None)  # a new revision has a budget of its own; a retry not
        draft.set(current_step=None if draft.spec.strategy.shadow else 0)
        restart_clocks(draft)
    elif effect is Effect.NEXT_STEP:
        step = status.current_step
        draft.set(current_step=0 if step is None else step + 1)
        restart_clocks(draft)
    elif effect is Effect.RESTART_STEP:
        restart_clocks(draft)
    elif effect is Effect.SKIP_TO_END:
        draft.set(current_step=len(draft.spec.strategy.canary.steps))
    elif effect is Effect.RECORD_STABLE:  # a promoted revision ends a degrade
        draft.set(stable_revision=status.candidate_revision, candidate_revision=None, fallback=None)
    elif effect is Effect.FORGET_CANDIDATE:
        draft.set(candidate_revision=None, current_step=None)
    elif effect is Effect.START_GUARD:
        guard = start_guard(status, draft.now)
        draft.set(
            stable_revision=status.candidate_revision,
            candidate_revision=None,
            guard=guard,
            fallback=None,
        )
    elif effect is Effect.RECORD_RESTORED:
        draft.set(candidate_revision=None, current_step=None, guard=None, fallback=None)
    elif effect is Effect.RESUME_GUARD and status.guard is not None:
        draft.set(
            guard=status.guard.model_copy(update={"looked_until": draft.now}),
            fallback=None,
        )
    elif effect is Effect.CLEAR_ESCALATION and status.guard is not None:
        draft.set(guard=status.guard.model_copy(update={"escalation": None}))


def start_guard(status: ModelRolloutStatus, now: datetime) -> GuardStatus:
    """The guard at promotion: the last analysis window is the frozen reference."""
    reference = status.analysis_started_at, status.last_analysis_at
    known = reference[0] is not None and reference[1] is not None
    return GuardStatus(
        since=now,
        looked_until=now,
        reference_start=reference[0] if known else None,
        reference_end=reference[1] if known else None,
        attested_at=now,
    )


def restart_clocks(draft: Draft) -> None:
    """A step (re)starts: new analysis window, no evidence yet, a fresh error count; the
    closed window's evidence is carried into the revision's budget."""
    fold_budget(draft)
    draft.set(
        consecutive_errors=0,
        step_started_at=draft.now,
        analysis_started_at=draft.now,
        last_analysis_at=None,
        evidence=[],
        verdict=Verdict.PENDING,
    )


def fold_budget(draft: Draft) -> None:
    """Close the analysis window in the budget: its last look's evidence becomes carried."""
    ledger = draft.status.alpha_ledger
    if ledger is None or not ledger.current:
        return
    draft.set(
        alpha_ledger=ledger.model_copy(
            update={"carried": dict(ledger.current), "current": {}, "windows": ledger.windows + 1}
        )
    )


def record_transition(draft: Draft, happening: Happening, source: Phase, target: Phase) -> None:
    event = happening.event
    cause = happening.cause or routine_cause(draft, event)
    keeps_reason = event in (Event.ROLLBACK_DONE, Event.RESTORED) and draft.status.reason
    reason = happening.reason or keeps_reason or camel_case(event.value)
    draft.set(reason=reason)
    message = f"{source.value} -> {target.value} ({event.value}): {cause}"
    draft.event(event_kind(target), target.value, message)
    record(draft, event.value, reason, message, happening.detail, happening.request)


def record(
    draft: Draft,
    action: str,
    reason: str,
    message: str,
    detail: Mapping[str, Any] | None = None,
    request: str | None = None,
) -> None:
    """An audit record of this moment: the action, why, the state it leaves, and ``detail``."""
    status = draft.status
    payload: dict[str, Any] = {
        "time": format_time(draft.now),
        "rollout": f"{draft.namespace}/{draft.name}",
        "action": action,
        "reason": reason,
        "message": message[:MESSAGE_LIMIT],
        "phase": status.phase.value,
        "step": status.current_step,
        "canaryWeight": status.canary_weight,
        "mirrorPercent": status.mirror_percent,
        "candidateRevision": status.candidate_revision,
        "verdict": status.verdict.value,
        "evidence": [e.model_dump(by_alias=True, mode="json") for e in status.evidence],
    }
    payload.update(detail or {})
    if request is not None:
        payload["request"] = request
    draft.records.append(AuditEntry(payload))


def routine_cause(draft: Draft, event: Event) -> str:
    """The readable cause of a transition that no analysis or person explained."""
    status = draft.status
    steps = len(draft.spec.strategy.canary.steps)
    step = status.current_step
    texts = {
        Event.INITIALIZED: f"revision {status.stable_revision} is stable",
        Event.NEW_REVISION: f"new revision {status.candidate_revision}",
        Event.NEW_REVISION_WITH_SHADOW: f"new revision {status.candidate_revision}",
        Event.SHADOW_DONE: "shadow analysis passed",
        Event.STEP_DONE: f"step {step if step is not None else 0} of {steps} done",
        Event.STEPS_DONE: f"all {steps} steps done",
        Event.PROMOTION_DONE: "the primary runs the candidate and takes all traffic",
        Event.PROMOTION_DONE_GUARDED: "the primary runs the candidate and takes all traffic; "
        "the guard keeps judging it",
        Event.ROLLBACK_DONE: "all traffic on primary; the candidate is scaled down",
        Event.REVERTED: "the target went back to the stable revision",
    }
    return texts.get(event, status.message)


# --- the chain as write-ahead log ------------------------------------------------------------


def replay(draft: Draft, records: list[Mapping[str, Any]]) -> None:
    """Redo the records beyond ``status.auditSeq``: they were decided, then the tick died."""
    known = draft.status.audit_seq
    for stored in (r for r in records if int(r.get("seq", 0)) > known):
        replay_one(draft, stored)
        draft.status = remember(draft.status, stored)


def replay_one(draft: Draft, stored: Mapping[str, Any]) -> None:
    try:
        event = Event(str(stored.get("action")))
    except ValueError:
        return  # a hold: nothing to redo
    if not accepts(draft.phase, event):
        return
    if stored.get("candidateRevision"):
        draft.set(candidate_revision=stored["candidateRevision"])
    row = transition(draft.phase, event)
    apply_effect(draft, row.effect)
    draft.set(
        phase=row.target,
        current_step=stored.get("step", draft.status.current_step),
        reason=str(stored.get("reason", "")),
        message=str(stored.get("message", "")),
    )
    if stored.get("request"):
        draft.set(handled_action=str(stored["request"]))
    if event is Event.GUARD_FALLBACK:
        draft.set(fallback=fallback_of(stored, draft.now))
    if event is Event.KILL and isinstance(stored.get("killed"), Mapping):
        draft.set(killed=Kill.model_validate(stored["killed"]))  # the replicas to revive to
    draft.event(
        event_kind(row.target), row.target.value, f"{stored.get('message', '')} (recovered)"
    )


def fallback_of(stored: Mapping[str, Any], now: datetime) -> FallbackShare | None:
    """The degrade a ``guard-fallback`` record decided: the share and where it goes."""
    detail = stored.get("fallback")
    if not isinstance(detail, Mapping):
        return None
    worst = ((stored.get("guard") or {}).get("worst") or [{}])[0]
    return FallbackShare(
        percent=int(detail.get("percent", 100)),
        fallback=str(detail.get("deployment", "")),
        gate=str(worst.get("gate", "")),
        message=str(stored.get("message", "")),
        at=parse_time(stored.get("time")) or now,
    )


def remember(status: ModelRolloutStatus, stored: Mapping[str, Any]) -> ModelRolloutStatus:
    """Status follows the chain: its head, and a summary among the last decisions."""
    summary = DecisionRecord(
        seq=int(stored["seq"]),
        time=str(stored.get("time", "")),
        action=str(stored.get("action", "")),
        reason=str(stored.get("reason", "")),
        phase=str(stored.get("phase", "")),
        step=stored.get("step"),
        candidate_revision=stored.get("candidateRevision"),
        prev_hash=str(stored["prev_hash"]),
        hash=str(stored["hash"]),
    )
    return status.model_copy(
        update={
            "audit_seq": int(stored["seq"]),
            "audit_head": str(stored["hash"]),
            "decisions": [*status.decisions, summary][-KEPT_DECISIONS:],
        }
    )
