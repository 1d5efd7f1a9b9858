"""A cluster-free world for reconciler tests: in-memory API, real routers, canned metrics.

``World.tick()`` does what kopf does: hands the stored resource to a *fresh* reconciler and
writes back the status it returns, so every test also proves the operator resumes from status
alone.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fairshift.api.analysis import Analysis
from fairshift.api.names import ACTION_ANNOTATION
from fairshift.api.spec import ModelRolloutSpec
from fairshift.engine.audit import verify_chain
from fairshift.engine.counts import BinaryCounts, VersionCounts, slice_key
from fairshift.executing.executor import Reconciler, Result, Rollout, route_target
from fairshift.executing.ports import Dependencies
from fairshift.k8s.auditstore import AuditStore
from fairshift.metrics.source import InvalidQueryError, MetricsError, QueryContext, VersionPair
from fairshift.routing.base import Router
from fairshift.routing.registry import make_router
from tests.fakes import FakeWorkloads

NS, NAME, TARGET = "lending", "credit-scorer", "credit-scorer"
T0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "targetRef": {"name": TARGET},
        "service": {"port": 8080},
        "routing": {"gatewayAPI": {"parentRefs": [{"name": "public"}]}},
        "strategy": {
            "canary": {
                "steps": [
                    {"setWeight": 10},
                    {"analyze": {"duration": "1m"}},
                    {"setWeight": 50},
                    {"analyze": {"duration": "1m"}},
                ]
            }
        },
        "analysis": {
            "interval": "30s",
            "prometheus": {"address": "http://prometheus:9090"},
            "slices": {"attributes": ["sex", "age"], "minSamples": 200},
            "gates": [
                {"name": "equal-opportunity", "metric": "tpr_gap", "maxIncrease": 0.05},
                {"name": "accuracy", "metric": "accuracy", "maxDecrease": 0.05},
            ],
        },
    }
    base.update(overrides)
    return base


GROUPS = {("F", "old"): 0.15, ("F", "young"): 0.35, ("M", "old"): 0.15, ("M", "young"): 0.35}


def counts(per_second: float, seconds: int, tpr: Mapping[tuple[str, str], float]) -> VersionCounts:
    """Expected counts (no noise) of ``seconds`` of traffic with per-group TPRs."""
    cells = {}
    for group, share in GROUPS.items():
        n = per_second * seconds * share
        group_tpr = tpr.get(group, 0.8)
        pos, neg = n / 2, n / 2
        cells[slice_key({"sex": group[0], "age": group[1]})] = BinaryCounts(
            predictions=n,
            selected=pos * group_tpr + neg * 0.2,
            tp=pos * group_tpr,
            fn=pos * (1 - group_tpr),
            fp=neg * 0.2,
            tn=neg * 0.8,
        )
    return VersionCounts(cells=cells, requests=per_second * seconds)


@dataclass
class CannedMetrics:
    """Counts proportional to the analysis window; the candidate may carry a bias."""

    per_second: float = 1000.0
    candidate_tpr: dict[tuple[str, str], float] = field(default_factory=dict)
    broken: bool = False
    invalid: bool = False
    calls: list[QueryContext] = field(default_factory=list)

    def collect(
        self, analysis: Analysis, stable: QueryContext, candidate: QueryContext
    ) -> VersionPair:
        self.calls += [stable, candidate]
        if self.broken:
            raise MetricsError("connection refused")
        if self.invalid:
            raise InvalidQueryError("unknown template variable {{tenant}}")
        return VersionPair(
            stable=counts(self.per_second, stable.window_seconds, {}),
            candidate=counts(self.per_second, candidate.window_seconds, self.candidate_tpr),
        )


@dataclass
class World:
    """The resource, the cluster objects and the clock."""

    spec: dict[str, Any] = field(default_factory=spec)
    metrics: CannedMetrics = field(default_factory=CannedMetrics)
    workloads: FakeWorkloads = field(default_factory=FakeWorkloads)
    now: datetime = T0
    status: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    step: timedelta = timedelta(seconds=30)
    reuse_reconciler: bool = False  # as the operator does: one reconciler for every tick
    notifier: Any = None  # a fake notifier, when a test needs one
    _reconciler: Reconciler | None = None

    def __post_init__(self) -> None:
        self.workloads.add_target(NS, TARGET, "model:v1", replicas=2)
        self.audit = AuditStore(self.workloads.objects)

    def router(self) -> Router:

        parsed = ModelRolloutSpec.model_validate(self.spec)
        return make_router(route_target(parsed, NS, NAME, self.owner), self.workloads.objects)

    @property
    def owner(self) -> dict[str, Any]:
        return self.rollout().owner

    def rollout(self) -> Rollout:
        return Rollout(NS, NAME, "uid-1", 1, self.spec, self.status, self.annotations)

    def dependencies(self) -> Dependencies:
        objects = self.workloads.objects

        def router_for(
            parsed: ModelRolloutSpec, ns: str, name: str, owner: Mapping[str, Any]
        ) -> Router:

            return make_router(route_target(parsed, ns, name, owner), objects)

        return Dependencies(
            workloads=self.workloads,
            router_for=router_for,
            metrics_for=lambda _spec: self.metrics,
            audit=self.audit,
            **({"notifier": self.notifier} if self.notifier is not None else {}),
        )

    def reconciler(self) -> Reconciler:
        if not self.reuse_reconciler:
            return Reconciler(self.dependencies())
        if self._reconciler is None:
            self._reconciler = Reconciler(self.dependencies())
        return self._reconciler

    def tick(self, times: int = 1) -> Result:
        result = None
        for _ in range(times):
            result = self.reconciler().reconcile(self.rollout(), self.now)
            self.status = copy.deepcopy(result.status)
            self.events.extend((e.kind, e.reason, e.message) for e in result.events)
            self.now += self.step
        assert result is not None
        return result

    def until(self, predicate: Callable[[World], bool], limit: int = 100) -> None:
        for _ in range(limit):
            if predicate(self):
                return
            self.tick()
        raise AssertionError(f"never reached; phase {self.status.get('phase')}: {self.status}")

    def until_phase(self, *phases: str, limit: int = 100) -> None:
        self.until(lambda w: w.status.get("phase") in phases, limit)

    def act(self, action: str, request_id: str, **person: str) -> None:
        body = {"action": action, "id": request_id, **person}
        self.annotations[ACTION_ANNOTATION] = json.dumps(body)

    def new_revision(self, image: str = "model:v2") -> None:
        self.workloads.set_image(NS, TARGET, image)
        self.workloads.settle(NS, TARGET)

    def deployment(self, name: str) -> dict[str, Any]:
        return self.workloads.objects.stored("apps/v1", "Deployment", NS, name)

    def weights(self) -> tuple[int, int, int]:
        live = self.router().get_weights()
        assert live is not None
        return live.primary, live.canary, live.mirror_percent

    def audit_ok(self) -> bool:
        records = self.audit.read_records(NS, NAME)
        return verify_chain(records, expected_head=self.status.get("auditHead")).ok
