"""Reading one key of a Secret (webhook URLs are kept in Secrets)."""

from __future__ import annotations

import base64
import binascii

from fairshift.k8s.errors import KubeError, NotFound
from fairshift.k8s.store import ObjectStore


class SecretReader:
    """Reads keys of Secrets in a namespace."""

    def __init__(self, objects: ObjectStore) -> None:
        self._objects = objects

    def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        """The decoded value of ``key`` in Secret ``name``; ``NotFound`` when either is absent."""
        secret = self._objects.get("v1", "Secret", namespace, name)
        if secret is None:
            raise NotFound(f"Secret {namespace}/{name} not found", 404)
        encoded = (secret.get("data") or {}).get(key)
        if encoded is None:
            raise NotFound(f"Secret {namespace}/{name} has no key {key!r}", 404)
        try:
            return base64.b64decode(encoded, validate=True).decode("utf-8").strip()
        except (binascii.Error, UnicodeDecodeError):
            raise KubeError(f"key {key!r} of Secret {namespace}/{name} is not UTF-8 text") from None
