"""Sharded replicas: each look and the finalizer work only the rollouts of the shards held here;
``fairshift run --shards`` builds the settings and refuses kopf peering next to them."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any

import kopf
import pytest

from fairshift.commands.run import register, shard_settings
from fairshift.executing.executor import Result, Rollout
from fairshift.handlers import OperatorConfig, finalize, look
from fairshift.k8s.sharding import ShardCoordinator, ShardSettings, shard_of
from fairshift.metrics.operator_metrics import OperatorMetrics
from tests.k8s.lease_fakes import FakeLeases

NAMESPACE = "lending"


class CountingReconciler:
    def __init__(self, metrics: OperatorMetrics | None = None) -> None:
        self.reconciled: list[str] = []
        self.released: list[str] = []
        self.metrics = metrics

    def reconcile(self, rollout: Rollout, now: datetime) -> Result:
        self.reconciled.append(rollout.name)
        if self.metrics is not None:
            self.metrics.observe_rollout(rollout.namespace, rollout.name, "Canary", 10)
        return Result({"phase": "Canary"})

    def release(self, rollout: Rollout) -> str | None:
        self.released.append(rollout.name)
        return None


def holding(shards: list[int], of: int = 2) -> ShardCoordinator:
    """A coordinator that holds exactly ``shards`` (the others held by replica "other")."""
    store = FakeLeases()
    settings = ShardSettings(shards=of, namespace="fairshift-system", identity="here")
    for shard in range(of):
        holder = "here" if shard in shards else "other"
        store.api_for(holder).create(settings.shard_lease(shard), holder, 20, datetime.now(UTC))
    coordinator = ShardCoordinator(settings, store.api_for("here"))
    for shard in shards:
        coordinator._hold(shard, store.leases[settings.shard_lease(shard)], coordinator.clock())
    return coordinator


def name_in(shard: int, of: int = 2) -> str:
    return next(f"m{i}" for i in range(100) if shard_of(NAMESPACE, f"m{i}", of) == shard)


def body(name: str) -> kopf.Body:
    raw: Any = {
        "apiVersion": "fairshift.io/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": f"uid-{name}", "generation": 1},
        "spec": {},
        "status": {},
    }
    return kopf.Body(raw)


def run_look(name: str, memo: kopf.Memo) -> None:
    """One look of a rollout's loop (a coroutine on the operator's loop)."""
    asyncio.run(look(body(name), memo))


def memo_with(coordinator: ShardCoordinator, reconciler: CountingReconciler) -> kopf.Memo:
    return kopf.Memo(
        config=OperatorConfig(), reconciler=reconciler, shards=coordinator, rollouts=NoWrites()
    )


class NoWrites:
    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """The status goes nowhere."""


def test_a_look_works_only_the_rollouts_of_the_shards_held_here() -> None:
    reconciler = CountingReconciler()
    memo = memo_with(holding([0]), reconciler)
    mine, theirs = name_in(0), name_in(1)
    for name in (mine, theirs):
        run_look(name, memo)
    assert reconciler.reconciled == [mine]


def test_only_the_shards_holder_releases_a_deleted_rollout() -> None:
    reconciler = CountingReconciler()
    memo = memo_with(holding([0]), reconciler)
    with pytest.raises(kopf.TemporaryError, match="another replica"):
        finalize(body=body(name_in(1)), patch=kopf.Patch(), memo=memo)
    finalize(body=body(name_in(0)), patch=kopf.Patch(), memo=memo)
    assert reconciler.released == [name_in(0)]


def test_the_operator_counts_the_rollouts_it_owns() -> None:
    metrics = OperatorMetrics()
    coordinator = holding([0])
    metrics.track_rollouts_owned(coordinator.owned_count)
    memo = memo_with(coordinator, CountingReconciler())
    for index in range(20):
        run_look(f"m{index}", memo)
    owned = sum(1 for index in range(20) if shard_of(NAMESPACE, f"m{index}", 2) == 0)
    assert metrics.registry.get_sample_value("fairshift_rollouts_owned") == owned


def test_a_replica_stops_publishing_a_rollout_whose_shard_moved_away() -> None:
    metrics = OperatorMetrics()
    coordinator = holding([0])
    memo = kopf.Memo(
        config=OperatorConfig(metrics=metrics),
        reconciler=CountingReconciler(metrics),
        shards=coordinator,
        rollouts=NoWrites(),
    )
    mine = name_in(0)
    labels = {"namespace": NAMESPACE, "rollout": mine}
    run_look(mine, memo)
    assert metrics.registry.get_sample_value("fairshift_canary_weight", labels) == 10
    coordinator._unfence(0)  # the shard went to another replica
    run_look(mine, memo)
    assert metrics.registry.get_sample_value("fairshift_canary_weight", labels) is None
    assert metrics.registry.get_sample_value("fairshift_rollouts", {"phase": "Canary"}) == 0
    assert not memo["schedule"].knows(f"uid-{mine}")


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["run", *argv])


def test_run_with_shards_builds_lease_settings_that_fence_in_time() -> None:
    settings = shard_settings(
        parse("--shards", "16", "--shard-namespace", "fairshift-system", "--shard-identity", "p1")
    )
    assert settings is not None
    assert (settings.shards, settings.namespace, settings.identity) == (
        16,
        "fairshift-system",
        "p1",
    )
    assert settings.retry < settings.renew_deadline < settings.lease_duration == 20.0
    assert shard_settings(parse()) is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--shards", "4", "--peering", "fairshift", "--shard-namespace", "x"), "exclude"),
        (("--shards", "4", "--shard-namespace", ""), "needs --shard-namespace"),
        (("--shards", "4000", "--shard-namespace", "x"), "between 1 and 1024"),
    ],
)
def test_run_refuses_shards_it_cannot_serve(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        shard_settings(parse(*argv))


def test_the_shard_count_comes_from_the_environment_too(monkeypatch: Any) -> None:
    monkeypatch.setenv("FAIRSHIFT_SHARDS", "8")
    monkeypatch.setenv("POD_NAMESPACE", "fairshift-system")
    monkeypatch.setenv("POD_ID", "fairshift-abc")
    settings = shard_settings(parse())
    assert settings is not None
    assert (settings.shards, settings.namespace, settings.identity) == (
        8,
        "fairshift-system",
        "fairshift-abc",
    )
