"""Smoke tests: prove the e2e environment's parts are real.

* kube-controller-manager + kube-scheduler + kwok: a Deployment becomes Available with Ready
  pods, and garbage collection removes its ReplicaSet and pods.
* Gateway API CRDs: an HTTPRoute with weighted backendRefs and a RequestMirror filter with
  ``percent`` is accepted; invalid weights/percents are refused by the API server.
* Istio VirtualService CRD (v1 and v1beta1) is served.
* Authentication/authorization: a ServiceAccount token from ``kubectl create token`` is
  authenticated, and RBAC allows exactly what its Role grants (403 otherwise).
* Prometheus scrapes a target added at run time via file-sd and answers PromQL.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from e2e.helpers import POD_IMAGE, Kubectl, KubectlError, MetricsServer, Prometheus, tool, wait_for

pytestmark = pytest.mark.e2e


def test_control_plane_version(kubectl: Kubectl) -> None:
    version = kubectl.json("version")
    server = version["serverVersion"]
    assert server["gitVersion"].startswith("v1."), server
    assert server["gitVersion"] != "v0.0.0-master+$Format:%H$", "version not stamped"
    assert kubectl("get", "--raw", "/readyz").strip() == "ok"
    nodes = kubectl.json("get", "nodes")["items"]
    assert any(
        c["type"] == "Ready" and c["status"] == "True"
        for n in nodes
        for c in n["status"].get("conditions", [])
    ), nodes


def deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": "model", "image": POD_IMAGE, "imagePullPolicy": "IfNotPresent"}
                    ]
                },
            },
        },
    }


def test_deployment_becomes_available_and_is_garbage_collected(k: Kubectl) -> None:
    k.apply(deployment("smoke-model", 3))
    k.wait("deployment/smoke-model", "condition=Available", timeout=180)

    def ready_pods() -> list[dict[str, Any]] | None:
        pods = k.json("get", "pods", "-l", "app=smoke-model")["items"]
        ready = [
            p
            for p in pods
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions", [])
            )
        ]
        return ready if len(ready) == 3 else None

    pods = wait_for(ready_pods, timeout=90, message="3 Ready pods")
    assert all(p["spec"].get("nodeName") for p in pods), "pods were not scheduled"
    assert all(p["status"].get("podIP") for p in pods), "kwok did not assign pod IPs"
    dep = k.json("get", "deployment", "smoke-model")
    assert dep["status"]["readyReplicas"] == 3

    # scale, then delete: the garbage collector removes ReplicaSets and pods
    k("scale", "deployment/smoke-model", "--replicas=1")
    wait_for(
        lambda: len(k.json("get", "pods", "-l", "app=smoke-model")["items"]) == 1,
        timeout=90,
        message="scale down to 1 pod",
    )
    k("delete", "deployment", "smoke-model", "--wait=false")
    wait_for(
        lambda: not k.json("get", "replicasets,pods", "-l", "app=smoke-model")["items"],
        timeout=90,
        message="ReplicaSet and pods garbage-collected",
    )


def httproute(name: str, weights: tuple[int, int], mirror_percent: int) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "fairshift-gateway"}],
            "rules": [
                {
                    "backendRefs": [
                        {"name": "model-stable", "port": 8080, "weight": weights[0]},
                        {"name": "model-canary", "port": 8080, "weight": weights[1]},
                    ],
                    "filters": [
                        {
                            "type": "RequestMirror",
                            "requestMirror": {
                                "backendRef": {"name": "model-shadow", "port": 8080},
                                "percent": mirror_percent,
                            },
                        }
                    ],
                }
            ],
        },
    }


def test_httproute_weights_and_mirror_percent_are_validated(k: Kubectl) -> None:
    k.create(httproute("smoke-route", (90, 10), 25))
    route = k.json("get", "httproute", "smoke-route")
    rule = route["spec"]["rules"][0]
    assert [b["weight"] for b in rule["backendRefs"]] == [90, 10]
    assert rule["filters"][0]["requestMirror"]["percent"] == 25

    # an update of the weights (what the operator does at each step) is accepted
    k(
        "patch",
        "httproute",
        "smoke-route",
        "--type=json",
        "-p",
        json.dumps(
            [
                {"op": "replace", "path": "/spec/rules/0/backendRefs/0/weight", "value": 50},
                {"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": 50},
            ]
        ),
    )
    assert [
        b["weight"]
        for b in k.json("get", "httproute", "smoke-route")["spec"]["rules"][0]["backendRefs"]
    ] == [50, 50]

    for bad_name, bad, field in [
        ("bad-weight", httproute("bad-weight", (-1, 10), 25), "weight"),
        ("bad-percent", httproute("bad-percent", (90, 10), 200), "percent"),
    ]:
        proc = k.create(bad, check=False)
        assert proc.returncode != 0, f"{bad_name} was accepted"
        assert "Invalid value" in proc.stderr and field in proc.stderr, proc.stderr
        assert k.get("httproute", bad_name) is None


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_istio_virtualservice_crd_is_served(k: Kubectl, version: str) -> None:
    name = f"smoke-vs-{version}"
    k.create(
        {
            "apiVersion": f"networking.istio.io/{version}",
            "kind": "VirtualService",
            "metadata": {"name": name},
            "spec": {
                "hosts": ["model"],
                "http": [
                    {
                        "route": [
                            {"destination": {"host": "model-stable"}, "weight": 80},
                            {"destination": {"host": "model-canary"}, "weight": 20},
                        ],
                        "mirror": {"host": "model-shadow"},
                        "mirrorPercentage": {"value": 10.0},
                    }
                ],
            },
        }
    )
    vs = k.json("get", f"virtualservices.{version}.networking.istio.io", name)
    assert [r["weight"] for r in vs["spec"]["http"][0]["route"]] == [80, 20]


def test_serviceaccount_token_is_authenticated_and_rbac_enforced(
    k: Kubectl, namespace: str, tmp_kubeconfig_dir: Path
) -> None:
    k("create", "serviceaccount", "reader")
    k("create", "role", "pod-reader", "--verb=get,list,watch", "--resource=pods")
    k(
        "create",
        "rolebinding",
        "reader-pods",
        "--role=pod-reader",
        f"--serviceaccount={namespace}:reader",
    )
    token = k("create", "token", "reader", "--duration=10m").strip()
    assert token.count(".") == 2, "not a JWT"

    sa = k.with_token(token, tmp_kubeconfig_dir).ns(namespace)
    whoami = sa.json("auth", "whoami")
    assert whoami["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:reader"

    # RBAC: the binding may take a moment to reach the authorizer's informer cache
    wait_for(
        lambda: sa.run("get", "pods", check=False).returncode == 0,
        timeout=30,
        message="reader may list pods",
    )
    assert sa("auth", "can-i", "list", "pods").strip() == "yes"
    assert sa.run("auth", "can-i", "delete", "pods", check=False).stdout.strip() == "no"
    assert sa.run("auth", "can-i", "get", "secrets", check=False).stdout.strip() == "no"
    with pytest.raises(KubectlError) as denied:
        sa("get", "secrets")
    assert "Forbidden" in denied.value.stderr

    # and a raw HTTPS request with the bearer token gets a real 403 from the API server
    server, ca = k.server()
    ctx = ssl.create_default_context(cafile=ca)
    req = urllib.request.Request(
        f"{server}/api/v1/namespaces/{namespace}/secrets",
        headers={"Authorization": f"Bearer {token}"},
    )
    with pytest.raises(urllib.error.HTTPError) as http_denied:
        urllib.request.urlopen(req, context=ctx, timeout=10)
    assert http_denied.value.code == 403
    ok = urllib.request.Request(
        f"{server}/api/v1/namespaces/{namespace}/pods", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(ok, context=ctx, timeout=10) as resp:
        assert resp.status == 200
    # a forged token is not authenticated at all
    forged = urllib.request.Request(
        f"{server}/api/v1/namespaces/{namespace}/pods",
        headers={"Authorization": f"Bearer {token[:-4]}AAAA"},
    )
    with pytest.raises(urllib.error.HTTPError) as unauth:
        urllib.request.urlopen(forged, context=ctx, timeout=10)
    assert unauth.value.code == 401


def test_prometheus_scrapes_target_added_at_run_time(
    prometheus: Prometheus, metrics_server: Callable[..., MetricsServer]
) -> None:
    counter = {"n": 0}

    def exposition() -> str:
        counter["n"] += 1
        return (
            "# HELP fairshift_e2e_smoke_requests_total Requests seen by the smoke target.\n"
            "# TYPE fairshift_e2e_smoke_requests_total counter\n"
            f'fairshift_e2e_smoke_requests_total{{slice="a"}} {42 + counter["n"]}\n'
            'fairshift_e2e_smoke_requests_total{slice="b"} 7\n'
        )

    server = metrics_server(exposition)
    prometheus.add_target("smoke-target", server.address, labels={"role": "smoke"})
    target = prometheus.wait_for_target(server.address, timeout=60)
    assert target["labels"]["role"] == "smoke"

    sel = f'instance="{server.address}"'
    value = prometheus.wait_for_value(
        f'fairshift_e2e_smoke_requests_total{{{sel},slice="b"}}', timeout=60
    )
    assert value == 7.0
    total = prometheus.wait_for_value(
        f"sum(fairshift_e2e_smoke_requests_total{{{sel}}})", lambda v: v > 49
    )
    assert total > 49
    # rate() needs two scrapes: proves repeated scraping at the short interval
    rate = prometheus.wait_for_value(
        f'rate(fairshift_e2e_smoke_requests_total{{{sel},slice="a"}}[30s])',
        lambda v: v > 0,
        timeout=60,
    )
    assert rate > 0
    assert prometheus.query_value(f'up{{{sel},role="smoke"}}') == 1.0

    prometheus.remove_target("smoke-target")
    prometheus.wait_for_target_gone(server.address, timeout=60)


def test_helm_installs_a_chart(namespace: str, e2e_cluster: Any, tmp_path: Path) -> None:
    chart = tmp_path / "smoke-chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: smoke-chart\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
    )
    env = {
        **e2e_cluster.env(),
        "HELM_CACHE_HOME": str(tmp_path / "hc"),
        "HELM_CONFIG_HOME": str(tmp_path / "hcfg"),
        "HELM_DATA_HOME": str(tmp_path / "hd"),
    }
    helm = tool("helm")
    assert (
        "v3."
        in subprocess.run(
            [helm, "version", "--short"], env=env, capture_output=True, text=True, check=True
        ).stdout
    )
    subprocess.run(
        [
            helm,
            "install",
            "smoke",
            str(chart),
            "-n",
            namespace,
            "--set",
            "greeting=hi",
            "--wait",
            "--timeout",
            "60s",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    cm = e2e_cluster.kubectl.get("configmap", "smoke-cm", namespace=namespace)
    assert cm is not None and cm["data"]["greeting"] == "hi"
