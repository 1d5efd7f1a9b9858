"""The guarding phase: when the guard looks, what a look means, and switching back.

After promotion the rollout stays in ``Guarding``: every ``spec.guard.interval`` the
executor measures the live model's traffic since the previous look (shifted back by
``labelDelay``) against the stable model's evidence frozen at promotion, and the engine's
change detectors grade it (``engine.guard``). Here the grades become health, records and
actions: a warning is recorded and notified; a breach of a gate whose response is
``rollback`` switches back to the last known good revision (``Restoring``); ``degrade``
sends ``guard.degradePercent`` of the traffic to ``spec.fallbackRef`` (``Fallback``) until a
person revives the model or a new revision is promoted; ``alert`` records, notifies and
restarts the detectors. A look that cannot be made marks the guard Degraded and
does nothing else. Every hour an attestation record proves the guard kept looking.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from fairshift.api.spec import ModelRolloutSpec
from fairshift.api.status import (
    Escalation,
    FallbackShare,
    GuardCell,
    Health,
    ModelRolloutStatus,
    Phase,
)
from fairshift.api.times import format_time, seconds_between
from fairshift.engine.counts import slice_name
from fairshift.engine.guard import CellHealth, Grade, GuardLook
from fairshift.engine.machine import Event
from fairshift.planning.draft import Draft
from fairshift.planning.observation import GuardResult, GuardWindow, Observation
from fairshift.planning.plan import RestoreLastGood
from fairshift.planning.traffic import scale_candidate, traffic_shown
from fairshift.planning.transitions import Happening, record

ATTESTATION_SECONDS = 3600.0
KEPT_CELLS = 8
RESTORE_RECHECK = 5.0
HEALTH_OF = {
    Grade.HEALTHY: Health.HEALTHY,
    Grade.WARNING: Health.WARNING,
    Grade.BREACHED: Health.BREACHED,
}


def guard_window(
    spec: ModelRolloutSpec, status: ModelRolloutStatus, now: datetime
) -> GuardWindow | None:
    """The look due now, or None. Without a frozen reference (a promotion that skipped the
    analysis) the first look is its own reference and later ones are judged against it."""
    guard = status.guard
    if status.phase is not Phase.GUARDING or guard is None or not spec.guarded:
        return None
    assert guard.looked_until is not None
    end = now - timedelta(seconds=spec.guard.label_delay_seconds)
    if seconds_between(guard.looked_until, end) < spec.guard.interval_seconds:
        return None
    start = guard.looked_until
    reference_start = guard.reference_start or start
    reference_end = guard.reference_end or end
    return GuardWindow(start, end, reference_start, reference_end)


def next_look_in(spec: ModelRolloutSpec, status: ModelRolloutStatus, now: datetime) -> float:
    guard = status.guard
    assert guard is not None and guard.looked_until is not None
    due = guard.looked_until + timedelta(
        seconds=spec.guard.interval_seconds + spec.guard.label_delay_seconds
    )
    return max((due - now).total_seconds(), 1.0)


def guarding(draft: Draft, observed: Observation, result: GuardResult | None) -> Happening | None:
    """One look's consequences, and the hourly attestation."""
    guard = draft.status.guard
    if guard is None or not draft.spec.guarded:
        return None
    happening = None
    if result is not None and result.window.start == guard.looked_until:
        if result.look is None:
            degraded(draft, result)
        else:
            happening = judged(draft, observed, result.window, result.look)
    attest(draft)
    draft.check_within(next_look_in(draft.spec, draft.status, draft.now))
    return happening


def set_guard(draft: Draft, **changes: object) -> None:
    assert draft.status.guard is not None
    draft.set(guard=draft.status.guard.model_copy(update=changes))


