"""The reconcile loop: gather what is, let the engine decide, apply, and record why.

``Reconciler.reconcile`` is called for one ModelRollout (by kopf handlers, or by tests with
fakes). Everything it needs comes in: the workloads and router adapters, the metric source,
an event sink, the audit store, the notifier, the operator's metrics and the time ``now``.
It is level-triggered: the desired world follows from ``status.phase`` and ``currentStep``,
every write is idempotent, and the returned status is the only memory, so a restarted
operator resumes from the resource alone. Phase changes come only from the engine's
transition table.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from fairshift.api.durations import parse_duration
from fairshift.api.spec import ModelRolloutSpec, Notification, SpecError, Step, parse_spec
from fairshift.api.status import Condition, DecisionRecord, ModelRolloutStatus, Phase, Verdict
from fairshift.engine.audit import GENESIS_HASH, chain_record
from fairshift.engine.decision import Action, Decision, StepClock, decide
from fairshift.engine.gates import Evaluation, evaluate, evidence
from fairshift.engine.machine import DESIRED, Effect, Event, accepts, transition
from fairshift.k8s.workloads import DeploymentState, primary_name, service_names
from fairshift.metrics.source import InvalidQueryError, MetricsError, MetricSource, QueryContext
from fairshift.routing.base import ALL_TO_PRIMARY, Router, RouteTarget, RoutingError, Weights

log = logging.getLogger("fairshift.reconcile")

ACTION_ANNOTATION = "fairshift.io/action"
MAX_TRANSITIONS_PER_TICK = 4
MAX_CONSECUTIVE_ERRORS = 5
KEPT_DECISIONS = 10
KEPT_EVIDENCE = 12
WARNING_PHASES = (Phase.ROLLING_BACK, Phase.PAUSED, Phase.FAILED)


# --- what the reconciler needs from the world -----------------------------------------------


class Workloads(Protocol):
    """Deployments and Services of a rollout (``fairshift.k8s.workloads.Workloads``)."""

    def target_revision(self, namespace: str, name: str) -> DeploymentState | None: ...

    def primary_state(self, namespace: str, target_name: str) -> DeploymentState | None: ...

    def label_candidate(self, namespace: str, target_name: str) -> bool: ...

    def ensure_primary(
        self,
        namespace: str,
        target_name: str,
        template: Mapping[str, Any],
        replicas: int,
        owner_references: Sequence[Mapping[str, Any]],
    ) -> bool: ...

    def ensure_services(
        self,
        namespace: str,
        rollout_name: str,
        port: int,
        target_port: int | None,
        selector: Mapping[str, str],
        owner_references: Sequence[Mapping[str, Any]],
        shared: bool = False,
    ) -> Any: ...

    def scale(self, namespace: str, deployment: str, replicas: int) -> bool: ...

    def promote_template(
        self, namespace: str, target_name: str, template: Mapping[str, Any]
    ) -> bool: ...


class EventSink(Protocol):
    def __call__(self, kind: str, reason: str, message: str) -> None: ...


AuditBuilder = Callable[[Mapping[str, Any] | None], dict[str, Any]]


class AuditStore(Protocol):
    """Appends ``build(newest stored record)`` to the rollout's audit trail."""

    def append(
        self,
        namespace: str,
        rollout: str,
        build: AuditBuilder,
        owner_references: Sequence[Mapping[str, Any]] = (),
    ) -> Mapping[str, Any]: ...

    def read_records(self, namespace: str, rollout: str) -> list[dict[str, Any]]: ...


class Notifier(Protocol):
    def notify(
        self,
        namespace: str,
        rollout: str,
        record: Mapping[str, Any],
        notifications: Sequence[Notification] = (),
    ) -> None: ...


class OperatorMetrics(Protocol):
    def observe_rollout(self, namespace: str, rollout: str, phase: str, weight: int) -> None: ...

    def observe_gates(self, namespace: str, rollout: str, evidence: list[Any]) -> None: ...

    def count_decision(self, action: str, reason: str) -> None: ...

    def count_error(self, namespace: str, rollout: str, kind: str) -> None: ...

    def forget(self, namespace: str, rollout: str) -> None: ...


@dataclass
class Dependencies:
    """Everything a reconcile touches, passed in (fakes in tests)."""

    workloads: Workloads
    router_for: Callable[[ModelRolloutSpec, str, str, Mapping[str, Any]], Router]
    metrics_for: Callable[[ModelRolloutSpec], MetricSource]
    audit: AuditStore | None = None
    notifier: Notifier | None = None
    operator_metrics: OperatorMetrics | None = None


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
    """The new status and what happened, for the handler to write and log."""

    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)
    requeue_after: float | None = None


