"""The router protocol every traffic router implements, and the values routers exchange.

Routers never import the Kubernetes client: they receive an ``ObjectApi`` (implemented in
``fairshift.k8s``; faked in tests) and manage exactly one route object owned by the rollout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from fairshift.api.spec import Routing


@dataclass(frozen=True)
class Weights:
    """Traffic split: percent to primary and to canary (sum 100), percent mirrored to canary."""

    primary: int
    canary: int
    mirror_percent: int = 0

    def __post_init__(self) -> None:
        if self.primary + self.canary != 100 or min(self.primary, self.canary) < 0:
            raise ValueError(f"weights must be two non-negative numbers summing to 100: {self}")
        if not 0 <= self.mirror_percent <= 100:
            raise ValueError(f"mirror percent must be in 0..100: {self.mirror_percent}")

    @classmethod
    def canary_share(cls, canary: int, mirror_percent: int = 0) -> Weights:
        return cls(primary=100 - canary, canary=canary, mirror_percent=mirror_percent)


ALL_TO_PRIMARY = Weights(100, 0, 0)


@dataclass(frozen=True)
class RouteTarget:
    """What a router routes: the rollout's Services, port and routing spec, and its owner."""

    namespace: str
    rollout: str
    primary_service: str
    canary_service: str
    port: int
    routing: Routing
    owner_references: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)
    primary_deployment: str = ""
    candidate_deployment: str = ""


class ObjectApi(Protocol):
    """The few Kubernetes object operations routers need (implemented in fairshift.k8s)."""

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""

    def create(self, api_version: str, kind: str, namespace: str, body: dict[str, Any]) -> None:
        """Create; raises on conflict or refusal."""

    def patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        """JSON merge patch (RFC 7386)."""

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete; absent objects are fine."""


class Router(Protocol):
    """A traffic router. Writes are idempotent; ``verify`` reads back what was written."""

    def set_weights(self, weights: Weights) -> None:
        """Make the route send ``weights`` (creates the route object if needed)."""

    def get_weights(self) -> Weights | None:
        """What the route sends now, or None if there is no route object yet."""

    def verify(self) -> bool | None:
        """True when the live route matches the last write; None when it cannot tell yet."""

    def finalize(self) -> None:
        """All traffic to primary, mirror off; called before the rollout is deleted."""


class RoutingError(RuntimeError):
    """A route could not be written or read (a temporary error unless stated otherwise)."""
