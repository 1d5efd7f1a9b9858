"""Errors of the Kubernetes layer: one hierarchy, each carrying the API server's own message.

Everything under ``KubeError`` is temporary unless the class says otherwise; the reconciler
backs off and retries. ``Forbidden`` usually means the operator's RBAC lacks a verb, and
``UnknownKind`` that a CRD (Gateway API, Istio) is not installed: both need a person.

The subclasses are named after the API server's status reasons (NotFound, Conflict,
Forbidden, ...), hence no ``Error`` suffix.
"""

from __future__ import annotations


class KubeError(RuntimeError):
    """The API server refused or failed a request; ``status`` is the HTTP status if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFound(KubeError):  # noqa: N818 (named after the API's reasons)
    """The object (or a key inside it) does not exist."""


class Conflict(KubeError):  # noqa: N818 (named after the API's reasons)
    """409: the object already exists, or it changed since it was read (stale resourceVersion)."""


class Forbidden(KubeError):  # noqa: N818 (named after the API's reasons)
    """403: the operator's ServiceAccount may not do this."""


class Invalid(KubeError):  # noqa: N818 (named after the API's reasons)
    """422 or 400: the API server rejected the object (schema, CEL rule, immutable field)."""


class UnknownKind(KubeError):  # noqa: N818 (named after the API's reasons)
    """The API server does not serve this apiVersion and kind (is its CRD installed?)."""


class Unreachable(KubeError):  # noqa: N818 (named after the API's reasons)
    """The API server could not be reached or did not answer in time."""


class NotOwned(KubeError):  # noqa: N818 (named after the API's reasons)
    """An object fairshift would manage exists but belongs to someone else; it is left alone."""


class Unsupported(KubeError):  # noqa: N818 (in line with the names above)
    """A workload fairshift cannot manage as it is (e.g. a selector a Service cannot express)."""
