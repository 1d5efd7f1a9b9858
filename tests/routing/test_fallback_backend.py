"""Every mesh router sends a degrade's or a kill's share to the fallback Service as a third
backend and reads it back; the replicas router refuses with the fix; the annotation keeps it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from fairshift.api.traffic import ALL_TO_FALLBACK
from fairshift.routing import gatewayapi, istio
from fairshift.routing.base import (
    RouteTarget,
    RoutingError,
    Weights,
    decode_weights,
    encode_weights,
    weights_from_amounts,
)
from fairshift.routing.gatewayapi import GatewayAPIRouter
from fairshift.routing.istio import IstioRouter
from fairshift.routing.replicas import ReplicasRouter
from tests.fakes import FakeObjects, deployment, route_target

GATEWAY = {"gatewayAPI": {"parentRefs": [{"name": "public"}]}}
ISTIO = {"istio": {"hosts": ["credit.example.com"]}}
FALLBACK_SERVICE = "credit-scorer-fallback"
DEGRADED = Weights(60, 0, 0, fallback=40)


def with_fallback(routing: dict[str, Any]) -> RouteTarget:
    return dataclasses.replace(route_target(routing), fallback_service=FALLBACK_SERVICE)


def stored(objects: FakeObjects, api_version: str, kind: str) -> dict[str, Any]:
    return objects.stored(api_version, kind, "lending", "credit-scorer")


def test_the_gateway_api_router_adds_the_fallback_backend(objects: FakeObjects) -> None:
    router = GatewayAPIRouter(with_fallback(GATEWAY), objects)
    router.set_weights(DEGRADED)
    rule = stored(objects, gatewayapi.API_VERSION, gatewayapi.KIND)["spec"]["rules"][0]
    assert [(r["name"], r["weight"]) for r in rule["backendRefs"]] == [
        ("credit-scorer-primary", 60),
        ("credit-scorer-canary", 0),
        (FALLBACK_SERVICE, 40),
    ]
    assert rule["backendRefs"][2]["port"] == 8080
    assert router.get_weights() == DEGRADED and router.verify() is True
    router.set_weights(Weights(100, 0))  # a revive: the fallback backend goes
    rule = stored(objects, gatewayapi.API_VERSION, gatewayapi.KIND)["spec"]["rules"][0]
    assert len(rule["backendRefs"]) == 2
    assert router.get_weights() == Weights(100, 0) and router.verify() is True


def test_the_istio_router_adds_the_fallback_destination(objects: FakeObjects) -> None:
    router = IstioRouter(with_fallback(ISTIO), objects)
    router.set_weights(ALL_TO_FALLBACK)
    route = stored(objects, istio.API_VERSION, istio.KIND)["spec"]["http"][0]["route"]
    assert route[2] == {
        "destination": {
            "host": f"{FALLBACK_SERVICE}.lending.svc.cluster.local",
            "port": {"number": 8080},
        },
        "weight": 100,
    }
    assert [d["weight"] for d in route] == [0, 0, 100]
    assert router.get_weights() == ALL_TO_FALLBACK and router.verify() is True


@pytest.mark.parametrize("routing", [GATEWAY, ISTIO])
def test_a_fallback_share_without_a_fallback_service_is_refused(
    objects: FakeObjects, routing: dict[str, Any]
) -> None:
    router = (GatewayAPIRouter if "gatewayAPI" in routing else IstioRouter)(
        route_target(routing), objects
    )
    with pytest.raises(RoutingError, match=r"names no spec\.fallbackRef"):
        router.set_weights(DEGRADED)


def test_the_replicas_router_cannot_send_traffic_to_a_fallback(objects: FakeObjects) -> None:
    for name in ("credit-scorer-primary", "credit-scorer"):
        objects.seed(deployment("lending", name, "model:v1"))
    router = ReplicasRouter(route_target({"replicas": {}}), objects)
    with pytest.raises(RoutingError, match="route through gatewayAPI or istio to degrade"):
        router.set_weights(DEGRADED)
    assert not objects.writes_of("Deployment")


def test_the_weights_annotation_keeps_the_fallback_share_and_reads_old_ones() -> None:
    assert (
        decode_weights(
            {"metadata": {"annotations": {"fairshift.io/weights": encode_weights(DEGRADED)}}}
        )
        == DEGRADED
    )
    old = '{"canary": 10, "mirrorPercent": 0, "primary": 90}'
    assert encode_weights(Weights(90, 10)) == old  # routes without a fallback read the same
    assert decode_weights({"metadata": {"annotations": {"fairshift.io/weights": old}}}) == (
        Weights(90, 10)
    )


def test_amounts_with_a_fallback_become_percent() -> None:
    assert weights_from_amounts(3, 1, 0, 4) == Weights(38, 12, 0, fallback=50)
    with pytest.raises(ValueError, match="summing to 100"):
        Weights(60, 10, 0, fallback=40)
