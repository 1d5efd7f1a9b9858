"""The names fairshift gives things: objects it creates, labels and annotations it writes.

Every other module takes a name from here rather than building it by hand, so the operator,
the kubectl plugin, the chart and the tests agree on them.
"""

from __future__ import annotations

from dataclasses import dataclass

DOMAIN = "fairshift.io"
ACTION_ANNOTATION = f"{DOMAIN}/action"  # a manual-action request the operator consumes once
ROLE_LABEL = f"{DOMAIN}/role"  # primary | candidate, on pod templates
ROLLOUT_LABEL = f"{DOMAIN}/rollout"  # the rollout an object belongs to
# on the primary Deployment: the pod template it ran before the last promotion (JSON), so a
# guarded model can be switched back to the last known good revision
LAST_GOOD_ANNOTATION = f"{DOMAIN}/last-good-template"


@dataclass(frozen=True)
class ServiceNames:
    """The Services of a rollout; ``shared`` only exists for the replicas router,
    ``fallback`` only when the spec names a ``fallbackRef``."""

    primary: str
    canary: str
    shared: str
    fallback: str


def primary_name(target_name: str) -> str:
    """The name of the primary Deployment made from ``target_name``."""
    return f"{target_name}-primary"


def service_names(rollout: str) -> ServiceNames:
    """The names of the Services of ``rollout``."""
    return ServiceNames(
        primary=f"{rollout}-primary",
        canary=f"{rollout}-canary",
        shared=rollout,
        fallback=f"{rollout}-fallback",
    )


def audit_configmap_name(rollout: str) -> str:
    """The ConfigMap that holds the audit chain of ``rollout``."""
    return f"{rollout}-audit"
