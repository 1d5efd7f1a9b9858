"""Carry out the planner's writes, and tell a person's problem from a passing one.

API trouble that retrying fixes (a conflict, an unreachable server) propagates and the
handler backs off. Trouble only a person can fix (RBAC forbids a verb, a CRD is missing, an
object belongs to someone else, a route that cannot be written) becomes ``NeedsPersonError`` with
the fix in its message, shown as the ``Blocked`` condition and a Warning Event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fairshift.api.names import primary_name
from fairshift.api.spec import ModelRolloutSpec
from fairshift.executing.ports import Workloads
from fairshift.k8s.errors import Forbidden, Invalid, NotOwned, UnknownKind, Unsupported
from fairshift.planning.plan import (
    EnsureFallbackService,
    EnsurePrimary,
    EnsureServices,
    LabelCandidate,
    PromoteTemplate,
    RestoreLastGood,
    ScaleCandidate,
    ScalePrimary,
    SetTraffic,
    Write,
)
from fairshift.routing.base import Router, RoutingError

FIXES: dict[type[Exception], str] = {
    Forbidden: "grant the operator's ServiceAccount this verb (see the chart's RBAC values)",
    UnknownKind: "install the CRD of this kind (Gateway API or Istio) or choose another router",
    NotOwned: "delete or rename the object, or point the rollout at another name",
    Unsupported: "change the workload as the message says",
    Invalid: "the API server refused the object; fix the field it names",
    RoutingError: "fix the routing as the message says",
}


PERSON_PROBLEMS = tuple(FIXES)


class NeedsPersonError(RuntimeError):
    """A write that retrying will not fix; the message says what to do."""


def needs_person(error: Exception, doing: str) -> NeedsPersonError:
    """``error`` with the fix a person should make."""
    fix = next(text for kind, text in FIXES.items() if isinstance(error, kind))
    return NeedsPersonError(f"{doing} failed: {error}; {fix}")


def perform(
    workloads: Workloads,
    router: Router,
    spec: ModelRolloutSpec,
    namespace: str,
    owner: Mapping[str, Any],
    write: Write,
) -> None:
    """Do one write; a person's problem becomes ``NeedsPersonError``."""
    try:
        dispatch(workloads, router, spec, namespace, owner, write)
    except PERSON_PROBLEMS as error:
        raise needs_person(error, describe(write)) from error


def dispatch(
    workloads: Workloads,
    router: Router,
    spec: ModelRolloutSpec,
    namespace: str,
    owner: Mapping[str, Any],
    write: Write,
) -> None:
    target = spec.target_ref.name
    if isinstance(write, SetTraffic):
        router.set_weights(write.weights)
    elif isinstance(write, ScaleCandidate):
        workloads.scale(namespace, target, write.replicas)
    elif isinstance(write, ScalePrimary):
        workloads.scale(namespace, primary_name(target), write.replicas)
    elif isinstance(write, PromoteTemplate):
        workloads.promote_template(namespace, target, write.template)
    elif isinstance(write, EnsurePrimary):
        workloads.ensure_primary(namespace, target, write.template, write.replicas, [owner])
    elif isinstance(write, EnsureServices):
        workloads.ensure_services(
            namespace,
            str(owner["name"]),
            spec.service.port,
            spec.service.target_port,
            write.selector,
            [owner],
            shared=write.shared,
        )
    elif isinstance(write, EnsureFallbackService):
        assert spec.fallback_ref is not None  # planned only with a fallbackRef
        workloads.ensure_fallback_service(
            namespace,
            str(owner["name"]),
            spec.fallback_ref.name,
            spec.service.port,
            spec.fallback_ref.target_port or spec.service.target_port,
            [owner],
        )
    elif isinstance(write, LabelCandidate):
        workloads.label_candidate(namespace, target)
    elif isinstance(write, RestoreLastGood):
        workloads.restore_last_good(namespace, target)


def describe(write: Write) -> str:
    """A few words on a write, for a person."""
    if isinstance(write, SetTraffic):
        w = write.weights
        fallback = f", fallback {w.fallback}%" if w.fallback else ""
        return f"routing {w.primary}/{w.canary} (mirror {w.mirror_percent}%{fallback})"
    if isinstance(write, EnsureFallbackService):
        return "making the fallback's Service"
    if isinstance(write, ScaleCandidate):
        return f"scaling the candidate to {write.replicas}"
    return type(write).__name__
