"""Thin kopf handlers: build the dependencies once, hand each rollout to the executor.

A timer ticks every few seconds per ModelRollout, but a tick works only when the rollout's
plan asked to be looked at again by then (``Plan.next_check``: the next analysis, a route to
read back, a resting rollout's slower look), or when a person changed the rollout (its
generation or its action annotation). That check runs on the event loop and makes no request;
only a due tick hands the reconcile to a worker thread. kopf's own progress and diff-base
records live in ``fairshift.io/`` annotations, never in status. Errors map to kopf's: temporary
trouble backs off, nothing here branches on phase.

The reconcile's reads of Deployments, routes and audit ConfigMaps come from the watch
(``k8s.watched``, fed by kopf event handlers), and its Prometheus queries run on the event loop
over a bounded connection pool (``metrics.async_transport``), asking Prometheus for counts it
has summed per cell: the worker threads wait for answers, not for connections, and no tick
re-reads what the watch already delivered.

Sharded replicas (``OperatorConfig.sharding``) work only the rollouts of the shards whose
Leases they hold (``k8s.sharding``); the others are skipped at the top of the tick, which costs
a hash. (A kopf ``when=`` filter would be evaluated only on watch events, so an idle rollout
whose shard moved would never be picked up.)
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
from fairshift.k8s.auditstore import AuditStore
from fairshift.k8s.client import make_api_client
from fairshift.k8s.errors import KubeError
from fairshift.k8s.events import EventPoster
from fairshift.k8s.leases import KubeLeases
from fairshift.k8s.objects import KubeObjects
from fairshift.k8s.rollouts import Rollouts
from fairshift.k8s.secrets import SecretReader
from fairshift.k8s.sharding import NoShardEvents, ShardCoordinator, ShardSettings
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

    tick_seconds: float = 5.0
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
    Prometheus clients on this event loop."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="fairshift.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="fairshift.io", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    # ticks are mostly waiting on the API server and Prometheus: more threads, more rollouts
    settings.execution.max_workers = WORKER_THREADS
    memo["executor"] = settings.execution.executor
    config: OperatorConfig = memo.setdefault("config", OperatorConfig())
    api = KubeObjects.from_api_client(make_api_client(config.kubeconfig, pool_size=WORKER_THREADS))
    objects = WatchedObjects(api, WATCHED_KINDS)
    sources = AsyncSources(asyncio.get_running_loop(), config.metrics)
    memo["objects"] = objects
    memo["sources"] = sources
    memo["events"] = EventPoster(api)
    memo["reconciler"] = Reconciler(build_dependencies(config, objects, sources))
    memo["shards"] = start_sharding(config)
    schedule: dict[str, Due] = memo.setdefault("due", {})
    if config.metrics is not None:
        config.metrics.track_overdue(lambda: oldest_overdue(schedule, datetime.now(UTC)))


def start_sharding(config: OperatorConfig) -> ShardCoordinator | None:
    """The shard coordinator of a sharded replica, running in its own thread (else None)."""
    if config.sharding is None:
        return None
    settings = config.sharding
    leases = KubeLeases(make_api_client(config.kubeconfig), settings.namespace, settings.group)
    events = config.metrics if config.metrics is not None else NoShardEvents()
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
    if memo.setdefault("written_seq", {}).pop(rollout.uid, None) is None:
        return
    memo.setdefault("due", {}).pop(rollout.uid, None)
    config: OperatorConfig = memo["config"]
    if config.metrics is not None:
        config.metrics.forget(rollout.namespace, rollout.name)


@dataclass(frozen=True)
class Due:
    """When a rollout wants its next look, and what a person had set when it said so."""

    at: datetime
    generation: int
    action: str | None


def is_due(memo: kopf.Memo, rollout: Rollout, now: datetime) -> bool:
    """Whether this tick should work: the plan's time has come, or a person changed something.

    The schedule is a hint kept in memory: after a restart every rollout is looked at once.
    How late a due look comes is the operator's lag (``fairshift_schedule_lateness_seconds``).
    """
    due: Due | None = memo.setdefault("due", {}).get(rollout.uid)
    if due is None:
        return True
    if now >= due.at:
        config: OperatorConfig = memo["config"]
        if config.metrics is not None:
            config.metrics.observe_lateness((now - due.at).total_seconds())
        return True
    return (due.generation, due.action) != (
        rollout.generation,
        rollout.annotations.get(ACTION_ANNOTATION),
    )


def oldest_overdue(schedule: dict[str, Due], now: datetime) -> float:
    """Seconds since the oldest look that is due and has not happened (0 when none is)."""
    late = [(now - due.at).total_seconds() for due in list(schedule.values()) if due.at <= now]
    return max(late, default=0.0)


async def tick(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Reconcile one rollout when due and write its status, events and decisions.

    Whether it is due is decided here on the loop, without a request; the reconcile itself
    runs in kopf's worker threads.
    """
    rollout = rollout_of(body)
    started = datetime.now(UTC)
    if body.get("metadata", {}).get("deletionTimestamp") or not works_here(memo, rollout):
        return  # a rollout being deleted belongs to the finalizer; another shard to another
    if not is_due(memo, rollout, started):
        return
    if is_stale(memo, rollout, started):
        return  # kopf has not seen our last status write yet; the next tick will
    executor: Executor | None = memo.get("executor")
    changed = await asyncio.get_running_loop().run_in_executor(
        executor, partial(reconcile, memo, body, rollout, started)
    )
    patch.status.update(changed)


