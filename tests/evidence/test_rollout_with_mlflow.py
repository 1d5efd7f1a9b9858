"""Whole rollouts through the real planner and executor with the MLflow sink behind the
notify port: the run mirrors the audit chain, and MLflow being down changes nothing about
the rollout (same phases, same decisions, same chain)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from fairshift.evidence.closing import EvidenceFiles
from fairshift.evidence.sink import MlflowSink
from fairshift.executing.ports import Dependencies
from fairshift.notify.fanout import FanOut
from tests.evidence.fake_tracking import DRAIN_LIMIT, FakeTracking
from tests.operator.world import NAME, NS, World, spec

MLFLOW = {"mlflow": {"trackingUri": "http://mlflow:5000", "experiment": "credit-scorer"}}


@dataclass
class TrackedWorld(World):
    """The test world with MLflow behind the notifier."""

    server: FakeTracking = field(default_factory=FakeTracking)
    sink: MlflowSink | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.spec = {**self.spec, "notifications": [MLFLOW]}
        self.sink = MlflowSink(
            connect=lambda _uri: self.server,
            files=EvidenceFiles(self.audit.read_records, lambda ns, name: None),
            attempts=2,
            sleep=lambda _seconds: None,
        )

    def dependencies(self) -> Dependencies:
        deps = super().dependencies()
        assert self.sink is not None
        deps.notifier = FanOut(self.sink)
        return deps


def roll_out(biased: bool, mlflow_down: bool) -> TrackedWorld:
    world = TrackedWorld(spec=spec())
    world.server.down = mlflow_down
    if biased:
        world.metrics.candidate_tpr = {("F", "old"): 0.5}
    world.until_phase("Idle")
    world.new_revision()
    world.until_phase("RolledBack", "Succeeded", "Guarding")
    assert world.sink is not None and world.sink.drain(timeout=DRAIN_LIMIT)
    return world


def decisions(world: World) -> list[tuple[Any, ...]]:
    return [
        (r["seq"], r["action"], r["phase"], r.get("canaryWeight"))
        for r in world.audit.read_records(NS, NAME)
    ]


@pytest.mark.parametrize(("biased", "outcome"), [(False, "promoted"), (True, "rolled-back")])
def test_mlflow_down_does_not_change_the_rollout(biased: bool, outcome: str) -> None:
    up = roll_out(biased, mlflow_down=False)
    down = roll_out(biased, mlflow_down=True)

    assert down.status["phase"] == up.status["phase"]
    assert decisions(down) == decisions(up)
    assert down.audit_ok() and up.audit_ok()
    assert down.sink is not None and up.sink is not None
    assert down.sink.health().delivered == 0 and not down.sink.health().ok
    assert down.sink.health().failed == up.sink.health().delivered > 0

    run = up.server.only_run()
    assert run.tags["fairshift.io/outcome"] == outcome
    assert run.tags["fairshift.io/audit-head"] == up.status["auditHead"]
    records = up.audit.read_records(NS, NAME)
    weights = run.history("traffic/canary_weight")  # every record after initialisation
    assert [step for step, _ in weights] == [r["seq"] for r in records[1:]]
    assert records[-1]["action"] in ("promotion-done-guarded", "rollback-done")
    assert {p for p in run.artifacts if not p.startswith("decisions/")} == {
        "model-card.md",
        "model-card.html",
        "audit/records.jsonl",
        "report/report.html",
    }
