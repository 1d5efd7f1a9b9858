"""The object-store abstraction the Kubernetes layer is written against, and its helpers.

``ObjectStore`` is what ``KubeObjects`` implements on the API server and what the tests fake;
``Workloads``, ``AuditStore``, ``Rollouts``, ``EventPoster`` and ``SecretReader`` only need it,
so importing them does not import the Kubernetes client.

``read_modify_write`` is the one place that retries 409 conflicts: it reads fresh, computes a
merge patch, and sends it with ``metadata.resourceVersion`` as a precondition.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from fairshift.k8s.errors import Conflict, NotFound, NotOwned

CONFLICT_ATTEMPTS = 5


class ObjectStore(Protocol):
    """Object operations of the Kubernetes layer (a superset of ``routing.base.ObjectApi``)."""

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""

    def create(self, api_version: str, kind: str, namespace: str, body: dict[str, Any]) -> None:
        """Create; raises ``Conflict`` when it exists."""

    def patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        """JSON merge patch (RFC 7386); ``metadata.resourceVersion`` in it is a precondition."""

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete; absent objects are fine."""

    def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        """JSON merge patch of the status subresource."""

    def list(
        self, api_version: str, kind: str, namespace: str | None, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        """All objects of a kind in a namespace (or in all namespaces for None)."""


def read_modify_write(
    objects: ObjectStore,
    api_version: str,
    kind: str,
    namespace: str,
    name: str,
    change: Callable[[dict[str, Any]], dict[str, Any] | None],
    attempts: int = CONFLICT_ATTEMPTS,
) -> bool:
    """Patch an existing object with ``change(fresh)``, retrying 409s on fresh reads.

    ``change`` gets the object as just read and returns a merge patch, or None when nothing
    needs changing. Returns whether a patch was sent. Raises ``NotFound`` when the object is
    absent and ``Conflict`` when every attempt lost a race.
    """
    for _ in range(attempts):
        fresh = objects.get(api_version, kind, namespace, name)
        if fresh is None:
            raise NotFound(f"{kind} {namespace}/{name} not found", 404)
        patch = change(fresh)
        if patch is None:
            return False
        version = fresh.get("metadata", {}).get("resourceVersion")
        guarded = {**patch, "metadata": {**patch.get("metadata", {}), "resourceVersion": version}}
        try:
            objects.patch(api_version, kind, namespace, name, guarded)
        except Conflict:
            continue
        return True
    raise Conflict(f"{kind} {namespace}/{name} kept changing; gave up after {attempts} tries", 409)


def controller_uid(owner_references: Sequence[Mapping[str, Any]]) -> str | None:
    """The uid of the controlling owner among ``owner_references`` (or of the first one)."""
    for reference in owner_references:
        if reference.get("controller"):
            return str(reference.get("uid"))
    return str(owner_references[0].get("uid")) if owner_references else None


def is_owned_by(obj: Mapping[str, Any], owner_references: Sequence[Mapping[str, Any]]) -> bool:
    """Whether ``obj`` names the controlling owner of ``owner_references`` among its owners."""
    wanted = controller_uid(owner_references)
    if wanted is None:
        return True
    present = obj.get("metadata", {}).get("ownerReferences") or []
    return any(str(reference.get("uid")) == wanted for reference in present)


def require_owned(
    obj: Mapping[str, Any], owner_references: Sequence[Mapping[str, Any]], what: str
) -> None:
    """Raise ``NotOwned`` unless ``obj`` belongs to the owner; fairshift never takes over."""
    if not is_owned_by(obj, owner_references):
        raise NotOwned(f"{what} exists and is not owned by this ModelRollout; left alone")
