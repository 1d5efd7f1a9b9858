"""Choosing the router a rollout's ``spec.routing`` names; an unknown kind is an error."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fairshift.routing.base import ObjectApi, Router, RouteTarget, RoutingError
from fairshift.routing.gatewayapi import GatewayAPIRouter
from fairshift.routing.istio import IstioRouter
from fairshift.routing.replicas import ReplicasRouter

RouterFactory = Callable[[RouteTarget, ObjectApi], Router]

ROUTERS: Mapping[str, RouterFactory] = {
    "gatewayAPI": GatewayAPIRouter,
    "istio": IstioRouter,
    "replicas": ReplicasRouter,
}


def make_router(
    target: RouteTarget, objects: ObjectApi, routers: Mapping[str, RouterFactory] = ROUTERS
) -> Router:
    """The router for ``target.routing.kind``; raises ``RoutingError`` for an unknown kind."""
    kind = target.routing.kind
    factory = routers.get(kind)
    if factory is None:
        known = ", ".join(sorted(routers)) or "none"
        raise RoutingError(f"unknown router {kind!r}; known routers: {known}")
    return factory(target, objects)
