"""The reconcile loop on an in-memory API with real routers and canned metrics."""

from __future__ import annotations

import copy

import pytest

from fairshift.executing.executor import Reconciler
from fairshift.k8s.errors import Unreachable
from tests.operator.world import NAME, NS, TARGET, World, spec


def started() -> World:
    world = World()
    world.until_phase("Idle")
    return world


def image_of(deployment: dict) -> str:  # type: ignore[type-arg]
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


def test_adoption_creates_primary_services_and_route() -> None:
    world = started()
    assert image_of(world.deployment(f"{TARGET}-primary")) == "model:v1"
    assert world.deployment(TARGET)["spec"]["replicas"] == 0
    assert world.weights() == (100, 0, 0)
    assert world.status["stableRevision"]
    objects = world.workloads.objects
    for service in ("credit-scorer-primary", "credit-scorer-canary"):
        assert objects.stored("v1", "Service", NS, service)["metadata"]["ownerReferences"]


def test_fair_candidate_goes_through_every_step_and_is_promoted() -> None:
    world = started()
    world.new_revision()
    seen: list[tuple[str, int]] = []
    for _ in range(40):
        world.tick()
        seen.append((world.status["phase"], world.status.get("canaryWeight", 0)))
        if world.status["phase"] == "Guarding":
            break
    assert ("Canary", 10) in seen and ("Canary", 50) in seen
    assert world.status["phase"] == "Guarding"
    assert image_of(world.deployment(f"{TARGET}-primary")) == "model:v2"
    assert world.weights() == (100, 0, 0)
    assert world.deployment(TARGET)["spec"]["replicas"] == 0
    assert world.audit_ok()
    assert world.status["stableRevision"] and "candidateRevision" not in world.status


def test_tpr_drop_in_one_intersection_is_rolled_back_with_evidence() -> None:
    world = started()
    world.metrics.candidate_tpr = {("F", "old"): 0.5}
    world.new_revision()
    world.until_phase("RolledBack", "Guarding")
    assert world.status["phase"] == "RolledBack"
    assert world.weights() == (100, 0, 0)
    assert world.deployment(TARGET)["spec"]["replicas"] == 0
    assert image_of(world.deployment(f"{TARGET}-primary")) == "model:v1"
    worst = world.status["evidence"][0]
    assert worst["gate"] == "equal-opportunity" and worst["slice"] == "age=old,sex=F"
    assert worst["outcome"] == "fail" and worst["lower"] > 0.05
    reasons = [e[1] for e in world.events]
    assert "RollingBack" in reasons
    assert world.status["reason"] == "GateFailed"
    assert "equal-opportunity" in world.status["message"]
    assert world.audit_ok()


def test_broken_metrics_never_advance_and_pause_after_a_run_of_errors() -> None:
    world = started()
    world.metrics.broken = True
    world.new_revision()
    world.until_phase("Paused", "Guarding", limit=60)
    assert world.status["phase"] == "Paused"
    assert world.status["currentStep"] == 1  # never past the first analysis
    degraded = next(c for c in world.status["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True" and "could not read metrics" in degraded["message"]
    world.act("resume", "r1")
    world.tick()  # Prometheus still failing once right after the resume (it is restarting)
    assert world.status["phase"] == "Canary", "one error after a resume must not pause again"
    world.metrics.broken = False
    world.until_phase("Guarding")


def test_a_query_that_cannot_run_pauses_at_once() -> None:
    world = started()
    world.metrics.invalid = True
    world.new_revision()
    world.until_phase("Paused", limit=5)
    assert "{{tenant}}" in world.status["message"]


def test_manual_pause_resume_abort_and_retry() -> None:
    world = started()
    world.new_revision()
    world.until(lambda w: w.status.get("phase") == "Canary")
    world.act("pause", "a1")
    world.tick()
    assert world.status["phase"] == "Paused"
    weight = world.status["canaryWeight"]
    world.tick(3)
    assert world.status["phase"] == "Paused" and world.weights()[1] == weight
    world.act("resume", "a2")
    world.tick()
    assert world.status["phase"] == "Canary"
    world.act("abort", "a3")
    world.until_phase("RolledBack")
    world.act("abort", "a3")  # the same request again: consumed once, ignored
    world.tick()
    assert world.status["phase"] == "RolledBack"
    world.act("retry", "a4")
    world.until_phase("Guarding")


def test_refused_action_is_reported_not_applied() -> None:
    world = started()
    world.act("resume", "x1")
    world.tick()
    assert world.status["phase"] == "Idle"
    assert any(reason == "ActionRefused" for _, reason, _ in world.events)


def test_promote_full_skips_remaining_steps() -> None:
    world = started()
    world.new_revision()
    world.until(lambda w: w.status.get("phase") == "Canary")
    world.act("promote-full", "p1")
    world.until_phase("Guarding", limit=10)
    assert image_of(world.deployment(f"{TARGET}-primary")) == "model:v2"


def test_manual_gate_waits_for_promote() -> None:
    steps = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}]
    world = World(spec=spec(strategy={"canary": {"steps": steps}}))
    world.until_phase("Idle")
    world.new_revision()
    world.until_phase("Paused")
    assert world.status["pausedReason"] == "step" and world.weights()[1] == 20
    world.tick(3)
    assert world.status["phase"] == "Paused"
    world.act("promote", "g1")
    world.until_phase("Guarding")


