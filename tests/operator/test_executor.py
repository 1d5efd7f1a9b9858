"""The executor's promises: one observation, records before writes, stale bodies, people.

Each test names the hole it closes; they run on the in-memory API with real routers.
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path
from typing import Any

import kopf
import pytest

import fairshift.planning
from fairshift import handlers
from fairshift.executing import analysing
from fairshift.k8s.errors import Forbidden, Unreachable
from tests.operator.test_reconciling import canary_share_written, started
from tests.operator.world import NAME, NS, TARGET, World, spec


def test_a_stale_body_served_to_the_same_reconciler_never_re_decides() -> None:
    """kopf's timer hands over the body it last saw: after a rollback was decided, a body
    from before it must not give the rejected candidate traffic again."""
    world = started()
    world.reuse_reconciler = True
    world.metrics.candidate_tpr = {("F", "old"): 0.5}
    world.new_revision()
    for _ in range(30):
        before = copy.deepcopy(world.status)
        world.tick()
        if world.status["phase"] in ("RollingBack", "RolledBack"):
            break
    decided = copy.deepcopy(world.status)
    world.status = before  # the stale body, served once
    since = len(world.workloads.objects.writes)
    world.tick()
    assert world.status["phase"] in ("RollingBack", "RolledBack")
    world.until_phase("RolledBack", limit=10)
    assert all(share == 0 for share in canary_share_written(world, since))
    actions = [r["action"] for r in world.audit.read_records(NS, NAME)]
    assert actions.count("analysis-failed") == 1, actions
    assert decided["auditSeq"] <= world.status["auditSeq"] and world.audit_ok()


def test_the_decision_is_recorded_before_traffic_moves() -> None:
    world = started()
    world.metrics.candidate_tpr = {("F", "old"): 0.5}
    world.new_revision()
    world.until(lambda w: w.status["phase"] in ("RollingBack", "RolledBack"))
    kinds = [w.kind for w in world.workloads.objects.writes]
    last_audit = max(i for i, k in enumerate(kinds) if k == "ConfigMap")
    records = world.audit.read_records(NS, NAME)
    assert records[-1]["action"] == "analysis-failed"
    route_writes_after = [i for i, k in enumerate(kinds) if k == "HTTPRoute" and i > last_audit]
    assert route_writes_after, "traffic moved back only after the record was appended"


def test_a_forbidden_write_is_a_blocked_condition_with_the_fix() -> None:
    world = World()
    world.workloads.objects.fail(
        "create", Forbidden("httproutes is forbidden", 403), "HTTPRoute", 3
    )
    world.until(lambda w: w.status.get("reason") == "Blocked", limit=10)
    blocked = next(c for c in world.status["conditions"] if c["type"] == "Blocked")
    assert blocked["status"] == "True" and "ServiceAccount" in blocked["message"]
    assert any(reason == "Blocked" for _, reason, _ in world.events)

    def unblocked(w: World) -> bool:
        return any(
            c["type"] == "Blocked" and c["status"] == "False" for c in w.status["conditions"]
        )

    world.until(unblocked, limit=10)
    assert world.status["phase"] == "Idle" and world.weights() == (100, 0, 0)


def test_an_engine_crash_is_an_error_with_an_event_never_a_stuck_rollout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = started()

    def crash(*_: Any, **__: Any) -> Any:
        raise ValueError("variance must be positive")

    monkeypatch.setattr(analysing, "evaluate", crash)
    world.new_revision()
    world.until(lambda w: w.status.get("verdict") == "Error", limit=20)
    assert "variance must be positive" in world.status["message"]
    assert any(reason == "EngineError" for _, reason, _ in world.events)
    world.until_phase("Paused", limit=20)
    assert world.status["pausedReason"] == "errors"


def test_release_waits_for_the_users_deployment_before_handing_back() -> None:
    world = started()
    world.new_revision()
    world.until(lambda w: w.status.get("canaryWeight") == 10)
    world.workloads.objects.settle_deployments = False
    world.workloads.scale(NS, TARGET, 0)
    reconciler = world.reconciler()
    waiting = reconciler.release(world.rollout())
    assert waiting is not None and TARGET in waiting
    assert world.deployment(TARGET)["spec"]["replicas"] == 2
    assert world.weights() == (0 + 90, 10, 0)  # traffic stays until the target serves
    world.workloads.settle(NS, TARGET)
    assert reconciler.release(world.rollout()) is None
    assert world.weights() == (100, 0, 0)


class FailingReconciler:
    def release(self, _rollout: Any) -> str | None:
        raise Unreachable("connection reset", None)


def test_a_failed_release_is_retried_and_shown_never_swallowed() -> None:
    body = kopf.Body(
        {
            "apiVersion": "fairshift.io/v1alpha1",
            "kind": "ModelRollout",
            "metadata": {"name": NAME, "namespace": NS, "uid": "uid-1"},
            "spec": {},
        }
    )
    patch = kopf.Patch()
    memo = kopf.Memo(reconciler=FailingReconciler())
    with pytest.raises(kopf.TemporaryError):
        handlers.finalize(body=body, patch=patch, memo=memo)
    assert patch["status"]["phase"] == "Terminating"


def test_the_planner_never_reads_the_clock() -> None:
    """``datetime.now()``, ``time.time()`` and the like: ``now`` comes in as an argument."""
    clocks = {"now", "utcnow", "today", "time", "monotonic", "perf_counter"}
    root = Path(fairshift.planning.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            call = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            if call and node.func.attr in clocks and isinstance(node.func.value, ast.Name):  # type: ignore[union-attr]
                raise AssertionError(f"{path.name}:{node.lineno} reads the clock")


def test_one_budget_per_revision_is_carried_across_analysis_windows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each analysis window hands its evidence to the next, so the whole lifecycle spends
    one alpha; a new revision starts afresh."""
    seen: list[dict[str, float]] = []
    real = analysing.evaluate

    def spy(*args: Any, carried: Any = None, **kwargs: Any) -> Any:
        seen.append(dict(carried or {}))
        return real(*args, carried=carried, **kwargs)

    monkeypatch.setattr(analysing, "evaluate", spy)
    world = started()
    world.metrics.candidate_tpr = {("F", "old"): 0.79}  # a little worse: evidence, no verdict
    world.new_revision()
    world.until(lambda w: w.status.get("currentStep") == 3, limit=40)
    first_window_last_look = world.status["alphaLedger"]
    assert first_window_last_look["windows"] == 1 and first_window_last_look["carried"]
    world.until(lambda w: len(seen) > 0 and seen[-1] == first_window_last_look["carried"], 5)
    assert seen[0] == {}  # the first window starts with nothing carried
    assert 0 <= world.status["alphaLedger"]["budgetUsed"] <= 1
    world.new_revision("model:v3")
    world.until(lambda w: w.status.get("candidateRevision") != first_window_last_look["revision"])
    world.until(lambda w: w.status.get("alphaLedger") is not None, limit=10)
    assert seen[-1] == {}  # a new revision has its own budget


