"""Deployments and Services of a rollout: the primary copy, the candidate, their Services.

Label scheme (how primary and candidate pods are told apart):

- The target Deployment is the user's and stays the candidate. Its selector (``M``, its
  ``matchLabels``) is never changed. ``label_candidate`` adds ``fairshift.io/role: candidate``
  to its pod template labels once (this restarts its pods once, at adoption).
- ``<target>-primary`` is created with selector ``M + {fairshift.io/role: primary}`` and the
  target's template with ``fairshift.io/role: primary`` in its labels. Its pods still carry
  ``M``; the target's ReplicaSets select ``M`` plus their own ``pod-template-hash`` and own
  their pods by controller reference, so the two Deployments never adopt each other's pods.
- Services: ``<rollout>-primary`` selects ``M + role=primary``, ``<rollout>-canary`` selects
  ``M + role=candidate`` and, for the replicas router, ``<rollout>`` selects ``M`` (both).

Revision hash: the first 10 hex digits of the sha256 of the pod template as canonical JSON
(sorted keys, no spaces) after removing every ``fairshift.io/`` label and annotation and
``metadata.creationTimestamp``. So the role labels never make a new revision, and a primary
made from a template has the same revision as that template. Any other template change is a
new revision, ``kubectl rollout restart`` (a ``restartedAt`` annotation) included.

Deleting the ModelRollout garbage-collects what it owns (the primary, the Services): whoever
finalizes a rollout must first scale the target back up (``scale``), as the target is kept
at 0 replicas between rollouts.

Every method is idempotent: it reads, compares and writes only what differs.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from fairshift.api.names import (
    LAST_GOOD_ANNOTATION,
    ROLE_LABEL,
    ServiceNames,
    primary_name,
    service_names,
)
from fairshift.k8s.errors import NotFound, Unsupported
from fairshift.k8s.store import ObjectStore, read_modify_write, require_owned
from fairshift.planning.observation import DeploymentState

APPS = "apps/v1"
DEPLOYMENT = "Deployment"
CORE = "v1"
SERVICE = "Service"

FAIRSHIFT_PREFIX = "fairshift.io/"
PRIMARY_ROLE = "primary"
CANDIDATE_ROLE = "candidate"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGER = "fairshift"
REVISION_LENGTH = 10

# Deployment spec fields the primary copies from the target besides the template.
COPIED_SPEC_FIELDS = (
    "minReadySeconds",
    "progressDeadlineSeconds",
    "revisionHistoryLimit",
    "strategy",
)

OwnerReferences = Sequence[Mapping[str, Any]]


def without_fairshift_metadata(template: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a pod template without fairshift's labels and annotations."""
    result = copy.deepcopy(dict(template))
    metadata = dict(result.get("metadata") or {})
    metadata.pop("creationTimestamp", None)
    for field in ("labels", "annotations"):
        kept = {
            k: v
            for k, v in (metadata.get(field) or {}).items()
            if not k.startswith(FAIRSHIFT_PREFIX)
        }
        if kept:
            metadata[field] = kept
        else:
            metadata.pop(field, None)
    result["metadata"] = metadata
    return result


def revision_of(template: Mapping[str, Any]) -> str:
    """The revision hash of a pod template (see the module docstring)."""
    canonical = json.dumps(
        without_fairshift_metadata(template), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:REVISION_LENGTH]


def with_role(template: Mapping[str, Any], role: str) -> dict[str, Any]:
    """The template without fairshift metadata, then labelled ``fairshift.io/role: role``."""
    result = without_fairshift_metadata(template)
    result["metadata"]["labels"] = {**result["metadata"].get("labels", {}), ROLE_LABEL: role}
    return result


def match_labels(deployment: Mapping[str, Any]) -> dict[str, str]:
    """The Deployment's ``matchLabels``; refuses selectors a Service cannot express."""
    selector = deployment.get("spec", {}).get("selector") or {}
    name = deployment.get("metadata", {}).get("name", "")
    if selector.get("matchExpressions"):
        raise Unsupported(
            f"Deployment {name} selects pods with matchExpressions, which a Service selector "
            "cannot express; use matchLabels"
        )
    labels = {k: v for k, v in (selector.get("matchLabels") or {}).items() if k != ROLE_LABEL}
    if not labels:
        raise Unsupported(f"Deployment {name} has no selector.matchLabels")
    return labels


