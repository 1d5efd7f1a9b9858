"""Rollout scenarios against the real operator, control plane, Prometheus and simulated traffic.

Each test starts ``fairshift run`` as a subprocess for its own namespace, a simulated model
(``SIM_MODEL`` in the target Deployment) served by the data plane, and a ModelRollout with short
steps (analysis every 5 s). It then injects a new candidate and asserts on what a person would
look at: status (phase, verdict, evidence), Events, the HTTPRoute's weights, the Deployments,
and the audit chain (``<rollout>-audit`` ConfigMap against ``status.auditHead``).

Timings (each scenario, and from a regression reaching traffic to the rollback) are printed
as ``TIMING ...`` lines and appended to the timings file (see ``e2e/scenario_fixtures.py``).
"""

from __future__ import annotations

from typing import Any

import pytest

from e2e import scenario_fixtures
from e2e.scenario_fixtures import STABLE_MODEL, TARGET, Scenario, rollout

crd = scenario_fixtures.crd
scenario = scenario_fixtures.scenario

pytestmark = pytest.mark.e2e

PRIMARY = f"{TARGET}-primary"


def fair_candidate(seed: int = 2) -> dict[str, Any]:
    return {**STABLE_MODEL, "seed": seed}


def assert_rolled_back(world: Scenario, status: dict[str, Any]) -> None:
    """Traffic back on primary, candidate scaled down, the route still owned."""
    assert status["phase"] == "RolledBack", status
    assert world.weights() == (100, 0, 0)
    assert world.replicas(TARGET) == 0
    assert world.route_owned()


def failing(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in status.get("evidence", []) if e["outcome"] == "fail"]


def canary_rollback_spec(world: Scenario, **overrides: Any) -> dict[str, Any]:
    steps = [
        {"setWeight": 30},
        {"analyze": {"duration": "30s", "maxDuration": "90s"}},
        {"setWeight": 60},
        {"analyze": {"duration": "30s", "maxDuration": "90s"}},
    ]
    return rollout(world.prometheus.url, steps=steps, **overrides)


# --- 1. a fair, healthy candidate is promoted ---------------------------------------------------


def test_fair_candidate_goes_through_shadow_and_canary_to_succeeded(scenario: Scenario) -> None:
    world = scenario
    body = rollout(
        world.prometheus.url,
        shadow={"mirrorPercent": 100, "duration": "20s"},
        steps=[
            {"setWeight": 30},
            {"analyze": {"duration": "20s", "maxDuration": "120s"}},
            {"setWeight": 60},
            {"analyze": {"duration": "20s", "maxDuration": "120s"}},
        ],
        intersections=False,
    )
    world.start(body, rate=300)
    stable_revision = world.status()["stableRevision"]
    candidate = fair_candidate()
    world.set_model(candidate)

    world.wait_phase("Shadow", timeout=60)
    status = world.wait_phase("Succeeded", "RolledBack", "Paused", "Failed", timeout=420)
    assert status["phase"] == "Succeeded", status

    # primary now runs the candidate's template and takes all traffic; the candidate is idle
    assert status["stableRevision"] != stable_revision
    assert '"seed":2' in world.template_env(PRIMARY)
    assert world.weights() == (100, 0, 0)
    assert world.replicas(TARGET) == 0
    assert status["verdict"] == "Successful"

    # the data plane followed: the primary server restarted with the new behaviour
    pods = {p["deployment"]: p for p in world.stats()["pods"]}
    assert pods[PRIMARY]["model"]["seed"] == 2
    assert TARGET not in pods

    # the route went shadow (mirror 100) -> 30 -> 60 -> all primary, in that order
    timeline = [
        (e["canary"], e["mirror"]) for e in world.stats()["traffic"]["timeline"] if e.get("route")
    ]
    assert (0, 100) in timeline and (30, 0) in timeline and (60, 0) in timeline
    assert timeline.index((0, 100)) < timeline.index((30, 0)) < timeline.index((60, 0))
    assert timeline[-1] == (0, 0)

    reasons = world.event_reasons()
    for reason in ("Shadow", "Canary", "Promoting", "Succeeded"):
        assert reason in reasons, reasons
    actions = [r["action"] for r in world.verify_audit()]
    for action in ("new-revision-with-shadow", "shadow-done", "steps-done", "promotion-done"):
        assert actions.count(action) == 1, actions


# --- 2. a TPR drop for one group is rolled back during canary ----------------------------------


def test_tpr_drop_for_one_group_is_rolled_back_during_canary(scenario: Scenario) -> None:
    world = scenario
    world.start(canary_rollback_spec(world), rate=300)
    biased = {**fair_candidate(), "bias": {"sex=F": {"tpr": -0.3}}}
    world.set_model(biased)

    world.wait_phase("Canary", timeout=60)
    status = world.wait_phase("RolledBack", "Succeeded", "Paused", "Failed", timeout=300)
    assert_rolled_back(world, status)
    assert status["verdict"] == "Failed"
    assert status["reason"] == "GateFailed"
    # rolled back during the canary, not during shadow or promotion
    rollback = [d for d in status["decisions"] if d["action"] == "analysis-failed"]
    assert rollback and rollback[-1]["phase"] == "RollingBack"
    assert status["currentStep"] is not None

    # the evidence names the gate and the slice: women's TPR dropped, men's did not
    failed = failing(status)
    assert failed, status["evidence"]
    assert any(e["slice"] == "sex=F" and e["gate"] == "equal-opportunity" for e in failed), failed
    assert not any("sex=M" in e["slice"] for e in failed), failed
    worst = next(e for e in failed if e["slice"] == "sex=F" and e["gate"] == "equal-opportunity")
    assert worst["lower"] > worst["threshold"], worst  # the whole interval is beyond the margin
    assert worst["candidateSamples"] >= 100
    assert "equal-opportunity" in status["message"] and "sex=F" in status["message"]

    events = world.events()
    rolled = [e for e in events if e["reason"] == "RollingBack"]
    assert rolled and rolled[0]["type"] == "Warning"
    assert "equal-opportunity" in rolled[0]["message"]
    world.verify_audit()
    world.regression_to_rollback()
