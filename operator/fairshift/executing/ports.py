"""What the executor needs from the world, one protocol each, with null objects.

The real adapters live in ``fairshift.k8s``, ``fairshift.routing``, ``fairshift.metrics`` and
``fairshift.notify``; tests pass fakes. Optional ports (audit log, notifier, telemetry) have
null objects, so the executor never asks "is there one?".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fairshift.api.notifications import Notification
from fairshift.api.spec import ModelRolloutSpec
from fairshift.api.status import GateEvidence
from fairshift.metrics.source import MetricSource
from fairshift.notify.fanout import Notifier
from fairshift.planning.observation import DeploymentState
from fairshift.routing.base import Router

Record = dict[str, Any]
RecordBuilder = Callable[[Mapping[str, Any] | None], Record]


class Workloads(Protocol):
    """Deployments and Services of a rollout (``fairshift.k8s.workloads.Workloads``)."""

    def target_revision(self, namespace: str, name: str) -> DeploymentState | None: ...

    def primary_state(self, namespace: str, target_name: str) -> DeploymentState | None: ...

    def label_candidate(self, namespace: str, target_name: str) -> bool: ...

    def ensure_primary(
        self,
        namespace: str,
        target_name: str,
        template: Mapping[str, Any],
        replicas: int,
        owner_references: Sequence[Mapping[str, Any]],
    ) -> bool: ...

    def ensure_services(
        self,
        namespace: str,
        rollout_name: str,
        port: int,
        target_port: int | None,
        selector: Mapping[str, str],
        owner_references: Sequence[Mapping[str, Any]],
        shared: bool = False,
    ) -> Any: ...

    def ensure_fallback_service(
        self,
        namespace: str,
        rollout_name: str,
        fallback: str,
        port: int,
        target_port: int | None,
        owner_references: Sequence[Mapping[str, Any]],
    ) -> str: ...

    def scale(self, namespace: str, deployment: str, replicas: int) -> bool: ...

    def promote_template(
        self, namespace: str, target_name: str, template: Mapping[str, Any]
    ) -> bool: ...

    def restore_last_good(self, namespace: str, target_name: str) -> bool: ...


RouterFactory = Callable[[ModelRolloutSpec, str, str, Mapping[str, Any]], Router]
MetricSourceFactory = Callable[[ModelRolloutSpec], MetricSource]


class AuditLog(Protocol):
    """The rollout's hash chain: appends ``build(newest stored record)`` and reads it back."""

    def append(
        self,
        namespace: str,
        rollout: str,
        build: RecordBuilder,
        owner_references: Sequence[Mapping[str, Any]] = (),
    ) -> Mapping[str, Any]: ...

    def read_records(self, namespace: str, rollout: str) -> list[dict[str, Any]]: ...


class Telemetry(Protocol):
    """The operator's own metrics (``fairshift.metrics.operator_metrics``)."""

    def observe_rollout(
        self, namespace: str, rollout: str, phase: str, weight: int, fallback_weight: int = 0
    ) -> None: ...

    def observe_gates(
        self, namespace: str, rollout: str, evidence: Sequence[GateEvidence]
    ) -> None: ...

    def observe_guard(
        self, namespace: str, rollout: str, health: str | None, breaches: int
    ) -> None: ...

    def count_decision(self, action: str, reason: str) -> None: ...

    def count_error(self, namespace: str, rollout: str, kind: str) -> None: ...

    def forget(self, namespace: str, rollout: str) -> None: ...


@dataclass
class InMemoryAuditLog:
    """A chain kept in memory, for an operator run without the audit ConfigMap."""

    chains: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)

    def append(
        self,
        namespace: str,
        rollout: str,
        build: RecordBuilder,
        owner_references: Sequence[Mapping[str, Any]] = (),
    ) -> Mapping[str, Any]:
        chain = self.chains.setdefault((namespace, rollout), [])
        record = build(chain[-1] if chain else None)
        chain.append(record)
        return record

    def read_records(self, namespace: str, rollout: str) -> list[dict[str, Any]]:
        return list(self.chains.get((namespace, rollout), []))


class NullNotifier:
    def notify(
        self,
        namespace: str,
        rollout: str,
        record: Mapping[str, Any],
        notifications: Sequence[Notification] = (),
    ) -> None:
        return None

    def problem(self, notifications: Sequence[Notification]) -> str | None:
        return None


class NullTelemetry:
    def observe_rollout(
        self, namespace: str, rollout: str, phase: str, weight: int, fallback_weight: int = 0
    ) -> None:
        return None

    def observe_gates(self, namespace: str, rollout: str, evidence: Sequence[GateEvidence]) -> None:
        return None

    def observe_guard(
        self, namespace: str, rollout: str, health: str | None, breaches: int
    ) -> None:
        return None

    def count_decision(self, action: str, reason: str) -> None:
        return None

    def count_error(self, namespace: str, rollout: str, kind: str) -> None:
        return None

    def forget(self, namespace: str, rollout: str) -> None:
        return None


@dataclass
class Dependencies:
    """Everything a reconcile touches, passed in (fakes in tests)."""

    workloads: Workloads
    router_for: RouterFactory
    metrics_for: MetricSourceFactory
    audit: AuditLog = field(default_factory=InMemoryAuditLog)
    notifier: Notifier = field(default_factory=NullNotifier)
    telemetry: Telemetry = field(default_factory=NullTelemetry)
