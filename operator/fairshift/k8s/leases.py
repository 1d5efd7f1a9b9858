"""coordination.k8s.io/v1 Leases of one shard group, read and written with optimistic concurrency.

The sharded operator (``k8s.sharding``) coordinates its replicas through Leases only: every
write carries the ``resourceVersion`` it was based on, so of two replicas racing for one Lease
the API server accepts one and answers the other 409 Conflict (``None`` here). Nothing else
decides: no home-made consensus.

:class:`LeaseApi` is the port the coordinator uses (tests give it an in-memory fake);
:class:`KubeLeases` implements it with the Kubernetes client's ``CoordinationV1Api``. All the
Leases of a group live in one namespace and carry the label ``fairshift.io/shard-group``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import urllib3

from fairshift.k8s.errors import KubeError, Unreachable
from fairshift.k8s.objects import ERRORS_BY_STATUS

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, V1Lease

GROUP_LABEL = "fairshift.io/shard-group"
CONFLICT = 409
ALREADY_EXISTS = 409
NOT_FOUND = 404


@dataclass(frozen=True)
class LeaseRecord:
    """What the coordinator reads of a Lease; ``version`` is its ``resourceVersion``."""

    name: str
    holder: str | None
    duration_seconds: int
    version: str
    renewed: datetime | None = None


class LeaseApi(Protocol):
    """The Lease operations of one shard group. A write returns the Lease as written, or
    ``None`` when another writer came first (409: it exists, or it changed since ``version``)."""

    def list(self) -> list[LeaseRecord]: ...

    def create(
        self, name: str, holder: str, duration_seconds: int, now: datetime
    ) -> LeaseRecord | None: ...

    def update(self, lease: LeaseRecord, holder: str | None, now: datetime) -> LeaseRecord | None:
        """Set the holder (``None`` releases) and the renew time, if ``lease.version`` is
        still the Lease's version."""
        ...

    def delete(self, lease: LeaseRecord) -> None:
        """Delete the Lease if ``lease.version`` is still its version (else leave it)."""
        ...


class KubeLeases:
    """``LeaseApi`` on ``CoordinationV1Api``: the Leases labelled ``group`` in ``namespace``."""

    def __init__(
        self, api_client: ApiClient, namespace: str, group: str, request_timeout: float = 10.0
    ) -> None:
        from kubernetes.client import CoordinationV1Api

        self._api = CoordinationV1Api(api_client)
        self._namespace = namespace
        self._group = group
        self._timeout = request_timeout

    def list(self) -> list[LeaseRecord]:
        with leases_translated(f"listing the Leases of shard group {self._group}"):
            found = self._api.list_namespaced_lease(
                self._namespace,
                label_selector=f"{GROUP_LABEL}={self._group}",
                _request_timeout=self._timeout,
            )
        return [record_of(item) for item in found.items or []]

    def create(
        self, name: str, holder: str, duration_seconds: int, now: datetime
    ) -> LeaseRecord | None:
        from kubernetes.client import V1Lease, V1LeaseSpec, V1ObjectMeta

        body = V1Lease(
            metadata=V1ObjectMeta(
                name=name, namespace=self._namespace, labels={GROUP_LABEL: self._group}
            ),
            spec=V1LeaseSpec(
                holder_identity=holder,
                lease_duration_seconds=duration_seconds,
                acquire_time=now,
                renew_time=now,
                lease_transitions=0,
            ),
        )
        with lost_race(), leases_translated(f"creating Lease {self._namespace}/{name}"):
            return record_of(
                self._api.create_namespaced_lease(
                    self._namespace, body, field_manager="fairshift", _request_timeout=self._timeout
                )
            )
        return None

    def update(self, lease: LeaseRecord, holder: str | None, now: datetime) -> LeaseRecord | None:
        from kubernetes.client import V1Lease, V1LeaseSpec, V1ObjectMeta

        changes_hands = holder != lease.holder
        body = V1Lease(
            metadata=V1ObjectMeta(
                name=lease.name,
                namespace=self._namespace,
                labels={GROUP_LABEL: self._group},
                resource_version=lease.version,
            ),
            spec=V1LeaseSpec(
                holder_identity=holder,
                lease_duration_seconds=lease.duration_seconds,
                renew_time=now if holder else None,
                acquire_time=now if holder and changes_hands else lease.renewed,
            ),
        )
        with lost_race(), leases_translated(f"writing Lease {self._namespace}/{lease.name}"):
            return record_of(
                self._api.replace_namespaced_lease(
                    lease.name,
                    self._namespace,
                    body,
                    field_manager="fairshift",
                    _request_timeout=self._timeout,
                )
            )
        return None

    def delete(self, lease: LeaseRecord) -> None:
        from kubernetes.client import V1DeleteOptions, V1Preconditions

        options = V1DeleteOptions(preconditions=V1Preconditions(resource_version=lease.version))
        with lost_race(), leases_translated(f"deleting Lease {self._namespace}/{lease.name}"):
            self._api.delete_namespaced_lease(
                lease.name, self._namespace, body=options, _request_timeout=self._timeout
            )


def record_of(lease: V1Lease) -> LeaseRecord:
    spec: Any = lease.spec
    meta: Any = lease.metadata
    return LeaseRecord(
        name=str(meta.name),
        holder=(spec.holder_identity or None) if spec else None,
        duration_seconds=int((spec.lease_duration_seconds if spec else 0) or 0),
        version=str(meta.resource_version),
        renewed=spec.renew_time if spec else None,
    )


class LostRace(KubeError):  # noqa: N818 (a race lost is not an error of the caller)
    """Another writer changed (or created, or deleted) the Lease first."""


@contextmanager
def lost_race() -> Iterator[None]:
    """Swallow :class:`LostRace`: the caller's write simply did not happen."""
    try:
        yield
    except LostRace:
        return


@contextmanager
def leases_translated(doing: str) -> Iterator[None]:
    """Client exceptions as ``KubeError``s; 409 and 404 (another writer won) as ``LostRace``."""
    from kubernetes.client.exceptions import ApiException

    try:
        yield
    except ApiException as error:
        status = int(error.status) if error.status is not None else 0
        if status in (CONFLICT, NOT_FOUND):
            raise LostRace(f"{doing}: {error.reason}", status) from None
        kind = ERRORS_BY_STATUS.get(status, KubeError)
        raise kind(f"{doing}: {error.reason} {error.body or ''}".strip(), status) from None
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise Unreachable(f"{doing}: {error}") from None
