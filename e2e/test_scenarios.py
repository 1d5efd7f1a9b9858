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

import contextlib
import copy
import json
from datetime import datetime
from typing import Any

import pytest

from e2e import scenario_fixtures
from e2e.helpers import WaitTimeoutError, wait_for
from e2e.scenario_fixtures import ROLLOUT, STABLE_MODEL, TARGET, Scenario, rollout

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
    steps: list[dict[str, Any]] = [
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
    status = world.wait_phase("Guarding", "RolledBack", "Paused", "Failed", timeout=420)
    assert status["phase"] == "Guarding", status

    # primary now runs the candidate's template and takes all traffic; the candidate is idle
    assert status["stableRevision"] != stable_revision
    assert '"seed":2' in world.template_env(PRIMARY)
    assert world.weights() == (100, 0, 0)
    assert world.replicas(TARGET) == 0
    assert status["verdict"] == "Successful"

    # the data plane follows the Deployments on its own loop: the primary server restarts with
    # the new behaviour and the idle candidate's server stops (waited for, not assumed)
    def data_plane_followed() -> dict[str, Any] | None:
        pods = {p["deployment"]: p for p in world.stats()["pods"]}
        done = TARGET not in pods and pods.get(PRIMARY, {}).get("model", {}).get("seed") == 2
        return pods if done else None

    wait_for(data_plane_followed, timeout=60, message="data plane serves only the new primary")

    # the route went shadow (mirror 100) -> 30 -> 60 -> all primary, in that order
    timeline = [
        (e["canary"], e["mirror"]) for e in world.stats()["traffic"]["timeline"] if e.get("route")
    ]
    assert (0, 100) in timeline and (30, 0) in timeline and (60, 0) in timeline
    assert timeline.index((0, 100)) < timeline.index((30, 0)) < timeline.index((60, 0))
    assert timeline[-1] == (0, 0)

    reasons = world.event_reasons()
    for reason in ("Shadow", "Canary", "Promoting", "Guarding"):
        assert reason in reasons, reasons
    actions = [r["action"] for r in world.verify_audit()]
    promoted = "promotion-done-guarded"  # the guard takes over after the promotion
    for action in ("new-revision-with-shadow", "shadow-done", "steps-done", promoted):
        assert actions.count(action) == 1, actions


# --- 2. a TPR drop for one group is rolled back during canary ----------------------------------


def test_tpr_drop_for_one_group_is_rolled_back_during_canary(scenario: Scenario) -> None:
    world = scenario
    world.start(canary_rollback_spec(world), rate=300)
    biased = {**fair_candidate(), "bias": {"sex=F": {"tpr": -0.3}}}
    world.set_model(biased)

    world.wait_phase("Canary", timeout=60)
    status = world.wait_phase("RolledBack", "Guarding", "Paused", "Failed", timeout=300)
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


# --- 3. a bias in one intersection only is caught -----------------------------------------------

# Older women lose 0.4 of TPR. Older men and younger women gain a little, so that the marginal
# groups move much less (sex=F by about 0.06, age_band=60+ by about 0.15) than the margin of
# 0.2, while the older women's gap grows by 0.4: only the intersection gates can see it.
# (A gap is a gap either way, so the compensation stays small: a large gain for older men
# would be a disparity of its own.)
INTERSECTION_BIAS = {
    "sex=F,age_band=60+": {"tpr": -0.4},
    "sex=M,age_band=60+": {"tpr": 0.1},
    "sex=F,age_band=18-29": {"tpr": 0.02},
    "sex=F,age_band=30-59": {"tpr": 0.02},
}


def test_bias_in_one_intersection_only_is_caught(scenario: Scenario) -> None:
    world = scenario
    gates = [
        {"name": "equal-opportunity", "metric": "tpr_gap", "maxIncrease": 0.2},
        {"name": "four-fifths", "metric": "disparate_impact", "min": 0.8},
        {"name": "accuracy", "metric": "accuracy", "maxDecrease": 0.1},
    ]
    steps: list[dict[str, Any]] = [
        {"setWeight": 50},
        {"analyze": {"duration": "30s", "maxDuration": "150s"}},
        {"setWeight": 80},
        {"analyze": {"duration": "30s", "maxDuration": "150s"}},
    ]
    world.start(rollout(world.prometheus.url, steps=steps, gates=gates), rate=300)
    world.set_model({**fair_candidate(), "bias": INTERSECTION_BIAS})

    status = world.wait_phase("RolledBack", "Guarding", "Paused", "Failed", timeout=300)
    assert_rolled_back(world, status)
    failed = failing(status)
    assert failed, status["evidence"]
    # what failed is intersections, the older women among them; no marginal group failed
    assert all("," in e["slice"] for e in failed), failed
    assert any(e["slice"] == "age_band=60+,sex=F" for e in failed), failed
    marginal = [e for e in status["evidence"] if "," not in e["slice"]]
    assert all(e["outcome"] != "fail" for e in marginal), marginal
    assert "age_band=60+,sex=F" in status["message"], status["message"]
    world.verify_audit()
    world.regression_to_rollback()


# --- 4. latency regression rolls back; warning-only drift pauses --------------------------------


def test_latency_regression_is_rolled_back(scenario: Scenario) -> None:
    world = scenario
    world.start(canary_rollback_spec(world), rate=250)
    world.set_model({**fair_candidate(), "latency_ms": 200})

    status = world.wait_phase("RolledBack", "Guarding", "Paused", "Failed", timeout=240)
    assert_rolled_back(world, status)
    failed = failing(status)
    assert [e["gate"] for e in failed] == ["latency"], failed
    assert failed[0]["candidate"] > 0.25 and failed[0]["threshold"] == 0.25
    assert "latency" in status["message"]
    world.verify_audit()
    world.regression_to_rollback()


def test_warning_only_drift_pauses_and_does_not_roll_back(scenario: Scenario) -> None:
    world = scenario
    steps: list[dict[str, Any]] = [
        {"setWeight": 50},
        {"analyze": {"duration": "15s", "maxDuration": "45s"}},
        {"setWeight": 80},
        {"analyze": {"duration": "15s", "maxDuration": "45s"}},
    ]
    world.start(rollout(world.prometheus.url, steps=steps, intersections=False), rate=300)
    # the same decisions, but scores squeezed towards 0.5: only the score distribution drifts
    world.set_model({**fair_candidate(), "score_shift": 2.0})

    world.wait_phase("Canary", timeout=60)
    status = world.wait_phase("Paused", "RolledBack", "Guarding", "Failed", timeout=240)
    assert status["phase"] == "Paused", status
    assert status["reason"] == "GateWarning", status
    assert status["pausedReason"] == "analysis"
    drift = [e for e in status["evidence"] if e["gate"] == "score-drift"]
    assert drift and drift[0]["outcome"] in ("warn", "fail"), status["evidence"]
    assert not [e for e in failing(status) if e["severity"] == "critical"], status["evidence"]
    # paused, not rolled back: the canary keeps its share, owned, and nothing rolls back
    assert world.weights() == (50, 50, 0)
    assert world.route_owned()
    assert world.replicas(TARGET) >= 1
    paused = [c for c in status["conditions"] if c["type"] == "Paused"]
    assert paused and paused[0]["status"] == "True"
    reasons = world.event_reasons()
    assert "Paused" in reasons and "RollingBack" not in reasons, reasons
    actions = [r["action"] for r in world.verify_audit()]
    assert "analysis-failed" not in actions, actions


# --- 7. manual control through the CLI -----------------------------------------------------------


def test_manual_pause_resume_promote_abort_retry(scenario: Scenario) -> None:
    world = scenario
    steps: list[dict[str, Any]] = [
        {"setWeight": 20},
        {"analyze": {"duration": "10m"}},
        {"setWeight": 40},
        {"analyze": {"duration": "10m"}},
    ]
    world.start(rollout(world.prometheus.url, steps=steps, intersections=False), rate=150)
    world.set_model(fair_candidate())
    world.wait_phase("Canary", timeout=60)
    wait_for_weights(world, (80, 20, 0))

    def act(verb: str, *extra: str) -> str:
        done = world.action(verb, *extra)
        assert done.returncode == 0, f"fairshift {verb}: {done.stdout}{done.stderr}"
        return done.stdout

    act("pause")
    status = world.wait_phase("Paused", timeout=30)
    assert status["pausedReason"] == "manual"
    assert world.weights() == (80, 20, 0)  # a pause holds traffic where it is

    act("resume")
    status = world.wait_phase("Canary", timeout=30)
    step = status["currentStep"]

    act("promote")  # skip the current step
    status = world.wait_phase("Canary", timeout=30)
    assert world.wait_for_status(lambda s: (s.get("currentStep") or 0) > step, timeout=30)

    act("abort")
    status = world.wait_phase("RolledBack", timeout=60)
    assert_rolled_back(world, status)

    act("retry")
    status = world.wait_phase("Canary", timeout=60)
    assert status["currentStep"] in (0, 1)
    wait_for_weights(world, (80, 20, 0))

    # the raw protocol: an annotation with an id is handled once, a repeated id is ignored
    request_id = world.annotate_action("pause")
    status = world.wait_for_status(lambda s: s.get("handledAction") == request_id, timeout=30)
    assert world.wait_phase("Paused", timeout=30)["pausedReason"] == "manual"
    world.k(
        "annotate",
        "--overwrite",
        f"modelrollout/{ROLLOUT}",
        f'fairshift.io/action={{"action": "resume", "id": "{request_id}"}}',
    )
    world.wait_for_status(lambda s: s.get("phase") == "Paused", timeout=10)

    manual = [e for e in world.events() if e["reason"] == "ManualAction"]
    assert len(manual) >= 6, [e["message"] for e in manual]
    actions = [r["action"] for r in world.verify_audit()]
    for action in ("halt", "resume", "promote", "abort", "retry"):
        assert action in actions, actions


def wait_for_weights(world: Scenario, weights: tuple[int, int, int], timeout: float = 30) -> None:
    wait_for(lambda: world.weights() == weights, timeout=timeout, message=f"weights {weights}")


# --- 8. invalid ModelRollouts are refused at admission -----------------------------------------


def invalid_specs() -> list[tuple[str, Any, str]]:
    """(what is wrong, a function that breaks a valid spec, text the refusal must contain)."""

    def step(index: int, value: dict[str, Any]) -> Any:
        return lambda s: s["strategy"]["canary"]["steps"].__setitem__(index, value)

    def gate(value: dict[str, Any]) -> Any:
        return lambda s: s["analysis"]["gates"].__setitem__(0, value)

    def setter(path: str, value: Any) -> Any:
        def apply(spec: dict[str, Any]) -> None:
            *parents, last = path.split(".")
            node = spec
            for part in parents:
                node = node[part]
            node[last] = value

        return apply

    gw = {"parentRefs": [{"name": "public"}]}
    return [
        (
            "two routers",
            setter("routing", {"gatewayAPI": gw, "istio": {"hosts": ["a"]}}),
            "routing needs exactly one router: gatewayAPI, istio or replicas",
        ),
        ("no router", setter("routing", {}), "spec.routing"),
        (
            "a step doing two things",
            step(0, {"setWeight": 10, "pause": {}}),
            "each canary step needs exactly one of setWeight, analyze or pause",
        ),
        (
            "weights going down",
            step(2, {"setWeight": 10}),
            "canary setWeight values must not decrease from one step to the next",
        ),
        ("a weight above 100", step(0, {"setWeight": 150}), "less than or equal to 100"),
        (
            "maxDuration below duration",
            step(1, {"analyze": {"duration": "1m", "maxDuration": "30s"}}),
            "analyze.maxDuration must be at least analyze.duration",
        ),
        (
            "a gate with metric and query",
            gate({"name": "g", "metric": "tpr_gap", "query": "up", "max": 1}),
            "a gate needs exactly one of metric (from the convention) or query (PromQL)",
        ),
        (
            "a gate with two bounds",
            gate({"name": "g", "metric": "accuracy", "min": 0.5, "maxDecrease": 0.1}),
            "a gate needs exactly one bound: min, max, maxIncrease, maxDecrease or",
        ),
        (
            "a query gate compared with stable",
            gate({"name": "g", "query": "sum(up)", "maxIncrease": 1}),
            "a query gate can only use min or max",
        ),
        (
            "a latency gate with min",
            gate({"name": "g", "metric": "latency_p99", "min": 0.1}),
            "a latency gate takes max (seconds) or maxIncrease (seconds over stable)",
        ),
        (
            "a drift gate with maxIncrease",
            gate({"name": "g", "metric": "score_psi", "maxIncrease": 0.1}),
            "a drift gate (score_psi, score_js, score_ks) already compares candidate",
        ),
        (
            "an unknown metric",
            gate({"name": "g", "metric": "tpr_gapp", "max": 0.1}),
            'Unsupported value: "tpr_gapp"',
        ),
        (
            "alpha out of range",
            setter("analysis.alpha", 0.9),
            "alpha is the false-rollback budget of the whole rollout",
        ),
        (
            "two gates with one name",
            lambda s: s["analysis"]["gates"].append(dict(s["analysis"]["gates"][0])),
            "gate names must be unique",
        ),
        (
            "an interval too short",
            setter("analysis.interval", "1s"),
            "analysis.interval must be at least 5s",
        ),
        (
            "shadow with the replicas router",
            setter("routing", {"replicas": {}}),
            "shadow traffic needs a mesh router (gatewayAPI or istio)",
        ),
        (
            "analyze steps without analysis",
            lambda s: s.pop("analysis"),
            "analyze steps need an analysis block with gates",
        ),
        (
            "a duration in words",
            step(1, {"analyze": {"duration": "ten minutes"}}),
            "spec.strategy.canary.steps[1].analyze.duration",
        ),
        (
            "an attribute that is not a label name",
            setter("analysis.slices.attributes", ["age-band"]),
            "spec.analysis.slices.attributes[0]",
        ),
        (
            "an attribute the metric convention reserves",
            setter("analysis.slices.attributes", ["sex", "label"]),
            "a slice attribute must not be a label reserved by the metric convention",
        ),
        (
            "a target name with capitals",
            setter("targetRef.name", "Credit_Scorer"),
            "targetRef.name",
        ),
        (
            "no mirror at all",
            setter("strategy.shadow.mirrorPercent", 0),
            "greater than or equal to 1",
        ),
        ("an unknown onFailure", setter("onFailure", "ignore"), 'Unsupported value: "ignore"'),
        (
            "a Prometheus address without scheme",
            setter("analysis.prometheus.address", "prometheus:9090"),
            "spec.analysis.prometheus.address",
        ),
        ("a misspelt field", setter("stratgy", {}), ".spec.stratgy: field not declared in schema"),
        (
            "a degrade without a fallback",
            setter("guard", {"onBreach": "degrade"}),
            "guard onBreach degrade sends traffic to spec.fallbackRef, which is not set",
        ),
        (
            "a fallback that is the model itself",
            setter("fallbackRef", {"name": TARGET}),
            "fallbackRef must name a Deployment other than targetRef",
        ),
        (
            "a fallback with the replicas router",
            lambda s: s.update(routing={"replicas": {}}, fallbackRef={"name": "rules-scorer"}),
            "fallbackRef needs a mesh router (gatewayAPI or istio)",
        ),
    ]


def test_invalid_rollouts_are_refused_at_admission(scenario: Scenario) -> None:
    world = scenario
    steps: list[dict[str, Any]] = [
        {"setWeight": 20},
        {"analyze": {"duration": "10m"}},
        {"setWeight": 40},
        {"analyze": {"duration": "10m"}},
    ]
    valid = rollout(
        world.prometheus.url, steps=steps, shadow={"mirrorPercent": 100, "duration": "10m"}
    )
    world.start(valid, rate=100)
    world.set_model(fair_candidate())
    world.wait_phase("Shadow", timeout=60)
    before = world.mro()

    refused = 0
    for what, breaks, expected in invalid_specs():
        body = copy.deepcopy(valid)
        breaks(body["spec"])
        # as an update of the running rollout, and as a new rollout
        for name in (ROLLOUT, "another-rollout"):
            body["metadata"]["name"] = name
            done = world.k.apply(body, server_side=True, check=False)
            assert done.returncode != 0, f"{what}: accepted as {name}"
            assert expected in done.stderr, f"{what}: {done.stderr}"
        refused += 1
    assert refused >= 15

    # the running rollout was not disturbed
    after = world.mro()
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    assert world.k.get("modelrollout", "another-rollout") is None
    assert world.phase() == "Shadow"
    assert world.weights() == (100, 0, 100)
    invalid = [c for c in world.status()["conditions"] if c["type"] == "InvalidSpec"]
    assert invalid and invalid[0]["status"] == "False"


# --- 5. Prometheus away mid-canary: hold, pause with a condition, continue on resume ------------


def test_prometheus_down_mid_canary_pauses_and_resumes(scenario: Scenario) -> None:
    world = scenario
    if world.prometheus_pid() is None:
        pytest.skip("needs the Prometheus process started by e2e/cluster.sh")
    steps: list[dict[str, Any]] = [
        {"setWeight": 30},
        {"analyze": {"duration": "20s", "maxDuration": "120s"}},
        {"setWeight": 60},
        {"analyze": {"duration": "20s", "maxDuration": "120s"}},
    ]
    world.start(rollout(world.prometheus.url, steps=steps, intersections=False), rate=300)
    world.set_model(fair_candidate())
    running = world.wait_for_status(
        lambda s: (
            s.get("phase") == "Canary" and s.get("currentStep") == 1 and s.get("lastAnalysisAt")
        ),
        timeout=90,
    )
    step = running["currentStep"]

    world.stop_prometheus()
    try:
        seen: list[tuple[str, Any]] = []

        def paused() -> dict[str, Any] | None:
            status = world.status()
            seen.append((status["phase"], status.get("currentStep")))
            return status if status["phase"] == "Paused" else None

        status = wait_for(paused, timeout=120, message="paused on analysis errors")
        # it held (never advanced) and then paused, saying why
        assert {p for p, _ in seen} <= {"Canary", "Paused"}, seen
        assert {s for _, s in seen} == {step}, seen
        assert status["pausedReason"] == "errors"
        assert status["reason"] == "AnalysisErrors"
        degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
        assert degraded["status"] == "True" and degraded["reason"] == "AnalysisErrors"
        assert "metrics" in degraded["message"]
        assert world.weights() == (70, 30, 0) and world.route_owned()
    finally:
        world.start_prometheus()

    # Prometheus is back: still paused until a person resumes
    assert world.phase() == "Paused"
    done = world.action("resume")
    assert done.returncode == 0, done.stdout + done.stderr
    world.wait_phase("Canary", timeout=30)
    status = world.wait_phase("Guarding", "RolledBack", "Paused", "Failed", timeout=300)
    assert status["phase"] == "Guarding", status
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "False"
    world.verify_audit()


# --- 6. the operator killed at several points resumes from status -------------------------------


def transitions(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The phase-changing records of the audit trail (holds are analyses, not transitions)."""
    return [
        (r["action"], r["phase"], r.get("step"), r.get("candidateRevision"))
        for r in records
        if r["action"] != "hold"
    ]


def test_operator_killed_mid_step_during_promotion_and_rollback_resumes(
    scenario: Scenario,
) -> None:
    world = scenario
    steps: list[dict[str, Any]] = [
        {"setWeight": 30},
        {"analyze": {"duration": "20s", "maxDuration": "120s"}},
        {"setWeight": 60},
        {"analyze": {"duration": "20s", "maxDuration": "120s"}},
    ]
    world.start(rollout(world.prometheus.url, steps=steps, intersections=False), rate=300)
    operator = world.operator
    assert operator is not None
    kills: list[str] = []

    def kill_and_check() -> dict[str, Any]:
        operator.kill()
        status = world.status()
        kills.append(f"{status['phase']}@{status.get('currentStep')}")
        # nobody runs the rollout now: the route must still be owned, and split only as the
        # status says (a restarted operator, or garbage collection, can always undo it)
        weights = world.weights()
        assert world.route_owned()
        assert weights is not None and weights[1] in (0, status.get("canaryWeight", 0)), (
            weights,
            status,
        )
        return status

    # (a) mid-step: during the first analysis
    world.set_model(fair_candidate())
    world.wait_for_status(
        lambda s: (
            s.get("phase") == "Canary" and s.get("currentStep") == 1 and s.get("lastAnalysisAt")
        ),
        timeout=90,
    )
    before = kill_and_check()
    operator.start()
    after = world.wait_for_status(
        lambda s: s.get("lastAnalysisAt") != before.get("lastAnalysisAt"), timeout=60
    )
    assert after["currentStep"] >= before["currentStep"]
    assert after["stepStartedAt"] == before["stepStartedAt"] or after["currentStep"] > 1

    # (b) during promotion: as soon as the phase says Promoting
    promoting = world.wait_phase(
        "Promoting", "Guarding", "RolledBack", "Paused", timeout=300, interval=0.2
    )
    if promoting["phase"] == "Promoting":
        kill_and_check()
        operator.start()
    status = world.wait_phase("Guarding", "RolledBack", "Paused", "Failed", timeout=120)
    assert status["phase"] == "Guarding", status
    assert '"seed":2' in world.template_env(PRIMARY)
    assert world.weights() == (100, 0, 0)

    # (c) during rollback: a biased candidate, the operator killed every few seconds until the
    # rollback is done, so kills land before, during and right after it
    world.set_model({**fair_candidate(3), "bias": {"sex=F": {"tpr": -0.35}}})
    world.wait_phase("Canary", timeout=60)
    for _attempt in range(30):
        if world.phase() in ("RolledBack", "Guarding", "Failed"):
            break
        if not operator.running:
            operator.start()
        # let it work for a few seconds, or until the rollback starts; then crash it
        with contextlib.suppress(WaitTimeoutError):
            wait_for(
                lambda: world.phase() in ("RollingBack", "RolledBack"), timeout=6, interval=0.25
            )
        kill_and_check()
    if not operator.running:
        operator.start()
    status = world.wait_phase("RolledBack", "Guarding", "Paused", "Failed", timeout=180)
    assert_rolled_back(world, status)
    assert '"seed":2' in world.template_env(PRIMARY)  # the promoted model still serves

    records = world.verify_audit()
    done = transitions(records)
    assert len(done) == len(set(done)), f"a transition was recorded twice: {done}"
    actions = [t[0] for t in done]
    promoted = actions.count("promotion-done-guarded")
    assert promoted == 1 and actions.count("rollback-done") == 1, actions
    print(f"operator killed at: {kills}")
    # the data plane never sent a request to a backend without a server
    counts = world.stats()["traffic"]["counts"]
    assert counts.get("noEndpoint", 0) < 0.01 * sum(v for k, v in counts.items() if ":" in k)


def test_operator_killed_right_after_moving_traffic_back_repeats_nothing(
    scenario: Scenario,
) -> None:
    """The narrowest crash window: traffic is back on primary (the route says so) but the
    operator has not written status yet. A restarted operator must finish the rollback from
    the audit chain (its write-ahead log) without deciding again: no traffic for the rejected
    candidate, no second rollback record. (Before the fix, the route went back to the canary
    weight for a tick and the rollback was recorded twice.)"""
    world = scenario
    world.start(canary_rollback_spec(world), rate=300)
    exposed: list[tuple[int, int, int]] = []

    def back_on_primary(weights: tuple[int, int, int]) -> bool:
        if weights[1] > 0:
            exposed.append(weights)
            return False
        return bool(exposed)

    watcher = world.kill_operator_when_route(back_on_primary)
    world.set_model({**fair_candidate(), "bias": {"sex=F": {"tpr": -0.35}}})
    wait_for(lambda: watcher.get("killedAt"), timeout=240, message="the kill")
    at_kill = world.status()
    records = world.audit_records()
    ahead = [r for r in records if r["seq"] > (at_kill.get("auditSeq") or 0)]
    print(
        f"killed at route {watcher['weights']}; status said {at_kill['phase']} "
        f"(auditSeq {at_kill.get('auditSeq')}); audit records beyond it: "
        f"{[(r['seq'], r['action'], r['phase']) for r in ahead]}"
    )
    # nobody runs the rollout: traffic is on primary, the route is owned
    assert world.weights() == (100, 0, 0) and world.route_owned()

    assert world.operator is not None
    world.operator.start()
    status = world.wait_phase("RolledBack", "Guarding", "Paused", "Failed", timeout=180)
    assert_rolled_back(world, status)
    # the rejected candidate never got traffic again after the crash
    timeline = world.stats()["traffic"]["timeline"]
    again = [e for e in timeline if e["time"] > watcher["killedAt"] and e.get("canary", 0) > 0]
    assert not again, f"the rejected candidate got traffic again after the restart: {again}"
    done = transitions(world.verify_audit())
    assert len(done) == len(set(done)), f"a transition was recorded twice: {done}"
    actions = [t[0] for t in done]
    assert actions.count("analysis-failed") == 1, actions
    assert [e["reason"] for e in world.events()].count("RollingBack") == 1


# --- 9. equally unfair stable and candidate: noise does not roll back ---------------------------


def test_candidate_as_fair_as_stable_with_low_disparate_impact_is_not_rolled_back(
    scenario: Scenario,
) -> None:
    world = scenario
    # the 60+ band is selected ~10% less often than the majority by BOTH models (DI ~ 0.87-0.9)
    low_di = {"age_band=60+": {"selection": -0.041}}
    stable = {**STABLE_MODEL, "bias": low_di}
    gates = [
        {"name": "four-fifths", "metric": "disparate_impact", "min": 0.8},
        {"name": "equal-opportunity", "metric": "tpr_gap", "maxIncrease": 0.1},
    ]
    steps: list[dict[str, Any]] = [
        {"setWeight": 50},
        {"analyze": {"duration": "20s", "maxDuration": "60s"}},
    ]
    world.start(rollout(world.prometheus.url, steps=steps, gates=gates), model=stable, rate=300)
    outcomes = []
    for seed in (21, 22, 23):
        previous = world.status().get("candidateRevision")
        world.set_model({**stable, "seed": seed})
        world.wait_for_status(
            lambda s, previous=previous: (
                s.get("phase") == "Canary" and s.get("candidateRevision") not in (None, previous)
            ),
            timeout=60,
        )
        status = world.wait_phase("Guarding", "RolledBack", "Paused", "Failed", timeout=180)
        outcomes.append((seed, status["phase"], status.get("reason")))
        assert status["phase"] in ("Guarding", "Paused"), (seed, status)
        assert not failing(status), (seed, status["evidence"])
        di = [e for e in status["evidence"] if e["gate"] == "four-fifths" and e["candidate"]]
        assert all(0.75 < e["candidate"] < 1.1 for e in di), di
    print(f"outcomes per seed: {outcomes}")
    actions = [t[0] for t in transitions(world.verify_audit())]
    assert "analysis-failed" not in actions, actions


# --- 10. the guard after promotion: a drift in production is caught and switched back -----------

GUARD_STEPS: list[dict[str, Any]] = [
    {"setWeight": 50},
    {"analyze": {"duration": "20s", "maxDuration": "90s"}},
]
DRIFTING_IMAGE = "registry.example.com/credit-scorer:drifting"


def guarded_spec(world: Scenario, **guard: Any) -> dict[str, Any]:
    """A short canary, then a guard that looks every 30 s (its minimum)."""
    return rollout(
        world.prometheus.url,
        steps=GUARD_STEPS,
        intersections=False,
        guard={"interval": "30s", **guard},
    )


def release(world: Scenario, model: dict[str, Any], image: str) -> None:
    """A new revision with a new image and ``SIM_MODEL`` in one write (one revision)."""
    patch = [
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": image},
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0/env/0/value",
            "value": scenario_fixtures.model_json(model),
        },
    ]
    world.k("patch", f"deployment/{TARGET}", "--type=json", "-p", json.dumps(patch))


def container(world: Scenario, name: str) -> tuple[str, str]:
    """(image, SIM_MODEL) of a Deployment's pod template."""
    found = world.k.get("deployment", name)
    assert found is not None, f"Deployment {name} is gone"
    return found["spec"]["template"]["spec"]["containers"][0]["image"], world.template_env(name)


def record_time(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(record["time"].replace("Z", "+00:00")).timestamp()


def test_a_model_that_degrades_in_production_is_caught_by_the_guard_and_switched_back(
    scenario: Scenario,
) -> None:
    world = scenario
    world.start(guarded_spec(world), rate=300)
    before = (container(world, TARGET), container(world, PRIMARY))
    assert before[0] == before[1]
    # fair in its canary; women lose 0.4 of TPR 20 s after it starts serving production
    drifting = {
        **fair_candidate(),
        "production_bias": {"sex=F": {"tpr": -0.4}},
        "production_after_s": 20,
    }
    release(world, drifting, DRIFTING_IMAGE)

    status = world.wait_phase("Guarding", "RolledBack", "Paused", "Failed", timeout=180)
    assert status["phase"] == "Guarding", status  # the canary saw a fair model
    assert container(world, PRIMARY)[0] == DRIFTING_IMAGE
    assert status["guard"]["health"] == "Healthy"

    status = world.wait_phase("RolledBack", "Paused", "Failed", timeout=180)
    assert status["phase"] == "RolledBack", status
    assert status["reason"] == "GuardBreached", status
    assert "equal-opportunity" in status["message"] or "four-fifths" in status["message"]
    assert "sex=F" in status["message"], status["message"]
    # both Deployments run the template the primary ran before the promotion
    assert container(world, PRIMARY) == before[1]
    assert container(world, TARGET) == before[0]
    assert world.weights() == (100, 0, 0) and world.route_owned()
    assert world.replicas(TARGET) == 0

    records = world.verify_audit()
    actions = [r["action"] for r in records]
    assert "promotion-done-guarded" in actions and "guard-breached" in actions, actions
    assert actions.index("promotion-done-guarded") < actions.index("guard-breached")
    assert actions.index("guard-breached") < actions.index("restored"), actions
    reasons = world.event_reasons()
    assert reasons.index("Guarding") < reasons.index("Restoring") < reasons.index("RolledBack")

    # the data plane restarted the primary with the earlier model: no production bias now
    def primary_model() -> dict[str, Any] | None:
        pods = {p["deployment"]: p for p in world.stats()["pods"]}
        return pods[PRIMARY]["model"] if PRIMARY in pods else None

    wait_for(
        lambda: (primary_model() or {}).get("seed") == STABLE_MODEL["seed"],
        timeout=30,
        message="the primary server restarted with the earlier model",
    )
    assert "production_bias" not in (primary_model() or {})
    drifted = [
        p["driftsAt"]
        for p in world.stats()["podHistory"]
        if p["event"] == "started" and p["deployment"] == PRIMARY and p.get("driftsAt")
    ]
    assert len(drifted) == 1, drifted
    breach = next(r for r in records if r["action"] == "guard-breached")
    restored = next(r for r in records if r["action"] == "restored")
    world.record_time("drift_to_breach", record_time(breach) - drifted[0])
    world.record_time("drift_to_restored", record_time(restored) - drifted[0])
    assert record_time(breach) >= drifted[0] - 1  # not before the drift (whole seconds)


def test_prometheus_down_while_guarding_degrades_the_guard_and_changes_nothing(
    scenario: Scenario,
) -> None:
    world = scenario
    if world.prometheus_pid() is None:
        pytest.skip("needs the Prometheus process started by e2e/cluster.sh")
    world.start(guarded_spec(world), rate=300)
    world.set_model(fair_candidate())
    world.wait_phase("Guarding", timeout=180)
    guarded = world.wait_for_status(
        lambda s: (s.get("guard") or {}).get("looks", 0) >= 1, timeout=90
    )
    assert guarded["guard"]["health"] == "Healthy", guarded["guard"]
    deployments = {n: world.k.get("deployment", n) for n in (TARGET, PRIMARY)}
    generations = {n: d["metadata"]["generation"] for n, d in deployments.items() if d}

    world.stop_prometheus()
    try:
        seen: list[str] = []

        def degraded() -> dict[str, Any] | None:
            status = world.status()
            seen.append(status["phase"])
            return status if (status.get("guard") or {}).get("health") == "Degraded" else None

        status = wait_for(degraded, timeout=120, message="guard Degraded")
        assert set(seen) == {"Guarding"}, seen
        assert "could not look" in status["guard"]["message"], status["guard"]
        shown = world.k("get", "mro", ROLLOUT)
        assert "Degraded" in shown and "Guarding" in shown, shown
        now = {n: world.k.get("deployment", n) for n in (TARGET, PRIMARY)}
        assert {n: d["metadata"]["generation"] for n, d in now.items() if d} == generations
        assert world.weights() == (100, 0, 0)
    finally:
        world.start_prometheus()

    status = world.wait_for_status(
        lambda s: (s.get("guard") or {}).get("health") == "Healthy", timeout=120
    )
    assert status["phase"] == "Guarding"
    now = {n: world.k.get("deployment", n) for n in (TARGET, PRIMARY)}
    assert {n: d["metadata"]["generation"] for n, d in now.items() if d} == generations
    actions = [r["action"] for r in world.verify_audit()]
    assert actions.count("guard-degraded") == 1, actions
    assert "guard-breached" not in actions and "guard-alert" not in actions, actions


def test_a_fair_model_under_a_day_night_traffic_mix_is_never_alarmed_by_the_guard(
    scenario: Scenario,
) -> None:
    world = scenario
    # the share of applicants aged 60+ swings from 5 % ("day") to 60 % ("night") every 2 minutes
    mix = ("--mix", "age_band=60+:0.05:0.6", "--mix-period", "120")
    world.start(guarded_spec(world), rate=300, dataplane_args=mix)
    world.set_model(fair_candidate())
    world.wait_phase("Guarding", timeout=180)
    shares: list[float] = []

    def looked_a_full_cycle() -> dict[str, Any] | None:
        shares.append(world.stats()["traffic"]["mix"]["share"])
        status = world.status()
        looks = (status.get("guard") or {}).get("looks", 0)
        return status if looks >= 4 or status.get("phase") != "Guarding" else None

    status = wait_for(looked_a_full_cycle, timeout=240, interval=2.0, message="four looks")
    assert status["phase"] == "Guarding", status
    assert status["guard"]["health"] == "Healthy", status["guard"]
    assert status["guard"]["breaches"] == 0
    assert max(shares) - min(shares) > 0.3, shares  # the looks did see the mix move
    actions = [r["action"] for r in world.verify_audit()]
    for alarm in ("guard-warning", "guard-breached", "guard-alert", "guard-escalated"):
        assert alarm not in actions, actions
    print(f"guard after {status['guard']['looks']} looks: {status['guard']['message']}")


def test_kill_takes_a_guarded_model_out_of_the_path_until_revived(scenario: Scenario) -> None:
    world = scenario
    world.start(guarded_spec(world), rate=300)
    world.set_model(fair_candidate())
    world.wait_phase("Guarding", timeout=180)

    done = world.action("kill", "--reason", "applicants report wrong refusals")
    assert done.returncode == 0, done.stdout + done.stderr
    world.wait_phase("Killed", timeout=60)
    wait_for(lambda: world.replicas(PRIMARY) == 0, timeout=30, message="primary at zero")

    def primary_serving() -> bool:
        return PRIMARY in {p["deployment"] for p in world.stats()["pods"]}

    wait_for(lambda: not primary_serving(), timeout=30, message="the primary's server stopped")
    # out of the path: requests find no model, and nothing brings it back by itself
    refused = world.stats()["traffic"]["counts"].get("noEndpoint", 0)
    wait_for(
        lambda: world.stats()["traffic"]["counts"].get("noEndpoint", 0) > refused + 300,
        timeout=30,
        message="requests refused while killed",
    )
    assert world.phase() == "Killed" and world.replicas(PRIMARY) == 0
    killed = [r for r in world.verify_audit() if r["action"] == "kill"]
    assert len(killed) == 1, killed
    assert killed[0]["requestReason"] == "applicants report wrong refusals"
    assert killed[0]["requestedBy"]

    done = world.action("revive")
    assert done.returncode == 0, done.stdout + done.stderr
    world.wait_phase("Guarding", timeout=60)
    wait_for(lambda: world.replicas(PRIMARY) == 1, timeout=30, message="primary back at 1")
    wait_for(primary_serving, timeout=30, message="the primary serves again")
    served = world.stats()["traffic"]["counts"].get(f"sent:{PRIMARY}", 0)
    wait_for(
        lambda: world.stats()["traffic"]["counts"].get(f"sent:{PRIMARY}", 0) > served + 300,
        timeout=30,
        message="traffic served by the revived model",
    )
    assert '"seed":2' in world.template_env(PRIMARY)  # the same model, not a switch back
    actions = [r["action"] for r in world.verify_audit()]
    assert actions.index("kill") < actions.index("revive-guarded"), actions


def test_an_escalated_guard_breach_keeps_serving_and_holds_the_next_rollout_until_acked(
    scenario: Scenario,
) -> None:
    world = scenario
    world.start(guarded_spec(world, onBreach="escalate"), rate=300)
    drifting = {
        **fair_candidate(),
        "production_bias": {"sex=F": {"tpr": -0.4}},
        "production_after_s": 20,
    }
    world.set_model(drifting)
    world.wait_phase("Guarding", timeout=180)
    world.wait_for_status(lambda s: (s.get("guard") or {}).get("escalation"), timeout=150)
    status = world.status()
    assert status["phase"] == "Guarding"  # it keeps serving: a person decides
    assert "production_bias" in world.template_env(PRIMARY)
    assert "AwaitingAcknowledgement" not in status.get("reason", "")
    assert "guard-escalated" in [r["action"] for r in world.verify_audit()]

    # a fixed candidate waits for the acknowledgement
    world.set_model(fair_candidate(seed=4))
    status = world.wait_for_status(
        lambda s: s.get("reason") == "AwaitingAcknowledgement", timeout=60
    )
    assert status["phase"] == "Guarding"
    assert world.replicas(TARGET) == 0 and world.weights() == (100, 0, 0)

    done = world.action("ack", "--reason", "reviewed: a feature pipeline fault, fixed")
    assert done.returncode == 0, done.stdout + done.stderr
    world.wait_phase("Canary", timeout=60)
    acked = [r for r in world.verify_audit() if r["action"] == "acknowledge"]
    assert len(acked) == 1 and acked[0]["requestReason"].startswith("reviewed"), acked


# --- 11. a declared fallback: a degrade on breach, and a kill that keeps the model deployed -----

FALLBACK = "rules-scorer"
FALLBACK_SERVICE = f"{ROLLOUT}-fallback"


def fallback_deployment() -> dict[str, Any]:
    """A rules-based model beside the ML one: its own Deployment, labels and pods."""
    body = scenario_fixtures.deployment(STABLE_MODEL)
    labels = {"app": FALLBACK}
    body["metadata"] = {"name": FALLBACK, "labels": labels}
    body["spec"]["selector"] = {"matchLabels": labels}
    body["spec"]["template"]["metadata"] = {"labels": labels}
    body["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example.com/rules:1"
    return body


def backends(world: Scenario) -> dict[str, int]:
    """The weight of each backend of the rollout's HTTPRoute, by Service name."""
    route = world.k.get("httproute", ROLLOUT)
    assert route is not None, "the HTTPRoute is gone"
    return {r["name"]: int(r.get("weight", 1)) for r in route["spec"]["rules"][0]["backendRefs"]}


def test_a_model_that_degrades_in_production_is_degraded_to_the_fallback_as_declared(
    scenario: Scenario,
) -> None:
    world = scenario
    world.k.apply(fallback_deployment())
    wait_for(
        lambda: (
            ((world.k.get("deployment", FALLBACK) or {}).get("status") or {}).get(
                "availableReplicas", 0
            )
            >= 1
        ),
        timeout=60,
        message="the fallback Deployment is available",
    )
    body = guarded_spec(world, onBreach="degrade", degradePercent=30)
    body["spec"]["fallbackRef"] = {"kind": "Deployment", "name": FALLBACK}
    world.start(body, rate=300)
    drifting = {
        **fair_candidate(),
        "production_bias": {"sex=F": {"tpr": -0.4}},
        "production_after_s": 20,
    }
    release(world, drifting, DRIFTING_IMAGE)
    status = world.wait_phase("Guarding", "RolledBack", "Paused", "Failed", timeout=180)
    assert status["phase"] == "Guarding", status  # the canary saw a fair model

    status = world.wait_phase("Fallback", "RolledBack", "Paused", "Failed", timeout=180)
    assert status["phase"] == "Fallback", status
    assert status["reason"] == "GuardFallback" and "revive" in status["message"], status
    assert status["guard"]["health"] == "Breached", status["guard"]
    assert status["fallback"]["percent"] == 30 and status["fallback"]["fallback"] == FALLBACK
    primary, canary = f"{ROLLOUT}-primary", f"{ROLLOUT}-canary"
    wait_for(
        lambda: backends(world) == {primary: 70, canary: 0, FALLBACK_SERVICE: 30},
        timeout=30,
        message="30 % of traffic on the fallback backend of the HTTPRoute",
    )
    assert world.status()["fallbackWeight"] == 30
    service = world.k.get("service", FALLBACK_SERVICE)
    assert service is not None and service["spec"]["selector"] == {"app": FALLBACK}
    assert container(world, PRIMARY)[0] == DRIFTING_IMAGE  # the model keeps the rest
    shown = world.k("get", "mro", ROLLOUT, "-o", "wide")
    assert "Fallback" in shown and "Breached" in shown, shown
    records = world.verify_audit()
    degraded = next(r for r in records if r["action"] == "guard-fallback")
    assert degraded["fallback"] == {"deployment": FALLBACK, "percent": 30}
    assert "sex=F" in degraded["message"], degraded["message"]
    drifted = [
        p["driftsAt"]
        for p in world.stats()["podHistory"]
        if p["event"] == "started" and p["deployment"] == PRIMARY and p.get("driftsAt")
    ]
    assert len(drifted) == 1, drifted
    assert record_time(degraded) >= drifted[0] - 1  # not before the drift (whole seconds)
    world.record_time("drift_to_fallback", record_time(degraded) - drifted[0])

    # a degrade holds until a person ends it, and says why
    refused = world.action("revive")
    assert refused.returncode != 0 and "needs --reason" in refused.stderr + refused.stdout
    done = world.action("revive", "--reason", "reviewed; keep serving while we retrain")
    assert done.returncode == 0, done.stdout + done.stderr
    world.wait_phase("Guarding", timeout=60)
    wait_for(
        lambda: backends(world) == {primary: 100, canary: 0},
        timeout=30,
        message="all traffic back on the model",
    )
    revived = [r for r in world.verify_audit() if r["action"] == "revive-guarded"]
    assert revived and revived[-1]["requestReason"].startswith("reviewed"), revived

    # a kill with a fallback: everything to the fallback, the model stays deployed
    done = world.action("kill", "--reason", "applicants report wrong refusals")
    assert done.returncode == 0, done.stdout + done.stderr
    world.wait_phase("Killed", timeout=60)
    wait_for(
        lambda: backends(world) == {primary: 0, canary: 0, FALLBACK_SERVICE: 100},
        timeout=30,
        message="all traffic on the fallback",
    )
    assert world.status()["killed"]["fallback"] is True
    assert world.replicas(PRIMARY) == 1
    done = world.action("revive")
    assert done.returncode == 0, done.stdout + done.stderr
    world.wait_phase("Guarding", timeout=60)
    wait_for(
        lambda: backends(world) == {primary: 100, canary: 0},
        timeout=30,
        message="all traffic back on the model after the revive",
    )
    actions = [r["action"] for r in world.verify_audit()]
    first = actions.index("guard-fallback")
    assert first < actions.index("revive-guarded", first) < actions.index("kill"), actions
    assert "revive-guarded" in actions[actions.index("kill") :], actions
