"""Connecting to the API server: in-cluster credentials first, else a kubeconfig file.

Each call builds its own ``Configuration`` so nothing global is changed; the kubeconfig is
``kubeconfig`` if given, else ``$KUBECONFIG``, else ``~/.kube/config`` (the client's default).
The Kubernetes client is imported when a connection is made, not when this module is, so
commands that never talk to a cluster start quickly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from fairshift.k8s.errors import KubeError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, Configuration

    from fairshift.k8s.objects import KubeObjects


def load_configuration(
    kubeconfig: str | None = None,
    context: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Configuration:
    """Client configuration: the pod's ServiceAccount inside a cluster, else a kubeconfig."""
    from kubernetes import config
    from kubernetes.client import Configuration
    from kubernetes.config.config_exception import ConfigException

    configuration = Configuration()
    if kubeconfig is None and "KUBERNETES_SERVICE_HOST" in environ:
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except ConfigException:
            pass
        else:
            return configuration
    path = kubeconfig or environ.get("KUBECONFIG") or None
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, context=context, client_configuration=configuration
        )
    except (ConfigException, OSError) as error:
        raise KubeError(f"no usable Kubernetes credentials: {error}") from None
    return configuration


def make_api_client(
    kubeconfig: str | None = None,
    context: str | None = None,
    environ: Mapping[str, str] = os.environ,
    pool_size: int | None = None,
) -> ApiClient:
    """An ``ApiClient`` for the cluster the operator (or the CLI) talks to.

    ``pool_size`` keeps that many connections open for reuse (the client's default is five
    per CPU); a caller with more threads than that should say how many, or every connection
    beyond the pool is closed after its request and the next one opens (and handshakes) anew.
    """
    from kubernetes.client import ApiClient

    configuration = load_configuration(kubeconfig, context, environ)
    if pool_size is not None:
        configuration.connection_pool_maxsize = pool_size
    return ApiClient(configuration)


def make_kube_objects(
    kubeconfig: str | None = None,
    context: str | None = None,
    request_timeout: float = 30.0,
) -> KubeObjects:
    """``KubeObjects`` for the current cluster; discovery is lazy and cached per client."""
    from fairshift.k8s.objects import KubeObjects

    return KubeObjects.from_api_client(make_api_client(kubeconfig, context), request_timeout)
