"""The router protocol every traffic router implements, the values routers exchange, and the
helpers they share.

Routers never import the Kubernetes client: they receive an ``ObjectApi`` (implemented in
``fairshift.k8s``; faked in tests) and manage exactly one route object owned by the rollout.
Errors raised by the ``ObjectApi`` (``fairshift.k8s.errors.KubeError``) pass through routers
unchanged; routers raise ``RoutingError`` for problems of their own (a route that belongs to
someone else, a route edited into a shape they cannot read, a split they cannot make).

What a router last wrote is kept on the object it manages, in the ``fairshift.io/weights``
annotation, so ``verify`` still works after the operator restarts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fairshift.api.names import ROLLOUT_LABEL
from fairshift.api.spec import Routing
from fairshift.api.traffic import ALL_TO_PRIMARY, Weights


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
    fallback_service: str = ""  # the Service of spec.fallbackRef (the planner routes there
    # only while the spec names one); empty: this target has no fallback at all

    def fallback_for(self, weights: Weights) -> str:
        """The fallback Service to route ``weights.fallback`` to; a clear error without one."""
        if weights.fallback > 0 and not self.fallback_service:
            raise RoutingError(
                f"cannot send {weights.fallback}% of traffic to a fallback: rollout "
                f"{self.rollout} names no spec.fallbackRef"
            )
        return self.fallback_service


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


WEIGHTS_ANNOTATION = "fairshift.io/weights"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGER = "fairshift"


def encode_weights(weights: Weights) -> str:
    """The ``fairshift.io/weights`` annotation value for ``weights`` (``fallback`` only when
    traffic goes there, so routes written before fallbacks existed read the same)."""
    value = {
        "primary": weights.primary,
        "canary": weights.canary,
        "mirrorPercent": weights.mirror_percent,
    }
    if weights.fallback:
        value["fallback"] = weights.fallback
    return json.dumps(value, sort_keys=True)


def decode_weights(obj: Mapping[str, Any]) -> Weights | None:
    """The weights recorded on ``obj`` by the last write, or None if absent or unreadable."""
    raw = (obj.get("metadata", {}).get("annotations") or {}).get(WEIGHTS_ANNOTATION)
    if not raw:
        return None
    try:
        value = json.loads(raw)
        return Weights(
            int(value["primary"]),
            int(value["canary"]),
            int(value["mirrorPercent"]),
            int(value.get("fallback", 0)),
        )
    except (ValueError, KeyError, TypeError):
        return None


def weights_from_amounts(
    primary: float, canary: float, mirror_percent: int = 0, fallback: float = 0
) -> Weights:
    """Weights from relative amounts (backend weights, replica counts), rounded to percent."""
    total = primary + canary + fallback
    if min(primary, canary, fallback) < 0 or total <= 0:
        raise RoutingError(
            f"cannot read a traffic split from amounts {primary}, {canary} and {fallback}"
        )
    canary_percent = round(100 * canary / total)
    fallback_percent = min(round(100 * fallback / total), 100 - canary_percent)
    return Weights.canary_share(canary_percent, mirror_percent, fallback_percent)


def route_metadata(target: RouteTarget, weights: Weights) -> dict[str, Any]:
    """Metadata of a route object: named after the rollout, owned by it, weights recorded."""
    metadata: dict[str, Any] = {
        "name": target.rollout,
        "namespace": target.namespace,
        "labels": {MANAGED_BY_LABEL: MANAGER, ROLLOUT_LABEL: target.rollout},
        "annotations": {WEIGHTS_ANNOTATION: encode_weights(weights)},
    }
    if target.owner_references:
        metadata["ownerReferences"] = [dict(ref) for ref in target.owner_references]
    return metadata


def require_owned(live: Mapping[str, Any], target: RouteTarget, what: str) -> None:
    """Refuse to take over a route object that another owner (or a person) created."""
    wanted = controller_uid(target.owner_references)
    if wanted is None:
        return
    owners = live.get("metadata", {}).get("ownerReferences") or []
    if not any(str(owner.get("uid")) == wanted for owner in owners):
        raise RoutingError(
            f"{what} {target.namespace}/{target.rollout} exists and is not owned by "
            f"ModelRollout {target.rollout}; rename or delete it, fairshift will not take it over"
        )


def controller_uid(owner_references: Sequence[Mapping[str, Any]]) -> str | None:
    """The uid of the controlling owner among ``owner_references`` (or of the first one)."""
    for reference in owner_references:
        if reference.get("controller"):
            return str(reference.get("uid"))
    return str(owner_references[0].get("uid")) if owner_references else None


def contains(live: Any, expected: Any) -> bool:
    """Whether ``live`` holds everything in ``expected``: dict keys may be added (API server
    defaults), lists must have the same length and match item by item, scalars must be equal.
    """
    if isinstance(expected, Mapping):
        return isinstance(live, Mapping) and all(
            key in live and contains(live[key], value) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(live, list)
            and len(live) == len(expected)
            and all(contains(a, b) for a, b in zip(live, expected, strict=True))
        )
    return bool(live == expected)


class RouteObjectRouter:
    """The lifecycle every mesh router shares: one route object, owned by the rollout.

    Subclasses name the object (``api_version``, ``kind``), the optional spec field that must
    be removed when the spec no longer sets it (``optional_field``), and build the ``spec`` for
    some weights and read the weights back from a live object. Writes are skipped when the
    live object already holds what would be written; the last write is kept in the
    ``fairshift.io/weights`` annotation, so ``verify`` works across operator restarts.
    """

    api_version: str
    kind: str
    optional_field: str

    def __init__(self, target: RouteTarget, objects: ObjectApi) -> None:
        self._target = target
        self._objects = objects

    def _spec(self, weights: Weights) -> dict[str, Any]:
        raise NotImplementedError

    def _live_weights(self, live: dict[str, Any]) -> Weights | None:
        raise NotImplementedError

    def set_weights(self, weights: Weights) -> None:
        live = self._read()
        if live is None:
            self._objects.create(
                self.api_version, self.kind, self._target.namespace, self._body(weights)
            )
            return
        require_owned(live, self._target, self.kind)
        if decode_weights(live) == weights and self._matches(live, weights):
            return
        self._objects.patch(
            self.api_version,
            self.kind,
            self._target.namespace,
            self._target.rollout,
            self._patch(weights),
        )

    def get_weights(self) -> Weights | None:
        live = self._read()
        return None if live is None else self._live_weights(live)

    def verify(self) -> bool | None:
        live = self._read()
        if live is None:
            return None
        written = decode_weights(live)
        return None if written is None else self._matches(live, written)

    def finalize(self) -> None:
        if self._read() is not None:
            self.set_weights(ALL_TO_PRIMARY)

    def _matches(self, live: dict[str, Any], weights: Weights) -> bool:
        """Whether the live spec holds what ``weights`` would write, and no stale field."""
        spec = self._spec(weights)
        live_spec = live.get("spec") or {}
        stale = self.optional_field not in spec and live_spec.get(self.optional_field)
        return contains(live_spec, spec) and not stale

    def _read(self) -> dict[str, Any] | None:
        return self._objects.get(
            self.api_version, self.kind, self._target.namespace, self._target.rollout
        )

    def _body(self, weights: Weights) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": route_metadata(self._target, weights),
            "spec": self._spec(weights),
        }

    def _patch(self, weights: Weights) -> dict[str, Any]:
        spec: dict[str, Any] = {self.optional_field: None, **self._spec(weights)}
        annotations = {WEIGHTS_ANNOTATION: encode_weights(weights)}
        return {"metadata": {"annotations": annotations}, "spec": spec}
