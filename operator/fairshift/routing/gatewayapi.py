"""The Gateway API router: one HTTPRoute, named after the rollout and owned by it.

The route attaches to the spec's ``parentRefs`` and ``hostnames`` and has one rule matching
``pathPrefix`` with two ``backendRefs``: the primary Service and the canary Service, both on
the rollout's port, weighted by the split; a third, the fallback Service, while a degrade or a
kill sends traffic to ``spec.fallbackRef``. While mirroring, the rule carries a
``RequestMirror`` filter to the canary Service with ``percent`` (standard since Gateway API
v1.3; an API server with older CRDs drops the field, which ``verify`` reports as a mismatch).
"""

from __future__ import annotations

from typing import Any

from fairshift.api.spec import GatewayAPIRouting
from fairshift.api.traffic import Weights
from fairshift.routing.base import (
    ObjectApi,
    RouteObjectRouter,
    RouteTarget,
    RoutingError,
    weights_from_amounts,
)

API_VERSION = "gateway.networking.k8s.io/v1"
KIND = "HTTPRoute"


class GatewayAPIRouter(RouteObjectRouter):
    """Splits and mirrors traffic with a Gateway API HTTPRoute."""

    api_version = API_VERSION
    kind = KIND
    optional_field = "hostnames"

    def __init__(self, target: RouteTarget, objects: ObjectApi) -> None:
        if target.routing.gateway_api is None:
            raise RoutingError(f"rollout {target.rollout} does not route through the Gateway API")
        super().__init__(target, objects)
        self._routing: GatewayAPIRouting = target.routing.gateway_api

    def _spec(self, weights: Weights) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "parentRefs": [
                parent_ref(ref.name, ref.namespace, ref.section_name)
                for ref in self._routing.parent_refs
            ],
            "rules": [self._rule(weights)],
        }
        if self._routing.hostnames:
            spec["hostnames"] = list(self._routing.hostnames)
        return spec

    def _rule(self, weights: Weights) -> dict[str, Any]:
        rule: dict[str, Any] = {
            "matches": [{"path": {"type": "PathPrefix", "value": self._routing.path_prefix}}],
            "backendRefs": [
                {**self._backend(self._target.primary_service), "weight": weights.primary},
                {**self._backend(self._target.canary_service), "weight": weights.canary},
            ],
        }
        if weights.fallback > 0:
            fallback = self._backend(self._target.fallback_for(weights))
            rule["backendRefs"].append({**fallback, "weight": weights.fallback})
        if weights.mirror_percent > 0:
            mirror = {
                "backendRef": self._backend(self._target.canary_service),
                "percent": weights.mirror_percent,
            }
            rule["filters"] = [{"type": "RequestMirror", "requestMirror": mirror}]
        return rule

    def _backend(self, service: str) -> dict[str, Any]:
        return {"group": "", "kind": "Service", "name": service, "port": self._target.port}

    def _live_weights(self, live: dict[str, Any]) -> Weights:
        rule = self._our_rule(live)
        amounts = {ref.get("name"): ref.get("weight", 1) for ref in rule.get("backendRefs") or []}
        primary = amounts.get(self._target.primary_service, 0)
        canary = amounts.get(self._target.canary_service, 0)
        fallback = amounts.get(self._target.fallback_service or None, 0)
        return weights_from_amounts(primary, canary, self._mirror_percent(rule), fallback)

    def _our_rule(self, live: dict[str, Any]) -> dict[str, Any]:
        ours = {self._target.primary_service, self._target.canary_service}
        ours.discard("")
        for rule in live.get("spec", {}).get("rules") or []:
            names = {ref.get("name") for ref in rule.get("backendRefs") or []}
            if names & ours:
                rule_found: dict[str, Any] = rule
                return rule_found
        raise RoutingError(
            f"{KIND} {self._target.namespace}/{self._target.rollout} has no rule sending "
            f"traffic to {self._target.primary_service} or {self._target.canary_service}"
        )

    def _mirror_percent(self, rule: dict[str, Any]) -> int:
        for filter_ in rule.get("filters") or []:
            mirror = filter_.get("requestMirror") or {}
            if filter_.get("type") != "RequestMirror":
                continue
            if mirror.get("backendRef", {}).get("name") != self._target.canary_service:
                continue
            return mirror_share(mirror)
        return 0


def parent_ref(name: str, namespace: str | None, section_name: str | None) -> dict[str, Any]:
    """A ``parentRef`` to a Gateway, with only the fields that are set."""
    ref: dict[str, Any] = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": name}
    if namespace:
        ref["namespace"] = namespace
    if section_name:
        ref["sectionName"] = section_name
    return ref


def mirror_share(mirror: dict[str, Any]) -> int:
    """Percent of requests a ``requestMirror`` copies: ``percent``, ``fraction`` or all."""
    if mirror.get("percent") is not None:
        return int(mirror["percent"])
    fraction = mirror.get("fraction")
    if fraction:
        denominator = fraction.get("denominator") or 100
        return round(100 * int(fraction.get("numerator", 0)) / int(denominator))
    return 100
