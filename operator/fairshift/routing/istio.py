"""The Istio router: one VirtualService, named after the rollout and owned by it.

The VirtualService serves the spec's ``hosts`` (through its ``gateways``, if any) with one
http route of two weighted destinations, the primary and the canary Service by their cluster
FQDN (``<service>.<namespace>.svc.cluster.local``) on the rollout's port, and a third, the
fallback Service, while a degrade or a kill sends traffic to ``spec.fallbackRef``. While mirroring,
the route carries ``mirror`` (the canary Service) and ``mirrorPercentage: {value: N}``.
"""

from __future__ import annotations

from typing import Any

from fairshift.api.spec import IstioRouting
from fairshift.api.traffic import Weights
from fairshift.routing.base import (
    ObjectApi,
    RouteObjectRouter,
    RouteTarget,
    RoutingError,
    weights_from_amounts,
)

API_VERSION = "networking.istio.io/v1"
KIND = "VirtualService"
ROUTE_NAME = "fairshift"


class IstioRouter(RouteObjectRouter):
    """Splits and mirrors traffic with an Istio VirtualService."""

    api_version = API_VERSION
    kind = KIND
    optional_field = "gateways"

    def __init__(self, target: RouteTarget, objects: ObjectApi) -> None:
        if target.routing.istio is None:
            raise RoutingError(f"rollout {target.rollout} does not route through Istio")
        super().__init__(target, objects)
        self._routing: IstioRouting = target.routing.istio

    def _spec(self, weights: Weights) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "hosts": list(self._routing.hosts),
            "http": [self._http_route(weights)],
        }
        if self._routing.gateways:
            spec["gateways"] = list(self._routing.gateways)
        return spec

    def _http_route(self, weights: Weights) -> dict[str, Any]:
        route: dict[str, Any] = {
            "name": ROUTE_NAME,
            "route": [
                {
                    "destination": self._destination(self._target.primary_service),
                    "weight": weights.primary,
                },
                {
                    "destination": self._destination(self._target.canary_service),
                    "weight": weights.canary,
                },
            ],
        }
        if weights.fallback > 0:
            fallback = self._destination(self._target.fallback_for(weights))
            route["route"].append({"destination": fallback, "weight": weights.fallback})
        if weights.mirror_percent > 0:
            route["mirror"] = self._destination(self._target.canary_service)
            route["mirrorPercentage"] = {"value": weights.mirror_percent}
        return route

    def _destination(self, service: str) -> dict[str, Any]:
        return {"host": self._host(service), "port": {"number": self._target.port}}

    def _host(self, service: str) -> str:
        return f"{service}.{self._target.namespace}.svc.cluster.local"

    def _live_weights(self, live: dict[str, Any]) -> Weights:
        route = self._our_route(live)
        amounts: dict[str, float] = {}
        for destination in route.get("route") or []:
            host = destination.get("destination", {}).get("host", "")
            amounts[host] = float(destination.get("weight", 100 if len(route["route"]) == 1 else 0))
        primary = amounts.get(self._host(self._target.primary_service), 0.0)
        canary = amounts.get(self._host(self._target.canary_service), 0.0)
        fallback = 0.0
        if self._target.fallback_service:
            fallback = amounts.get(self._host(self._target.fallback_service), 0.0)
        return weights_from_amounts(primary, canary, self._mirror_percent(route), fallback)

    def _our_route(self, live: dict[str, Any]) -> dict[str, Any]:
        ours = {self._host(self._target.primary_service), self._host(self._target.canary_service)}
        for route in live.get("spec", {}).get("http") or []:
            hosts = {d.get("destination", {}).get("host") for d in route.get("route") or []}
            if hosts & ours:
                found: dict[str, Any] = route
                return found
        raise RoutingError(
            f"{KIND} {self._target.namespace}/{self._target.rollout} has no http route to "
            f"{self._target.primary_service} or {self._target.canary_service}"
        )

    def _mirror_percent(self, route: dict[str, Any]) -> int:
        mirror = route.get("mirror")
        if not mirror or mirror.get("host") != self._host(self._target.canary_service):
            return 0
        percentage = route.get("mirrorPercentage")
        if percentage is None:
            return 100
        return round(float(percentage.get("value", 0)))
