"""Generic object access: get, create, merge-patch, delete, status patch and list.

``KubeObjects`` implements ``fairshift.routing.base.ObjectApi`` (structurally; this package
may not import ``routing``) on ``kubernetes.dynamic.DynamicClient``, plus the status
subresource and listing that the rest of the operator needs (``ObjectStore``). API errors
become the ``fairshift.k8s.errors`` hierarchy with the API server's message; a missing object
is ``None`` on ``get`` and is fine on ``delete``.

``read_modify_write`` is the one place that retries 409 conflicts: it reads fresh, computes a
merge patch, and sends it with ``metadata.resourceVersion`` as a precondition.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import urllib3.exceptions
from kubernetes.client import ApiClient
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError
from kubernetes.dynamic.resource import Resource

from fairshift.k8s.errors import (
    Conflict,
    Forbidden,
    Invalid,
    KubeError,
    NotFound,
    NotOwned,
    UnknownKind,
    Unreachable,
)

MERGE_PATCH = "application/merge-patch+json"
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


class KubeObjects:
    """``ObjectStore`` on a ``DynamicClient``; every request has a timeout, and writes name
    ``fairshift`` as their field manager (so ``managedFields`` show what fairshift set)."""

    def __init__(
        self,
        dynamic: DynamicClient,
        request_timeout: float = 30.0,
        field_manager: str = "fairshift",
    ) -> None:
        self._dynamic = dynamic
        self._timeout = request_timeout
        self._field_manager = field_manager

    @classmethod
    def from_api_client(cls, api_client: ApiClient, request_timeout: float = 30.0) -> KubeObjects:
        with translated("discovering the API"):
            dynamic = DynamicClient(api_client)  # type: ignore[no-untyped-call]
        return cls(dynamic, request_timeout)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        resource = self._resource(api_version, kind)
        try:
            with translated(f"reading {kind} {namespace}/{name}"):
                found = resource.get(name=name, namespace=namespace, _request_timeout=self._timeout)
        except NotFound:
            return None
        return as_dict(found)

    def create(self, api_version: str, kind: str, namespace: str, body: dict[str, Any]) -> None:
        resource = self._resource(api_version, kind)
        name = body.get("metadata", {}).get("name", "")
        with translated(f"creating {kind} {namespace}/{name}"):
            resource.create(
                body=body,
                namespace=namespace,
                field_manager=self._field_manager,
                _request_timeout=self._timeout,
            )

    def patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        resource = self._resource(api_version, kind)
        with translated(f"patching {kind} {namespace}/{name}"):
            resource.patch(
                body=patch,
                name=name,
                namespace=namespace,
                content_type=MERGE_PATCH,
                field_manager=self._field_manager,
                _request_timeout=self._timeout,
            )

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        resource = self._resource(api_version, kind)
        try:
            with translated(f"deleting {kind} {namespace}/{name}"):
                resource.delete(name=name, namespace=namespace, _request_timeout=self._timeout)
        except NotFound:
            return

    def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        resource = self._resource(api_version, kind)
        with translated(f"patching the status of {kind} {namespace}/{name}"):
            resource.status.patch(
                body=patch,
                name=name,
                namespace=namespace,
                content_type=MERGE_PATCH,
                field_manager=self._field_manager,
                _request_timeout=self._timeout,
            )

    def list(
        self, api_version: str, kind: str, namespace: str | None, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        resource = self._resource(api_version, kind)
        where = namespace or "all namespaces"
        with translated(f"listing {kind} in {where}"):
            found = resource.get(
                namespace=namespace,
                label_selector=label_selector or None,
                _request_timeout=self._timeout,
            )
        items: list[dict[str, Any]] = as_dict(found).get("items") or []
        return items

    def _resource(self, api_version: str, kind: str) -> Resource:
        try:
            with translated(f"discovering {api_version} {kind}"):
                resource: Resource = self._dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            raise UnknownKind(
                f"the API server does not serve {api_version} {kind}; is its CRD installed?"
            ) from None
        return resource


def as_dict(instance: Any) -> dict[str, Any]:
    """A dynamic client ``ResourceInstance`` (or a plain dict) as a plain dict."""
    if isinstance(instance, dict):
        return instance
    converted: dict[str, Any] = instance.to_dict()
    return converted


ERRORS_BY_STATUS: Mapping[int, type[KubeError]] = {
    400: Invalid,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: Invalid,
}


@contextmanager
def translated(doing: str) -> Iterator[None]:
    """Turn client exceptions raised while ``doing`` something into ``KubeError``s."""
    try:
        yield
    except DynamicApiError as error:
        status = int(error.status) if error.status is not None else None
        kind = ERRORS_BY_STATUS.get(status or 0, KubeError)
        raise kind(f"{doing}: {api_message(error)}", status) from None
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise Unreachable(f"{doing}: {error}") from None


def api_message(error: DynamicApiError) -> str:
    """The ``message`` of the API server's Status body, else the body or reason."""
    body = error.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            return str(body)
        if message:
            return str(message)
    return f"{error.status} {error.reason}"


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