def degraded(draft: Draft, result: GuardResult) -> None:
    """No look this time: say so once, count it, touch nothing else."""
    guard = draft.status.guard
    assert guard is not None
    message = f"the guard could not look: {result.error}"
    if guard.health is not Health.DEGRADED:
        draft.event("Warning", "GuardDegraded", message)
        record(draft, "guard-degraded", "GuardDegraded", message)
    set_guard(
        draft,
        health=Health.DEGRADED,
        consecutive_errors=guard.consecutive_errors + 1,
        message=message,
    )


def judged(
    draft: Draft, observed: Observation, window: GuardWindow, look: GuardLook
) -> Happening | None:
    guard = draft.status.guard
    assert guard is not None
    health = HEALTH_OF[look.grade]
    set_guard(
        draft,
        health=health,
        looked_until=window.end,
        reference_start=window.reference_start,
        reference_end=window.reference_end,
        looks=guard.looks + 1,
        looks_since_attestation=guard.looks_since_attestation + 1,
        consecutive_errors=0,
        state=look.state.to_dict(),
        worst=[cell_of(c) for c in look.worst(KEPT_CELLS)],
        message=summary(look),
    )
    if health is Health.WARNING and guard.health is not Health.WARNING:
        draft.event("Warning", "GuardWarning", summary(look))
        record(draft, "guard-warning", "GuardWarning", summary(look), guard_detail(draft))
    if health is Health.BREACHED:
        return breached(draft, observed, look)
    return None


def breached(draft: Draft, observed: Observation, look: GuardLook) -> Happening | None:
    """Act on a breach by each breached gate's declared response; the detectors restart."""
    assert draft.spec.analysis is not None and draft.status.guard is not None
    gates = {g.name: g for g in draft.spec.analysis.gates}
    cells = [c for c in look.cells if c.grade is Grade.BREACHED]
    responses = {draft.spec.guard.response(gates[c.gate]) for c in cells}
    rollback = "rollback" in responses
    message = f"guard breached: {describe(cells[0])}"
    set_guard(draft, breaches=draft.status.guard.breaches + 1, state={}, message=message)
    kept = observed.primary.last_good_revision if observed.primary is not None else None
    if rollback and kept is not None:
        return Happening(Event.GUARD_BREACHED, message, "GuardBreached")
    if rollback:
        message += "; no earlier revision is kept to switch back to, so this only alerts"
    if "degrade" in responses:
        gate = next(c.gate for c in cells if draft.spec.guard.response(gates[c.gate]) == "degrade")
        happening = degrade(draft, observed, gate, message)
        if happening is not None:
            return happening
        message += f"; {fallback_missing(draft, observed)}, so this only alerts"
    if "escalate" in responses:
        set_guard(draft, escalation=Escalation(message=message, at=draft.now))
        message += (
            f"; the next rollout waits until a person runs kubectl fairshift ack {draft.name}"
        )
        draft.event("Warning", "GuardEscalated", message)
        record(draft, "guard-escalated", "GuardEscalated", message, guard_detail(draft))
        return None
    draft.event("Warning", "GuardBreached", message)
    record(draft, "guard-alert", "GuardBreached", message, guard_detail(draft))
    return None


def degrade(draft: Draft, observed: Observation, gate: str, message: str) -> Happening | None:
    """The declared share of traffic to the fallback, when it can serve it."""
    declared = draft.spec.fallback_ref
    state = observed.fallback
    if declared is None or state is None or state.available_replicas < 1:
        return None
    percent = draft.spec.guard.degrade_percent
    draft.set(
        fallback=FallbackShare(
            percent=percent, fallback=declared.name, gate=gate, message=message, at=draft.now
        )
    )
    detail = {**guard_detail(draft), "fallback": {"deployment": declared.name, "percent": percent}}
    return Happening(
        Event.GUARD_FALLBACK,
        f"{message}; {percent}% of traffic goes to the fallback {declared.name} until a person "
        f"revives the model (kubectl fairshift revive {draft.name} --reason ...) or a new "
        f"revision is promoted",
        "GuardFallback",
        detail=detail,
    )


