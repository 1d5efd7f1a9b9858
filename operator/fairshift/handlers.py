"""Thin kopf handlers: build the dependencies once, hand each rollout to the executor.

Each ModelRollout has a loop of its own (a kopf daemon, ``follow``) that looks at it when its
plan asked (``Plan.next_check``: the next analysis, a route to read back, a resting rollout's
slower look) and sleeps in between on the event loop: no timer fires, no thread waits, no
request is made for a rollout with nothing due. A person's change (its generation or its
action annotation) wakes the loop at once through a watch handler (``notice``), as does the
watch delivering our own status write to a look held back by the stale-body guard, or this
replica gaining the rollout's shard; the ``--tick`` ceiling bounds every sleep. The schedule
and the lag counts live in ``executing.schedule``. kopf applies a daemon's patch only when it
returns, so a look writes its status itself (``k8s.rollouts.Rollouts.patch_status``, the merge
patch of what changed, nothing when nothing did). kopf's own progress and diff-base records
live in ``fairshift.io/`` annotations, never in status. Errors map to kopf's: temporary
trouble ends the loop with ``kopf.TemporaryError`` and kopf starts it again after the delay,
still due; nothing here branches on phase.

The reconcile's reads of Deployments, routes and audit ConfigMaps come from the watch
(``k8s.watched``, fed by kopf event handlers), and its Prometheus queries run on the event loop
over a bounded connection pool (``metrics.async_transport``), asking Prometheus for counts it
has summed per cell: the worker threads wait for answers, not for connections, and no look
re-reads what the watch already delivered.

Sharded replicas (``OperatorConfig.sharding``) work only the rollouts of the shards whose
Leases they hold (``k8s.sharding``); the others are skipped at the top of each look, which
costs a hash, and sleep until the shard comes here (the coordinator wakes them) or the
ceiling. (A kopf ``when=`` filter would be evaluated only on watch events, so an idle rollout
whose shard moved would never be picked up.)
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import kopf

from fairshift.api import GROUP, PLURAL, VERSION
from fairshift.api.analysis import Prometheus
from fairshift.api.names import ACTION_ANNOTATION
from fairshift.api.spec import ModelRolloutSpec
from fairshift.api.status import Phase
from fairshift.evidence.closing import EvidenceFiles
from fairshift.evidence.sink import MlflowSink
from fairshift.evidence.tracking import secret_credentials
from fairshift.executing.executor import Reconciler, Result, Rollout, TemporaryError, route_target
from fairshift.executing.ports import Dependencies, InMemoryAuditLog, NullTelemetry
from fairshift.executing.schedule import Person, Schedule
from fairshift.k8s.auditstore import AuditStore
from fairshift.k8s.client import make_api_client
from fairshift.k8s.errors import KubeError
from fairshift.k8s.events import EventPoster
from fairshift.k8s.leases import KubeLeases
from fairshift.k8s.objects import KubeObjects
from fairshift.k8s.rollouts import Rollouts
from fairshift.k8s.secrets import SecretReader
from fairshift.k8s.sharding import (
    NoShardEvents,
    ShardCoordinator,
    ShardEvents,
    ShardSettings,
    shard_of,
)
from fairshift.k8s.store import ObjectStore
from fairshift.k8s.watched import WatchedObjects
from fairshift.k8s.workloads import Workloads, merge_patch_between
from fairshift.metrics.async_transport import AsyncPrometheusTransport
from fairshift.metrics.operator_metrics import OperatorMetrics
from fairshift.metrics.prometheus import PrometheusSource, PrometheusSources
from fairshift.notify.fanout import FanOut
from fairshift.notify.webhook import Notifier
from fairshift.routing.base import Router, RoutingError
from fairshift.routing.registry import make_router

log = logging.getLogger("fairshift.handlers")

WORKER_THREADS = 64
"""kopf's worker threads, and the API client's connections kept for them: with fewer
connections than threads the client closes and reopens connections under load (98 times in
four minutes at 1,000 rollouts with the client's default of ten)."""


@dataclass
class OperatorConfig:
    """What ``fairshift run`` decided; handed to kopf as its memo."""

    longest_wait: float = 30.0  # ``--tick``: no rollout waits longer between looks
    audit_configmap: bool = True
    default_prometheus: str | None = None
    metrics: OperatorMetrics | None = None
    kubeconfig: str | None = None
    sharding: ShardSettings | None = None


WATCHED_KINDS = (
    ("apps/v1", "Deployment"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("networking.istio.io/v1", "VirtualService"),
    ("v1", "ConfigMap"),
)
"""What a reconcile reads, served from the watch (``k8s.watched``)."""

MANAGED = {"app.kubernetes.io/managed-by": "fairshift"}
"""The label of fairshift's own ConfigMaps (the audit trails): the only ones watched."""


class AsyncSources:
    """Prometheus sources whose queries run on ``loop`` (``metrics.async_transport``) and whose
    answers Prometheus has already summed (``promql.counted_query``: one element per cell)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, metrics: OperatorMetrics | None) -> None:
        self.loop = loop
        self.metrics = metrics
        self.transports: list[AsyncPrometheusTransport] = []

    def make(self, address: str, timeout: float) -> PrometheusSource:
        transport = AsyncPrometheusTransport(
            address, timeout, loop=self.loop, observer=self.metrics
        )
        self.transports.append(transport)
        return PrometheusSource(address, timeout, transport=transport, counted=True)

    async def close(self) -> None:
        for transport in self.transports:
            await transport.close()


def build_dependencies(
    config: OperatorConfig, objects: ObjectStore, sources: AsyncSources | None = None
) -> Dependencies:
    """The reconciler's dependencies on the real API server and Prometheus.

    ``sources`` makes the Prometheus reads asynchronous; without it they block their thread.
    """

    def router_for(
        spec: ModelRolloutSpec, namespace: str, name: str, owner: Mapping[str, Any]
    ) -> Router:
        return make_router(route_target(spec, namespace, name, owner), objects)

    default = Prometheus(address=config.default_prometheus) if config.default_prometheus else None
    prometheus = PrometheusSources(
        sources.make if sources is not None else None, observer=config.metrics, default=default
    )

    webhooks = Notifier(
        resolve_url=SecretReader(objects).read_secret_key,
        executor=ThreadPoolExecutor(max_workers=2, thread_name_prefix="fairshift-notify"),
    )
    mlflow = MlflowSink(
        read_credentials=secret_credentials(SecretReader(objects).read_secret_key),
        files=EvidenceFiles(AuditStore(objects).read_records, Rollouts(objects).get_rollout),
        count=partial(config.metrics.count_evidence, "mlflow") if config.metrics else None,
    )
    notifier = FanOut(webhooks, mlflow)
    return Dependencies(
        workloads=Workloads(objects),
        router_for=router_for,
        metrics_for=lambda _spec: prometheus,
        audit=AuditStore(objects) if config.audit_configmap else InMemoryAuditLog(),
        notifier=notifier,
        telemetry=config.metrics if config.metrics is not None else NullTelemetry(),
    )


def rollout_of(body: kopf.Body) -> Rollout:
    meta = body.get("metadata", {})
    return Rollout(
        namespace=str(meta.get("namespace")),
        name=str(meta.get("name")),
        uid=str(meta.get("uid")),
        generation=int(meta.get("generation") or 0),
        spec=dict(body.get("spec") or {}),
        status=dict(body.get("status") or {}),
        annotations=dict(meta.get("annotations") or {}),
    )


def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Credentials from ``KUBECONFIG`` (read now, not at import), else the pod's account."""
    info: kopf.ConnectionInfo | None
    if os.environ.get("KUBECONFIG"):
        info = kopf.login_with_kubeconfig(**kwargs)
    else:
        info = kopf.login_via_client(**kwargs)
    return info


async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """kopf's bookkeeping in fairshift annotations; the API clients built once, the
    Prometheus clients and the schedule's wake-ups on this event loop."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="fairshift.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="fairshift.io", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    # looks are mostly waiting on the API server and Prometheus: more threads, more rollouts
    settings.execution.max_workers = WORKER_THREADS
    memo["executor"] = settings.execution.executor
    config: OperatorConfig = memo.setdefault("config", OperatorConfig())
    api = KubeObjects.from_api_client(make_api_client(config.kubeconfig, pool_size=WORKER_THREADS))
    objects = WatchedObjects(api, WATCHED_KINDS)
    loop = asyncio.get_running_loop()
    sources = AsyncSources(loop, config.metrics)
    memo["objects"] = objects
    memo["rollouts"] = Rollouts(objects)
    memo["sources"] = sources
    memo["events"] = EventPoster(api)
    memo["reconciler"] = Reconciler(build_dependencies(config, objects, sources))
    memo["shards"] = start_sharding(config, schedule_of(memo), loop)


def schedule_of(memo: kopf.Memo) -> Schedule:
    """The process' schedule (made on first use, its lag counts published)."""
    schedule: Schedule | None = memo.get("schedule")
    if schedule is not None:
        return schedule
    config: OperatorConfig = memo.setdefault("config", OperatorConfig())
    made = memo["schedule"] = Schedule(config.longest_wait, config.metrics)
    if config.metrics is not None:
        config.metrics.track_overdue(lambda: made.oldest_overdue(datetime.now(UTC)))
        config.metrics.track_looks(lambda: made.looks_due(datetime.now(UTC)), made.looks_done)
    return made


class WakeOnGain:
    """The coordinator's shard events, passed on to the metrics; a shard this replica gains
    also wakes its rollouts' loops at once (handed from the coordinator's thread to the loop)."""

    def __init__(
        self, events: ShardEvents, schedule: Schedule, loop: asyncio.AbstractEventLoop, shards: int
    ) -> None:
        self.events = events
        self.schedule = schedule
        self.loop = loop
        self.shards = shards

    def shard_changed(self, change: str, shard: int) -> None:
        self.events.shard_changed(change, shard)
        if change in ("acquired", "taken"):
            self.loop.call_soon_threadsafe(
                self.schedule.wake_where, partial(in_shard, shard, self.shards)
            )

    def shards_held(self, count: int) -> None:
        self.events.shards_held(count)


def in_shard(shard: int, shards: int, namespace: str, name: str) -> bool:
    return shard_of(namespace, name, shards) == shard


def start_sharding(
    config: OperatorConfig, schedule: Schedule, loop: asyncio.AbstractEventLoop
) -> ShardCoordinator | None:
    """The shard coordinator of a sharded replica, running in its own thread (else None)."""
    if config.sharding is None:
        return None
    settings = config.sharding
    leases = KubeLeases(make_api_client(config.kubeconfig), settings.namespace, settings.group)
    metrics = config.metrics if config.metrics is not None else NoShardEvents()
    events = WakeOnGain(metrics, schedule, loop, settings.shards)
    coordinator = ShardCoordinator(settings, leases, events=events)
    if config.metrics is not None:
        config.metrics.track_rollouts_owned(coordinator.owned_count)
    coordinator.run_in_background()
    log.info(
        "sharded replica %s: %d shards, Leases in %s (group %s)",
        settings.identity,
        settings.shards,
        settings.namespace,
        settings.group,
    )
    return coordinator


def stop_sharding(memo: kopf.Memo, **_: Any) -> None:
    """On a clean shutdown (after kopf stopped the handlers): hand the shard Leases back."""
    coordinator: ShardCoordinator | None = memo.get("shards")
    if coordinator is not None:
        coordinator.stop(release=True)


def works_here(memo: kopf.Memo, rollout: Rollout) -> bool:
    """Whether this replica works the rollout: always unless sharded, else when it holds the
    rollout's shard (and renewed it in time)."""
    coordinator: ShardCoordinator | None = memo.get("shards")
    if coordinator is None or coordinator.claims(rollout.namespace, rollout.name):
        return True
    handed_over(memo, rollout)
    return False


def handed_over(memo: kopf.Memo, rollout: Rollout) -> None:
    """A rollout this replica worked belongs to another now: forget its schedule and stop
    publishing its series (the new owner publishes them; sums over replicas stay right)."""
    if not schedule_of(memo).forget(rollout.uid, datetime.now(UTC)):
        return
    config: OperatorConfig = memo["config"]
    if config.metrics is not None:
        config.metrics.forget(rollout.namespace, rollout.name)


def person_of(body: Mapping[str, Any]) -> Person:
    """What a person set on the rollout that makes a look due at once when it changes: its
    generation (the spec) and its action annotation."""
    meta = body.get("metadata") or {}
    action = (meta.get("annotations") or {}).get(ACTION_ANNOTATION)
    return Person(int(meta.get("generation") or 0), action)


def audit_seq_of(status: Mapping[str, Any] | None) -> int:
    return int((status or {}).get("auditSeq") or 0)


async def follow(body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """One rollout's loop (a kopf daemon, ``body`` kept fresh by kopf's watch): look when due,
    then sleep until the plan's next check, a wake-up or the ceiling, until kopf stops it (the
    rollout is being deleted, or the operator stops). A failed look raises, and kopf starts
    the loop again after the error's delay: the look is still due then."""
    schedule = schedule_of(memo)
    meta = body.get("metadata", {})
    uid = str(meta.get("uid"))
    wake = schedule.watch(uid, str(meta.get("namespace")), str(meta.get("name")))
    try:
        while not stopped:
            wake.clear()
            seconds = await look(body, memo)
            await rest(wake, stopped, seconds)
    finally:
        if stopped:
            schedule.unwatch(uid)


async def rest(wake: asyncio.Event, stopped: kopf.DaemonStopped, seconds: float) -> None:
    """Sleep ``seconds``, or less when woken or stopped."""
    if seconds <= 0 or wake.is_set():
        return
    waiters = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stopped.wait())}
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def look(body: kopf.Body, memo: kopf.Memo) -> float:
    """Reconcile the rollout if it is due and write its status, events and decisions; returns
    how long its loop may sleep. Whether it is due is decided here on the loop, without a
    request; the reconcile itself runs in kopf's worker threads."""
    schedule = schedule_of(memo)
    rollout = rollout_of(body)
    now = datetime.now(UTC)
    if body.get("metadata", {}).get("deletionTimestamp"):
        return schedule.ceiling  # the finalizer's now; kopf stops this loop
    if not works_here(memo, rollout):
        return schedule.wait_seconds(rollout.uid, now, works_here=False)
    person = person_of(body)
    if schedule.is_due(rollout.uid, person, now) and not schedule.is_stale(
        rollout.uid, audit_seq_of(rollout.status), now
    ):
        schedule.start(rollout.uid, person, now)
        executor: Executor | None = memo.get("executor")
        result = await asyncio.get_running_loop().run_in_executor(
            executor, partial(reconcile, memo, body, rollout, now)
        )
        now = datetime.now(UTC)
        schedule.done(rollout.uid, person, audit_seq_of(result.status), result.next_check, now)
    return schedule.wait_seconds(rollout.uid, now)


def reconcile(memo: kopf.Memo, body: kopf.Body, rollout: Rollout, started: datetime) -> Result:
    """One reconcile (in a worker thread): events posted, the status written when it changed."""
    config: OperatorConfig = memo["config"]
    try:
        if config.metrics is not None:
            with config.metrics.time_reconcile():
                result = memo["reconciler"].reconcile(rollout, started)
        else:
            result = memo["reconciler"].reconcile(rollout, started)
        post_events(memo, body, [(e.kind, e.reason, e.message) for e in result.events])
        changed = status_patch(result.status, rollout.status)
        if changed:
            memo["rollouts"].patch_status(rollout.namespace, rollout.name, changed)
    except TemporaryError as error:
        raise kopf.TemporaryError(str(error), delay=error.delay) from error
    except KubeError as error:
        raise kopf.TemporaryError(f"Kubernetes API: {error}", delay=10) from error
    assert isinstance(result, Result)
    return result


async def notice(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A watch event of a ModelRollout: wake its loop when a person changed it, or when the
    watch delivered our last status write to a look held back for it (on the loop, no
    request)."""
    uid = str(body.get("metadata", {}).get("uid"))
    schedule_of(memo).noticed(uid, person_of(body), audit_seq_of(body.get("status")))


def observe(event: Mapping[str, Any], memo: kopf.Memo, **_: Any) -> None:
    """A watch event of a Deployment, route or audit ConfigMap, kept for the reconciles."""
    objects: WatchedObjects | None = memo.get("objects")
    if objects is not None and isinstance(event.get("object"), Mapping):
        objects.observe(event.get("type"), event["object"])


async def close(memo: kopf.Memo, **_: Any) -> None:
    """On the way out: the Prometheus connections closed."""
    sources: AsyncSources | None = memo.get("sources")
    if sources is not None:
        await sources.close()


def status_patch(new: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch of what changed: new or different keys, and ``None`` for removed ones at
    any depth (a detector state reset to ``{}`` must drop its cells on the API server too).

    An unchanged status gives an empty patch, which kopf does not send: idle rollouts cost
    no writes.
    """
    patch = merge_patch_between(old, new)
    assert isinstance(patch, dict)
    return patch


def post_events(memo: kopf.Memo, body: kopf.Body, events: list[tuple[str, str, str]]) -> None:
    involved = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
        "namespace": body["metadata"]["namespace"],
    }
    for kind, reason, message in events:
        try:
            memo["events"].post_event(involved["namespace"], involved, reason, message, kind)
        except KubeError as error:
            log.warning("could not post event %s: %s", reason, error)


def finalize(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Before the rollout goes: the user's Deployment serving, then traffic back.

    Retried until done (kopf keeps the finalizer while this raises): deleting the rollout
    garbage-collects the primary, so the user's Deployment must serve first.
    """
    rollout = rollout_of(body)
    if not works_here(memo, rollout):
        # Every replica's kopf must keep the finalizer: only the shard's holder releases.
        raise kopf.TemporaryError("another replica holds this rollout's shard", delay=5)
    try:
        waiting = memo["reconciler"].release(rollout)
    except (KubeError, RoutingError) as error:
        waiting = f"could not hand traffic back yet: {error}"
    if waiting is not None:
        patch.status.update({"phase": Phase.TERMINATING.value, "message": waiting})
        raise kopf.TemporaryError(waiting, delay=5)
    schedule_of(memo).forget(rollout.uid, datetime.now(UTC))
    if memo.get("shards") is not None:
        memo["shards"].forget(rollout.namespace, rollout.name)


def plural_of(kind: str) -> str:
    return kind.lower() + "s"


STOP_GRACE = 30.0
"""Seconds kopf lets a rollout's loop finish its look when the rollout is deleted or the
operator stops, before cancelling it (a sleeping loop stops at once)."""


def build_registry() -> kopf.OperatorRegistry:
    """The operator's handlers in a registry of their own (no import-time globals)."""
    registry = kopf.OperatorRegistry()
    kopf.on.login(registry=registry)(login)
    kopf.on.startup(registry=registry)(configure)
    kopf.on.cleanup(registry=registry)(stop_sharding)
    kopf.on.cleanup(registry=registry)(close)
    for group_version, kind in WATCHED_KINDS:
        group, _, version = group_version.rpartition("/")
        labels = MANAGED if kind == "ConfigMap" else None
        kopf.on.event(group, version, plural_of(kind), labels=labels, registry=registry)(observe)
    kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)(notice)
    kopf.daemon(
        GROUP,
        VERSION,
        PLURAL,
        initial_delay=1.0,
        cancellation_backoff=STOP_GRACE,
        cancellation_timeout=5.0,
        registry=registry,
    )(follow)
    kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)(finalize)
    return registry
