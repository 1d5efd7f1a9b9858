"""The chart's RBAC is enough for the real operator, and no more.

The chart is rendered with helm and applied to the real API server (namespaced RBAC, one
watched namespace, sharded replicas); the real ``fairshift run`` process then works with
nothing but a token of the chart's ServiceAccount through a whole rollout, holding its shard
Leases in the release namespace and handing them back when it stops, while the same token is
refused what the operator does not need.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from e2e.conftest import Cluster
from e2e.helpers import Kubectl, wait_for
from fairshift.engine.audit import verify_chain

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.e2e
SHARDS = 2
IDENTITY = "rbac-e2e"


def helm_binary() -> str:
    found = subprocess.run(
        ["bash", str(ROOT / "charts" / "find-helm.sh"), "--build"],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return found.stdout.strip().splitlines()[-1]


def rendered_chart(release_ns: str, watched: str) -> list[dict]:  # type: ignore[type-arg]
    args = [
        helm_binary(),
        "template",
        "fairshift",
        str(ROOT / "charts" / "fairshift"),
        "--namespace",
        release_ns,
        "--kube-version",
        "v1.33.0",
        "--set",
        "rbac.scope=namespaced",
        "--set",
        f"watch.namespaces={{{watched}}}",
        "--set",
        f"sharding.shards={SHARDS}",
    ]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def fresh_namespace(kubectl: Kubectl, name: str) -> Iterator[str]:
    kubectl("create", "namespace", name)
    wait_for(lambda: kubectl.get("serviceaccount", "default", namespace=name), timeout=60)
    try:
        yield name
    finally:
        kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def modelrollout_crd(kubectl: Kubectl) -> None:
    """The ModelRollout CRD, applied server-side and established (this module may run first)."""
    crd_file = str(ROOT / "crds" / "modelrollouts.yaml")
    kubectl("apply", "--server-side", "--force-conflicts", "-f", crd_file)
    kubectl.wait("crd/modelrollouts.fairshift.io", "condition=Established", timeout=60)


@pytest.fixture(scope="module")
def namespace(kubectl: Kubectl, modelrollout_crd: None) -> Iterator[str]:
    """The one namespace the operator watches in this module."""
    yield from fresh_namespace(kubectl, f"rbac-{secrets.token_hex(3)}")


@pytest.fixture(scope="module")
def release_namespace(kubectl: Kubectl, namespace: str) -> Iterator[str]:
    """Where the chart is installed (its ServiceAccount lives here)."""
    yield from fresh_namespace(kubectl, f"{namespace}-sys")


@pytest.fixture(scope="module")
def operator_token(kubectl: Kubectl, namespace: str, release_namespace: str) -> Kubectl:
    """Install the chart's RBAC; a kubectl holding only its ServiceAccount's token."""
    for doc in rendered_chart(release_namespace, namespace):
        if doc["kind"] in (
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ClusterRole",
            "ClusterRoleBinding",
        ):
            kubectl.apply(doc)
    account = next(
        d for d in rendered_chart(release_namespace, namespace) if d["kind"] == "ServiceAccount"
    )
    token = kubectl(
        "create",
        "token",
        account["metadata"]["name"],
        "-n",
        release_namespace,
        "--duration",
        "1h",
    ).strip()
    return kubectl.with_token(token)


def test_the_real_operator_completes_a_rollout_with_only_the_charts_token(
    e2e_cluster: Cluster,
    kubectl: Kubectl,
    namespace: str,
    operator_token: Kubectl,
    release_namespace: str,
    tmp_path: Path,
) -> None:
    k = kubectl.ns(namespace)
    k.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "scorer"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "scorer"}},
                "template": {
                    "metadata": {"labels": {"app": "scorer"}},
                    "spec": {"containers": [{"name": "model", "image": "model:v1"}]},
                },
            },
        }
    )
    k.apply(
        {
            "apiVersion": "fairshift.io/v1alpha1",
            "kind": "ModelRollout",
            "metadata": {"name": "scorer"},
            "spec": {
                "targetRef": {"name": "scorer"},
                "service": {"port": 8080},
                "routing": {"gatewayAPI": {"parentRefs": [{"name": "public"}]}},
                "strategy": {
                    "canary": {"steps": [{"setWeight": 30}, {"pause": {"duration": "5s"}}]}
                },
            },
        }
    )
    log = (tmp_path / "operator.log").open("w")
    operator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fairshift.cli",
            "run",
            "--kubeconfig",
            operator_token.kubeconfig,
            "--namespace",
            namespace,
            "--no-scanning",
            "--standalone",
            "--shards",
            str(SHARDS),
            "--shard-namespace",
            release_namespace,
            "--shard-identity",
            IDENTITY,
            "--metrics-port",
            "0",
            "--liveness",
            "",
            "--tick",
            "2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**e2e_cluster.env(), "KUBECONFIG": ""},
    )
    output_file = tmp_path / "operator.log"
    try:
        phase = lambda: (k.get("mro", "scorer") or {}).get("status", {}).get("phase")  # noqa: E731
        wait_for(lambda: phase() == "Idle", timeout=120, message="adopted")
        k("set", "image", "deploy/scorer", "model=model:v2")
        wait_for(lambda: phase() == "Succeeded", timeout=180, message="promoted")
        assert sorted(lease_holders(kubectl, release_namespace).values()) == [IDENTITY] * (
            SHARDS + 1
        )  # its shards and its member Lease
    except AssertionError as error:
        raise AssertionError(f"{error}\noperator log:\n{output_file.read_text()[-4000:]}") from None
    finally:
        operator.terminate()
        operator.wait(timeout=30)
        log.close()
    output = output_file.read_text()
    # a refused request shows as "403" or "Forbidden"; a bare 403 inside a hash is no refusal
    assert not re.search(r"\b403\b", output) and "Forbidden" not in output, output[-3000:]
    # a clean shutdown hands every Lease back, so another replica takes them at once
    assert set(lease_holders(kubectl, release_namespace).values()) == {None}
    primary = k.get("deployment", "scorer-primary")
    assert primary is not None
    assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == "model:v2"
    audit = k.get("configmap", "scorer-audit")
    assert audit is not None
    records = [json.loads(line) for line in audit["data"]["records.jsonl"].splitlines() if line]
    status = k.get("mro", "scorer")["status"]  # type: ignore[index]
    assert verify_chain(records, expected_head=status["auditHead"]).ok


def lease_holders(kubectl: Kubectl, where: str) -> dict[str, str | None]:
    leases = kubectl.json("get", "leases", "-n", where)["items"]
    return {lease["metadata"]["name"]: lease["spec"].get("holderIdentity") for lease in leases}


@pytest.mark.parametrize(
    ("verb", "resource", "where"),
    [
        ("get", "secrets", "kube-system"),  # Secrets outside its namespaces
        ("list", "secrets", "WATCHED"),  # no listing of Secrets, even where it works
        ("list", "deployments", "default"),  # Deployments in a namespace it does not watch
        ("create", "clusterrolebindings", ""),  # cluster-admin verbs
        ("delete", "nodes", ""),
        ("create", "pods", "WATCHED"),
        ("delete", "modelrollouts.fairshift.io", "WATCHED"),
        ("escalate", "roles", "WATCHED"),
        ("impersonate", "serviceaccounts", "WATCHED"),
        ("create", "leases.coordination.k8s.io", "WATCHED"),  # Leases only where it keeps them
        ("get", "leases.coordination.k8s.io", "kube-system"),
    ],
)
def test_the_token_is_refused_what_the_operator_does_not_need(
    operator_token: Kubectl, namespace: str, verb: str, resource: str, where: str
) -> None:
    scope = ["-n", namespace if where == "WATCHED" else where] if where else []
    answer = operator_token.run("auth", "can-i", verb, resource, *scope, check=False)
    assert answer.stdout.strip() == "no", (verb, resource, where, answer.stdout, answer.stderr)


@pytest.mark.parametrize(
    ("verb", "resource"),
    [
        ("patch", "modelrollouts.fairshift.io/status"),
        ("create", "deployments.apps"),
        ("patch", "httproutes.gateway.networking.k8s.io"),
        ("create", "events"),
    ],
)
def test_the_token_may_do_what_the_operator_needs(
    operator_token: Kubectl, namespace: str, verb: str, resource: str
) -> None:
    answer = operator_token.run("auth", "can-i", verb, resource, "-n", namespace, check=False)
    assert answer.stdout.strip() == "yes", (verb, resource, answer.stdout, answer.stderr)


@pytest.mark.parametrize("verb", ["list", "create", "update", "delete"])
def test_the_token_may_keep_shard_leases_in_the_release_namespace(
    operator_token: Kubectl, release_namespace: str, verb: str
) -> None:
    where = ["-n", release_namespace]
    answer = operator_token.run(
        "auth", "can-i", verb, "leases.coordination.k8s.io", *where, check=False
    )
    assert answer.stdout.strip() == "yes", (verb, answer.stdout, answer.stderr)
