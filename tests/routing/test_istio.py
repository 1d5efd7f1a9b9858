"""The Istio router writes, reads back and verifies one VirtualService owned by the rollout."""

from __future__ import annotations

from typing import Any

import pytest

from fairshift.routing.base import ALL_TO_PRIMARY, RoutingError, Weights
from fairshift.routing.istio import API_VERSION, KIND, IstioRouter
from tests.fakes import OWNER, FakeObjects, route_target

ISTIO = {"istio": {"hosts": ["credit.example.com"], "gateways": ["gateways/public"]}}
PRIMARY_HOST = "credit-scorer-primary.lending.svc.cluster.local"
CANARY_HOST = "credit-scorer-canary.lending.svc.cluster.local"
KEY = (API_VERSION, KIND, "lending", "credit-scorer")


def router(objects: FakeObjects, routing: dict[str, Any] = ISTIO) -> IstioRouter:
    return IstioRouter(route_target(routing), objects)


def http_route(objects: FakeObjects) -> dict[str, Any]:
    routes = objects.objects[KEY]["spec"]["http"]
    assert len(routes) == 1
    route: dict[str, Any] = routes[0]
    return route


class TestWriting:
    def test_creates_a_virtual_service_with_two_weighted_destinations(
        self, objects: FakeObjects
    ) -> None:
        router(objects).set_weights(Weights(95, 5))

        stored = objects.stored(*KEY)
        assert stored["metadata"]["ownerReferences"] == [OWNER]
        assert stored["spec"]["hosts"] == ["credit.example.com"]
        assert stored["spec"]["gateways"] == ["gateways/public"]
        assert http_route(objects)["route"] == [
            {"destination": {"host": PRIMARY_HOST, "port": {"number": 8080}}, "weight": 95},
            {"destination": {"host": CANARY_HOST, "port": {"number": 8080}}, "weight": 5},
        ]
        assert "mirror" not in http_route(objects)

    def test_mirroring_sets_mirror_and_its_percentage(self, objects: FakeObjects) -> None:
        router(objects).set_weights(Weights(100, 0, 60))

        route = http_route(objects)
        assert route["mirror"] == {"host": CANARY_HOST, "port": {"number": 8080}}
        assert route["mirrorPercentage"] == {"value": 60}

    def test_stopping_the_mirror_removes_it(self, objects: FakeObjects) -> None:
        router(objects).set_weights(Weights(100, 0, 60))
        router(objects).set_weights(Weights(90, 10))

        route = http_route(objects)
        assert "mirror" not in route and "mirrorPercentage" not in route
        assert [w.verb for w in objects.writes_of(KIND)] == ["create", "patch"]

    def test_gateways_dropped_from_the_spec_are_removed(self, objects: FakeObjects) -> None:
        router(objects).set_weights(Weights(90, 10))
        router(objects, {"istio": {"hosts": ["credit.example.com"]}}).set_weights(Weights(90, 10))

        assert "gateways" not in objects.stored(*KEY)["spec"]

    def test_a_virtual_service_of_someone_else_is_not_taken_over(
        self, objects: FakeObjects
    ) -> None:
        objects.seed(
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "metadata": {"name": "credit-scorer", "namespace": "lending"},
                "spec": {"hosts": ["x"]},
            }
        )

        with pytest.raises(RoutingError, match="not owned"):
            router(objects).set_weights(Weights(90, 10))


class TestReadingAndVerifying:
    @pytest.mark.parametrize("weights", [Weights(100, 0), Weights(70, 30, 20), Weights(0, 100)])
    def test_reads_back_what_it_wrote(self, objects: FakeObjects, weights: Weights) -> None:
        router(objects).set_weights(weights)

        assert router(objects).get_weights() == weights
        assert router(objects).verify() is True

    def test_a_mirror_without_percentage_mirrors_everything(self, objects: FakeObjects) -> None:
        router(objects).set_weights(Weights(100, 0, 10))
        del objects.objects[KEY]["spec"]["http"][0]["mirrorPercentage"]

        assert router(objects).get_weights() == Weights(100, 0, 100)
        assert router(objects).verify() is False

    def test_nothing_to_read_or_verify_without_the_object(self, objects: FakeObjects) -> None:
        assert router(objects).get_weights() is None
        assert router(objects).verify() is None

    def test_drift_is_reported(self, objects: FakeObjects) -> None:
        router(objects).set_weights(Weights(90, 10))
        objects.objects[KEY]["spec"]["http"][0]["route"][0]["weight"] = 50
        objects.objects[KEY]["spec"]["http"][0]["route"][1]["weight"] = 50

        assert router(objects).get_weights() == Weights(50, 50)
        assert router(objects).verify() is False

    def test_finalize_sends_everything_to_primary(self, objects: FakeObjects) -> None:
        router(objects).set_weights(Weights(60, 40, 100))
        router(objects).finalize()

        assert router(objects).get_weights() == ALL_TO_PRIMARY
