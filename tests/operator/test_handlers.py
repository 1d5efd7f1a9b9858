"""The handlers' status patch (only what changed, removals as nulls), their wiring, and
what a tick costs: nothing when nothing is due, no reads of what the watch delivered."""

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


def test_a_tick_works_only_when_the_plan_asked_or_a_person_changed_something() -> None:
    from datetime import UTC, datetime, timedelta

    import kopf

    from fairshift.api.names import ACTION_ANNOTATION
    from fairshift.executing.executor import Result, Rollout
    from fairshift.handlers import OperatorConfig, is_due, oldest_overdue, schedule
    from fairshift.metrics.operator_metrics import OperatorMetrics, new_registry

    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    metrics = OperatorMetrics(new_registry())
    memo = kopf.Memo(config=OperatorConfig(metrics=metrics))
    rollout = Rollout("lending", "credit-scorer", "uid-1", 3, {}, {}, {})
    assert is_due(memo, rollout, now)  # never looked at: look now
    schedule(memo, rollout, Result({}, next_check=now + timedelta(seconds=30)), now)
    assert not is_due(memo, rollout, now + timedelta(seconds=10))
    edited = Rollout("lending", "credit-scorer", "uid-1", 4, {}, {}, {})
    assert is_due(memo, edited, now + timedelta(seconds=10))  # the spec changed
    asked = Rollout("lending", "credit-scorer", "uid-1", 3, {}, {}, {ACTION_ANNOTATION: "{}"})
    assert is_due(memo, asked, now + timedelta(seconds=10))  # a person asked for an action
    assert oldest_overdue(memo["due"], now + timedelta(seconds=45)) == 15
    assert is_due(memo, rollout, now + timedelta(seconds=42))
    value = metrics.registry.get_sample_value
    assert value("fairshift_schedule_lateness_seconds_count") == 1
    assert value("fairshift_schedule_lateness_seconds_sum") == 12


def test_the_mlflow_sink_counts_into_the_operators_metrics() -> None:
    metrics = OperatorMetrics()
    deps = build_dependencies(OperatorConfig(metrics=metrics), FakeObjects())  # type: ignore[arg-type]
    assert isinstance(deps.notifier, FanOut)
    sink = deps.notifier.notifiers[1]
    assert isinstance(sink, MlflowSink)
    sink.counted("dropped")
    labels = {"sink": "mlflow", "result": "dropped"}
    assert metrics.registry.get_sample_value("fairshift_evidence_records_total", labels) == 1


def test_a_body_older_than_our_last_status_write_is_not_acted_on() -> None:
    from datetime import UTC, datetime, timedelta

    import kopf

    from fairshift.executing.executor import Result, Rollout
    from fairshift.handlers import is_stale, schedule

    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    memo = kopf.Memo()
    fresh = Rollout("lending", "credit-scorer", "uid-1", 1, {}, {"auditSeq": 5}, {})
    assert not is_stale(memo, fresh, now)  # nothing written yet (a restart): take every body
    schedule(memo, fresh, Result({"auditSeq": 6}), now)
    assert is_stale(memo, fresh, now + timedelta(seconds=2))  # the watch lags behind
    caught_up = Rollout("lending", "credit-scorer", "uid-1", 1, {}, {"auditSeq": 6}, {})
    assert not is_stale(memo, caught_up, now + timedelta(seconds=2))
    assert not is_stale(memo, fresh, now + timedelta(minutes=1))  # a lost write never stalls


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


def test_a_tick_with_nothing_due_makes_no_api_request_and_needs_no_thread() -> None:
    world, _, reconciler = watched_world()
    api = world.workloads.objects
    memo = kopf.Memo(
        config=OperatorConfig(), reconciler=reconciler, executor=CountingExecutor(), events=None
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
    asyncio.run(handlers.tick(body=body, patch=kopf.Patch(), memo=memo))  # first look: due
    assert memo["executor"].submitted == 1
    before_reads, before_writes = len(api.reads), len(api.writes)

    for _ in range(20):
        asyncio.run(handlers.tick(body=body, patch=kopf.Patch(), memo=memo))

    assert memo["executor"].submitted == 1
    assert api.reads[before_reads:] == [] and api.writes[before_writes:] == []


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.submitted = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)
