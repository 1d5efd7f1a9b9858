"""The operator's own Prometheus metrics: rollouts, weights, gate estimates, decisions, errors.

One :class:`OperatorMetrics` owns a dedicated ``CollectorRegistry`` (passed in, or a fresh one
from :func:`new_registry`),
so nothing is registered at import time and tests can build as many as they like. The
reconciler calls the small ``observe_*``/``count_*`` methods; the handlers serve
``registry`` over HTTP. Series:

* ``fairshift_rollouts{phase}``: rollouts per phase (every phase is present, zeros included);
* ``fairshift_canary_weight{namespace,rollout}``: percent of traffic on the candidate;
* ``fairshift_fallback_weight{namespace,rollout}``: percent of traffic on ``spec.fallbackRef``
  (a degrade or a kill with a fallback; 0 otherwise);
* ``fairshift_gate_estimate|lower|upper{namespace,rollout,gate,slice}``: the harm estimate of
  each gate and slice with its confidence bounds (stale gate/slice pairs are removed);
* ``fairshift_decisions_total{action,reason}``: decisions taken (reasons are short codes);
* ``fairshift_analysis_errors_total{namespace,rollout,kind}``: failed analyses by kind;
* ``fairshift_evidence_records_total{sink,result}``: audit records handed to an evidence sink
  (``mlflow``), by result: ``delivered``, ``failed`` (after its retries), ``dropped`` (queue
  full) or ``skipped`` (about no candidate);
* ``fairshift_reconcile_duration_seconds``: time per reconcile;
* ``fairshift_looks_due_total`` and ``fairshift_looks_done_total``: looks at a rollout that
  came due (its plan's next check passed, a person changed it, or it was new here) and looks
  done; ``rate(due) - rate(done)`` is how fast the backlog grows;
  ``fairshift_schedule_lateness_seconds`` (how late each look started) and
  ``fairshift_oldest_overdue_seconds`` (the age of the oldest look owed);
* ``fairshift_prometheus_queries_total{outcome}`` and
  ``fairshift_prometheus_query_duration_seconds``: queries to Prometheus (``ok``/``error``);
* sharded replicas only: ``fairshift_shards_held`` (shards this replica works),
  ``fairshift_rollouts_owned`` (rollouts in them) and
  ``fairshift_shard_lease_changes_total{change}`` (``acquired``, ``taken``, ``lost``,
  ``released``).

``forget(namespace, rollout)`` removes every series of a deleted rollout.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from enum import Enum
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from fairshift.api.status import Health, Phase

RolloutId = tuple[str, str]
GateSeries = tuple[str, str]  # (gate, slice)


class GateEvidenceLike(Protocol):
    """What ``observe_gates`` reads from each piece of evidence (``api.status.GateEvidence``)."""

    @property
    def gate(self) -> str: ...

    @property
    def slice(self) -> str: ...

    @property
    def estimate(self) -> float | None: ...

    @property
    def lower(self) -> float | None: ...

    @property
    def upper(self) -> float | None: ...


HEALTHS = tuple(h.value for h in Health)


def new_registry() -> CollectorRegistry:
    """A fresh registry for the operator's metrics (never prometheus_client's global one)."""
    return CollectorRegistry()


def text_of(value: str | Enum) -> str:
    """The wire text of a string or a string enum (``Phase.CANARY`` -> ``Canary``)."""
    return str(value.value) if isinstance(value, Enum) else str(value)


class OperatorMetrics:
    """The operator's metrics, registered in ``registry`` (a new one when not given)."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.registry = new_registry() if registry is None else registry
        self._clock = clock
        self._lock = threading.Lock()
        self._phases: dict[RolloutId, str] = {}
        self._gate_series: dict[RolloutId, set[GateSeries]] = {}
        self._error_kinds: dict[RolloutId, set[str]] = {}
        self._published_phases: set[str] = {phase.value for phase in Phase}
        rollout = ["namespace", "rollout"]
        gate = [*rollout, "gate", "slice"]
        registry_ = self.registry
        self.rollouts = Gauge(
            "fairshift_rollouts", "ModelRollouts by phase.", ["phase"], registry=registry_
        )
        self.canary_weight = Gauge(
            "fairshift_canary_weight",
            "Percent of live traffic routed to the candidate.",
            rollout,
            registry=registry_,
        )
        self.fallback_weight = Gauge(
            "fairshift_fallback_weight",
            "Percent of live traffic routed to the fallback (a degrade, or a kill).",
            rollout,
            registry=registry_,
        )
        self.guard_health = Gauge(
            "fairshift_guard_health",
            "1 for the guarded model's current health (Healthy, Warning, Breached, Degraded).",
            [*rollout, "health"],
            registry=registry_,
        )
        self.guard_breaches = Gauge(
            "fairshift_guard_breaches",
            "Guard breaches of the promoted model since its promotion.",
            rollout,
            registry=registry_,
        )
        self.gate_estimate = Gauge(
            "fairshift_gate_estimate",
            "Estimated harm of the candidate for a gate and slice (positive is worse).",
            gate,
            registry=registry_,
        )
        self.gate_lower = Gauge(
            "fairshift_gate_lower", "Lower confidence bound of the harm.", gate, registry=registry_
        )
        self.gate_upper = Gauge(
            "fairshift_gate_upper", "Upper confidence bound of the harm.", gate, registry=registry_
        )
        self.decisions = Counter(
            "fairshift_decisions",
            "Decisions taken, by action and reason.",
            ["action", "reason"],
            registry=registry_,
        )
        self.analysis_errors = Counter(
            "fairshift_analysis_errors",
            "Analyses that could not complete, by kind.",
            [*rollout, "kind"],
            registry=registry_,
        )
        self.evidence_records = Counter(
            "fairshift_evidence_records",
            "Audit records handed to an evidence sink (MLflow), by result.",
            ["sink", "result"],
            registry=registry_,
        )
        self.reconcile_duration = Histogram(
            "fairshift_reconcile_duration_seconds",
            "Time spent in one reconcile of one rollout.",
            registry=registry_,
        )
        self.lateness = Histogram(
            "fairshift_schedule_lateness_seconds",
            "How late a rollout was looked at after its plan asked (0: on time).",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
            registry=registry_,
        )
        self.oldest_overdue = Gauge(
            "fairshift_oldest_overdue_seconds",
            "Age of the oldest look a rollout's plan asked for that has not happened yet.",
            registry=registry_,
        )
        self.looks_due = CountedBy(
            "fairshift_looks_due",
            "Looks at a rollout that came due: its plan's next check passed (an analysis, a "
            "guard look, a route to read back, a resting rollout's check), a person changed it, "
            "or it was new to this replica. Counted when due, whether or not it has started.",
            registry_,
        )
        self.looks_done = CountedBy(
            "fairshift_looks_done",
            "Looks at a rollout done (a failed look stays due and is retried). "
            "rate(fairshift_looks_due_total) - rate(fairshift_looks_done_total) is how fast "
            "the backlog grows.",
            registry_,
        )
        self.prometheus_queries = Counter(
            "fairshift_prometheus_queries",
            "Queries sent to Prometheus, by outcome (ok or error).",
            ["outcome"],
            registry=registry_,
        )
        self.prometheus_query_duration = Histogram(
            "fairshift_prometheus_query_duration_seconds",
            "Time per Prometheus query.",
            registry=registry_,
        )
        self.shards = Gauge(
            "fairshift_shards_held",
            "Shards whose Lease this replica holds and works (sharded replicas only).",
            registry=registry_,
        )
        self.rollouts_owned = Gauge(
            "fairshift_rollouts_owned",
            "Rollouts in the shards this replica works (sharded replicas only).",
            registry=registry_,
        )
        self.shard_lease_changes = Counter(
            "fairshift_shard_lease_changes",
            "Shard Leases acquired (free), taken (expired from another replica), lost or "
            "released by this replica.",
            ["change"],
            registry=registry_,
        )
        with self._lock:
            self._publish_phases()

    def shard_changed(self, change: str, shard: int) -> None:
        """Count one change of a shard Lease (``k8s.sharding.ShardEvents``)."""
        self.shard_lease_changes.labels(change).inc()

    def shards_held(self, count: int) -> None:
        self.shards.set(count)

    def track_rollouts_owned(self, owned: Callable[[], int]) -> None:
        """The rollouts this replica works, counted when Prometheus scrapes."""
        self.rollouts_owned.set_function(owned)

    def observe_rollout(
        self,
        namespace: str,
        rollout: str,
        phase: str | Enum,
        canary_weight: float,
        fallback_weight: float = 0,
    ) -> None:
        """Record a rollout's phase, canary and fallback weights (call on every reconcile)."""
        with self._lock:
            self._phases[(namespace, rollout)] = text_of(phase)
            self._publish_phases()
        self.canary_weight.labels(namespace, rollout).set(canary_weight)
        self.fallback_weight.labels(namespace, rollout).set(fallback_weight)

    def observe_guard(
        self, namespace: str, rollout: str, health: str | None, breaches: int
    ) -> None:
        """The guard's health as a state set (one series per health, the current one 1);
        ``health`` None when the rollout is not guarded (its series are removed)."""
        for state in HEALTHS:
            if health is None:
                remove_quietly(self.guard_health, (namespace, rollout, state))
            else:
                self.guard_health.labels(namespace, rollout, state).set(int(state == health))
        if health is None:
            remove_quietly(self.guard_breaches, (namespace, rollout))
        else:
            self.guard_breaches.labels(namespace, rollout).set(breaches)

    def observe_gates(
        self, namespace: str, rollout: str, evidence: Iterable[GateEvidenceLike]
    ) -> None:
        """Publish estimates and bounds per gate and slice; drop pairs no longer reported."""
        current: set[GateSeries] = set()
        for item in evidence:
            series = (item.gate, item.slice)
            current.add(series)
            labels = (namespace, rollout, *series)
            for gauge, value in (
                (self.gate_estimate, item.estimate),
                (self.gate_lower, item.lower),
                (self.gate_upper, item.upper),
            ):
                if value is not None and math.isfinite(value):
                    gauge.labels(*labels).set(value)
                else:
                    remove_quietly(gauge, labels)
        with self._lock:
            stale = self._gate_series.get((namespace, rollout), set()) - current
            self._gate_series[(namespace, rollout)] = current
        for series in stale:
            self._remove_gate_series(namespace, rollout, series)

    def count_decision(self, action: str | Enum, reason: str | Enum) -> None:
        """Count one decision; ``reason`` should be a short code, not a sentence."""
        self.decisions.labels(text_of(action), text_of(reason)).inc()

    def count_evidence(self, sink: str, result: str) -> None:
        """Count one record an evidence sink delivered, failed, dropped or skipped."""
        self.evidence_records.labels(sink, result).inc()

    def count_error(self, namespace: str, rollout: str, kind: str) -> None:
        """Count one failed analysis (``kind``: e.g. ``metrics``, ``invalid-query``, ``router``)."""
        with self._lock:
            self._error_kinds.setdefault((namespace, rollout), set()).add(kind)
        self.analysis_errors.labels(namespace, rollout, kind).inc()

    def observe_query(self, seconds: float, ok: bool) -> None:
        """Record one Prometheus query (``metrics.prometheus.QueryObserver``)."""
        self.prometheus_queries.labels("ok" if ok else "error").inc()
        self.prometheus_query_duration.observe(max(0.0, seconds))

    def observe_lateness(self, seconds: float) -> None:
        self.lateness.observe(max(0.0, seconds))

    def track_overdue(self, oldest: Callable[[], float]) -> None:
        """The oldest overdue look, computed when Prometheus scrapes."""
        self.oldest_overdue.set_function(oldest)

    def track_looks(self, due: Callable[[], float], done: Callable[[], float]) -> None:
        """The looks due and done (``executing.schedule.Schedule``), read when Prometheus
        scrapes."""
        self.looks_due.read = due
        self.looks_done.read = done

    @contextmanager
    def time_reconcile(self) -> Iterator[None]:
        """Observe the duration of the block, also when it raises."""
        started = self._clock()
        try:
            yield
        finally:
            self.reconcile_duration.observe(max(0.0, self._clock() - started))

    def forget(self, namespace: str, rollout: str) -> None:
        """Remove every series of a deleted rollout (its phase no longer counts)."""
        key = (namespace, rollout)
        with self._lock:
            self._phases.pop(key, None)
            self._publish_phases()
            gate_series = self._gate_series.pop(key, set())
            error_kinds = self._error_kinds.pop(key, set())
        remove_quietly(self.canary_weight, key)
        remove_quietly(self.fallback_weight, key)
        self.observe_guard(namespace, rollout, None, 0)
        for series in gate_series:
            self._remove_gate_series(namespace, rollout, series)
        for kind in error_kinds:
            remove_quietly(self.analysis_errors, (*key, kind))

    def _publish_phases(self) -> None:
        """Set the per-phase gauge from the known rollouts (caller holds the lock)."""
        counts = dict.fromkeys(self._published_phases, 0)
        for phase in self._phases.values():
            counts[phase] = counts.get(phase, 0) + 1
        for phase, count in counts.items():
            self.rollouts.labels(phase).set(count)
        self._published_phases.update(counts)

    def _remove_gate_series(self, namespace: str, rollout: str, series: GateSeries) -> None:
        for gauge in (self.gate_estimate, self.gate_lower, self.gate_upper):
            remove_quietly(gauge, (namespace, rollout, *series))


class CountedBy(Collector):
    """A counter whose value another object keeps (read when Prometheus scrapes), as
    ``Gauge.set_function`` does for gauges: the schedule counts looks that came due at the
    moment their time passes, not when something notices."""

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self.read: Callable[[], float] = lambda: 0.0
        registry.register(self)

    def describe(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily(self.name, self.documentation)]

    def collect(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily(self.name, self.documentation, value=self.read())]


def remove_quietly(metric: Gauge | Counter, labels: tuple[str, ...]) -> None:
    """Remove a label set if present (prometheus_client raises KeyError otherwise)."""
    with suppress(KeyError):
        metric.remove(*labels)
