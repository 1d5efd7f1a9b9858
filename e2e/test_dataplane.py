"""Cluster-free checks of the simulated data plane: the population, the injected behaviour,
a model server's metrics, route parsing and the pod names Prometheus sees.

These need no cluster (no ``e2e`` marker): ``python -m pytest e2e/test_dataplane.py``.
"""

from __future__ import annotations

import json
import random
import re
import time
import urllib.request
from collections import Counter
from typing import Any

import pytest

from e2e.dataplane.controller import DataPlaneController, sim_model, template_hash
from e2e.dataplane.population import MixCycle, ModelBehaviour, person, predict
from e2e.dataplane.server import ModelServer
from e2e.dataplane.traffic import routing_of
from e2e.test_scenarios import INTERSECTION_BIAS

N = 40_000


def test_population_has_the_declared_shares_and_base_rate() -> None:
    people = [person(i) for i in range(N)]
    sexes = Counter(p.sex for p in people)
    ages = Counter(p.age_band for p in people)
    assert abs(sexes["F"] / N - 0.48) < 0.01
    assert abs(ages["60+"] / N - 0.20) < 0.01 and abs(ages["18-29"] / N - 0.22) < 0.01
    assert abs(sum(p.label for p in people) / N - 0.41) < 0.015
    assert person(12345) == person(12345)  # the same applicant in every process


def empirical_tpr(model: ModelBehaviour, where: dict[str, str]) -> float:
    positives = [
        p
        for p in (person(i) for i in range(4 * N))
        if p.label and all(getattr(p, k) == v for k, v in where.items())
    ]
    return sum(predict(model, p).decision for p in positives) / len(positives)


def test_bias_shifts_tpr_only_where_it_is_declared() -> None:
    model = ModelBehaviour.from_json(json.dumps({"seed": 2, "bias": INTERSECTION_BIAS}))
    assert model.rates({"sex": "F", "age_band": "60+"}) == pytest.approx((0.4, 0.15))
    assert model.rates({"sex": "M", "age_band": "30-59"}) == pytest.approx((0.8, 0.15))
    assert empirical_tpr(model, {"sex": "F", "age_band": "60+"}) == pytest.approx(0.4, abs=0.04)
    # the marginal groups stay within the intersection scenario's margin of 0.2
    assert empirical_tpr(model, {"sex": "F"}) == pytest.approx(0.8, abs=0.1)
    assert empirical_tpr(model, {"age_band": "60+"}) == pytest.approx(0.8, abs=0.2)


def test_score_shift_changes_scores_but_no_decision() -> None:
    plain = ModelBehaviour.from_json('{"seed": 3}')
    drifted = ModelBehaviour.from_json('{"seed": 3, "score_shift": 2.0}')
    people = [person(i) for i in range(2000)]
    assert [predict(plain, p).decision for p in people] == [
        predict(drifted, p).decision for p in people
    ]
    near_half = sum(abs(predict(drifted, p).score - 0.5) < 0.1 for p in people)
    assert near_half > 0.8 * len(people)


def test_bad_sim_model_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        ModelBehaviour.from_json('{"tpr": 0.8, "speed": 3}')
    with pytest.raises(ValueError, match="bias key"):
        ModelBehaviour.from_json('{"bias": {"gender=F": {"tpr": -0.1}}}')


def test_production_bias_applies_only_to_a_primary_server_after_its_delay() -> None:
    declared = {
        "seed": 2,
        "bias": {"age_band=60+": {"tpr": -0.1}},
        "production_bias": {"sex=F": {"tpr": -0.4}},
        "production_after_s": 20,
    }
    model = ModelBehaviour.from_json(json.dumps(declared))
    women = {"sex": "F", "age_band": "60+"}
    assert model.rates(women) == pytest.approx((0.7, 0.15))  # as in shadow and canary
    assert model.in_production().rates(women) == pytest.approx((0.3, 0.15))  # both apply
    assert model.in_production().rates({"sex": "M", "age_band": "60+"}) == pytest.approx(
        (0.7, 0.15)
    )
    candidate = ModelServer("c", model)
    primary = ModelServer("p", model, production=True)
    try:
        candidate.start(), primary.start()
        assert primary.started_at is not None and primary.drifts_at is not None
        assert primary.drifts_at == pytest.approx(primary.started_at + 20)
        assert primary.behaviour(primary.drifts_at - 0.01) == model
        assert primary.behaviour(primary.drifts_at) == model.in_production()
        assert candidate.drifts_at is None
        assert candidate.behaviour(time.time() + 3600) == model
    finally:
        candidate.stop(), primary.stop()


class FakeKube:
    """The two Deployments of a rollout, as the controller reads them."""

    namespace = "ns"

    def __init__(self, model: str) -> None:
        env = [{"name": "SIM_MODEL", "value": model}]
        template = {"spec": {"containers": [{"env": env}]}}
        self.items = [
            {"metadata": {"name": name}, "spec": {"replicas": 1, "template": template}}
            for name in ("credit-scorer", "credit-scorer-primary")
        ]

    def deployments(self) -> list[dict[str, Any]]:
        return self.items


