"""A declared fallback: a breach that degrades to it, a kill that sends it everything, and
how each ends (a person's revive, or a promoted revision), on the in-memory API."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

from fairshift.api.traffic import Weights
from tests.operator.test_reconciling import image_of
from tests.operator.world import NAME, NS, TARGET, World, spec

FALLBACK = "rules-scorer"
PRIMARY = f"{TARGET}-primary"


def degradable(percent: int = 40, fallback: bool = True, **guard: Any) -> World:
    """A promoted, guarded model whose breaches send ``percent`` of traffic to the fallback."""
    body = spec(
        guard={"onBreach": "degrade", "degradePercent": percent, **guard},
        fallbackRef={"name": FALLBACK},
    )
    world = World(spec=body)
    if fallback:
        world.workloads.add_target(NS, FALLBACK, "rules:v1", replicas=1)
    world.until_phase("Idle")
    world.new_revision()
    world.until_phase("Guarding", limit=60)
    world.step = timedelta(minutes=1)
    return world


def actions(world: World) -> list[str]:
    return [r["action"] for r in world.audit.read_records(NS, NAME)]


def live(world: World) -> Weights:
    weights = world.router().get_weights()
    assert weights is not None
    return weights


def backends(world: World) -> dict[str, int]:
    route = world.workloads.objects.stored("gateway.networking.k8s.io/v1", "HTTPRoute", NS, NAME)
    rule = route["spec"]["rules"][0]
    return {ref["name"]: ref["weight"] for ref in rule["backendRefs"]}


def breach(world: World) -> None:
    world.metrics.candidate_tpr = {("F", "old"): 0.5}  # the live model drifts for one group


def test_a_breach_with_degrade_sends_the_declared_share_to_the_fallback() -> None:
    world = degradable(40)
    breach(world)
    world.until_phase("Fallback", limit=40)
    world.until(lambda w: live(w) == Weights(60, 0, 0, fallback=40), limit=5)
    assert backends(world) == {f"{NAME}-primary": 60, f"{NAME}-canary": 0, f"{NAME}-fallback": 40}
    service = world.workloads.objects.stored("v1", "Service", NS, f"{NAME}-fallback")
    assert service["spec"]["selector"] == {"app": FALLBACK}
    assert service["spec"]["ports"][0]["port"] == 8080
    status = world.status
    assert status["fallbackWeight"] == 40 and status["canaryWeight"] == 0
    assert status["fallback"]["percent"] == 40 and status["fallback"]["fallback"] == FALLBACK
    assert status["reason"] == "GuardFallback" and "revive" in status["message"]
    assert status["guard"]["health"] == "Breached"  # the model's health, not the guard's eyes
    assert image_of(world.deployment(PRIMARY)) == "model:v2"  # the model keeps the rest
    record = next(r for r in world.audit.read_records(NS, NAME) if r["action"] == "guard-fallback")
    assert record["fallback"] == {"deployment": FALLBACK, "percent": 40}
    assert world.audit_ok()


def test_a_degrade_holds_until_a_person_revives_with_a_reason() -> None:
    world = degradable(100)
    breach(world)
    world.until_phase("Fallback", limit=40)
    world.until(lambda w: live(w) == Weights(0, 0, 0, fallback=100), limit=5)
    world.metrics.candidate_tpr = {}
    world.tick(5)  # nothing ends a degrade by itself
    assert world.status["phase"] == "Fallback" and live(world).fallback == 100
    world.act("revive", "r0", by="carol")
    world.tick()
    assert world.status["phase"] == "Fallback"
    assert any(r == "ActionRefused" and "reason" in m for _, r, m in world.events)
    world.act("revive", "r1", by="carol", reason="feature pipeline fixed")
    world.until_phase("Guarding", limit=5)
    world.until(lambda w: live(w) == Weights(100, 0, 0), limit=5)
    assert world.status["fallbackWeight"] == 0 and "fallback" not in world.status
    revived = next(r for r in world.audit.read_records(NS, NAME) if r["action"] == "revive-guarded")
    assert revived["requestedBy"] == "carol" and revived["requestReason"].startswith("feature")
    assert f"{NAME}-fallback" not in backends(world)


def test_a_new_revision_keeps_the_degrade_until_it_is_promoted() -> None:
    world = degradable(50)
    breach(world)
    world.until_phase("Fallback", limit=40)
    world.metrics.candidate_tpr = {}
    world.new_revision("model:v3")
    world.until_phase("Canary", limit=5)
    # the first step's 10 % is a share of what the fallback leaves: 5 of the 50
    world.until(lambda w: live(w) == Weights(45, 5, 0, fallback=50), limit=5)
    world.until_phase("Guarding", limit=60)
    world.until(lambda w: live(w) == Weights(100, 0, 0), limit=5)
    assert "fallback" not in world.status
    assert image_of(world.deployment(PRIMARY)) == "model:v3"


def test_a_degrade_without_an_available_fallback_only_alerts() -> None:
    world = degradable(40, fallback=False)
    breach(world)
    world.until(lambda w: "guard-alert" in actions(w), limit=40)
    assert world.status["phase"] == "Guarding"
    assert "guard-fallback" not in actions(world)
    alert = next(m for _, r, m in world.events if r == "GuardBreached")
    assert f"fallback Deployment {FALLBACK} does not exist" in alert
    assert live(world) == Weights(100, 0, 0)


def test_kill_with_a_fallback_sends_everything_there_and_keeps_the_model() -> None:
    world = degradable(40)
    world.act("kill", "k1", by="alice", reason="complaints from applicants")
    world.until_phase("Killed", limit=5)
    world.until(lambda w: live(w) == Weights(0, 0, 0, fallback=100), limit=5)
    world.tick(3)
    assert world.deployment(PRIMARY)["spec"]["replicas"] == 2  # deployed, out of the path
    assert world.status["killed"]["fallback"] is True and world.status["fallbackWeight"] == 100
    world.act("revive", "r1", by="alice")
    world.until_phase("Guarding", limit=5)
    world.until(lambda w: live(w) == Weights(100, 0, 0) and "killed" not in w.status, limit=5)
    assert world.audit_ok()


def test_kill_is_refused_when_the_declared_fallback_cannot_serve() -> None:
    world = degradable(40, fallback=False)
    world.act("kill", "k1", by="alice", reason="complaints")
    world.tick()
    assert world.status["phase"] == "Guarding"
    refused = [m for _, r, m in world.events if r == "ActionRefused"]
    assert refused and f"fallback Deployment {FALLBACK} does not exist" in refused[-1]
    assert "remove spec.fallbackRef" in refused[-1]
    assert world.deployment(PRIMARY)["spec"]["replicas"] == 2


def test_kill_without_a_fallback_still_scales_the_model_to_zero() -> None:
    world = World()
    world.until_phase("Idle")
    world.act("kill", "k1", by="alice", reason="complaints")
    world.until_phase("Killed", limit=5)
    world.tick()
    assert world.deployment(PRIMARY)["spec"]["replicas"] == 0
    assert world.status["killed"]["fallback"] is False


def test_a_fallback_removed_from_the_spec_while_degraded_gets_its_traffic_back() -> None:
    world = degradable(40)
    breach(world)
    world.until_phase("Fallback", limit=40)
    world.until(lambda w: live(w).fallback == 40, limit=5)
    world.spec = {k: v for k, v in world.spec.items() if k != "fallbackRef"}
    world.spec["guard"] = {"onBreach": "alert"}
    world.until(lambda w: live(w) == Weights(100, 0, 0), limit=5)
    assert world.status["phase"] == "Fallback" and world.status["reason"] == "FallbackRemoved"


def test_a_kill_to_the_fallback_scales_to_zero_once_the_fallback_is_removed() -> None:
    world = degradable(40)
    world.act("kill", "k1", by="alice", reason="complaints")
    world.until(lambda w: live(w).fallback == 100, limit=5)
    world.spec = {k: v for k, v in world.spec.items() if k != "fallbackRef"}
    world.spec["guard"] = {"onBreach": "alert"}
    world.until(lambda w: w.deployment(PRIMARY)["spec"]["replicas"] == 0, limit=5)
    assert world.status["phase"] == "Killed"


def test_a_degrade_recorded_before_a_crash_is_replayed_with_its_share() -> None:
    """The tick that degrades records it, routes, then dies before its status is written:
    the next operator replays the record, share included, and decides nothing again."""
    world = degradable(40)
    breach(world)
    for _ in range(40):
        before = copy.deepcopy(world.status)
        world.tick()
        if world.status["phase"] == "Fallback":
            break
    world.status = before  # the crash: this tick's status never reached the API server
    world.tick()
    assert world.status["phase"] == "Fallback"
    assert world.status["fallback"]["percent"] == 40
    assert world.status["fallback"]["gate"] == "equal-opportunity"
    world.until(lambda w: live(w) == Weights(60, 0, 0, fallback=40), limit=3)
    assert actions(world).count("guard-fallback") == 1
    assert world.audit_ok()


def crash_on_entering(world: World, phase: str) -> None:
    """Tick until ``phase`` is reached, then lose that tick's status (the operator died)."""
    for _ in range(10):
        before = copy.deepcopy(world.status)
        world.tick()
        if world.status["phase"] == phase:
            world.status = before
            return
    raise AssertionError(f"never reached {phase}")


def test_a_kill_to_the_fallback_recorded_before_a_crash_keeps_the_model_deployed() -> None:
    world = degradable(40)
    world.act("kill", "k1", by="alice", reason="complaints")
    crash_on_entering(world, "Killed")
    world.tick()
    assert world.status["phase"] == "Killed" and world.status["killed"]["fallback"] is True
    world.until(lambda w: live(w) == Weights(0, 0, 0, fallback=100), limit=3)
    assert world.deployment(PRIMARY)["spec"]["replicas"] == 2
    assert actions(world).count("kill") == 1


def test_a_kill_recorded_before_a_crash_revives_to_the_replicas_it_had() -> None:
    world = World()
    world.until_phase("Idle")
    world.act("kill", "k1", by="alice", reason="complaints")
    crash_on_entering(world, "Killed")
    world.tick()
    assert world.deployment(PRIMARY)["spec"]["replicas"] == 0
    assert world.status["phase"] == "Killed" and world.status["killed"]["replicas"] == 2
    world.act("revive", "r1", by="alice")
    world.until(lambda w: w.deployment(PRIMARY)["spec"]["replicas"] == 2, limit=5)
    assert world.status["phase"] == "Idle"
