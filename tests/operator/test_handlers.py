"""The handlers' status patch (only what changed, removals as nulls), their wiring, and
what a look costs: nothing when nothing is due, no reads of what the watch delivered."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import kopf

from fairshift import handlers
from fairshift.evidence.sink import MlflowSink
from fairshift.executing.executor import Reconciler
from fairshift.handlers import WATCHED_KINDS, OperatorConfig, build_dependencies, status_patch
from fairshift.k8s.rollouts import Rollouts
from fairshift.k8s.watched import WatchedObjects
from fairshift.metrics.operator_metrics import OperatorMetrics
from fairshift.notify.fanout import FanOut
from fairshift.notify.webhook import Notifier
from tests.fakes import FakeObjects
from tests.operator.test_reconciling import started
from tests.operator.world import NAME, NS, World


def test_an_unchanged_status_patches_nothing() -> None:
    status = {"phase": "Idle", "canaryWeight": 0, "conditions": [{"type": "Paused"}]}
    assert status_patch(dict(status), status) == {}


def test_changed_and_removed_keys_only() -> None:
    old = {"phase": "Canary", "candidateRevision": "abc", "canaryWeight": 10}
    new = {"phase": "Succeeded", "canaryWeight": 10}
    assert status_patch(new, old) == {"phase": "Succeeded", "candidateRevision": None}


def test_nested_removals_are_nulls_so_a_reset_detector_state_is_dropped() -> None:
    cell = {"upper@1": 3.2, "looks": 12.0}
    old = {"phase": "Guarding", "guard": {"looks": 12, "state": {"tpr|sex=F": cell}}}
    new = {"phase": "Guarding", "guard": {"looks": 13, "state": {}}}
    patch = status_patch(new, old)
    assert patch == {"guard": {"looks": 13, "state": {"tpr|sex=F": None}}}
    # lists are replaced whole, as JSON merge patch does
    assert status_patch({"conditions": [{"type": "A"}]}, {"conditions": [{"type": "B"}]}) == {
        "conditions": [{"type": "A"}]
    }


def test_decisions_go_to_the_webhooks_and_to_mlflow() -> None:
    deps = build_dependencies(OperatorConfig(), FakeObjects())  # type: ignore[arg-type]

    assert isinstance(deps.notifier, FanOut)
    assert [type(n) for n in deps.notifier.notifiers] == [Notifier, MlflowSink]


def test_the_mlflow_sink_counts_into_the_operators_metrics() -> None:
    metrics = OperatorMetrics()
    deps = build_dependencies(OperatorConfig(metrics=metrics), FakeObjects())  # type: ignore[arg-type]
    assert isinstance(deps.notifier, FanOut)
    sink = deps.notifier.notifiers[1]
    assert isinstance(sink, MlflowSink)
    sink.counted("dropped")
    labels = {"sink": "mlflow", "result": "dropped"}
    assert metrics.registry.get_sample_value("fairshift_evidence_records_total", labels) == 1


def watched_world() -> tuple[World, WatchedObjects, Reconciler]:
    """A resting rollout whose objects the watch has delivered, and a reconciler reading
    through the watch (as the operator's)."""
    world = started()
    world.tick(3)
    api = world.workloads.objects
    watched = WatchedObjects(api, WATCHED_KINDS)
    for body in api.objects.values():
        watched.observe(None, body)
    deps = replace(
        build_dependencies(OperatorConfig(), watched),  # type: ignore[arg-type]
        metrics_for=lambda _spec: world.metrics,
    )
    return world, watched, Reconciler(deps)


def test_a_reconcile_with_nothing_to_change_reads_nothing_from_the_api() -> None:
    world, _, reconciler = watched_world()
    api = world.workloads.objects
    before_reads, before_writes = len(api.reads), len(api.writes)

    result = reconciler.reconcile(world.rollout(), world.now)

    assert status_patch(result.status, world.status) == {}
    assert api.reads[before_reads:] == []  # target, primary, route, audit: all from the watch
    assert api.writes[before_writes:] == []


def test_without_the_watch_the_same_reconcile_reads_every_object() -> None:
    """What the test above saves: a reconcile on the API alone reads each object."""
    world, _, _ = watched_world()
    api = world.workloads.objects
    before = len(api.reads)
    world.reconciler().reconcile(world.rollout(), world.now)
    kinds = {kind for _, kind, _, _ in api.reads[before:]}
    assert {"Deployment", "HTTPRoute", "ConfigMap"} <= kinds


def test_a_look_with_nothing_due_makes_no_api_request_and_needs_no_thread() -> None:
    world, _, reconciler = watched_world()
    api = world.workloads.objects
    memo = kopf.Memo(
        config=OperatorConfig(),
        reconciler=reconciler,
        executor=CountingExecutor(),
        events=None,
        rollouts=Rollouts(api),
    )
    body = kopf.Body(
        {
            "apiVersion": "fairshift.io/v1alpha1",
            "kind": "ModelRollout",
            "metadata": {"name": NAME, "namespace": NS, "uid": "uid-1", "generation": 1},
            "spec": world.spec,
            "status": world.status,
        }
    )
    asyncio.run(handlers.look(body, memo))  # first look: due
    assert memo["executor"].submitted == 1
    before_reads, before_writes = len(api.reads), len(api.writes)

    for _ in range(20):
        asyncio.run(handlers.look(body, memo))

    assert memo["executor"].submitted == 1
    assert api.reads[before_reads:] == [] and api.writes[before_writes:] == []


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.submitted = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)
