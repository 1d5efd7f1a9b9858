"""The Gateway API router writes, reads back and verifies one HTTPRoute owned by the rollout."""

from __future__ import annotations

from typing import Any

import pytest

from fairshift.k8s.errors import Forbidden
from fairshift.routing.base import ALL_TO_PRIMARY, RoutingError, Weights
from fairshift.routing.gatewayapi import API_VERSION, KIND, GatewayAPIRouter
from tests.fakes import OWNER, FakeObjects, route_target

GATEWAY = {
    "gatewayAPI": {
        "parentRefs": [{"name": "public", "namespace": "gateways"}],
        "hostnames": ["credit.example.com"],
        "pathPrefix": "/score",
    }
}


def router(objects: FakeObjects, routing: dict[str, Any] = GATEWAY) -> GatewayAPIRouter:
    return GatewayAPIRouter(route_target(routing), objects)


def stored_route(objects: FakeObjects) -> dict[str, Any]:
    return objects.stored(API_VERSION, KIND, "lending", "credit-scorer")


def only_rule(objects: FakeObjects) -> dict[str, Any]:
    rules = stored_route(objects)["spec"]["rules"]
    assert len(rules) == 1
    rule: dict[str, Any] = rules[0]
    return rule


class TestWriting:
    def test_creates_a_route_named_after_and_owned_by_the_rollout(
        self, objects: FakeObjects
    ) -> None:
        router(objects).set_weights(Weights(90, 10))

        route = stored_route(objects)
        assert route["metadata"]["ownerReferences"] == [OWNER]
        assert route["spec"]["parentRefs"] == [
            {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "name": "public",
                "namespace": "gateways",
            }
        ]
        assert route["spec"]["hostnames"] == ["credit.example.com"]
        rule = only_rule(objects)
        assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/score"}}]
        assert [(b["name"], b["port"], b["weight"]) for b in rule["backendRefs"]] == [
            ("credit-scorer-primary", 8080, 90),
            ("credit-scorer-canary", 8080, 10),
        ]
        assert "filters" not in rule

    def test_mirroring_adds_a_request_mirror_filter_to_the_canary(
        self, objects: FakeObjects
    ) -> None:
        router(objects).set_weights(Weights(100, 0, mirror_percent=25))

        assert only_rule(objects)["filters"] == [
            {
                "type": "RequestMirror",
                "requestMirror": {
                    "backendRef": {
                        "group": "",
                        "kind": "Service",
                        "name": "credit-scorer-canary",
                        "port": 8080,
                    },
                    "percent": 25,
                },
            }
        ]

    def test_an_existing_route_is_merge_patched_and_the_mirror_removed(
        self, objects: FakeObjects
    ) -> None:
        router(objects).set_weights(Weights(100, 0, mirror_percent=100))
        router(objects).set_weights(Weights(50, 50))

        assert [w.verb for w in objects.writes_of(KIND)] == ["create", "patch"]
        rule = only_rule(objects)
        assert "filters" not in rule
        assert [b["weight"] for b in rule["backendRefs"]] == [50, 50]

    def test_hostnames_dropped_from_the_spec_are_removed_from_the_route(
        self, objects: FakeObjects
    ) -> None:
        router(objects).set_weights(Weights(90, 10))
        without_hosts = {"gatewayAPI": {"parentRefs": [{"name": "public"}]}}
        router(objects, without_hosts).set_weights(Weights(90, 10))

        spec = stored_route(objects)["spec"]
        assert "hostnames" not in spec
        assert spec["parentRefs"] == [
            {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public"}
        ]
        assert only_rule(objects)["matches"][0]["path"]["value"] == "/"

    def test_writing_the_same_weights_again_sends_nothing(self, objects: FakeObjects) -> None:
        router(objects).set_weights(Weights(75, 25, 10))
        router(objects).set_weights(Weights(75, 25, 10))

        assert len(objects.writes_of(KIND)) == 1

    def test_a_route_of_someone_else_is_not_taken_over(self, objects: FakeObjects) -> None:
        objects.seed(
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "metadata": {"name": "credit-scorer", "namespace": "lending"},
                "spec": {"rules": []},
            }
        )

        with pytest.raises(RoutingError, match="not owned by ModelRollout credit-scorer"):
            router(objects).set_weights(Weights(90, 10))
        assert objects.writes == []

    def test_api_errors_pass_through_unchanged(self, objects: FakeObjects) -> None:
        objects.fail("create", Forbidden("httproutes is forbidden", 403))

        with pytest.raises(Forbidden):
            router(objects).set_weights(Weights(90, 10))

    def test_refuses_a_rollout_routed_otherwise(self, objects: FakeObjects) -> None:
        with pytest.raises(RoutingError, match="Gateway API"):
            GatewayAPIRouter(route_target({"istio": {"hosts": ["a"]}}), objects)


