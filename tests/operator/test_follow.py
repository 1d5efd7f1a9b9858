"""Each rollout's loop (``handlers.follow``, a kopf daemon): it looks when its plan's next
check comes and sleeps in between (no wake-up, no reconcile), wakes at once when a person
changes the rollout, retries a failed look after the error's delay, writes only a changed
status, and follows its shard between replicas.

The loops run on a real event loop with short intervals; the tests wait for conditions."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest

from fairshift import handlers
from fairshift.api.names import ACTION_ANNOTATION
from fairshift.executing.executor import Result, Rollout, TemporaryError
from fairshift.handlers import OperatorConfig, WakeOnGain, follow, notice
from fairshift.k8s.sharding import NoShardEvents, ShardCoordinator
from fairshift.metrics.operator_metrics import OperatorMetrics
from tests.operator.test_sharded_handlers import holding, name_in

NAMESPACE = "lending"


class PlannedReconciler:
    """Looks again after ``next_in[name]`` seconds; counts reconciles; ``failures[name]``
    looks raise a temporary error first."""

    def __init__(self, next_in: dict[str, float]) -> None:
        self.next_in = next_in
        self.reconciled: dict[str, int] = dict.fromkeys(next_in, 0)
        self.failures: dict[str, int] = {}
        self.seq = 0

    def reconcile(self, rollout: Rollout, now: datetime) -> Result:
        if self.failures.get(rollout.name, 0) > 0:
            self.failures[rollout.name] -= 1
            raise TemporaryError("Prometheus is down", delay=0.2)
        self.reconciled[rollout.name] += 1
        status = {"phase": "Canary", "auditSeq": int(rollout.status.get("auditSeq") or 0)}
        return Result(status, next_check=now + timedelta(seconds=self.next_in[rollout.name]))


class StatusWrites:
    """The status writes a look sends (``k8s.rollouts.Rollouts.patch_status``); with
    ``delivered``, the watch brings each write back into the rollout's body at once."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.delivered: dict[str, dict[str, Any]] = {}

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.patches.append((name, dict(status)))
        if name in self.delivered:
            self.delivered[name]["status"].update(status)


class Stopped:
    """kopf's ``stopped`` flag of a daemon, as a test sets it."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def __bool__(self) -> bool:
        return self.event.is_set()

    def wait(self) -> Awaitable[bool]:
        return self.event.wait()


def rollout_body(name: str, generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "fairshift.io/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": f"uid-{name}",
            "generation": generation,
            "annotations": {},
        },
        "spec": {},
        "status": {},
    }


def memo_for(reconciler: Any, metrics: OperatorMetrics | None = None, **extra: Any) -> kopf.Memo:
    return kopf.Memo(
        config=OperatorConfig(longest_wait=30.0, metrics=metrics),
        reconciler=reconciler,
        rollouts=StatusWrites(),
        events=None,
        **extra,
    )


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for ``condition`` on the loop (polling), failing after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the condition never held"
        await asyncio.sleep(0.01)


@contextmanager
def counting_looks(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[float]]]:
    """Each loop's wake-ups (a look, due or not), as the seconds it then slept for."""
    looks: dict[str, list[float]] = {}
    real = handlers.look

    async def counted(body: Any, memo: kopf.Memo) -> float:
        seconds = await real(body, memo)
        looks.setdefault(body["metadata"]["name"], []).append(seconds)
        return seconds

    monkeypatch.setattr(handlers, "look", counted)
    yield looks


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


async def stop_all(stopped: Stopped, loops: list[asyncio.Task[None]]) -> None:
    stopped.event.set()
    await asyncio.wait_for(asyncio.gather(*loops), timeout=5)


def test_an_idle_rollout_costs_no_wake_up_and_no_reconcile_until_its_next_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reconciler = PlannedReconciler({"idle": 30.0, "busy": 0.05})
    memo = memo_for(reconciler)
    bodies = {name: rollout_body(name) for name in ("idle", "busy")}
    memo["rollouts"].delivered = bodies

    async def test() -> None:
        stopped = Stopped()
        with counting_looks(monkeypatch) as looks:
            loops = [
                asyncio.create_task(follow(body=body, memo=memo, stopped=stopped))
                for body in bodies.values()
            ]
            await until(lambda: reconciler.reconciled["busy"] >= 10)
            assert reconciler.reconciled["idle"] == 1  # its first look, then nothing
            (slept,) = looks["idle"]  # not even a wake-up to find it not due:
            assert 29 < slept <= 30  # it sleeps until its next check
            await stop_all(stopped, loops)

    run(test)
    written = [name for name, _ in memo["rollouts"].patches]
    assert written.count("idle") == 1 and written.count("busy") == 1  # only changed statuses


