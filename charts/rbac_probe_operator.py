"""A kopf operator that makes the Kubernetes calls fairshift makes, for charts/rbac-probe.sh.

It runs with the chart's ServiceAccount token and the kopf options the chart renders
(namespaces, peering, scanning), and for every ModelRollout it serves: creates and patches the
audit ConfigMap, a Service and a `<name>-primary` Deployment, scales it through the scale
subresource, reads the notification Secret `hooks`, posts core and events.k8s.io Events, and
writes `status.message = "probe ok"` through the status subresource (kopf also adds its
finalizer and annotations to the resource). Any 403 shows up in the log, which the script
checks.

    kopf run --standalone|--peering NAME --all-namespaces|--namespace NS... rbac_probe_operator.py
    (PROBE_NO_SCANNING=1 for the chart's --no-scanning)
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import kopf
import kubernetes


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    kubernetes.config.load_kube_config()
    settings.persistence.finalizer = "fairshift.io/finalizer"
    settings.scanning.disabled = os.environ.get("PROBE_NO_SCANNING") == "1"
    settings.posting.level = 0


def create_or_keep(create: Any, *args: Any) -> None:
    try:
        create(*args)
    except kubernetes.client.ApiException as error:
        if error.status != 409:
            raise


@kopf.on.resume("fairshift.io", "v1alpha1", "modelrollouts")
@kopf.on.create("fairshift.io", "v1alpha1", "modelrollouts")
def probe(
    name: str, namespace: str, uid: str, patch: kopf.Patch, logger: kopf.Logger, **_: Any
) -> None:
    core = kubernetes.client.CoreV1Api()
    apps = kubernetes.client.AppsV1Api()
    events = kubernetes.client.EventsV1Api()

    audit = {"metadata": {"name": f"{name}-audit"}, "data": {"chain": ""}}
    create_or_keep(core.create_namespaced_config_map, namespace, audit)
    core.patch_namespaced_config_map(f"{name}-audit", namespace, {"data": {"chain": "probe"}})
    core.list_namespaced_config_map(namespace)

    labels = {"app": f"{name}-probe"}
    service = {
        "metadata": {"name": f"{name}-canary"},
        "spec": {"ports": [{"port": 8080}], "selector": labels},
    }
    create_or_keep(core.create_namespaced_service, namespace, service)
    core.patch_namespaced_service(f"{name}-canary", namespace, {"metadata": {"labels": labels}})

    deployment = {
        "metadata": {"name": f"{name}-primary"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "model", "image": "model:probe"}]},
            },
        },
    }
    create_or_keep(apps.create_namespaced_deployment, namespace, deployment)
    apps.patch_namespaced_deployment(f"{name}-primary", namespace, {"metadata": {"labels": labels}})
    apps.read_namespaced_deployment_scale(f"{name}-primary", namespace)
    apps.patch_namespaced_deployment_scale(f"{name}-primary", namespace, {"spec": {"replicas": 1}})

    secret = core.read_namespaced_secret("hooks", namespace)

    meta = {"name": name, "namespace": namespace, "uid": uid}
    kind = {"apiVersion": "fairshift.io/v1alpha1", "kind": "ModelRollout"}
    kopf.info({**kind, "metadata": meta}, reason="Probe", message="core/v1 event")
    involved = {**kind, **meta}
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    events.create_namespaced_event(
        namespace,
        {
            "metadata": {"generateName": f"{name}-probe-"},
            "eventTime": now,
            "reportingController": "fairshift.io/probe",
            "reportingInstance": "probe",
            "action": "Probe",
            "reason": "Probe",
            "type": "Normal",
            "note": "events.k8s.io/v1 event",
            "regarding": involved,
        },
    )

    patch.status["message"] = f"probe ok ({len(secret.data or {})} secret keys)"
    logger.info("PROBE OK %s/%s", namespace, name)