def deployment_state(deployment: Mapping[str, Any]) -> DeploymentState:
    """The state of a Deployment as read from the API."""
    metadata = deployment.get("metadata", {})
    spec = deployment.get("spec", {})
    status = deployment.get("status") or {}
    replicas = 1 if spec.get("replicas") is None else int(spec["replicas"])
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    current = int(status.get("replicas") or 0)
    observed = int(status.get("observedGeneration") or 0) >= int(metadata.get("generation") or 0)
    rolled_out = observed and updated >= replicas and current <= updated and available >= replicas
    template = spec.get("template") or {}
    selector = spec.get("selector", {}).get("matchLabels") or {}
    kept = last_good_template(deployment)
    return DeploymentState(
        name=str(metadata.get("name", "")),
        revision=revision_of(template),
        replicas=replicas,
        updated_replicas=updated,
        available_replicas=available,
        observed=observed,
        available=rolled_out,
        template=copy.deepcopy(template),
        selector=dict(selector),
        last_good_revision=None if kept is None else revision_of(kept),
    )


def last_good_template(deployment: Mapping[str, Any]) -> dict[str, Any] | None:
    """The template a primary ran before its last promotion, if it kept one."""
    raw = (deployment.get("metadata", {}).get("annotations") or {}).get(LAST_GOOD_ANNOTATION)
    if not raw:
        return None
    kept = json.loads(raw)
    return kept if isinstance(kept, dict) else None


def merge_patch_between(old: Any, new: Any) -> Any:
    """The JSON merge patch (RFC 7386) that turns ``old`` into ``new``."""
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return copy.deepcopy(new)
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old:
            patch[key] = copy.deepcopy(value)
        elif old[key] != value:
            patch[key] = merge_patch_between(old[key], value)
    return patch


