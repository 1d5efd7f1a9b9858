"""ModelRollout objects: read, list, patch the status subresource and the annotations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fairshift.api import API_VERSION, KIND
from fairshift.k8s.store import ObjectStore


class Rollouts:
    """Reads and patches ModelRollouts (for the operator and the CLI)."""

    def __init__(self, objects: ObjectStore) -> None:
        self._objects = objects

    def get_rollout(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The ModelRollout, or None if it does not exist."""
        return self._objects.get(API_VERSION, KIND, namespace, name)

    def list_rollouts(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """The ModelRollouts of a namespace, or of all namespaces for None."""
        return self._objects.list(API_VERSION, KIND, namespace)

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge-patch ``status`` into the status subresource (None values delete fields)."""
        self._objects.patch_status(API_VERSION, KIND, namespace, name, {"status": dict(status)})

    def patch_annotations(
        self,
        namespace: str,
        name: str,
        annotations: Mapping[str, str | None],
        resource_version: str | None = None,
    ) -> None:
        """Set (or, with None, remove) annotations.

        With ``resource_version`` the write only succeeds if the rollout has not changed since
        (``Conflict`` otherwise): how a manual action annotation is consumed exactly once.
        """
        metadata: dict[str, Any] = {"annotations": dict(annotations)}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        self._objects.patch(API_VERSION, KIND, namespace, name, {"metadata": metadata})