def reconcile(
    memo: kopf.Memo, body: kopf.Body, rollout: Rollout, started: datetime
) -> dict[str, Any]:
    """One reconcile (in a worker thread): events posted, the status patch returned."""
    config: OperatorConfig = memo["config"]
    try:
        if config.metrics is not None:
            with config.metrics.time_reconcile():
                result = memo["reconciler"].reconcile(rollout, started)
        else:
            result = memo["reconciler"].reconcile(rollout, started)
    except TemporaryError as error:
        raise kopf.TemporaryError(str(error), delay=error.delay) from error
    except KubeError as error:
        raise kopf.TemporaryError(f"Kubernetes API: {error}", delay=10) from error
    schedule(memo, rollout, result, started)
    post_events(memo, body, [(e.kind, e.reason, e.message) for e in result.events])
    return status_patch(result.status, rollout.status)


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


STALE_BODY_WAIT = timedelta(seconds=30)


def is_stale(memo: kopf.Memo, rollout: Rollout, now: datetime) -> bool:
    """Whether the body predates a status this process wrote moments ago (its audit seq is
    older). Acting on it would be safe (the audit log is replayed) but would repeat the
    replay's Events. Only for ``STALE_BODY_WAIT``: a write that never arrived (a failed
    patch) must not stall the rollout; after a restart every body is taken."""
    written: tuple[int, datetime] = memo.setdefault("written_seq", {}).get(rollout.uid, (0, now))
    seq, at = written
    fresh_write = now - at < STALE_BODY_WAIT
    return fresh_write and int((rollout.status or {}).get("auditSeq") or 0) < seq


def schedule(memo: kopf.Memo, rollout: Rollout, result: Result, now: datetime) -> None:
    written = int(result.status.get("auditSeq") or 0)
    memo.setdefault("written_seq", {})[rollout.uid] = (written, now)
    if result.next_check is not None:
        memo.setdefault("due", {})[rollout.uid] = Due(
            result.next_check, rollout.generation, rollout.annotations.get(ACTION_ANNOTATION)
        )


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
    memo.setdefault("due", {}).pop(rollout.uid, None)
    if memo.get("shards") is not None:
        memo["shards"].forget(rollout.namespace, rollout.name)


def plural_of(kind: str) -> str:
    return kind.lower() + "s"


def build_registry(tick_seconds: float) -> kopf.OperatorRegistry:
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
    kopf.timer(GROUP, VERSION, PLURAL, interval=tick_seconds, initial_delay=1.0, registry=registry)(
        tick
    )
    kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)(finalize)
    return registry
