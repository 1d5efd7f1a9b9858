"""The replicas router: no mesh; the canary weight is approximated by replica counts.

What it expects: the rollout's users send traffic to a Service named after the rollout that
selects the pods of both Deployments (``fairshift.k8s.workloads.Workloads.ensure_services``
creates it with ``shared=True`` when no such Service exists). The Service balances across
pods, so the canary's share of requests is its share of ready replicas.

The router does not create a route object. It scales ``target.primary_deployment`` and
``target.candidate_deployment`` so that candidate / total is close to the canary weight:

- ``total`` is ``routing.replicas.totalReplicas``; without it, the total recorded on the
  primary by the first write, else the primary's ``spec.replicas`` at that time (at least 1);
- the candidate gets ``round(total * canary / 100)`` replicas, but at least 1 when the canary
  weight is above 0, and 0 when it is 0; the primary keeps the rest, but at least 1 unless the
  canary weight is 100 (so a small total can give a coarser split than asked).

``get_weights`` answers the weights last written as long as the replica counts are still the
ones that write made (so a reconciler comparing with the weights it wants sees them), and the
split the counts give once someone changed them; ``effective_weights`` always answers the
split the counts give (e.g. 75/25 for 90/10 over 4 replicas).

The last write (weights and replica counts) is recorded in the ``fairshift.io/weights`` and
``fairshift.io/replicas`` annotations of the primary Deployment, so ``verify`` survives
restarts and notices a person or an autoscaler changing the counts. Mirroring is impossible
without a mesh: a mirror percent above 0 raises ``RoutingError`` (validation refuses shadow
with this router too); so does a fallback share (validation refuses ``fallbackRef`` too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fairshift.api.traffic import ALL_TO_PRIMARY, Weights
from fairshift.routing.base import (
    WEIGHTS_ANNOTATION,
    ObjectApi,
    RouteTarget,
    RoutingError,
    decode_weights,
    encode_weights,
    weights_from_amounts,
)

API_VERSION = "apps/v1"
KIND = "Deployment"
REPLICAS_ANNOTATION = "fairshift.io/replicas"


@dataclass(frozen=True)
class ReplicaSplit:
    """Replica counts of the two Deployments that approximate a traffic split."""

    primary: int
    candidate: int


def split_replicas(total: int, canary_percent: int) -> ReplicaSplit:
    """The replica counts closest to ``canary_percent`` of ``total``, as described above."""
    if total < 1:
        raise RoutingError(f"the replicas router needs a total of at least 1 replica, not {total}")
    if canary_percent <= 0:
        return ReplicaSplit(primary=total, candidate=0)
    if canary_percent >= 100:
        return ReplicaSplit(primary=0, candidate=total)
    candidate = min(max(1, round(total * canary_percent / 100)), max(1, total - 1))
    return ReplicaSplit(primary=max(1, total - candidate), candidate=candidate)


class ReplicasRouter:
    """Approximates a traffic split by scaling the primary and candidate Deployments."""

    def __init__(self, target: RouteTarget, objects: ObjectApi) -> None:
        if target.routing.replicas is None:
            raise RoutingError(f"rollout {target.rollout} does not route by replica counts")
        if not target.primary_deployment or not target.candidate_deployment:
            raise RoutingError(
                "the replicas router needs the primary and candidate Deployment names"
            )
        self._target = target
        self._total_replicas = target.routing.replicas.total_replicas
        self._objects = objects

    def set_weights(self, weights: Weights) -> None:
        if weights.mirror_percent > 0:
            raise RoutingError(
                "the replicas router cannot mirror requests; shadow needs gatewayAPI or istio"
            )
        if weights.fallback > 0:
            raise RoutingError(
                "the replicas router cannot send traffic to a fallback Deployment (it only "
                "scales the model's own two); route through gatewayAPI or istio to degrade"
            )
        primary = self._require(self._target.primary_deployment)
        self._require(self._target.candidate_deployment)
        total = self._total(primary)
        split = split_replicas(total, weights.canary)
        # Scale the candidate first when it grows and last when it shrinks, so the pods that
        # serve never drop below what either split needs.
        if split.candidate >= replicas_of(self._read(self._target.candidate_deployment)):
            self._scale_candidate(split)
            self._scale_primary(split, weights, total)
        else:
            self._scale_primary(split, weights, total)
            self._scale_candidate(split)

    def get_weights(self) -> Weights | None:
        """The weights last written while the replica counts still match that write, else
        the split the replica counts give (so a person scaling a Deployment shows up).
        """
        primary = self._read(self._target.primary_deployment)
        candidate = self._read(self._target.candidate_deployment)
        if primary is None or candidate is None:
            return None
        live = ReplicaSplit(primary=replicas_of(primary), candidate=replicas_of(candidate))
        written = decode_weights(primary)
        if written is not None and recorded_split(primary) == live:
            return written
        return weights_from_amounts(live.primary, live.candidate)

    def effective_weights(self) -> Weights | None:
        """The split the replica counts really give (``candidate / total``), or None."""
        primary = self._read(self._target.primary_deployment)
        candidate = self._read(self._target.candidate_deployment)
        if primary is None or candidate is None:
            return None
        return weights_from_amounts(replicas_of(primary), replicas_of(candidate))

    def verify(self) -> bool | None:
        primary = self._read(self._target.primary_deployment)
        candidate = self._read(self._target.candidate_deployment)
        if primary is None or candidate is None:
            return None
        written = recorded_split(primary)
        if written is None:
            return None
        live = ReplicaSplit(primary=replicas_of(primary), candidate=replicas_of(candidate))
        return live == written

    def finalize(self) -> None:
        primary = self._read(self._target.primary_deployment)
        candidate = self._read(self._target.candidate_deployment)
        if primary is not None and candidate is not None:
            self.set_weights(ALL_TO_PRIMARY)

    def _total(self, primary: dict[str, Any]) -> int:
        if self._total_replicas is not None:
            return self._total_replicas
        recorded = recorded_total(primary)
        if recorded is not None:
            return recorded
        return max(1, replicas_of(primary))

    def _scale_primary(self, split: ReplicaSplit, weights: Weights, total: int) -> None:
        annotations = {
            WEIGHTS_ANNOTATION: encode_weights(weights),
            REPLICAS_ANNOTATION: encode_split(split, total),
        }
        primary = self._read(self._target.primary_deployment)
        if primary is not None and (
            replicas_of(primary) == split.primary
            and primary.get("metadata", {}).get("annotations", {}).get(REPLICAS_ANNOTATION)
            == annotations[REPLICAS_ANNOTATION]
            and decode_weights(primary) == weights
        ):
            return
        patch = {"metadata": {"annotations": annotations}, "spec": {"replicas": split.primary}}
        self._patch(self._target.primary_deployment, patch)

    def _scale_candidate(self, split: ReplicaSplit) -> None:
        candidate = self._read(self._target.candidate_deployment)
        if candidate is not None and replicas_of(candidate) == split.candidate:
            return
        self._patch(self._target.candidate_deployment, {"spec": {"replicas": split.candidate}})

    def _read(self, name: str) -> dict[str, Any] | None:
        return self._objects.get(API_VERSION, KIND, self._target.namespace, name)

    def _require(self, name: str) -> dict[str, Any]:
        found = self._read(name)
        if found is None:
            raise RoutingError(f"Deployment {self._target.namespace}/{name} not found")
        return found

    def _patch(self, name: str, patch: dict[str, Any]) -> None:
        self._objects.patch(API_VERSION, KIND, self._target.namespace, name, patch)


def replicas_of(deployment: dict[str, Any] | None) -> int:
    """A Deployment's desired replicas (``spec.replicas``, which defaults to 1); 0 if absent."""
    if deployment is None:
        return 0
    replicas = deployment.get("spec", {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def encode_split(split: ReplicaSplit, total: int) -> str:
    """The ``fairshift.io/replicas`` annotation value: the counts written and their total."""
    value = {"primary": split.primary, "candidate": split.candidate, "total": total}
    return json.dumps(value, sort_keys=True)


def recorded(primary: dict[str, Any]) -> dict[str, Any] | None:
    """The ``fairshift.io/replicas`` annotation of the primary as a dict, or None."""
    raw = (primary.get("metadata", {}).get("annotations") or {}).get(REPLICAS_ANNOTATION)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def recorded_split(primary: dict[str, Any]) -> ReplicaSplit | None:
    """The split recorded on the primary by the last write, or None."""
    value = recorded(primary)
    try:
        return (
            None if value is None else ReplicaSplit(int(value["primary"]), int(value["candidate"]))
        )
    except (KeyError, TypeError, ValueError):
        return None


def recorded_total(primary: dict[str, Any]) -> int | None:
    """The total the last write split (it stays fixed across the rollout), or None."""
    value = recorded(primary)
    try:
        total = None if value is None else int(value["total"])
    except (KeyError, TypeError, ValueError):
        return None
    return total if total is not None and total >= 1 else None
