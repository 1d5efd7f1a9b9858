"""The few API reads the simulated data plane needs, as plain JSON dicts.

Reads go through the official client with ``_preload_content=False`` (no model classes): the
data plane polls every second and only needs a handful of fields.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

HTTPROUTE = ("gateway.networking.k8s.io", "v1", "httproutes")


class KubeReader:
    """Deployments, Services and HTTPRoutes of one namespace."""

    def __init__(self, kubeconfig: str | None, namespace: str) -> None:
        self.namespace = namespace
        self.api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        self.apps = client.AppsV1Api(self.api)
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    def deployments(self) -> list[dict[str, Any]]:
        response: Any = self.apps.list_namespaced_deployment(
            self.namespace, _preload_content=False, _request_timeout=10
        )
        items: list[dict[str, Any]] = json.loads(response.data)["items"]
        return items

    def service(self, name: str) -> dict[str, Any] | None:
        try:
            response: Any = self.core.read_namespaced_service(
                name, self.namespace, _preload_content=False, _request_timeout=10
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        found: dict[str, Any] = json.loads(response.data)
        return found

    def httproute(self, name: str) -> dict[str, Any] | None:
        group, version, plural = HTTPROUTE
        try:
            response: Any = self.custom.get_namespaced_custom_object(
                group,
                version,
                self.namespace,
                plural,
                name,
                _preload_content=False,
                _request_timeout=10,
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        found: dict[str, Any] = json.loads(response.data)
        return found

    def close(self) -> None:
        self.api.close()
