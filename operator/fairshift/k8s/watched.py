"""An ``ObjectStore`` that serves reads of watched kinds from the watch, not from GETs.

A reconcile reads the target and primary Deployments, the route and the audit ConfigMap. The
operator already watches them (kopf's event handlers feed :meth:`WatchedObjects.observe`), so
:class:`WatchedObjects` keeps the newest body of each and answers ``get`` from memory: a
reconcile with nothing to change makes no API request. Everything else goes to the wrapped
store:

- a ``get`` of an object not seen yet (the watch has not listed it, or it does not exist) is a
  GET, and its answer is kept;
- every write goes to the API server, and the written object is forgotten, and watch events
  for it are ignored, until a GET reads it afresh: so this process never reads an object older
  than its own last write, even when the watch delivers an event from before the write late (a
  failed write, such as a 409, forgets it too: the retry reads afresh);
- a watch event older than what is kept (a smaller ``resourceVersion``, possible right after a
  GET) does not replace it.

Bodies are kept without ``metadata.managedFields`` (no reconcile reads them, and they are most
of a Deployment's body) and handed out as copies: callers may change what they get.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Collection, Mapping
from typing import Any

from fairshift.k8s.store import ObjectStore

Key = tuple[str, str, str, str]
"""(apiVersion, kind, namespace, name)."""

DELETED = "DELETED"


def key_of(body: Mapping[str, Any]) -> Key:
    meta = body.get("metadata") or {}
    return (
        str(body.get("apiVersion")),
        str(body.get("kind")),
        str(meta.get("namespace")),
        str(meta.get("name")),
    )


def resource_version(body: Mapping[str, Any]) -> int | None:
    """The body's ``resourceVersion`` as a number, when it is one (etcd revisions are)."""
    raw = (body.get("metadata") or {}).get("resourceVersion")
    try:
        return int(str(raw))
    except (TypeError, ValueError):
        return None


def is_older(new: Mapping[str, Any], kept: Mapping[str, Any]) -> bool:
    new_version, kept_version = resource_version(new), resource_version(kept)
    return new_version is not None and kept_version is not None and new_version < kept_version


def without_managed_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``body`` without ``metadata.managedFields``."""
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    return copy.deepcopy({**body, "metadata": meta})


class WatchedObjects:
    """``ObjectStore`` over ``objects``; reads of ``kinds`` (apiVersion, kind) from the watch."""

    def __init__(self, objects: ObjectStore, kinds: Collection[tuple[str, str]]) -> None:
        self._objects = objects
        self._kinds = frozenset(kinds)
        self._bodies: dict[Key, dict[str, Any]] = {}
        self._written: set[Key] = set()
        self._lock = threading.Lock()
        self.served = 0
        """Reads answered from memory (the operator's metrics may show it)."""

    def watches(self, api_version: str, kind: str) -> bool:
        return (api_version, kind) in self._kinds

    # fed by the watch ------------------------------------------------------------------------

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event (kopf's ``type``: None for the initial listing, ADDED, MODIFIED,
        DELETED) of a watched object."""
        key = key_of(body)
        if not self.watches(key[0], key[1]):
            return
        with self._lock:
            if event_type == DELETED:
                self._bodies.pop(key, None)
            elif key not in self._written:
                self._keep_locked(key, body)

    # ObjectStore -----------------------------------------------------------------------------

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        key = (api_version, kind, namespace, name)
        if not self.watches(api_version, kind):
            return self._objects.get(*key)
        with self._lock:
            kept = self._bodies.get(key)
            if kept is not None:
                self.served += 1
                return copy.deepcopy(kept)
        found = self._objects.get(*key)
        if found is not None:
            self._keep(key, found)
        return found

    def create(self, api_version: str, kind: str, namespace: str, body: dict[str, Any]) -> None:
        name = str((body.get("metadata") or {}).get("name"))
        try:
            self._objects.create(api_version, kind, namespace, body)
        finally:
            self._forget((api_version, kind, namespace, name))

    def patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        try:
            self._objects.patch(api_version, kind, namespace, name, patch)
        finally:
            self._forget((api_version, kind, namespace, name))

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        try:
            self._objects.delete(api_version, kind, namespace, name)
        finally:
            self._forget((api_version, kind, namespace, name))

    def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        try:
            self._objects.patch_status(api_version, kind, namespace, name, patch)
        finally:
            self._forget((api_version, kind, namespace, name))

    def list(
        self, api_version: str, kind: str, namespace: str | None, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        return self._objects.list(api_version, kind, namespace, label_selector)

    # internals -------------------------------------------------------------------------------

    def _keep(self, key: Key, body: Mapping[str, Any]) -> None:
        with self._lock:
            self._written.discard(key)
            self._keep_locked(key, body)

    def _keep_locked(self, key: Key, body: Mapping[str, Any]) -> None:
        kept = self._bodies.get(key)
        if kept is None or not is_older(body, kept):
            self._bodies[key] = without_managed_fields(body)

    def _forget(self, key: Key) -> None:
        with self._lock:
            self._bodies.pop(key, None)
            self._written.add(key)
