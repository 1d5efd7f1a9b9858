"""Collect the metrics of a due analysis window and let the engine judge them.

Whatever goes wrong becomes an ``AnalysisResult`` with an error the planner counts and
shows: an unreachable Prometheus, a query that cannot run, or an engine that could not judge
the numbers. A crash is never a verdict, and never a stuck rollout.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from fairshift.api.names import primary_name, service_names
from fairshift.api.spec import ModelRolloutSpec
from fairshift.engine.gates import evaluate, evidence
from fairshift.engine.guard import GuardPolicy, GuardState, plan_guard
from fairshift.executing.ports import Dependencies
from fairshift.metrics.source import InvalidQueryError, MetricsError, QueryContext, Version
from fairshift.planning.observation import AnalysisResult, AnalysisWindow, GuardResult, GuardWindow

log = logging.getLogger("fairshift.analysis")


def context(
    spec: ModelRolloutSpec, namespace: str, rollout: str, version: Version, window: AnalysisWindow
) -> QueryContext:
    target = spec.target_ref.name
    services = service_names(rollout)
    return QueryContext(
        namespace=namespace,
        rollout=rollout,
        deployment=primary_name(target) if version == "stable" else target,
        version=version,
        service=services.primary if version == "stable" else services.canary,
        start=min(window.start, window.end),
        end=window.end,
    )


def analyse(
    deps: Dependencies,
    spec: ModelRolloutSpec,
    namespace: str,
    rollout: str,
    window: AnalysisWindow | None,
    carried: Mapping[str, float] | None = None,
) -> AnalysisResult | None:
    """Counts of both versions over ``window``, judged; None when nothing is due.

    ``carried`` is the candidate revision's evidence from its closed analysis windows: the
    whole lifecycle shares one false-rollback budget.
    """
    if window is None or spec.analysis is None:
        return None
    source = deps.metrics_for(spec)
    try:
        counts = source.collect(
            spec.analysis,
            context(spec, namespace, rollout, "stable", window),
            context(spec, namespace, rollout, "candidate", window),
        )
    except InvalidQueryError as error:
        return AnalysisResult(window, error=str(error), error_kind="invalid-query")
    except MetricsError as error:
        deps.telemetry.count_error(namespace, rollout, "metrics")
        return AnalysisResult(window, error=str(error), error_kind="metrics")
    try:
        evaluation = evaluate(spec.analysis, counts.stable, counts.candidate, carried=carried)
    except Exception as error:
        log.exception("the engine could not judge %s/%s", namespace, rollout)
        deps.telemetry.count_error(namespace, rollout, "engine")
        return AnalysisResult(window, error=f"{type(error).__name__}: {error}", error_kind="engine")
    deps.telemetry.observe_gates(namespace, rollout, [evidence(c) for c in evaluation.cells])
    return AnalysisResult(window, evaluation=evaluation)


def look(
    deps: Dependencies,
    spec: ModelRolloutSpec,
    namespace: str,
    rollout: str,
    window: GuardWindow,
    state: Mapping[str, Mapping[str, float]],
) -> GuardResult:
    """One guard look: the live model since the last look against the frozen reference.

    Both spans are read from the primary Deployment: before the promotion it served the
    stable model (the reference), since then the promoted one.
    """
    assert spec.analysis is not None
    services = service_names(rollout)
    primary = primary_name(spec.target_ref.name)

    def span(version: Version, start: datetime, end: datetime) -> QueryContext:
        return QueryContext(namespace, rollout, primary, version, services.primary, start, end)

    try:
        counts = deps.metrics_for(spec).collect(
            spec.analysis,
            span("stable", window.reference_start, window.reference_end),
            span("candidate", window.start, window.end),
        )
    except MetricsError as error:
        deps.telemetry.count_error(namespace, rollout, "metrics")
        return GuardResult(window, error=str(error))
    policy = GuardPolicy(
        look_seconds=spec.guard.interval_seconds,
        breach_days=spec.guard.false_alarm_days,
        warning_days=spec.guard.warning_days,
    )
    try:
        plan = plan_guard(spec.analysis.gates, spec.analysis.slices, counts.stable, policy)
        return GuardResult(window, look=plan.look(GuardState.from_dict(state), counts.candidate))
    except Exception as error:
        log.exception("the guard could not judge %s/%s", namespace, rollout)
        deps.telemetry.count_error(namespace, rollout, "engine")
        return GuardResult(window, error=f"{type(error).__name__}: {error}")
