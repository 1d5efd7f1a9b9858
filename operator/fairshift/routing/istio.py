"""The Istio router: one VirtualService, named after the rollout and owned by it.

The VirtualService serves the spec's ``hosts`` (through its ``gateways``, if any) with one
http route of two weighted destinations, the primary and the canary Service by their cluster
FQDN (``<service>.<namespace>.svc.cluster.local``) on the rollout's port. While mirroring,
the route carries ``mirror`` (the canary Service) and ``mirrorPercentage: {value: N}``.
"""

from __future__ import annotations

from typing import Any

from fairshift.api.spec import IstioRouting
from fairshift.routing.base import (
    ALL_TO_PRIMARY,
    WEIGHTS_ANNOTATION,
    ObjectApi,
    RouteTarget,
    RoutingError,
    Weights,
    contains,
    decode_weights,
    encode_weights,
    require_owned,
    route_metadata,
    weights_from_amounts,
)

API_VERSION = "networking.istio.io/v1"
KIND = "VirtualService"
ROUTE_NAME = "fairshift"


class IstioRouter:
    """Splits and mirrors traffic with an Istio VirtualService."""

    def __init__(self, target: RouteTarget, objects: ObjectApi) -> None:
        if target.routing.istio is None:
            raise RoutingError(f"rollout {target.rollout} does not route through Istio")
        self._target = target
        self._routing: IstioRouting = target.routing.istio
        self._objects = objects

    def set_weights(self, weights: Weights) -> None:
        live = self._read()
        if live is None:
            self._objects.create(API_VERSION, KIND, self._target.namespace, self._service(weights))
            return
        require_owned(live, self._target, KIND)
        if decode_weights(live) == weights and self._matches(live, weights):
            return
        self._objects.patch(
            API_VERSION, KIND, self._target.namespace, self._target.rollout, self._patch(weights)
        )

    def get_weights(self) -> Weights | None:
        live = self._read()
        if live is None:
            return None
        return self._live_weights(live)

    def verify(self) -> bool | None:
        live = self._read()
        if live is None:
            return None
        written = decode_weights(live)
        if written is None:
            return None
        return self._matches(live, written)

    def finalize(self) -> None:
        if self._read() is not None:
            self.set_weights(ALL_TO_PRIMARY)

    def _matches(self, live: dict[str, Any], weights: Weights) -> bool:
        """Whether the live spec holds what ``weights`` would write, and no stale gateways."""
        spec = self._spec(weights)
        live_spec = live.get("spec") or {}
        return contains(live_spec, spec) and ("gateways" in spec or not live_spec.get("gateways"))

    def _read(self) -> dict[str, Any] | None:
        return self._objects.get(API_VERSION, KIND, self._target.namespace, self._target.rollout)

    def _service(self, weights: Weights) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": route_metadata(self._target, weights),
            "spec": self._spec(weights),
        }

    def _patch(self, weights: Weights) -> dict[str, Any]:
        spec: dict[str, Any] = {"gateways": None, **self._spec(weights)}
        annotations = {WEIGHTS_ANNOTATION: encode_weights(weights)}
        return {"metadata": {"annotations": annotations}, "spec": spec}

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
        return weights_from_amounts(primary, canary, self._mirror_percent(route))

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