def test_spec_paused_holds_and_unpausing_continues() -> None:
    world = started()
    world.new_revision()
    world.until(lambda w: w.status.get("phase") == "Canary")
    world.spec = {**world.spec, "paused": True}
    world.tick()
    assert world.status["phase"] == "Paused"
    world.spec = {**world.spec, "paused": False}
    world.until_phase("Guarding")


def test_deleting_the_target_mid_rollout_rolls_back() -> None:
    world = started()
    world.new_revision()
    world.until(lambda w: w.status.get("canaryWeight") == 10)
    world.workloads.objects.delete("apps/v1", "Deployment", NS, TARGET)
    world.until_phase("RolledBack", limit=10)
    assert world.weights() == (100, 0, 0)


def test_reverting_the_target_returns_to_idle() -> None:
    world = started()
    world.new_revision("model:v2")
    world.until(lambda w: w.status.get("phase") == "Canary")
    world.new_revision("model:v1")
    world.until_phase("Idle", limit=10)
    assert world.weights() == (100, 0, 0)


def test_candidate_that_never_becomes_available_is_rolled_back() -> None:
    world = started()
    world.workloads.objects.settle_deployments = False
    world.workloads.set_image(NS, TARGET, "model:broken")
    world.step = world.step * 4
    world.until_phase("RolledBack", limit=20)
    assert world.status["reason"] == "ProgressDeadlineExceeded"


def test_invalid_spec_is_reported_in_a_condition() -> None:
    world = World(spec=spec(routing={}))
    world.tick()
    invalid = next(c for c in world.status["conditions"] if c["type"] == "InvalidSpec")
    assert invalid["status"] == "True" and "exactly one router" in invalid["message"]


def test_idle_ticks_write_nothing() -> None:
    world = started()
    world.tick()
    before = len(world.workloads.objects.writes)
    world.tick(5)
    assert len(world.workloads.objects.writes) == before


@pytest.mark.parametrize("crash_at", range(1, 6))
def test_api_failure_at_any_point_resumes_to_the_same_outcome(crash_at: int) -> None:
    """A write fails mid-reconcile (as a crash would): the next ticks finish the job."""
    world = started()
    world.new_revision()
    world.tick(crash_at)
    world.workloads.objects.fail("patch", Unreachable("connection reset", None), times=1)
    failures = 0
    for _ in range(60):
        try:
            world.tick()
        except Unreachable:
            failures += 1
            world.now += world.step
        if world.status.get("phase") == "Guarding":
            break
    assert failures == 1
    assert world.status["phase"] == "Guarding"
    assert world.weights() == (100, 0, 0) and world.audit_ok()


def test_release_before_deletion_restores_traffic_and_the_target() -> None:
    world = started()
    world.new_revision()
    world.until(lambda w: w.status.get("canaryWeight") == 10)
    Reconciler(world.dependencies()).release(world.rollout())
    assert world.weights() == (100, 0, 0)
    assert world.deployment(TARGET)["spec"]["replicas"] == 2


def canary_share_written(world: World, since: int) -> list[int]:
    """Canary weights of every HTTPRoute write after write number ``since``."""
    shares = []
    for write in world.workloads.objects.writes[since:]:
        if write.kind == "HTTPRoute" and write.body:
            for rule in write.body.get("spec", {}).get("rules", []):
                refs = rule.get("backendRefs", [])
                shares += [r.get("weight", 0) for r in refs if r["name"].endswith("-canary")]
    return shares


def test_a_crash_before_status_is_written_replays_the_chain_and_never_re_decides() -> None:
    """The tick that rolls back moves traffic, records its decisions, then dies before its
    status is written: the next operator replays the chain instead of deciding again."""
    world = started()
    world.metrics.candidate_tpr = {("F", "old"): 0.5}
    world.new_revision()
    for _ in range(30):
        before = copy.deepcopy(world.status)
        world.tick()
        if world.status["phase"] in ("RollingBack", "RolledBack"):
            break
    world.status = before  # the crash: this tick's status never reached the API server
    crash_point = len(world.workloads.objects.writes)
    world.until_phase("RolledBack", limit=10)
    assert world.weights() == (100, 0, 0)
    assert all(share == 0 for share in canary_share_written(world, crash_point))
    actions = [r["action"] for r in world.audit.read_records(NS, NAME)]
    assert actions.count("analysis-failed") == 1, actions
    assert world.audit_ok()
    assert world.status["reason"] == "GateFailed"


def test_a_manual_request_replayed_after_a_crash_is_not_applied_twice() -> None:
    world = started()
    world.new_revision()
    world.until(lambda w: w.status.get("phase") == "Canary")
    world.act("pause", "once")
    before = copy.deepcopy(world.status)
    world.tick()
    assert world.status["phase"] == "Paused"
    world.status = before  # crash before status
    world.tick()
    assert world.status["phase"] == "Paused" and world.status["handledAction"] == "once"
    assert not any(reason == "ActionRefused" for _, reason, _ in world.events)
    actions = [r["action"] for r in world.audit.read_records(NS, NAME)]
    assert actions.count("halt") == 1, actions
    assert world.audit_ok()
