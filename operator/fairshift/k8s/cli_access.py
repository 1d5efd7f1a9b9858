"""What the ``fairshift`` command needs of the cluster, in one object it is given.

``RolloutAccess`` is the interface the CLI commands use (tests pass their own); ``ClusterAccess``
implements it on ``Rollouts`` and the audit ConfigMap layout of ``AuditStore``. ``connect``
builds one from a kubeconfig and also answers the namespace of the kubeconfig's context,
which is the CLI's default namespace (``default`` when the context names none).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kubernetes import config
from kubernetes.config.config_exception import ConfigException

from fairshift.k8s.auditstore import AuditStore, AuditTrail
from fairshift.k8s.client import make_kube_objects
from fairshift.k8s.objects import ObjectStore
from fairshift.k8s.rollouts import Rollouts

DEFAULT_NAMESPACE = "default"
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class RolloutAccess(Protocol):
    """ModelRollouts and their audit trails, as the CLI reads and annotates them."""

    def get_rollout(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The ModelRollout, or None when it does not exist."""

    def list_rollouts(self, namespace: str | None) -> list[dict[str, Any]]:
        """The ModelRollouts of a namespace, or of every namespace for None."""

    def annotate(
        self,
        namespace: str,
        name: str,
        annotations: Mapping[str, str],
        resource_version: str | None = None,
    ) -> None:
        """Merge ``annotations``; with ``resource_version`` only if unchanged since (else 409)."""

    def audit_trail(self, namespace: str, name: str) -> AuditTrail:
        """The audit records of a rollout (empty when it has none yet)."""


class ClusterAccess:
    """``RolloutAccess`` on the Kubernetes API (any ``ObjectStore``)."""

    def __init__(self, objects: ObjectStore) -> None:
        self._objects = objects
        self._rollouts = Rollouts(objects)

    def get_rollout(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._rollouts.get_rollout(namespace, name)

    def list_rollouts(self, namespace: str | None) -> list[dict[str, Any]]:
        return self._rollouts.list_rollouts(namespace)

    def annotate(
        self,
        namespace: str,
        name: str,
        annotations: Mapping[str, str],
        resource_version: str | None = None,
    ) -> None:
        self._rollouts.patch_annotations(namespace, name, dict(annotations), resource_version)

    def audit_trail(self, namespace: str, name: str) -> AuditTrail:
        """One read of the ConfigMap, so records and trim marker are consistent."""
        return AuditStore(self._objects).trail(namespace, name)


@dataclass(frozen=True)
class Session:
    """A connection for one CLI invocation: the access and the default namespace."""

    access: RolloutAccess
    namespace: str


def context_namespace(
    kubeconfig: str | None = None,
    context: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> str:
    """The namespace of the (given or current) kubeconfig context, else ``default``."""
    path = kubeconfig or environ.get("KUBECONFIG") or None
    if path is not None and os.pathsep in path:
        path = path.split(os.pathsep)[0]
    try:
        contexts, current = config.list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError):
        return in_cluster_namespace(environ)
    chosen = next((c for c in contexts or [] if c.get("name") == context), None)
    chosen = chosen if context is not None else current
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else DEFAULT_NAMESPACE


def in_cluster_namespace(environ: Mapping[str, str]) -> str:
    """Inside a pod without a kubeconfig: the ServiceAccount's namespace, else ``default``."""
    if "KUBERNETES_SERVICE_HOST" not in environ:
        return DEFAULT_NAMESPACE
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE, encoding="utf-8") as handle:
            return handle.read().strip() or DEFAULT_NAMESPACE
    except OSError:
        return DEFAULT_NAMESPACE


def connect(kubeconfig: str | None, context: str | None) -> Session:
    """A session on the cluster of the kubeconfig (or the pod's ServiceAccount)."""
    access = ClusterAccess(make_kube_objects(kubeconfig, context))
    return Session(access, context_namespace(kubeconfig, context))
