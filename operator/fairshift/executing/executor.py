"""The executor of one reconcile: observe once, plan, record, act, report.

``Reconciler.reconcile`` is called for one ModelRollout (by the kopf handlers, or by tests
with fakes). It reads each object it needs once, replays the audit log beyond
``status.auditSeq``, collects metrics when an analysis is due, asks the pure planner what to
do, appends the plan's audit records *before* any write (the chain is a write-ahead log),
performs the writes in order and then notifies. The returned status and the audit chain are
the operator's only memory: a restarted operator, or a tick served a stale body, resumes
from them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fairshift.api.names import ACTION_ANNOTATION, primary_name, service_names
from fairshift.api.spec import ModelRolloutSpec, SpecError, parse_spec
from fairshift.api.status import ModelRolloutStatus
from fairshift.engine.audit import GENESIS_HASH, chain_record
from fairshift.executing.analysing import analyse, look
from fairshift.executing.ports import Dependencies
from fairshift.executing.writing import PERSON_PROBLEMS, NeedsPersonError, needs_person, perform
from fairshift.planning import guard as planning_guard
from fairshift.planning import planner
from fairshift.planning.analysis import due_window
from fairshift.planning.observation import (
    AnalysisResult,
    GuardResult,
    ManualRequest,
    Observation,
    RouteState,
)
from fairshift.planning.plan import KubeEvent, Plan
from fairshift.planning.transitions import remember
from fairshift.routing.base import Router, RouteTarget

log = logging.getLogger("fairshift.reconcile")

BLOCKED_RECHECK = 30.0


@dataclass(frozen=True)
class Rollout:
    """The resource as handed over by kopf."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def owner(self) -> dict[str, Any]:
        return {
            "apiVersion": "fairshift.io/v1alpha1",
            "kind": "ModelRollout",
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass
class Result:
    """The new status (as JSON for the API), the Events to post and when to look again."""

    status: dict[str, Any]
    events: list[KubeEvent] = field(default_factory=list)
    next_check: datetime | None = None


class TemporaryError(RuntimeError):
    """Try again after a delay (API or Prometheus trouble); the handler maps it to kopf's."""

    def __init__(self, message: str, delay: float = 10.0) -> None:
        super().__init__(message)
        self.delay = delay


def route_target(
    spec: ModelRolloutSpec, namespace: str, name: str, owner: Mapping[str, Any]
) -> RouteTarget:
    services = service_names(name)
    return RouteTarget(
        namespace=namespace,
        rollout=name,
        primary_service=services.primary,
        canary_service=services.canary,
        port=spec.service.port,
        routing=spec.routing,
        owner_references=(owner,),
        primary_deployment=primary_name(spec.target_ref.name),
        candidate_deployment=spec.target_ref.name,
        # always named, so a route that still sends to a fallback the spec dropped reads back
        fallback_service=services.fallback,
    )


def manual_request(annotations: Mapping[str, str]) -> ManualRequest | None:
    """The action annotation as a request (malformed when it cannot be read)."""
    raw = annotations.get(ACTION_ANNOTATION)
    if not raw:
        return None
    try:
        body = json.loads(raw)
        return ManualRequest(
            action=str(body["action"]),
            id=str(body["id"]),
            by=str(body.get("by") or "")[:256],
            reason=str(body.get("reason") or "")[:1024],
        )
    except (ValueError, KeyError, TypeError):
        return ManualRequest(action="", id="", malformed=True)


def carried_budget(status: ModelRolloutStatus) -> dict[str, float]:
    """The candidate revision's evidence from its closed windows (none for a new revision)."""
    ledger = status.alpha_ledger
    if ledger is None or ledger.revision != status.candidate_revision:
        return {}
    return dict(ledger.carried)


class Reconciler:
    """One reconcile of one rollout: ``Reconciler(deps).reconcile(rollout, now)``."""

    def __init__(self, deps: Dependencies) -> None:
        self.deps = deps

    def reconcile(self, rollout: Rollout, now: datetime) -> Result:
        status = ModelRolloutStatus.model_validate(dict(rollout.status or {}))
        try:
            spec = parse_spec(dict(rollout.spec))
        except SpecError as error:
            refused = planner.refuse_spec(status, str(error), now)
            return Result(self.dump(refused.status, rollout), refused.events)
        router = self.router(spec, rollout)
        try:
            observed = self.observe(spec, rollout, router)
        except PERSON_PROBLEMS as error:
            stuck = planner.blocked(Plan(status), needs_person(error, "reading").args[0], now)
            return Result(self.dump(stuck.status, rollout), stuck.events, stuck.next_check)
        unrecorded = self.unrecorded(rollout, status)
        recovered = planner.recover(spec, status, unrecorded, now, rollout.namespace, rollout.name)
        result = self.analyse(spec, rollout, recovered.status, observed, now)
        plan = planner.plan(
            spec,
            recovered.status,
            observed,
            result,
            now,
            namespace=rollout.namespace,
            name=rollout.name,
            generation=rollout.generation,
        )
        plan.events[:0] = recovered.events
        return self.execute(spec, rollout, router, plan, now)

    # observing -----------------------------------------------------------------------------

    def router(self, spec: ModelRolloutSpec, rollout: Rollout) -> Router:
        return self.deps.router_for(spec, rollout.namespace, rollout.name, rollout.owner)

    def observe(self, spec: ModelRolloutSpec, rollout: Rollout, router: Router) -> Observation:
        """Each object once: the target, the primary, the route, the fallback if named."""
        workloads, ns, target = self.deps.workloads, rollout.namespace, spec.target_ref.name
        fallback = spec.fallback_ref
        return Observation(
            target=workloads.target_revision(ns, target),
            primary=workloads.primary_state(ns, target),
            route=RouteState(router.get_weights(), router.verify()),
            request=manual_request(rollout.annotations),
            fallback=workloads.target_revision(ns, fallback.name) if fallback else None,
        )

    def unrecorded(self, rollout: Rollout, status: ModelRolloutStatus) -> list[dict[str, Any]]:
        """Audit records beyond what status knows: decided, then the tick died."""
        records = self.deps.audit.read_records(rollout.namespace, rollout.name)
        return [r for r in records if int(r.get("seq", 0)) > status.audit_seq]

    def analyse(
        self,
        spec: ModelRolloutSpec,
        rollout: Rollout,
        status: ModelRolloutStatus,
        observed: Observation,
        now: datetime,
    ) -> AnalysisResult | GuardResult | None:
        """The analysis or guard look that is due now, if any."""
        ns, name = rollout.namespace, rollout.name
        window = due_window(spec, status, observed, now)
        if window is not None:
            return analyse(self.deps, spec, ns, name, window, carried_budget(status))
        guard_window = planning_guard.guard_window(spec, status, now)
        if guard_window is not None and status.guard is not None:
            return look(self.deps, spec, ns, name, guard_window, status.guard.state)
        return None

    # acting --------------------------------------------------------------------------------

    def execute(
        self, spec: ModelRolloutSpec, rollout: Rollout, router: Router, plan: Plan, now: datetime
    ) -> Result:
        """Records first (write-ahead), then the writes in order, then notifications."""
        stored = [self.append(rollout, plan, entry.payload) for entry in plan.records]
        try:
            for write in plan.writes:
                perform(self.deps.workloads, router, spec, rollout.namespace, rollout.owner, write)
        except NeedsPersonError as blocked:
            plan = planner.blocked(plan, str(blocked), now)
        else:
            plan = planner.unblocked(plan, now)
        for record in stored:
            self.deps.notifier.notify(rollout.namespace, rollout.name, record, spec.notifications)
        named = any(n.mlflow is not None for n in spec.notifications)
        problem = self.deps.notifier.problem(spec.notifications)
        plan = planner.evidence_sink(plan, problem, named, now)
        status = self.dump(plan.status, rollout)
        self.deps.telemetry.observe_rollout(
            rollout.namespace,
            rollout.name,
            status["phase"],
            status["canaryWeight"],
            status.get("fallbackWeight", 0),
        )
        guard = plan.status.guard
        self.deps.telemetry.observe_guard(
            rollout.namespace,
            rollout.name,
            guard.health.value if guard is not None else None,
            guard.breaches if guard is not None else 0,
        )
        return Result(status, plan.events, plan.next_check)

    def append(self, rollout: Rollout, plan: Plan, payload: Mapping[str, Any]) -> Mapping[str, Any]:
        """Chain ``payload`` after the stored tail (or after status, for a fresh log)."""
        head = (plan.status.audit_seq, plan.status.audit_head)

        def build(tail: Mapping[str, Any] | None) -> dict[str, Any]:
            if tail is None and head[1]:
                tail = {"seq": head[0], "hash": head[1]}
            seq = int(tail["seq"]) + 1 if tail else 1
            return chain_record(payload, seq, str(tail["hash"]) if tail else GENESIS_HASH)

        record = self.deps.audit.append(rollout.namespace, rollout.name, build, [rollout.owner])
        log.info("decision %s", json.dumps(record, sort_keys=True))
        plan.status = remember(plan.status, record)
        self.deps.telemetry.count_decision(str(record["action"]), str(record["reason"]))
        return record

    @staticmethod
    def dump(status: ModelRolloutStatus, rollout: Rollout) -> dict[str, Any]:
        return status.model_dump(by_alias=True, mode="json", exclude_none=True)

    # deletion ------------------------------------------------------------------------------

    def release(self, rollout: Rollout) -> str | None:
        """Before a ModelRollout is deleted: the user's Deployment serving, traffic back.

        The primary, its Services and the route are owned by the rollout and go with it; the
        user's Deployment (kept at zero replicas between rollouts) must serve again first.
        Returns what it still waits for (the caller retries and shows it), None when done;
        API errors propagate so the caller retries. It never gives up silently.
        """
        try:
            spec = parse_spec(dict(rollout.spec))
        except SpecError:
            return None  # never reconciled: nothing of the user's was changed
        workloads, ns, target = self.deps.workloads, rollout.namespace, spec.target_ref.name
        state = workloads.target_revision(ns, target)
        if state is not None and not state.available:
            primary = workloads.primary_state(ns, target)
            workloads.scale(ns, target, max(primary.replicas if primary else 1, 1))
            return f"waiting for Deployment {target} to serve again before the primary goes"
        self.router(spec, rollout).finalize()
        self.deps.telemetry.forget(rollout.namespace, rollout.name)
        return None