class DownSink:
    """A notifier whose MLflow server does not answer."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    def notify(self, namespace: str, rollout: str, record: Any, notifications: Any = ()) -> None:
        self.records.append(record)

    def problem(self, notifications: Any) -> str | None:
        return "MLflow unreachable or refusing records: connection refused"


def test_an_unreachable_evidence_sink_is_a_condition_and_never_holds_the_rollout() -> None:
    mlflow = {"mlflow": {"trackingUri": "http://mlflow:5000", "experiment": "credit"}}
    world = World(spec=spec(notifications=[mlflow]), notifier=DownSink())
    world.until_phase("Idle")
    world.new_revision()
    world.until_phase("Guarding", limit=40)
    sink = next(c for c in world.status["conditions"] if c["type"] == "EvidenceSink")
    assert sink["status"] == "False" and "connection refused" in sink["message"]
    assert world.notifier.records  # every record was still handed over


def test_a_retry_of_the_same_revision_keeps_spending_its_one_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[dict[str, float]] = []
    real = analysing.evaluate

    def spy(*args: Any, carried: Any = None, **kwargs: Any) -> Any:
        seen.append(dict(carried or {}))
        return real(*args, carried=carried, **kwargs)

    monkeypatch.setattr(analysing, "evaluate", spy)
    world = started()
    world.metrics.candidate_tpr = {("F", "old"): 0.5}
    world.new_revision()
    world.until_phase("RolledBack", limit=40)
    spent = world.status["alphaLedger"]
    world.act("retry", "again")
    world.until(lambda w: len(seen) > 0 and w.status.get("phase") != "RolledBack", limit=5)
    looks = len(seen)
    world.until(lambda w: len(seen) > looks, limit=10)
    assert seen[-1] and seen[-1] == spent["current"]  # the retry starts where it stopped
