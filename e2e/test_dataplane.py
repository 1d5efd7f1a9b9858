"""Cluster-free checks of the simulated data plane: the population, the injected behaviour,
a model server's metrics, route parsing and the pod names Prometheus sees.

These need no cluster (no ``e2e`` marker): ``python -m pytest e2e/test_dataplane.py``.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections import Counter

import pytest

from e2e.dataplane.controller import sim_model, template_hash
from e2e.dataplane.population import ModelBehaviour, person, predict
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