@pytest.mark.parametrize(
    "change",
    [
        lambda meta: meta.update(generation=2),
        lambda meta: meta["annotations"].update({ACTION_ANNOTATION: '{"action": "promote"}'}),
    ],
    ids=["generation", "action"],
)
def test_a_persons_change_wakes_the_rollout_at_once(change: Callable[[Any], None]) -> None:
    reconciler = PlannedReconciler({"idle": 30.0})
    memo = memo_for(reconciler)
    body = rollout_body("idle")

    async def test() -> None:
        stopped = Stopped()
        loop = asyncio.create_task(follow(body=body, memo=memo, stopped=stopped))
        await until(lambda: reconciler.reconciled["idle"] == 1)
        await notice(body=body, memo=memo)  # an event of our own status write: not a change
        await asyncio.sleep(0)
        change(body["metadata"])
        started = asyncio.get_running_loop().time()
        await notice(body=body, memo=memo)
        await until(lambda: reconciler.reconciled["idle"] == 2, timeout=5)
        assert asyncio.get_running_loop().time() - started < 5  # not at the 30 s check
        await stop_all(stopped, [loop])

    run(test)


def test_a_failed_look_retries_after_its_delay_and_counts_as_due_once() -> None:
    metrics = OperatorMetrics()
    reconciler = PlannedReconciler({"flaky": 30.0})
    reconciler.failures["flaky"] = 1
    memo = memo_for(reconciler, metrics)
    body = rollout_body("flaky")

    async def test() -> None:
        stopped = Stopped()
        with pytest.raises(kopf.TemporaryError) as raised:
            await follow(body=body, memo=memo, stopped=stopped)
        assert raised.value.delay == 0.2  # kopf starts the loop again after this delay
        assert reconciler.reconciled["flaky"] == 0
        loop = asyncio.create_task(follow(body=body, memo=memo, stopped=stopped))
        await until(lambda: reconciler.reconciled["flaky"] == 1)  # still due: at once
        await stop_all(stopped, [loop])

    run(test)
    value = metrics.registry.get_sample_value
    assert value("fairshift_looks_due_total") == 1
    assert value("fairshift_looks_done_total") == 1


def test_a_body_behind_our_write_waits_for_the_watch_and_then_looks_at_once() -> None:
    reconciler = PlannedReconciler({"fast": 0.0})
    memo = memo_for(reconciler)
    body = rollout_body("fast")

    def writes_seq(rollout: Rollout, now: datetime) -> Result:
        reconciler.reconciled["fast"] += 1
        seq = int(rollout.status.get("auditSeq") or 0) + 1
        return Result({"phase": "Canary", "auditSeq": seq}, next_check=now)

    reconciler.reconcile = writes_seq  # type: ignore[method-assign]

    async def test() -> None:
        stopped = Stopped()
        loop = asyncio.create_task(follow(body=body, memo=memo, stopped=stopped))
        await until(lambda: reconciler.reconciled["fast"] == 1)
        # the plan wants a look now, but the body is behind our write: the loop waits for it
        schedule = handlers.schedule_of(memo)
        await until(lambda: schedule.wait_seconds("uid-fast", datetime.now(UTC)) > 20)
        assert reconciler.reconciled["fast"] == 1
        delivered = copy.deepcopy(body)
        delivered["status"] = dict(memo["rollouts"].patches[-1][1])
        body.update(delivered)  # kopf keeps the daemon's body fresh from the watch
        await notice(body=body, memo=memo)
        await until(lambda: reconciler.reconciled["fast"] == 2, timeout=5)
        await stop_all(stopped, [loop])

    run(test)


def gain(coordinator: ShardCoordinator, shard: int) -> None:
    """The coordinator took ``shard`` (as its round does after the Lease expired)."""
    name = coordinator.settings.shard_lease(shard)
    (lease,) = [lease for lease in coordinator.api.list() if lease.name == name]
    coordinator._hold(shard, lease, coordinator.clock())


def test_a_replica_works_a_rollout_only_while_it_holds_its_shard_and_at_once_when_it_gains_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    coordinator = holding([0])
    mine, theirs = name_in(0), name_in(1)
    reconciler = PlannedReconciler({mine: 0.05, theirs: 0.05})
    memo = memo_for(reconciler, shards=coordinator)

    async def test() -> None:
        stopped = Stopped()
        waker = WakeOnGain(
            NoShardEvents(), handlers.schedule_of(memo), asyncio.get_running_loop(), 2
        )
        with counting_looks(monkeypatch) as looks:
            loops = [
                asyncio.create_task(follow(body=rollout_body(name), memo=memo, stopped=stopped))
                for name in (mine, theirs)
            ]
            await until(lambda: reconciler.reconciled[mine] >= 5)
            assert reconciler.reconciled[theirs] == 0 and looks[theirs] == [30]  # the ceiling
            gain(coordinator, 1)
            waker.shard_changed("taken", 1)  # the coordinator's thread reports the gain
            await until(lambda: reconciler.reconciled[theirs] >= 1, timeout=5)
            coordinator._unfence(0)  # shard 0 moved to another replica: stop working it
            stopped_at = reconciler.reconciled[mine]
            await until(lambda: reconciler.reconciled[theirs] >= 5)
            assert reconciler.reconciled[mine] <= stopped_at + 1  # one look may be in flight
            await stop_all(stopped, loops)

    run(test)
