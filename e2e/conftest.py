"""pytest fixtures for the fairshift end-to-end suite (see e2e/README.md).

Session fixtures
  ``e2e_cluster``  a :class:`Cluster`: brought up with ``e2e/cluster.sh up`` unless
                   ``FAIRSHIFT_E2E_KUBECONFIG`` points at a running cluster (then Prometheus
                   comes from ``FAIRSHIFT_PROMETHEUS_URL`` / ``FAIRSHIFT_PROMETHEUS_SD_DIR``).
                   A cluster this fixture started is brought down at the end of the session
                   unless ``FAIRSHIFT_E2E_KEEP_UP=1``.
  ``kubectl``      :class:`e2e.helpers.Kubectl` with the admin kubeconfig.

Per-test fixtures
  ``namespace``    a fresh namespace (name derived from the test), deleted afterwards.
  ``k``            ``kubectl`` bound to that namespace.
  ``prometheus``   :class:`e2e.helpers.Prometheus`; file-sd targets the test added are
                   removed afterwards.
  ``metrics_server`` factory: ``metrics_server(body)`` starts a
                   :class:`e2e.helpers.MetricsServer`, stopped afterwards.

Every test in this directory must carry ``pytest.mark.e2e`` (``pytestmark = pytest.mark.e2e``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from e2e.helpers import (
    Kubectl,
    MetricsServer,
    Prometheus,
    cluster_env,
    cluster_sh,
    dns_name,
    wait_for,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "e2e: end-to-end test against a real control plane and Prometheus (e2e/cluster.sh)",
    )


@dataclass
class Cluster:
    """What the suite needs to know about the running cluster."""

    kubeconfig: str
    kubectl: Kubectl
    prometheus_url: str
    prometheus_sd_dir: str | None
    run_dir: str | None
    bin_dir: str | None
    started_here: bool

    def env(self) -> dict[str, str]:
        """Environment for subprocesses (the operator, model servers) using this cluster."""
        env = {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "FAIRSHIFT_PROMETHEUS_URL": self.prometheus_url,
        }
        if self.bin_dir:
            env["FAIRSHIFT_E2E_BIN"] = self.bin_dir
            env["PATH"] = self.bin_dir + os.pathsep + env.get("PATH", "")
        if self.prometheus_sd_dir:
            env["FAIRSHIFT_PROMETHEUS_SD_DIR"] = self.prometheus_sd_dir
        return env


@pytest.fixture(scope="session")
def e2e_cluster() -> Iterator[Cluster]:
    external = os.environ.get("FAIRSHIFT_E2E_KUBECONFIG")
    started = False
    if external:
        env = {
            "FAIRSHIFT_PROMETHEUS_URL": os.environ.get(
                "FAIRSHIFT_PROMETHEUS_URL", "http://127.0.0.1:19090"
            ),
            "FAIRSHIFT_PROMETHEUS_SD_DIR": os.environ.get("FAIRSHIFT_PROMETHEUS_SD_DIR", ""),
            "FAIRSHIFT_E2E_RUN": os.environ.get("FAIRSHIFT_E2E_RUN", ""),
            "FAIRSHIFT_E2E_BIN": os.environ.get("FAIRSHIFT_E2E_BIN", ""),
        }
        kubeconfig = external
    else:
        cluster_sh("up")
        started = True
        env = cluster_env()
        kubeconfig = env["KUBECONFIG"]
    kubectl = Kubectl(kubeconfig)
    wait_for(
        lambda: kubectl.run("get", "--raw", "/readyz", check=False).returncode == 0,
        timeout=120,
        message="kube-apiserver /readyz",
    )
    cluster = Cluster(
        kubeconfig=kubeconfig,
        kubectl=kubectl,
        prometheus_url=env["FAIRSHIFT_PROMETHEUS_URL"],
        prometheus_sd_dir=env.get("FAIRSHIFT_PROMETHEUS_SD_DIR") or None,
        run_dir=env.get("FAIRSHIFT_E2E_RUN") or None,
        bin_dir=env.get("FAIRSHIFT_E2E_BIN") or None,
        started_here=started,
    )
    try:
        yield cluster
    finally:
        if started and os.environ.get("FAIRSHIFT_E2E_KEEP_UP") != "1":
            cluster_sh("down")


@pytest.fixture(scope="session")
def kubectl(e2e_cluster: Cluster) -> Kubectl:
    return e2e_cluster.kubectl


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kubectl: Kubectl) -> Iterator[str]:
    """A namespace for this test only; deleted (without waiting) afterwards."""
    name = f"{dns_name(request.node.name, 40)}-{secrets.token_hex(3)}"
    kubectl.create(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {"fairshift.dev/e2e": "true"}},
        }
    )
    # pods can only be created once the ServiceAccount controller made "default"
    wait_for(
        lambda: kubectl.get("serviceaccount", "default", namespace=name),
        timeout=60,
        message=f"default ServiceAccount in {name}",
    )
    try:
        yield name
    finally:
        if os.environ.get("FAIRSHIFT_E2E_KEEP_NAMESPACES") != "1":
            kubectl.run(
                "delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False
            )


@pytest.fixture
def k(kubectl: Kubectl, namespace: str) -> Kubectl:
    """kubectl whose default namespace is the test's namespace."""
    return kubectl.ns(namespace)


@pytest.fixture(scope="session")
def prometheus_server(e2e_cluster: Cluster) -> Prometheus:
    prom = Prometheus(e2e_cluster.prometheus_url, e2e_cluster.prometheus_sd_dir)
    wait_for(prom.ready, timeout=60, message=f"prometheus at {prom.url}")
    return prom


@pytest.fixture
def prometheus(prometheus_server: Prometheus) -> Iterator[Prometheus]:
    """Prometheus helper; scrape targets added through it are removed after the test."""
    prom = Prometheus(prometheus_server.url, prometheus_server.sd_dir)
    try:
        yield prom
    finally:
        prom.remove_all_added()


@pytest.fixture
def metrics_server() -> Iterator[Callable[..., MetricsServer]]:
    """Factory: ``metrics_server("name_total 1\\n")`` -> a started MetricsServer."""
    servers: list[MetricsServer] = []

    def start(body: str | Callable[[], str]) -> MetricsServer:
        server = MetricsServer(body).start()
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for s in servers:
            s.stop()


@pytest.fixture
def tmp_kubeconfig_dir(tmp_path: Path) -> Path:
    """A private directory for derived kubeconfigs (e.g. Kubectl.with_token)."""
    d = tmp_path / "kubeconfigs"
    d.mkdir()
    return d
