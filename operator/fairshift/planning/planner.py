"""``plan``: from (spec, typed status, one observation, the analysis result, now) to a Plan.

The order of a reconcile, all without I/O:

1. records of the audit chain beyond ``status.auditSeq`` are replayed (the write-ahead log);
2. a rollout without its primary is initialized (Services, primary, adoption);
3. up to four transitions: a person's request, a target change, ``spec.paused``, the phase's
   own progress, each checked in that order;
4. traffic and the candidate's replicas converge to the phase.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fairshift.api.spec import ModelRolloutSpec
from fairshift.api.status import ModelRolloutStatus, Phase
from fairshift.api.traffic import ALL_TO_PRIMARY
from fairshift.engine.machine import RESTING, Event
from fairshift.planning import progress, triggers
from fairshift.planning.draft import MESSAGE_LIMIT, Draft, with_condition
from fairshift.planning.observation import AnalysisResult, GuardResult, Observation
from fairshift.planning.plan import EnsurePrimary, EnsureServices, KubeEvent, LabelCandidate, Plan
from fairshift.planning.traffic import converge, route, scale_candidate
from fairshift.planning.transitions import Happening, apply, replay

MAX_TRANSITIONS_PER_TICK = 4
ACTIVE_CHECK = 5.0  # seconds between looks while something may move
RESTING_CHECK = 10.0  # seconds between looks at a rollout waiting for a new revision
INITIALIZING_CHECK = 5.0
BLOCKED_CHECK = 30.0  # seconds between tries of a write that needs a person


@dataclass(frozen=True)
class Recovery:
    """Status after replaying the audit records it did not know, and the Events to post."""

    status: ModelRolloutStatus
    events: list[KubeEvent]


def recover(
    spec: ModelRolloutSpec,
    status: ModelRolloutStatus,
    unrecorded: Sequence[Mapping[str, Any]],
    now: datetime,
    namespace: str,
    name: str,
) -> Recovery:
    """Replay audit records beyond ``status.auditSeq``: decided before, never decided again."""
    draft = Draft(spec, status, now, namespace, name)
    replay(draft, list(unrecorded))
    return Recovery(draft.status, draft.events)


def refuse_spec(status: ModelRolloutStatus, error: str, now: datetime) -> Plan:
    """An invalid spec: say why, touch nothing else."""
    status = with_condition(status, "InvalidSpec", "True", "InvalidSpec", error, now)
    status = status.model_copy(
        update={"message": f"invalid spec: {error}", "reason": "InvalidSpec"}
    )
    return Plan(status, next_check=now + timedelta(seconds=RESTING_CHECK))


def blocked(done: Plan, message: str, now: datetime) -> Plan:
    """A write needs a person: the Blocked condition and a Warning Event say what to do."""
    status = done.status
    events = list(done.events)
    if status.reason != "Blocked" or status.message != message:
        events.append(KubeEvent("Warning", "Blocked", message[:MESSAGE_LIMIT]))
    status = with_condition(status, "Blocked", "True", "NeedsPerson", message, now)
    status = status.model_copy(update={"message": message, "reason": "Blocked"})
    return Plan(status, done.records, done.writes, events, now + timedelta(seconds=BLOCKED_CHECK))


def unblocked(done: Plan, now: datetime) -> Plan:
    """Every write went through: a Blocked condition, if any, is cleared."""
    if any(c.type == "Blocked" and c.status == "True" for c in done.status.conditions):
        done.status = with_condition(done.status, "Blocked", "False", "WritesSucceeded", "", now)
    return done


def plan(
    spec: ModelRolloutSpec,
    status: ModelRolloutStatus,
    observed: Observation,
    analysis: AnalysisResult | GuardResult | None,
    now: datetime,
    *,
    namespace: str,
    name: str,
    generation: int | None = None,
) -> Plan:
    """What to do now (the status given has its audit records replayed already)."""
    draft = Draft(spec, status, now, namespace, name)
    draft.set(step_count=len(spec.strategy.canary.steps), observed_generation=generation)
    draft.condition("InvalidSpec", "False", "Valid", "")
    if draft.phase is Phase.TERMINATING:
        return draft.plan(RESTING_CHECK)  # the finalizer owns the world now
    if draft.phase is Phase.INITIALIZING:
        initialize(draft, observed)
        return draft.plan(INITIALIZING_CHECK)
    for _ in range(MAX_TRANSITIONS_PER_TICK):
        happening = next_happening(draft, observed, analysis)
        if happening is None:
            break
        apply(draft, happening)
    converge(draft, observed)
    return draft.plan(RESTING_CHECK if draft.phase in RESTING else ACTIVE_CHECK)


def next_happening(
    draft: Draft, observed: Observation, analysis: AnalysisResult | GuardResult | None
) -> Happening | None:
    """The one thing that happens next, in priority order."""
    for source in (triggers.manual, triggers.revision, triggers.spec_pause):
        happening = source(draft, observed)
        if happening is not None:
            return happening
    return progress.progress(draft, observed, analysis)


def initialize(draft: Draft, observed: Observation) -> None:
    """Adopt the target: Services, a primary copy of it, all traffic on the primary."""
    target, primary = observed.target, observed.primary
    if target is None:
        draft.say(f"waiting for Deployment {draft.spec.target_ref.name}", "TargetMissing")
        draft.check_within(10.0)
        return
    draft.write(EnsureServices(target.selector, shared=draft.spec.routing.kind == "replicas"))
    if primary is None:
        draft.write(EnsurePrimary(target.template, max(target.replicas, 1)))
        draft.say("created the primary Deployment; waiting for it", "Initializing")
        return
    if not primary.available:
        draft.say("waiting for the primary Deployment to become available", "Initializing")
        return
    route(draft, observed, ALL_TO_PRIMARY)
    draft.set(stable_revision=primary.revision)
    draft.write(LabelCandidate())
    scale_candidate(draft, observed, 0)
    draft.say(f"revision {primary.revision} is stable and takes all traffic", "Adopted")
    apply(draft, Happening(Event.INITIALIZED))


def evidence_sink(done: Plan, problem: str | None, named: bool, now: datetime) -> Plan:
    """The ``EvidenceSink`` condition: False with the reason while a named sink (MLflow) does
    not take the rollout's records; the rollout itself goes on either way."""
    if problem is not None:
        done.status = with_condition(
            done.status, "EvidenceSink", "False", "SinkUnreachable", problem, now
        )
    elif named:
        done.status = with_condition(done.status, "EvidenceSink", "True", "Delivering", "", now)
    return done
