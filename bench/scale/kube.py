"""The local e2e cluster as the benchmark uses it: ``e2e/cluster.sh`` and a few API calls.

:func:`cluster_env` reads ``e2e/cluster.sh env``; :func:`cluster_up` reports whether the cluster
answers; :class:`Kube` creates, lists, patches and deletes the benchmark's objects through the
official client with plain JSON (no model classes), every call with a timeout.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO / "e2e" / "cluster.sh"
CRDS = REPO / "crds"
GROUP, VERSION, PLURAL = "fairshift.io", "v1alpha1", "modelrollouts"
TIMEOUT = 30.0


def cluster_sh(command: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
    """Run ``e2e/cluster.sh command`` and return what it did (never raises on exit codes)."""
    return subprocess.run(
        ["bash", str(CLUSTER_SH), command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cluster_env() -> dict[str, str]:
    """The ``export NAME='value'`` lines of ``e2e/cluster.sh env`` as a dict."""
    found = {}
    for line in cluster_sh("env", timeout=60).stdout.splitlines():
        match = re.match(r"export (\w+)='([^']*)'", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def cluster_up() -> bool:
    """Whether the API server and Prometheus of the e2e cluster answer."""
    return cluster_sh("status", timeout=60).returncode == 0


def body_of(response: Any) -> Any:
    return json.loads(response.data)


class Kube:
    """The few API operations of the benchmark, on one kubeconfig."""

    def __init__(self, kubeconfig: str) -> None:
        self.api = config.new_client_from_config(config_file=kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.extensions = client.ApiextensionsV1Api(self.api)

    def close(self) -> None:
        self.api.close()

    # cluster-scoped ------------------------------------------------------------------------

    def crd_installed(self) -> bool:
        try:
            self.extensions.read_custom_resource_definition(
                f"{PLURAL}.{GROUP}", _preload_content=False, _request_timeout=TIMEOUT
            )
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def ensure_node(self, body: Mapping[str, Any]) -> bool:
        """Create the node if absent; set its capacity and only its own taint; True if new.

        The API server's admission adds ``node.kubernetes.io/not-ready`` to a new node, and
        the e2e controller manager runs without the node lifecycle controller that would
        remove it once kwok reports Ready; so the taints are set here.
        """
        name = body["metadata"]["name"]
        created = False
        status = copy.deepcopy(dict(body["status"]))
        try:
            found = self.core.read_node(name, _preload_content=False, _request_timeout=TIMEOUT)
        except ApiException as error:
            if error.status != 404:
                raise
            self.core.create_node(dict(body), _preload_content=False, _request_timeout=TIMEOUT)
            created = True
        else:  # never shrink a kept node: an earlier, larger run's pods still live there
            kept = json.loads(found.data).get("status", {}).get("capacity", {}).get("pods", "0")
            for field in ("capacity", "allocatable"):
                wanted = int(status[field]["pods"])
                status[field]["pods"] = str(max(wanted, int(kept)))
        self.core.patch_node_status(
            name, {"status": status}, _preload_content=False, _request_timeout=TIMEOUT
        )
        self.core.patch_node(
            name,
            {"spec": {"taints": body["spec"]["taints"]}},
            _preload_content=False,
            _request_timeout=TIMEOUT,
        )
        return created

    def node_ready(self, name: str) -> bool:
        try:
            node = body_of(
                self.core.read_node(name, _preload_content=False, _request_timeout=TIMEOUT)
            )
        except ApiException:
            return False
        conditions = node.get("status", {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def delete_node(self, name: str) -> None:
        try:
            self.core.delete_node(name, _preload_content=False, _request_timeout=TIMEOUT)
        except ApiException as error:
            if error.status != 404:
                raise

    def ensure_namespace(self, body: Mapping[str, Any]) -> None:
        try:
            self.core.create_namespace(dict(body), _preload_content=False, _request_timeout=TIMEOUT)
        except ApiException as error:
            if error.status != 409:
                raise

    def labelled_namespaces(self, label: str, value: str) -> list[str]:
        response = self.core.list_namespace(
            label_selector=f"{label}={value}", _preload_content=False, _request_timeout=TIMEOUT
        )
        return [item["metadata"]["name"] for item in body_of(response)["items"]]

    def namespace_exists(self, name: str) -> bool:
        try:
            self.core.read_namespace(name, _preload_content=False, _request_timeout=TIMEOUT)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def delete_namespace(self, name: str) -> None:
        try:
            self.core.delete_namespace(name, _preload_content=False, _request_timeout=TIMEOUT)
        except ApiException as error:
            if error.status != 404:
                raise

    def count(self, kind: str) -> int:
        """How many objects of ``kind`` (pods, deployments, ...) exist in the cluster."""
        listing = {
            "pods": self.core.list_pod_for_all_namespaces,
            "deployments": self.apps.list_deployment_for_all_namespaces,
            "replicasets": self.apps.list_replica_set_for_all_namespaces,
            "services": self.core.list_service_for_all_namespaces,
        }[kind]
        response = listing(_preload_content=False, _request_timeout=TIMEOUT, limit=1)
        found = body_of(response)
        remaining = int(found.get("metadata", {}).get("remainingItemCount") or 0)
        return len(found["items"]) + remaining

    # namespaced ----------------------------------------------------------------------------

    def create_deployment(self, namespace: str, body: Mapping[str, Any]) -> None:
        try:
            self.apps.create_namespaced_deployment(
                namespace, dict(body), _preload_content=False, _request_timeout=TIMEOUT
            )
        except ApiException as error:
            if error.status != 409:
                raise

    def patch_deployment(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        self.apps.patch_namespaced_deployment(
            name, namespace, dict(patch), _preload_content=False, _request_timeout=TIMEOUT
        )

    def deployments(self, namespace: str) -> dict[str, dict[str, Any]]:
        response = self.apps.list_namespaced_deployment(
            namespace, _preload_content=False, _request_timeout=TIMEOUT
        )
        return {item["metadata"]["name"]: item for item in body_of(response)["items"]}

    def create_rollout(self, namespace: str, body: Mapping[str, Any]) -> None:
        try:
            self.custom.create_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                dict(body),
                _preload_content=False,
                _request_timeout=TIMEOUT,
            )
        except ApiException as error:
            if error.status != 409:
                raise

    def rollouts(self, namespace: str) -> dict[str, dict[str, Any]]:
        response = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, _preload_content=False, _request_timeout=TIMEOUT
        )
        return {item["metadata"]["name"]: item for item in body_of(response)["items"]}

    def audit_sizes(self, namespace: str) -> list[int]:
        """Bytes of ``records.jsonl`` in each audit ConfigMap of ``namespace``."""
        response = self.core.list_namespaced_config_map(
            namespace, _preload_content=False, _request_timeout=TIMEOUT
        )
        return [
            len((item.get("data") or {}).get("records.jsonl", "").encode())
            for item in body_of(response)["items"]
            if item["metadata"]["name"].endswith("-audit")
        ]

    def set_interval(self, namespace: str, name: str, interval: str) -> None:
        """Change a rollout's ``analysis.interval`` (a spec change; the rollout goes on)."""
        self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"spec": {"analysis": {"interval": interval}}},
            _preload_content=False,
            _request_timeout=TIMEOUT,
        )

    def drop_finalizers(self, namespace: str, name: str) -> None:
        """Let a rollout go without an operator (kopf's finalizer would wait for one)."""
        try:
            self.custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"metadata": {"finalizers": None}},
                _preload_content=False,
                _request_timeout=TIMEOUT,
            )
        except ApiException as error:
            if error.status != 404:
                raise