class Workloads:
    """The Deployment and Service operations of the reconciler, on an ``ObjectStore``."""

    def __init__(self, objects: ObjectStore) -> None:
        self._objects = objects

    def target_revision(self, namespace: str, name: str) -> DeploymentState | None:
        """The target Deployment's state and revision, or None if it does not exist."""
        return self._state(namespace, name)

    def primary_state(self, namespace: str, target_name: str) -> DeploymentState | None:
        """The primary Deployment's state (its revision ignores the role label), or None."""
        return self._state(namespace, primary_name(target_name))

    def deployment_available(self, namespace: str, name: str) -> bool:
        """Whether a Deployment exists and has rolled out completely."""
        state = self._state(namespace, name)
        return state is not None and state.available

    def label_candidate(self, namespace: str, target_name: str) -> bool:
        """Label the target's pods ``fairshift.io/role: candidate``; True if it patched."""
        target = self._require(namespace, target_name)
        match_labels(target)
        labels = target["spec"].get("template", {}).get("metadata", {}).get("labels") or {}
        if labels.get(ROLE_LABEL) == CANDIDATE_ROLE:
            return False
        patch = {"spec": {"template": {"metadata": {"labels": {ROLE_LABEL: CANDIDATE_ROLE}}}}}
        self._objects.patch(APPS, DEPLOYMENT, namespace, target_name, patch)
        return True

    def ensure_primary(
        self,
        namespace: str,
        target_name: str,
        template: Mapping[str, Any],
        replicas: int,
        owner_references: OwnerReferences,
    ) -> bool:
        """Create ``<target>-primary`` from ``template`` if absent; True if it was created.

        An existing primary is never changed here (``promote_template`` does that), so this
        is safe to call on every tick.
        """
        name = primary_name(target_name)
        existing = self._objects.get(APPS, DEPLOYMENT, namespace, name)
        if existing is not None:
            require_owned(existing, owner_references, f"Deployment {namespace}/{name}")
            return False
        target = self._require(namespace, target_name)
        body = primary_deployment(target, name, template, replicas, owner_references)
        self._objects.create(APPS, DEPLOYMENT, namespace, body)
        return True

    def promote_template(
        self, namespace: str, target_name: str, template: Mapping[str, Any]
    ) -> bool:
        """Make the primary run ``template`` (labelled as primary); True if it changed.

        The template it ran until now is kept in the same write (``LAST_GOOD_ANNOTATION``),
        so the guard can switch back to it.
        """
        desired = with_role(template, PRIMARY_ROLE)

        def change(primary: dict[str, Any]) -> dict[str, Any] | None:
            live = primary.get("spec", {}).get("template") or {}
            live_labels = live.get("metadata", {}).get("labels") or {}
            if (
                revision_of(live) == revision_of(desired)
                and live_labels.get(ROLE_LABEL) == PRIMARY_ROLE
            ):
                return None
            kept = json.dumps(without_fairshift_metadata(live), sort_keys=True)
            return {
                "metadata": {"annotations": {LAST_GOOD_ANNOTATION: kept}},
                "spec": {"template": merge_patch_between(live, desired)},
            }

        return read_modify_write(
            self._objects, APPS, DEPLOYMENT, namespace, primary_name(target_name), change
        )

    def restore_last_good(self, namespace: str, target_name: str) -> bool:
        """Both Deployments back to the template the primary kept at its last promotion.

        The primary runs it again and the user's Deployment holds it too (as ``kubectl
        rollout undo`` would), so the restored revision is the stable one and no new rollout
        starts. True if anything changed; raises ``NotFound`` when nothing was kept.
        """
        primary = self._require(namespace, primary_name(target_name))
        kept = last_good_template(primary)
        if kept is None:
            raise NotFound(f"Deployment {primary_name(target_name)} keeps no earlier template")
        as_primary = self._set_template(namespace, primary_name(target_name), kept, PRIMARY_ROLE)
        as_target = self._set_template(namespace, target_name, kept, CANDIDATE_ROLE)
        return as_primary or as_target

    def _set_template(
        self, namespace: str, name: str, template: Mapping[str, Any], role: str
    ) -> bool:
        desired = with_role(template, role)

        def change(deployment: dict[str, Any]) -> dict[str, Any] | None:
            live = deployment.get("spec", {}).get("template") or {}
            if revision_of(live) == revision_of(desired):
                return None
            return {"spec": {"template": merge_patch_between(live, desired)}}

        return read_modify_write(self._objects, APPS, DEPLOYMENT, namespace, name, change)

    def scale(self, namespace: str, deployment: str, replicas: int) -> bool:
        """Set a Deployment's ``spec.replicas``; True if it changed."""
        current = self._require(namespace, deployment)
        if current.get("spec", {}).get("replicas") == replicas:
            return False
        self._objects.patch(
            APPS, DEPLOYMENT, namespace, deployment, {"spec": {"replicas": replicas}}
        )
        return True

    def ensure_services(
        self,
        namespace: str,
        rollout_name: str,
        port: int,
        target_port: int | None,
        selector: Mapping[str, str],
        owner_references: OwnerReferences,
        shared: bool = False,
    ) -> ServiceNames:
        """Create or update the rollout's Services selecting primary and candidate pods.

        ``selector`` is the target's ``matchLabels``. With ``shared`` (the replicas router)
        a ``<rollout>`` Service selecting both is also ensured, unless a Service of that
        name already exists and is not fairshift's: then that one is used as it is.
        """
        names = service_names(rollout_name)
        base = {k: v for k, v in selector.items() if k != ROLE_LABEL}
        wanted = {
            names.primary: {**base, ROLE_LABEL: PRIMARY_ROLE},
            names.canary: {**base, ROLE_LABEL: CANDIDATE_ROLE},
        }
        if shared:
            wanted[names.shared] = base
        for name, labels in wanted.items():
            body = service(name, namespace, labels, port, target_port, owner_references)
            self._ensure_service(body, owner_references, adopt_foreign=name != names.shared)
        return names

    def ensure_fallback_service(
        self,
        namespace: str,
        rollout_name: str,
        fallback: str,
        port: int,
        target_port: int | None,
        owner_references: OwnerReferences,
    ) -> str:
        """The ``<rollout>-fallback`` Service selecting the pods of Deployment ``fallback``."""
        name = service_names(rollout_name).fallback
        labels = match_labels(self._require(namespace, fallback))
        body = service(name, namespace, labels, port, target_port, owner_references)
        self._ensure_service(body, owner_references, adopt_foreign=True)
        return name

    def _ensure_service(
        self, body: dict[str, Any], owner_references: OwnerReferences, adopt_foreign: bool
    ) -> None:
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        existing = self._objects.get(CORE, SERVICE, namespace, name)
        if existing is None:
            self._objects.create(CORE, SERVICE, namespace, body)
            return
        if not adopt_foreign and not is_managed(existing):
            return
        require_owned(existing, owner_references, f"Service {namespace}/{name}")
        live = existing.get("spec", {})
        selector = merge_patch_between(live.get("selector") or {}, body["spec"]["selector"])
        if not selector and live.get("ports") == body["spec"]["ports"]:
            return
        patch = {"spec": {"selector": selector, "ports": body["spec"]["ports"]}}
        self._objects.patch(CORE, SERVICE, namespace, name, patch)

    def _state(self, namespace: str, name: str) -> DeploymentState | None:
        found = self._objects.get(APPS, DEPLOYMENT, namespace, name)
        return None if found is None else deployment_state(found)

    def _require(self, namespace: str, name: str) -> dict[str, Any]:
        found = self._objects.get(APPS, DEPLOYMENT, namespace, name)
        if found is None:
            raise NotFound(f"Deployment {namespace}/{name} not found", 404)
        return found


