"""An in-memory Lease API with the API server's optimistic concurrency, for sharding tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import datetime

from fairshift.k8s.errors import Unreachable
from fairshift.k8s.leases import LeaseRecord


@dataclass
class FakeLeases:
    """Leases by name; every write needs the current ``version`` (else ``None``, as a 409)."""

    leases: dict[str, LeaseRecord] = field(default_factory=dict)
    versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    down: set[str] = field(default_factory=set)  # identities whose requests fail

    def api_for(self, identity: str) -> ReplicaApi:
        return ReplicaApi(self, identity)

    def write(self, lease: LeaseRecord) -> LeaseRecord:
        written = replace(lease, version=str(next(self.versions)))
        self.leases[lease.name] = written
        return written


@dataclass
class ReplicaApi:
    """One replica's view of the shared fake (so one replica's network can fail)."""

    store: FakeLeases
    identity: str

    def _check(self) -> None:
        if self.identity in self.store.down:
            raise Unreachable("the API server cannot be reached")

    def list(self) -> list[LeaseRecord]:
        self._check()
        return list(self.store.leases.values())

    def create(
        self, name: str, holder: str, duration_seconds: int, now: datetime
    ) -> LeaseRecord | None:
        self._check()
        if name in self.store.leases:
            return None
        return self.store.write(LeaseRecord(name, holder, duration_seconds, "", now))

    def update(self, lease: LeaseRecord, holder: str | None, now: datetime) -> LeaseRecord | None:
        self._check()
        current = self.store.leases.get(lease.name)
        if current is None or current.version != lease.version:
            return None
        return self.store.write(replace(current, holder=holder, renewed=now))

    def delete(self, lease: LeaseRecord) -> None:
        self._check()
        current = self.store.leases.get(lease.name)
        if current is not None and current.version == lease.version:
            del self.store.leases[lease.name]
