"""The continuous guard on the in-memory API: looks, health, responses and the trail."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.operator.test_reconciling import image_of, started
from tests.operator.world import NAME, NS, TARGET, World, spec


def promoted(**overrides: Any) -> World:
    world = World(spec=spec(**overrides)) if overrides else started()
    if overrides:
        world.until_phase("Idle")
    world.new_revision()
    world.until_phase("Guarding", "Succeeded", limit=60)
    world.step = timedelta(minutes=1)
    return world


def actions(world: World) -> list[str]:
    return [r["action"] for r in world.audit.read_records(NS, NAME)]


def test_a_promoted_model_is_guarded_and_stays_healthy_when_fair() -> None:
    world = promoted()
    assert world.status["stableRevision"] and "candidateRevision" not in world.status
    world.tick(90)
    guard = world.status["guard"]
    assert world.status["phase"] == "Guarding" and guard["health"] == "Healthy"
    assert guard["looks"] >= 15 and guard["breaches"] == 0
    assert guard["referenceStart"] and guard["referenceEnd"]  # frozen at promotion
    assert "guard-attest" in actions(world)  # an hour of looks leaves a diligence record
    assert world.audit_ok()


def test_a_model_that_degrades_after_promotion_is_switched_back() -> None:
    world = promoted()
    stable = world.status["stableRevision"]
    world.tick(10)
    world.metrics.candidate_tpr = {("F", "old"): 0.5}  # the live model drifts for one group
    world.until_phase("RolledBack", limit=40)
    assert image_of(world.deployment(f"{TARGET}-primary")) == "model:v1"
    assert image_of(world.deployment(TARGET)) == "model:v1"  # as `kubectl rollout undo`
    assert world.weights() == (100, 0, 0)
    assert world.status["stableRevision"] != stable
    assert world.status["reason"] == "GuardBreached" and "guard breached" in world.status["message"]
    assert "guard-breached" in actions(world) and "restored" in actions(world)
    world.tick(5)  # the restored revision is stable: no new rollout starts
    assert world.status["phase"] == "RolledBack" and world.audit_ok()


def test_an_alert_response_records_and_keeps_serving() -> None:
    world = promoted(guard={"onBreach": "alert"})
    world.metrics.candidate_tpr = {("F", "old"): 0.5}
    world.until(lambda w: "guard-alert" in actions(w), limit=20)
    assert world.status["phase"] == "Guarding"
    assert world.status["guard"]["breaches"] >= 1
    assert image_of(world.deployment(f"{TARGET}-primary")) == "model:v2"
    assert any(reason == "GuardBreached" for _, reason, _ in world.events)


def test_metrics_outage_while_guarding_degrades_the_guard_and_does_nothing_else() -> None:
    world = promoted()
    world.metrics.broken = True
    writes = len(world.workloads.objects.writes_of("Deployment"))
    world.tick(15)
    assert world.status["phase"] == "Guarding"
    assert world.status["guard"]["health"] == "Degraded"
    assert len(world.workloads.objects.writes_of("Deployment")) == writes
    world.metrics.broken = False
    world.until(lambda w: w.status["guard"]["health"] == "Healthy", limit=15)


def test_a_person_can_switch_back_a_guarded_model() -> None:
    world = promoted()
    world.act("abort", "switch-back")
    world.until_phase("RolledBack", limit=20)
    assert image_of(world.deployment(f"{TARGET}-primary")) == "model:v1"


def test_a_new_revision_while_guarding_starts_a_rollout() -> None:
    world = promoted()
    world.tick(3)
    world.new_revision("model:v3")
    world.until_phase("Canary", limit=10)
    assert world.status.get("guard") is not None  # kept until the next promotion


def test_guarding_can_be_turned_off() -> None:
    world = promoted(guard={"enabled": False})
    assert world.status["phase"] == "Succeeded" and "guard" not in world.status


def test_the_kill_switch_takes_the_model_out_until_revived() -> None:
    world = promoted()
    world.act("kill", "k1", by="alice", reason="complaints from applicants")
    world.until_phase("Killed", limit=5)
    world.tick()
    assert world.deployment(f"{TARGET}-primary")["spec"]["replicas"] == 0
    killed = [r for r in world.audit.read_records(NS, NAME) if r["action"] == "kill"]
    assert killed and killed[0]["requestedBy"] == "alice"
    assert killed[0]["requestReason"] == "complaints from applicants"
    world.tick(5)  # a kill holds: nothing scales the model back by itself
    assert world.deployment(f"{TARGET}-primary")["spec"]["replicas"] == 0
    world.act("revive", "r1", by="alice", reason="fixed upstream")
    world.until_phase("Guarding", limit=5)
    world.until(lambda w: "killed" not in w.status, limit=5)
    assert world.deployment(f"{TARGET}-primary")["spec"]["replicas"] == 2
    assert world.audit_ok()


def test_a_kill_without_a_reason_is_refused() -> None:
    world = promoted()
    world.act("kill", "k1")
    world.tick()
    assert world.status["phase"] == "Guarding"
    assert any(r == "ActionRefused" and "reason" in m for _, r, m in world.events)


def test_an_escalated_breach_holds_the_next_rollout_until_acknowledged() -> None:
    world = promoted(guard={"onBreach": "escalate"})
    world.metrics.candidate_tpr = {("F", "old"): 0.5}
    world.until(lambda w: "guard-escalated" in actions(w), limit=20)
    assert world.status["phase"] == "Guarding"  # it keeps serving
    world.metrics.candidate_tpr = {}
    world.new_revision("model:v3")
    world.tick(3)
    assert world.status["phase"] == "Guarding"
    assert world.status["reason"] == "AwaitingAcknowledgement"
    world.act("ack", "a1", by="bob", reason="reviewed: a data pipeline fault, fixed")
    world.until_phase("Canary", limit=5)
    acked = [r for r in world.audit.read_records(NS, NAME) if r["action"] == "acknowledge"]
    assert acked and acked[0]["requestedBy"] == "bob"


def test_the_report_charts_the_guard_from_its_records() -> None:
    from fairshift.report.building import build_charts
    from fairshift.report.timeline import from_records

    world = promoted(guard={"onBreach": "alert"})
    world.tick(70)  # an hour of looks: an attestation
    world.metrics.candidate_tpr = {("F", "old"): 0.5}
    world.until(lambda w: "guard-alert" in actions(w), limit=20)
    data = from_records("lending/credit-scorer", world.audit.read_records(NS, NAME))
    healths = [look.guard_health for look in data.looks if look.guard_health]
    assert healths[0] == "Healthy" and "Breached" in healths
    assert any(look.guard_level and look.guard_level >= 1 for look in data.looks)
    charts = {chart.name: chart for chart in build_charts(data)}
    assert charts["guard-health.png"].png.startswith(b"\x89PNG")


def test_a_guarded_rollout_still_looks_for_a_new_revision_often() -> None:
    """The guard looks every few minutes, but a new revision of the target must not wait
    for the next look: kopf wakes the operator only for changes of the ModelRollout."""
    world = promoted()
    result = world.tick()
    assert result.next_check is not None
    assert (result.next_check - (world.now - world.step)).total_seconds() <= 10