def is_managed(obj: Mapping[str, Any]) -> bool:
    """Whether fairshift made ``obj`` (its managed-by label)."""
    return (obj.get("metadata", {}).get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGER


def primary_deployment(
    target: Mapping[str, Any],
    name: str,
    template: Mapping[str, Any],
    replicas: int,
    owner_references: OwnerReferences,
) -> dict[str, Any]:
    """The body of a new primary Deployment copied from the target."""
    selector = {**match_labels(target), ROLE_LABEL: PRIMARY_ROLE}
    spec: dict[str, Any] = {
        key: copy.deepcopy(target["spec"][key])
        for key in COPIED_SPEC_FIELDS
        if key in target.get("spec", {})
    }
    spec.update(
        replicas=replicas,
        selector={"matchLabels": selector},
        template=with_role(template, PRIMARY_ROLE),
    )
    return {
        "apiVersion": APPS,
        "kind": DEPLOYMENT,
        "metadata": managed_metadata(
            name, target["metadata"]["namespace"], PRIMARY_ROLE, owner_references
        ),
        "spec": spec,
    }


def service(
    name: str,
    namespace: str,
    selector: Mapping[str, str],
    port: int,
    target_port: int | None,
    owner_references: OwnerReferences,
) -> dict[str, Any]:
    """The body of a ClusterIP Service fairshift owns."""
    ports = [{"name": "http", "port": port, "targetPort": target_port or port, "protocol": "TCP"}]
    return {
        "apiVersion": CORE,
        "kind": SERVICE,
        "metadata": managed_metadata(name, namespace, None, owner_references),
        "spec": {"type": "ClusterIP", "selector": dict(selector), "ports": ports},
    }


def managed_metadata(
    name: str, namespace: str, role: str | None, owner_references: OwnerReferences
) -> dict[str, Any]:
    """Metadata of an object fairshift creates: managed-by label, role, owners."""
    labels = {MANAGED_BY_LABEL: MANAGER}
    if role:
        labels[ROLE_LABEL] = role
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if owner_references:
        metadata["ownerReferences"] = [dict(reference) for reference in owner_references]
    return metadata