def test_the_controller_makes_only_the_primary_a_production_server() -> None:
    model = '{"production_bias": {"sex=F": {"tpr": -0.4}}, "production_after_s": 5}'
    controller = DataPlaneController(FakeKube(model), "credit-scorer", None)  # type: ignore[arg-type]
    try:
        controller.sync_once()
        pods = {p.deployment: p.describe() for p in controller.snapshot()}
        assert pods["credit-scorer"]["driftsAt"] is None
        primary = pods["credit-scorer-primary"]
        assert primary["driftsAt"] == pytest.approx(primary["startedAt"] + 5, abs=0.5)
    finally:
        for pod in controller.snapshot():
            pod.server.stop()


def test_bad_production_bias_is_refused() -> None:
    with pytest.raises(ValueError, match="production_bias 'sex=F': unknown shifts"):
        ModelBehaviour.from_json('{"production_bias": {"sex=F": {"auc": -0.1}}}')
    with pytest.raises(ValueError, match="production_after_s must not be negative"):
        ModelBehaviour.from_json('{"production_after_s": -1}')


def test_a_day_night_mix_moves_one_group_share_and_nothing_else() -> None:
    mix = MixCycle.parse("age_band=60+:0.05:0.6", period_s=120)
    assert mix.share(0) == pytest.approx(0.05) and mix.share(60) == pytest.approx(0.6)
    assert mix.share(120) == pytest.approx(0.05) and mix.share(30) == pytest.approx(0.325)
    rng = random.Random(7)
    for elapsed, share in ((0, 0.05), (60, 0.6)):
        people = [person(mix.draw(rng, elapsed)) for _ in range(4000)]
        older = sum(p.age_band == "60+" for p in people) / len(people)
        assert older == pytest.approx(share, abs=0.025)
        # the base rate within the group does not move with the mix
        within = [p.label for p in people if p.age_band == "60+"]
        assert sum(within) / len(within) == pytest.approx(0.40, abs=0.06)
    with pytest.raises(ValueError, match="selector:low:high"):
        MixCycle.parse("age_band=60+:0.5", period_s=60)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        MixCycle.parse("age_band=60+:0:0.5", period_s=60)
    with pytest.raises(ValueError, match="bias key"):
        MixCycle.parse("age=60+:0.1:0.5", period_s=60)


def test_model_server_emits_the_convention_and_late_labels() -> None:
    server = ModelServer("m", ModelBehaviour(latency_ms=1, label_delay_s=0.2)).start()
    try:
        for i in range(50):
            with urllib.request.urlopen(f"http://{server.address}/predict?id={i}") as r:
                assert set(json.load(r)) == {"decision", "score"}
        deadline = time.monotonic() + 5
        text = ""
        while "fairshift_outcomes_total{" not in text and time.monotonic() < deadline:
            time.sleep(0.1)
            with urllib.request.urlopen(f"http://{server.address}/metrics") as r:
                text = r.read().decode()
        assert 'fairshift_predictions_total{age_band="' in text
        assert "fairshift_outcomes_total{" in text
        assert "fairshift_request_duration_seconds_count 50.0" in text
    finally:
        server.stop()


def test_route_parsing_reads_weights_and_mirror_percent() -> None:
    route = {
        "spec": {
            "rules": [
                {
                    "backendRefs": [
                        {"name": "r-primary", "weight": 70},
                        {"name": "r-canary", "weight": 30},
                    ],
                    "filters": [
                        {
                            "type": "RequestMirror",
                            "requestMirror": {"backendRef": {"name": "r-canary"}, "percent": 25},
                        }
                    ],
                }
            ]
        }
    }
    routing = routing_of(route)
    assert routing is not None
    assert routing.backends == (("r-primary", 70), ("r-canary", 30))
    assert routing.mirror == ("r-canary", 25)
    assert routing_of(None) is None


def test_pod_names_match_their_own_deployment_only() -> None:
    template = {"spec": {"containers": [{"env": [{"name": "SIM_MODEL", "value": "{}"}]}]}}
    assert sim_model(template) == "{}"
    revision = template_hash(template)
    assert re.fullmatch(r"[0-9a-z]{10}", revision)
    primary_pod = f"credit-scorer-primary-{revision}-xyz9b"
    candidate_pod = f"credit-scorer-{revision}-xyz9b"
    selector = "credit-scorer-[0-9a-z]+-[0-9a-z]+"  # PromQL regexes are anchored
    assert re.fullmatch(selector, candidate_pod)
    assert not re.fullmatch(selector, primary_pod)
    assert re.fullmatch("credit-scorer-primary-[0-9a-z]+-[0-9a-z]+", primary_pod)