def on_fallback(draft: Draft) -> None:
    """While degraded: say where the traffic goes, since when, why and how to end it."""
    share = draft.status.fallback
    if share is None:
        return
    if draft.spec.fallback_ref is None:
        draft.say(
            "spec.fallbackRef was removed, so all traffic is on the model again; the guard "
            f"looks again after kubectl fairshift revive {draft.name} --reason ...",
            "FallbackRemoved",
        )
        return
    draft.say(
        f"{share.percent}% of traffic on the fallback {share.fallback} since "
        f"{format_time(share.at or draft.now)} (gate {share.gate} breached); end it with "
        f"kubectl fairshift revive {draft.name} --reason ... or promote a fixed revision",
        "GuardFallback",
    )


def fallback_missing(draft: Draft, observed: Observation) -> str:
    declared = draft.spec.fallback_ref
    if declared is None:
        return "no fallbackRef is declared"
    if observed.fallback is None:
        return f"the fallback Deployment {declared.name} does not exist"
    return f"the fallback Deployment {declared.name} has no available replica"


def attest(draft: Draft) -> None:
    """Every hour, a record that the guard kept looking: how often, and what it saw."""
    guard = draft.status.guard
    assert guard is not None
    if seconds_between(guard.attested_at, draft.now) < ATTESTATION_SECONDS:
        return
    within = guard.health in (Health.HEALTHY, Health.WARNING)
    message = (
        f"guarded since {format_time(guard.since or draft.now)}: {guard.looks_since_attestation} "
        f"looks in the last hour, health {guard.health.value}, "
        + ("every gate within its bounds" if within else "not every gate within its bounds")
    )
    record(draft, "guard-attest", "Attestation", message, guard_detail(draft))
    set_guard(draft, attested_at=draft.now, looks_since_attestation=0)


def guard_detail(draft: Draft) -> dict[str, object]:
    guard = draft.status.guard
    assert guard is not None
    return {
        "guard": guard.model_dump(
            by_alias=True, mode="json", include={"health", "looks", "breaches", "worst"}
        )
    }


def cell_of(cell: CellHealth) -> GuardCell:
    return GuardCell(
        gate=cell.gate,
        slice=slice_name(cell.slice),
        grade=cell.grade.value,
        level=round(cell.level, 4),
        estimate=cell.estimate,
        samples=cell.samples,
        reason=cell.reason,
    )


def describe(cell: CellHealth) -> str:
    estimate = "no estimate" if cell.estimate is None else f"estimate {cell.estimate:.4g}"
    low, high = cell.acceptable
    return (
        f"gate {cell.gate} on {slice_name(cell.slice)}: {estimate}, acceptable "
        f"[{low:.4g}, {high:.4g}], detector at {cell.level:.2f} of its breach threshold"
    )


def summary(look: GuardLook) -> str:
    worst = look.worst(1)
    if not worst:
        return "nothing to judge in this look"
    return f"{look.grade.value}; worst {describe(worst[0])}"


def restoring(draft: Draft, observed: Observation) -> Happening | None:
    """Both Deployments back to the last known good template, traffic all on the primary."""
    primary, target = observed.primary, observed.target
    kept = primary.last_good_revision if primary is not None else None
    if primary is None or kept is None:
        draft.say("no earlier revision is kept on the primary; nothing to switch back to")
        return None
    if primary.revision != kept or (target is not None and target.revision != kept):
        draft.write(RestoreLastGood())
        draft.say(f"switching back to the last known good revision {kept}")
        draft.check_within(RESTORE_RECHECK)
        return None
    if not primary.available:
        draft.say(f"waiting for revision {kept} to become available again")
        draft.check_within(RESTORE_RECHECK)
        return None
    if not traffic_shown(draft, observed, explain=False):
        return None
    scale_candidate(draft, observed, 0)
    why = draft.status.guard.message if draft.status.guard is not None else ""
    message = f"switched back to the last known good revision {kept}" + (f": {why}" if why else "")
    draft.set(stable_revision=kept)
    draft.say(message)
    return Happening(Event.RESTORED, message)