class TestReading:
    def test_no_route_means_no_weights(self, objects: FakeObjects) -> None:
        assert router(objects).get_weights() is None

    @pytest.mark.parametrize(
        "weights", [Weights(100, 0), Weights(95, 5, 50), Weights(0, 100), Weights(100, 0, 100)]
    )
    def test_reads_back_what_it_wrote(self, objects: FakeObjects, weights: Weights) -> None:
        router(objects).set_weights(weights)

        assert router(objects).get_weights() == weights

    def test_relative_backend_weights_and_mirror_fractions_become_percents(
        self, objects: FakeObjects
    ) -> None:
        router(objects).set_weights(Weights(90, 10, 10))
        route = stored_route(objects)
        rule = route["spec"]["rules"][0]
        rule["backendRefs"][0]["weight"] = 3
        del rule["backendRefs"][1]["weight"]  # the API's default weight is 1
        del rule["filters"][0]["requestMirror"]["percent"]
        rule["filters"][0]["requestMirror"]["fraction"] = {"numerator": 1, "denominator": 3}
        objects.objects[(API_VERSION, KIND, "lending", "credit-scorer")] = route

        assert router(objects).get_weights() == Weights(75, 25, 33)

    def test_a_mirror_without_a_share_mirrors_everything(self, objects: FakeObjects) -> None:
        router(objects).set_weights(Weights(100, 0, 40))
        route = stored_route(objects)
        del route["spec"]["rules"][0]["filters"][0]["requestMirror"]["percent"]
        objects.objects[(API_VERSION, KIND, "lending", "credit-scorer")] = route

        assert router(objects).get_weights() == Weights(100, 0, 100)

    def test_a_route_without_our_backends_is_an_error(self, objects: FakeObjects) -> None:
        router(objects).set_weights(Weights(90, 10))
        route = stored_route(objects)
        route["spec"]["rules"][0]["backendRefs"] = [{"name": "elsewhere", "port": 80}]
        objects.objects[(API_VERSION, KIND, "lending", "credit-scorer")] = route

        with pytest.raises(RoutingError, match="no rule sending traffic"):
            router(objects).get_weights()


class TestVerifying:
    def test_cannot_tell_without_a_route(self, objects: FakeObjects) -> None:
        assert router(objects).verify() is None

    def test_true_after_a_write_also_for_a_fresh_router(self, objects: FakeObjects) -> None:
        router(objects).set_weights(Weights(80, 20, 5))

        assert router(objects).verify() is True

    def test_fields_the_api_server_defaults_do_not_count_as_drift(
        self, objects: FakeObjects
    ) -> None:
        router(objects).set_weights(Weights(80, 20))
        route = stored_route(objects)
        route["spec"]["rules"][0]["timeouts"] = {"request": "10s"}
        route["spec"]["parentRefs"][0]["port"] = 443
        objects.objects[(API_VERSION, KIND, "lending", "credit-scorer")] = route

        assert router(objects).verify() is True

    def test_false_when_someone_changed_the_weights(self, objects: FakeObjects) -> None:
        router(objects).set_weights(Weights(80, 20))
        route = stored_route(objects)
        route["spec"]["rules"][0]["backendRefs"][1]["weight"] = 50
        objects.objects[(API_VERSION, KIND, "lending", "credit-scorer")] = route

        assert router(objects).verify() is False

    def test_false_when_the_server_dropped_the_mirror_percent(self, objects: FakeObjects) -> None:
        router(objects).set_weights(Weights(100, 0, 30))
        route = stored_route(objects)
        del route["spec"]["rules"][0]["filters"][0]["requestMirror"]["percent"]
        objects.objects[(API_VERSION, KIND, "lending", "credit-scorer")] = route

        assert router(objects).verify() is False


class TestFinalizing:
    def test_sends_everything_to_primary_and_stops_mirroring(self, objects: FakeObjects) -> None:
        router(objects).set_weights(Weights(50, 50, 100))
        router(objects).finalize()

        assert router(objects).get_weights() == ALL_TO_PRIMARY
        assert "filters" not in only_rule(objects)

    def test_without_a_route_there_is_nothing_to_do(self, objects: FakeObjects) -> None:
        router(objects).finalize()

        assert objects.writes == []


def test_hostnames_removed_from_the_spec_count_as_drift_until_rewritten() -> None:
    objects = FakeObjects()
    router(objects).set_weights(Weights(90, 10))
    without_hosts = {
        "gatewayAPI": {
            "parentRefs": [{"name": "public", "namespace": "gateways"}],
            "pathPrefix": "/score",
        }
    }

    assert router(objects, without_hosts).verify() is False
    router(objects, without_hosts).set_weights(Weights(90, 10))
    assert "hostnames" not in stored_route(objects)["spec"]
    assert router(objects, without_hosts).verify() is True
