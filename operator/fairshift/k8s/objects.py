"""Object access on the Kubernetes API: get, create, merge-patch, delete, status patch, list.

``KubeObjects`` implements ``fairshift.k8s.store.ObjectStore`` (and so, structurally,
``fairshift.routing.base.ObjectApi``; this package may not import ``routing``) on
``kubernetes.dynamic.DynamicClient``. API errors become the ``fairshift.k8s.errors``
hierarchy with the API server's message; a missing object is ``None`` on ``get`` and is fine
on ``delete``. The protocol and the conflict-retrying helpers live in ``store`` (no client
import), and are re-exported here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

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
    UnknownKind,
    Unreachable,
)
from fairshift.k8s.store import (
    CONFLICT_ATTEMPTS,
    ObjectStore,
    controller_uid,
    is_owned_by,
    read_modify_write,
    require_owned,
)

__all__ = [
    "CONFLICT_ATTEMPTS",
    "MERGE_PATCH",
    "KubeObjects",
    "ObjectStore",
    "controller_uid",
    "is_owned_by",
    "read_modify_write",
    "require_owned",
    "translated",
]

MERGE_PATCH = "application/merge-patch+json"


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