class TemporaryError(RuntimeError):
    """Try again after a delay (API or Prometheus trouble); the handler maps it to kopf's."""

    def __init__(self, message: str, delay: float = 10.0) -> None:
        super().__init__(message)
        self.delay = delay


def camel_case(name: str) -> str:
    """``analysis-failed`` -> ``AnalysisFailed`` (the reason of a routine transition)."""
    return "".join(part.capitalize() for part in name.split("-"))


def iso(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def seconds_since(text: str | None, now: datetime) -> float:
    started = parse_time(text)
    return 0.0 if started is None else max(0.0, (now - started).total_seconds())


def step_weight(steps: list[Step], index: int | None) -> int:
    """The canary weight in force at step ``index``: the last setWeight at or before it."""
    if index is None:
        return 0
    weight = 0
    for step in steps[: index + 1]:
        if step.set_weight is not None:
            weight = step.set_weight
    return weight


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
    )


# --- the reconciler -------------------------------------------------------------------------


class Reconciler:
    """One reconcile of one rollout: ``Reconciler(deps).reconcile(rollout, now)``."""

    def __init__(self, deps: Dependencies) -> None:
        self.deps = deps
        self.in_step: set[tuple[str, str]] = set()  # rollouts whose status matches the chain

    def reconcile(self, rollout: Rollout, now: datetime) -> Result:
        status = ModelRolloutStatus.model_validate(dict(rollout.status or {})).model_dump()
        work = Tick(self.deps, rollout, status, now)
        try:
            spec = parse_spec(dict(rollout.spec))
        except SpecError as error:
            work.condition("InvalidSpec", "True", "InvalidSpec", str(error))
            work.status["message"] = f"invalid spec: {error}"
            work.status["reason"] = "InvalidSpec"
            return work.result()
        work.condition("InvalidSpec", "False", "Valid", "")
        work.status["observedGeneration"] = rollout.generation
        key = (rollout.namespace, rollout.name)
        try:
            if key not in self.in_step:
                work.recover(spec)
            work.run(spec)
        except Exception:
            self.in_step.discard(key)  # the next tick checks the chain again
            raise
        self.in_step.add(key)
        return work.result()

    def release(self, rollout: Rollout) -> None:
        """Before a ModelRollout is deleted: traffic back to primary, the target scaled up.

        The primary, its Services and the route are owned by the rollout and go with it; the
        user's Deployment (kept at zero replicas between rollouts) must serve again first.
        """
        try:
            spec = parse_spec(dict(rollout.spec))
        except SpecError:
            return
        router = self.deps.router_for(spec, rollout.namespace, rollout.name, rollout.owner)
        router.set_weights(ALL_TO_PRIMARY)
        router.finalize()
        target = spec.target_ref.name
        primary = self.deps.workloads.primary_state(rollout.namespace, target)
        if self.deps.workloads.target_revision(rollout.namespace, target) is not None:
            replicas = max(primary.replicas if primary else 1, 1)
            self.deps.workloads.scale(rollout.namespace, target, replicas)
        if self.deps.operator_metrics is not None:
            self.deps.operator_metrics.forget(rollout.namespace, rollout.name)


class Tick:
    """The state of one reconcile: the status being built and the decisions taken."""

    def __init__(
        self, deps: Dependencies, rollout: Rollout, status: dict[str, Any], now: datetime
    ) -> None:
        self.deps = deps
        self.rollout = rollout
        self.now = now
        self.status = ModelRolloutStatus.model_validate(status).model_dump(by_alias=True)
        self.events: list[tuple[str, str, str]] = []
        self.requeue: float | None = None
        self.cause: str | None = None  # why the next transition happens, when not routine
        self.cause_reason: str | None = None  # its CamelCase reason
        self.request_id: str | None = None  # the manual request behind the next transition
        self.spec: ModelRolloutSpec

    # status helpers ------------------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        return Phase(self.status["phase"])

    def condition(self, kind: str, value: str, reason: str, message: str) -> None:
        conditions = [c for c in self.status["conditions"] if c["type"] != kind]
        previous = next((c for c in self.status["conditions"] if c["type"] == kind), None)
        changed = previous is None or previous["status"] != value
        stamp = iso(self.now) if changed else previous["lastTransitionTime"]  # type: ignore[index]
        conditions.append(
            Condition(
                type=kind,
                status=value,
                reason=reason,
                message=message[:1000],
                last_transition_time=stamp,
            ).model_dump(by_alias=True)
        )
        self.status["conditions"] = sorted(conditions, key=lambda c: c["type"])

    def because(self, reason: str, message: str) -> None:
        """Explain the transition about to happen (status, Event and audit record)."""
        self.say(message, reason)
        self.cause, self.cause_reason = message, reason

    def say(self, message: str, reason: str | None = None) -> None:
        self.status["message"] = message
        if reason is not None:
            self.status["reason"] = reason

    def event(self, kind: str, reason: str, message: str) -> None:
        self.events.append((kind, reason, message))

    def result(self) -> Result:
        self.status["phase"] = self.phase.value
        validated = ModelRolloutStatus.model_validate(self.status)
        dumped = validated.model_dump(by_alias=True, mode="json", exclude_none=True)
        if self.deps.operator_metrics is not None:
            self.deps.operator_metrics.observe_rollout(
                self.rollout.namespace, self.rollout.name, dumped["phase"], dumped["canaryWeight"]
            )
        return Result(dumped, self.events, self.requeue)

    # the tick ------------------------------------------------------------------------------

    def recover(self, spec: ModelRolloutSpec) -> None:
        """Finish what an interrupted tick recorded but never wrote to status.

        Every transition is appended to the audit chain *before* its actions run, so the
        chain is a write-ahead log: records beyond ``status.auditSeq`` are decisions already
        taken. They are replayed, never decided again (a rejected candidate must not get
        traffic back because a crash came between moving traffic and writing status).
        """
        if self.deps.audit is None:
            return
        self.spec = spec
        known = int(self.status.get("auditSeq") or 0)
        records = self.deps.audit.read_records(self.rollout.namespace, self.rollout.name)
        for record in (r for r in records if int(r.get("seq", 0)) > known):
            self.replay(record)

    def replay(self, record: Mapping[str, Any]) -> None:
        try:
            event: Event | None = Event(str(record.get("action")))
        except ValueError:
            event = None  # a hold: nothing to redo
        if event is not None and accepts(self.phase, event):
            previous = self.phase
            if record.get("candidateRevision"):
                self.status["candidateRevision"] = record["candidateRevision"]
            row = transition(previous, event)
            self.effect(row.effect)
            self.status["phase"] = row.target.value
            self.status["currentStep"] = record.get("step", self.status.get("currentStep"))
            self.status["reason"] = record.get("reason", "")
            self.status["message"] = record.get("message", "")
            if record.get("request"):
                self.status["handledAction"] = record["request"]
            kind = "Warning" if row.target in WARNING_PHASES else "Normal"
            self.event(kind, row.target.value, f"{record.get('message', '')} (recovered)"[:1024])
        self.remember(record)

    def run(self, spec: ModelRolloutSpec) -> None:
        self.spec = spec
        self.status["stepCount"] = len(spec.strategy.canary.steps)
        target = self.deps.workloads.target_revision(self.rollout.namespace, spec.target_ref.name)
        if self.phase is Phase.INITIALIZING:
            self.initialize(target)
            return
        for _ in range(MAX_TRANSITIONS_PER_TICK):
            event = self.next_event(target)
            if event is None:
                break
            self.apply(event)
        self.converge(target)

    def initialize(self, target: DeploymentState | None) -> None:
        spec, ns = self.spec, self.rollout.namespace
        if target is None:
            self.say(f"waiting for Deployment {spec.target_ref.name}", "TargetMissing")
            self.requeue = 10.0
            return
        owners = [self.rollout.owner]
        self.deps.workloads.ensure_services(
            ns,
            self.rollout.name,
            spec.service.port,
            spec.service.target_port,
            target.selector,
            owners,
            shared=spec.routing.kind == "replicas",
        )
        primary = self.deps.workloads.primary_state(ns, spec.target_ref.name)
        if primary is None:
            self.deps.workloads.ensure_primary(
                ns, spec.target_ref.name, target.template, max(target.replicas, 1), owners
            )
            self.say("created the primary Deployment; waiting for it", "Initializing")
            self.requeue = 5.0
            return
        if not primary.available:
            self.say("waiting for the primary Deployment to become available", "Initializing")
            self.requeue = 5.0
            return
        self.router().set_weights(ALL_TO_PRIMARY)
        self.status["stableRevision"] = primary.revision
        self.deps.workloads.label_candidate(ns, spec.target_ref.name)
        self.scale_candidate(0)
        self.say(f"revision {primary.revision} is stable and takes all traffic", "Adopted")
        self.apply(Event.INITIALIZED)

    # events --------------------------------------------------------------------------------

    def next_event(self, target: DeploymentState | None) -> Event | None:
        """The one thing that happens next, in priority order."""
        for source in (
            self.manual_event,
            lambda: self.revision_event(target),
            self.spec_pause_event,
            lambda: self.progress_event(target),
        ):
            event = source()
            if event is not None:
                return event
        return None

    def manual_event(self) -> Event | None:
        raw = self.rollout.annotations.get(ACTION_ANNOTATION)
        if not raw:
            return None
        try:
            request = json.loads(raw)
            action, request_id = str(request["action"]), str(request["id"])
        except (ValueError, KeyError, TypeError):
            self.event("Warning", "BadAction", f"ignored a malformed {ACTION_ANNOTATION}")
            return None
        if request_id == self.status.get("handledAction"):
            return None
        self.status["handledAction"] = request_id
        event = self.action_event(action)
        if event is None or not accepts(self.phase, event):
            self.event(
                "Warning", "ActionRefused", f"{action} is not possible while {self.phase.value}"
            )
            return None
        self.status["pausedReason"] = "manual" if event is Event.HALT else None
        self.event("Normal", "ManualAction", f"{action} requested")
        self.cause, self.cause_reason = f"{action} requested", "ManualAction"
        self.request_id = request_id
        return event

    def action_event(self, action: str) -> Event | None:
        paused_on_step = self.phase is Phase.PAUSED and self.status.get("pausedReason") == "step"
        if action == "resume":
            if paused_on_step:
                return Event.PROMOTE
            return self.resume_event()
        return {
            "promote": Event.PROMOTE,
            "promote-full": Event.PROMOTE_FULL,
            "pause": Event.HALT,
            "abort": Event.ABORT,
            "retry": Event.RETRY,
        }.get(action)

    def revision_event(self, target: DeploymentState | None) -> Event | None:
        active = self.phase in (Phase.SHADOW, Phase.CANARY, Phase.PAUSED)
        if target is None:
            if active or self.phase is Phase.PROMOTING:
                self.because("TargetLost", f"Deployment {self.spec.target_ref.name} disappeared")
                return Event.TARGET_LOST
            return None
        revision = target.revision
        if active and revision == self.status.get("stableRevision"):
            return Event.REVERTED
        known = (self.status.get("stableRevision"), self.status.get("candidateRevision"))
        if revision in known or self.phase in (Phase.PROMOTING, Phase.ROLLING_BACK):
            return None
        self.status["candidateRevision"] = revision
        return Event.NEW_REVISION_WITH_SHADOW if self.spec.strategy.shadow else Event.NEW_REVISION

    def spec_pause_event(self) -> Event | None:
        if self.spec.paused and self.phase in (Phase.SHADOW, Phase.CANARY):
            self.status["pausedReason"] = "spec"
            self.because("SpecPaused", "spec.paused is true")
            return Event.HALT
        unpaused = not self.spec.paused and self.phase is Phase.PAUSED
        if unpaused and self.status.get("pausedReason") == "spec":
            return self.resume_event()
        return None

    def resume_event(self) -> Event:
        """Back to where the pause happened: shadow (no step yet) or the canary step."""
        return Event.RESUME_SHADOW if self.status.get("currentStep") is None else Event.RESUME

    def progress_event(self, target: DeploymentState | None) -> Event | None:
        handler = {
            Phase.SHADOW: self.shadow_progress,
            Phase.CANARY: self.canary_progress,
            Phase.PROMOTING: self.promotion_progress,
            Phase.ROLLING_BACK: self.rollback_progress,
        }.get(self.phase)
        return handler(target) if handler else None

    # transitions ---------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        row = transition(self.phase, event)
        self.effect(row.effect)
        previous = self.phase
        self.status["phase"] = row.target.value
        if row.target is not previous or row.effect is not Effect.NONE:
            self.status["phaseStartedAt"] = (
                iso(self.now) if row.target is not previous else self.status.get("phaseStartedAt")
            )
        if row.target is not Phase.PAUSED and previous is Phase.PAUSED:
            self.status["pausedReason"] = None
        self.record(event, previous, row.target)

    def effect(self, effect: Effect) -> None:
        if effect is Effect.START:
            self.status["candidateRevision"] = self.status.get("candidateRevision")
            self.status["currentStep"] = None if self.spec.strategy.shadow else 0
            self.restart_clocks()
            self.status["consecutiveErrors"] = 0
        elif effect is Effect.NEXT_STEP:
            step = self.status.get("currentStep")
            self.status["currentStep"] = 0 if step is None else step + 1
            self.restart_clocks()
        elif effect is Effect.RESTART_STEP:
            self.restart_clocks()
        elif effect is Effect.SKIP_TO_END:
            self.status["currentStep"] = len(self.spec.strategy.canary.steps)
        elif effect is Effect.RECORD_STABLE:
            self.status["stableRevision"] = self.status.get("candidateRevision")
            self.status["candidateRevision"] = None
        elif effect is Effect.FORGET_CANDIDATE:
            self.status["candidateRevision"] = None
            self.status["currentStep"] = None

    def restart_clocks(self) -> None:
        """A step (re)starts: new analysis window, no evidence yet, a fresh error count."""
        self.status["consecutiveErrors"] = 0
        self.status["stepStartedAt"] = iso(self.now)
        self.status["analysisStartedAt"] = iso(self.now)
        self.status["lastAnalysisAt"] = None
        self.status["evidence"] = []
        self.status["verdict"] = Verdict.PENDING.value

    # phase progress ------------------------------------------------------------------------

    def candidate_ready(self, target: DeploymentState | None) -> bool:
        """The candidate runs and is available; past the deadline, the rollout fails."""
        if target is None:
            return False
        if self.spec.routing.kind == "replicas" and self.current_weight() == 0:
            return True
        if target.available:
            return True
        deadline = parse_duration(self.spec.strategy.progress_deadline)
        if seconds_since(self.status.get("stepStartedAt"), self.now) > deadline:
            self.because(
                "ProgressDeadlineExceeded",
                f"the candidate was not available within {self.spec.strategy.progress_deadline}",
            )
        else:
            self.say("waiting for the candidate to become available", "WaitingForCandidate")
            self.requeue = 5.0
        return False

    def deadline_passed(self) -> bool:
        return self.status.get("reason") == "ProgressDeadlineExceeded"

    def shadow_progress(self, target: DeploymentState | None) -> Event | None:
        if not self.candidate_ready(target):
            return Event.CANDIDATE_UNAVAILABLE if self.deadline_passed() else None
        shadow = self.spec.strategy.shadow
        assert shadow is not None
        minimum = parse_duration(shadow.duration)
        return self.analysis_event(minimum, 3 * minimum, last=False, on_advance=Event.SHADOW_DONE)

    def canary_progress(self, target: DeploymentState | None) -> Event | None:
        if not self.candidate_ready(target):
            return Event.CANDIDATE_UNAVAILABLE if self.deadline_passed() else None
        steps = self.spec.strategy.canary.steps
        index = self.status.get("currentStep") or 0
        if index >= len(steps):
            return Event.STEPS_DONE
        last = index == len(steps) - 1
        done = Event.STEPS_DONE if last else Event.STEP_DONE
        step = steps[index]
        if step.set_weight is not None:
            return done if self.traffic_verified() else None
        if step.pause is not None:
            return self.pause_step_event(step, done)
        assert step.analyze is not None
        minimum = parse_duration(step.analyze.duration)
        return self.analysis_event(minimum, step.analyze.budget_seconds, last, on_advance=done)

    def pause_step_event(self, step: Step, done: Event) -> Event | None:
        assert step.pause is not None
        if step.pause.duration is None:
            self.status["pausedReason"] = "step"
            self.because(
                "ManualGate", "paused at a manual gate: `kubectl fairshift promote` continues"
            )
            return Event.HALT
        waited = seconds_since(self.status.get("stepStartedAt"), self.now)
        if waited >= parse_duration(step.pause.duration):
            return done
        self.say(f"pausing for {step.pause.duration}", "PauseStep")
        return None

    def promotion_progress(self, target: DeploymentState | None) -> Event | None:
        ns, name = self.rollout.namespace, self.spec.target_ref.name
        if target is None:
            return Event.TARGET_LOST
        primary = self.deps.workloads.primary_state(ns, name)
        if primary is None or primary.revision != self.status.get("candidateRevision"):
            self.deps.workloads.promote_template(ns, name, target.template)
            self.say("copying the candidate into the primary Deployment", "Promoting")
            self.requeue = 5.0
            return None
        if not primary.available:
            deadline = parse_duration(self.spec.strategy.progress_deadline)
            if seconds_since(self.status.get("phaseStartedAt"), self.now) > deadline:
                self.because("PromotionFailed", "the promoted primary did not become available")
                return Event.CANDIDATE_UNAVAILABLE
            self.say("waiting for the promoted primary to become available", "Promoting")
            self.requeue = 5.0
            return None
        if not self.traffic_verified():
            return None
        self.scale_candidate(0)
        self.say("promoted: the primary runs the candidate and takes all traffic", "Promoted")
        return Event.PROMOTION_DONE

    def rollback_progress(self, target: DeploymentState | None) -> Event | None:
        """Traffic back to primary first; then the candidate (if it still exists) to zero."""
        if not self.traffic_verified():
            return None
        if target is not None:
            self.scale_candidate(0)
        self.say(
            f"rolled back: {self.status.get('message', '')}".strip(), self.status.get("reason")
        )
        return Event.ROLLBACK_DONE

    # analysis ------------------------------------------------------------------------------

    def analysis_event(
        self, minimum: float, budget: float, last: bool, on_advance: Event
    ) -> Event | None:
        analysis = self.spec.analysis
        if analysis is None:
            return (
                on_advance
                if seconds_since(self.status.get("stepStartedAt"), self.now) >= minimum
                else None
            )
        since_last = seconds_since(self.status.get("lastAnalysisAt"), self.now)
        if self.status.get("lastAnalysisAt") and since_last < analysis.interval_seconds:
            self.requeue = analysis.interval_seconds - since_last
            return None
        if not self.traffic_verified():
            return None
        evaluation = self.evaluate()
        if evaluation is None:
            return self.error_event()
        self.status["consecutiveErrors"] = 0
        self.condition("Degraded", "False", "MetricsHealthy", "")
        clock = StepClock(
            seconds_since(self.status.get("analysisStartedAt"), self.now), minimum, budget
        )
        decision = decide(
            evaluation,
            clock,
            on_failure=self.spec.on_failure,
            on_inconclusive=self.spec.on_inconclusive,
            last_step=last,
        )
        self.note_analysis(evaluation, decision)
        return self.decision_event(decision, on_advance, last)

    def evaluate(self) -> Evaluation | None:
        analysis = self.spec.analysis
        assert analysis is not None
        start = min(parse_time(self.status.get("analysisStartedAt")) or self.now, self.now)
        source = self.deps.metrics_for(self.spec)
        ns, target = self.rollout.namespace, self.spec.target_ref.name
        try:
            counts = source.collect(
                analysis,
                self.context(f"{target}-primary", "stable", start),
                self.context(target, "candidate", start),
            )
        except InvalidQueryError as error:
            self.status["message"] = f"a query cannot run as written: {error}"
            self.status["reason"] = "InvalidQuery"
            self.status["consecutiveErrors"] = MAX_CONSECUTIVE_ERRORS - 1
            return None
        except MetricsError as error:
            self.status["message"] = f"metrics unavailable: {error}"
            self.status["reason"] = "MetricsError"
            if self.deps.operator_metrics is not None:
                self.deps.operator_metrics.count_error(ns, self.rollout.name, "metrics")
            return None
        self.status["lastAnalysisAt"] = iso(self.now)
        return evaluate(analysis, counts.stable, counts.candidate)

    def context(self, deployment: str, version: str, start: datetime) -> QueryContext:
        return QueryContext(
            namespace=self.rollout.namespace,
            rollout=self.rollout.name,
            deployment=deployment,
            version=version,  # type: ignore[arg-type]
            service=f"{self.rollout.name}-{'primary' if version == 'stable' else 'canary'}",
            start=start,
            end=self.now,
        )

    def error_event(self) -> Event | None:
        errors = int(self.status.get("consecutiveErrors") or 0) + 1
        self.status["consecutiveErrors"] = errors
        self.status["verdict"] = Verdict.ERROR.value
        self.requeue = min(10.0 * errors, 60.0)
        if errors < MAX_CONSECUTIVE_ERRORS:
            return None
        message = f"{errors} analyses in a row could not read metrics: {self.status['message']}"
        self.condition("Degraded", "True", "AnalysisErrors", message)
        self.status["pausedReason"] = "errors"
        self.because("AnalysisErrors", message)
        return Event.HALT

    def note_analysis(self, evaluation: Evaluation, decision: Decision) -> None:
        self.status["verdict"] = decision.verdict.value
        self.say(decision.message, decision.reason)
        worst = [
            evidence(c).model_dump(by_alias=True, mode="json")
            for c in evaluation.worst(KEPT_EVIDENCE)
        ]
        self.status["evidence"] = worst
        self.condition("Analysed", "True", decision.reason, decision.message)
        if self.deps.operator_metrics is not None:
            self.deps.operator_metrics.observe_gates(
                self.rollout.namespace, self.rollout.name, [evidence(c) for c in evaluation.cells]
            )
        if decision.action is Action.HOLD and self.deps.audit is not None:
            self.audit_record(decision.action.value, decision.reason, decision.message)

    def decision_event(self, decision: Decision, on_advance: Event, last: bool) -> Event | None:
        action = decision.action
        if action is not Action.HOLD:
            self.cause, self.cause_reason = decision.message, decision.reason
        if action in (Action.ADVANCE, Action.PROMOTE):
            return on_advance
        if action is Action.PAUSE:
            self.status["pausedReason"] = "analysis"
            return Event.HALT
        if action is Action.ROLLBACK:
            failed = decision.verdict is Verdict.FAILED
            return Event.ANALYSIS_FAILED if failed else Event.INCONCLUSIVE_ROLLBACK
        return None

    # traffic -------------------------------------------------------------------------------

    def router(self) -> Router:
        return self.deps.router_for(
            self.spec, self.rollout.namespace, self.rollout.name, self.rollout.owner
        )

    def current_weight(self) -> int:
        if self.phase is Phase.CANARY:
            return step_weight(self.spec.strategy.canary.steps, self.status.get("currentStep"))
        if self.phase is Phase.PAUSED:
            return int(self.status.get("canaryWeight") or 0)
        return 0

    def desired_weights(self) -> Weights:
        desired = DESIRED[self.phase]
        shadow = self.spec.strategy.shadow
        mirror = 0
        if self.phase is Phase.SHADOW and shadow is not None:
            mirror = shadow.mirror_percent
        elif self.phase is Phase.PAUSED and desired.mirror:
            mirror = int(self.status.get("mirrorPercent") or 0)
        canary = self.current_weight() if desired.route_canary else 0
        return Weights.canary_share(canary, mirror)

    def set_traffic(self, weights: Weights) -> None:
        try:
            self.router().set_weights(weights)
        except RoutingError as error:
            raise TemporaryError(f"could not route traffic: {error}") from error
        self.status["canaryWeight"] = weights.canary
        self.status["mirrorPercent"] = weights.mirror_percent

    def traffic_verified(self) -> bool:
        """The route sends what this phase and step want: written, then read back."""
        wanted = self.desired_weights()
        router = self.router()
        live = router.get_weights()
        if live != wanted:
            self.set_traffic(wanted)
            live = router.get_weights()
        verified = live == wanted and router.verify() is True
        if not verified:
            self.say("waiting for the route to show the new weights", "RouteNotReady")
            self.requeue = 3.0
            return False
        return True

    def scale_candidate(self, replicas: int) -> None:
        if self.spec.routing.kind != "replicas":
            self.deps.workloads.scale(self.rollout.namespace, self.spec.target_ref.name, replicas)

    def converge(self, target: DeploymentState | None) -> None:
        """Make traffic and the candidate's replicas match the phase (idempotent)."""
        desired = DESIRED[self.phase]
        if self.phase in (Phase.PROMOTING, Phase.ROLLING_BACK, Phase.INITIALIZING):
            return
        if target is None:
            self.set_traffic(self.desired_weights())
            return
        if desired.candidate_scaled:
            primary = self.deps.workloads.primary_state(
                self.rollout.namespace, self.spec.target_ref.name
            )
            self.scale_candidate(max(primary.replicas if primary else 1, 1))
        self.set_traffic(self.desired_weights())
        if not desired.candidate_scaled:
            self.scale_candidate(0)
        self.condition(
            "Progressing",
            "True" if self.phase in (Phase.SHADOW, Phase.CANARY, Phase.PROMOTING) else "False",
            self.phase.value,
            self.status.get("message", ""),
        )
        self.condition(
            "Paused",
            "True" if self.phase is Phase.PAUSED else "False",
            self.status.get("pausedReason") or "",
            "",
        )
        self.condition(
            "Completed",
            "True" if desired.terminal and self.phase is not Phase.IDLE else "False",
            self.phase.value,
            "",
        )

    # decisions and their records -----------------------------------------------------------

    def record(self, event: Event, source: Phase, target: Phase) -> None:
        cause = self.cause or self.routine_cause(event)
        keeps_reason = event is Event.ROLLBACK_DONE and self.status.get("reason")
        reason = self.cause_reason or (keeps_reason or camel_case(event.value))
        self.cause = self.cause_reason = None
        self.status["reason"] = reason
        message = f"{source.value} -> {target.value} ({event.value}): {cause}"
        kind = "Warning" if target in WARNING_PHASES else "Normal"
        self.event(kind, f"{target.value}", message[:1024])
        self.audit_record(event.value, str(reason), message)

    def append_audit(self, payload: Mapping[str, Any]) -> Mapping[str, Any]:
        """Chain the record after the stored tail (or, without a store, after status)."""

        def build(tail: Mapping[str, Any] | None) -> dict[str, Any]:
            if tail is None and self.deps.audit is None and self.status.get("auditHead"):
                tail = {"seq": self.status.get("auditSeq") or 0, "hash": self.status["auditHead"]}
            seq = int(tail["seq"]) + 1 if tail else 1
            return chain_record(payload, seq, str(tail["hash"]) if tail else GENESIS_HASH)

        if self.deps.audit is None:
            return build(None)
        return self.deps.audit.append(
            self.rollout.namespace, self.rollout.name, build, [self.rollout.owner]
        )

    def remember(self, record: Mapping[str, Any]) -> None:
        """Status follows the chain: its head, and a summary among the last decisions."""
        self.status["auditSeq"] = int(record["seq"])
        self.status["auditHead"] = str(record["hash"])
        summary = DecisionRecord(
            seq=int(record["seq"]),
            time=str(record.get("time", "")),
            action=str(record.get("action", "")),
            reason=str(record.get("reason", "")),
            phase=str(record.get("phase", "")),
            step=record.get("step"),
            candidate_revision=record.get("candidateRevision"),
            prev_hash=str(record["prev_hash"]),
            hash=str(record["hash"]),
        ).model_dump(by_alias=True, mode="json")
        self.status["decisions"] = [*self.status.get("decisions", []), summary][-KEPT_DECISIONS:]

    def routine_cause(self, event: Event) -> str:
        """The readable cause of a transition that no analysis or person explained."""
        steps = len(self.spec.strategy.canary.steps)
        step = self.status.get("currentStep")
        texts = {
            Event.INITIALIZED: f"revision {self.status.get('stableRevision')} is stable",
            Event.NEW_REVISION: f"new revision {self.status.get('candidateRevision')}",
            Event.NEW_REVISION_WITH_SHADOW: f"new revision {self.status.get('candidateRevision')}",
            Event.SHADOW_DONE: "shadow analysis passed",
            Event.STEP_DONE: f"step {step if step is not None else 0} of {steps} done",
            Event.STEPS_DONE: f"all {steps} steps done",
            Event.PROMOTION_DONE: "the primary runs the candidate and takes all traffic",
            Event.ROLLBACK_DONE: "all traffic on primary; the candidate is scaled down",
            Event.REVERTED: "the target went back to the stable revision",
        }
        return texts.get(event, str(self.status.get("message", "")))

    def audit_record(self, action: str, reason: str, message: str) -> None:
        payload = {
            "time": iso(self.now),
            "rollout": f"{self.rollout.namespace}/{self.rollout.name}",
            "action": action,
            "reason": reason,
            "message": message[:1024],
            "phase": self.phase.value,
            "step": self.status.get("currentStep"),
            "canaryWeight": self.status.get("canaryWeight", 0),
            "mirrorPercent": self.status.get("mirrorPercent", 0),
            "candidateRevision": self.status.get("candidateRevision"),
            "verdict": self.status.get("verdict"),
            "evidence": self.status.get("evidence", []),
        }
        if self.request_id and action != Action.HOLD.value:
            payload["request"], self.request_id = self.request_id, None
        record = self.append_audit(payload)
        log.info("decision %s", json.dumps(record, sort_keys=True))
        self.remember(record)
        if self.deps.operator_metrics is not None:
            self.deps.operator_metrics.count_decision(action, reason)
        if self.deps.notifier is not None:
            self.deps.notifier.notify(
                self.rollout.namespace, self.rollout.name, record, self.spec.notifications
            )
