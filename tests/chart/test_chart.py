"""The Helm chart: values schema, Chart.yaml, dashboard, and (with a helm binary) its renderings.

No cluster needed. The rendering tests use the helm that charts/find-helm.sh finds (the fairshift
cache, the e2e build, or PATH) and skip when there is none; charts/lint.sh, which CI runs,
builds helm when missing, so there they always run.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

import fairshift

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "fairshift"
KUBE_VERSION = "v1.33.0"

try:
    import jsonschema  # type: ignore[import-untyped,unused-ignore]
except ImportError:  # pragma: no cover - depends on the environment
    jsonschema = None


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return loaded


def default_values() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(CHART / "values.yaml")
    return loaded


def check_rendered() -> ModuleType:
    """charts/check_rendered.py, the checks charts/lint.sh applies to each rendering."""
    spec = importlib.util.spec_from_file_location(
        "check_rendered", ROOT / "charts" / "check_rendered.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def with_values(**changes: Any) -> dict[str, Any]:
    values = default_values()
    for dotted, value in changes.items():
        node = values
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return values


# --------------------------------------------------------------------------- values schema


def schema_paths(node: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted paths of the properties the schema declares."""
    paths: set[str] = set()
    for key, sub in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        paths.add(path)
        paths |= schema_paths(sub, path + ".")
    return paths


def value_paths(node: Any, schema_node: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted paths of the values, descending only where the schema declares properties."""
    paths: set[str] = set()
    if isinstance(node, dict) and "properties" in schema_node:
        for key, sub in node.items():
            path = f"{prefix}{key}"
            paths.add(path)
            paths |= value_paths(sub, schema_node["properties"].get(key, {}), path + ".")
    return paths


def test_schema_is_a_draft7_schema_closed_at_every_level() -> None:
    s = schema()
    assert s["$schema"] == "http://json-schema.org/draft-07/schema#"
    if jsonschema is not None:
        jsonschema.Draft7Validator.check_schema(s)

    def closed(node: dict[str, Any], path: str) -> None:
        if "properties" in node:
            assert node.get("type") == "object", path
            assert node.get("additionalProperties") is False, f"{path or 'values'} is open"
            for key, sub in node["properties"].items():
                closed(sub, f"{path}.{key}" if path else key)

    closed(s, "")


def test_schema_declares_every_default_value_and_every_top_level_key_has_a_default() -> None:
    s = schema()
    values = default_values()
    undeclared = value_paths(values, s) - schema_paths(s)
    assert not undeclared, f"values.yaml keys missing from values.schema.json: {undeclared}"
    assert set(s["properties"]) - {"global"} == set(values)


@pytest.mark.skipif(jsonschema is None, reason="jsonschema is not installed")
def test_default_values_satisfy_the_schema() -> None:
    jsonschema.Draft7Validator(schema()).validate(default_values())


@pytest.mark.skipif(jsonschema is None, reason="jsonschema is not installed")
@pytest.mark.parametrize(
    "values",
    [
        pytest.param(with_values(rbac__scope="namespaced"), id="namespaced-without-namespaces"),
        pytest.param(with_values(rbac__scope="everything"), id="unknown-scope"),
        pytest.param(with_values(logFormat="xml"), id="unknown-log-format"),
        pytest.param(with_values(replicas=0), id="no-replicas"),
        pytest.param(with_values(watch__namespaces=["Not_A_Namespace"]), id="bad-namespace"),
        pytest.param(with_values(watch__namespaces=["a", "a"]), id="duplicate-namespace"),
        pytest.param(
            with_values(prometheus__address="prometheus:9090"), id="address-without-scheme"
        ),
        pytest.param(with_values(metrics__port=8080), id="metrics-on-health-port"),
        pytest.param(with_values(prometheusRule__pausedFor="an hour"), id="bad-duration"),
        pytest.param(with_values(imagee={"tag": "x"}), id="misspelt-key"),
    ],
)
def test_schema_refuses_bad_values(values: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema()).validate(values)


@pytest.mark.skipif(jsonschema is None, reason="jsonschema is not installed")
def test_schema_accepts_a_namespaced_install_with_peering_and_monitoring() -> None:
    values = with_values(
        rbac__scope="namespaced",
        watch__namespaces=["lending", "ads"],
        replicas=2,
        notifications__secretNames=["hooks"],
        serviceMonitor__enabled=True,
        prometheusRule__enabled=True,
        dashboard__enabled=True,
    )
    jsonschema.Draft7Validator(schema()).validate(values)


# --------------------------------------------------------------------------- Chart.yaml


def test_chart_yaml_names_the_app_version_of_the_package() -> None:
    chart = load_yaml(CHART / "Chart.yaml")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "fairshift"
    assert chart["type"] == "application"
    assert chart["appVersion"] == project["version"] == fairshift.__version__
    major, minor, patch = chart["version"].split(".")
    assert all(part.isdigit() for part in (major, minor, patch))


def test_chart_ships_the_kopf_peering_crds_without_a_status_subresource() -> None:
    # kopf patches the peering's status through the main resource: a status subresource
    # would silently drop every keep-alive.
    crds = [d for d in yaml.safe_load_all((CHART / "crds" / "kopf-peerings.yaml").read_text()) if d]
    names = {d["metadata"]["name"]: d for d in crds}
    assert set(names) == {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}
    assert names["clusterkopfpeerings.kopf.dev"]["spec"]["scope"] == "Cluster"
    assert names["kopfpeerings.kopf.dev"]["spec"]["scope"] == "Namespaced"
    for crd in crds:
        (version,) = crd["spec"]["versions"]
        assert version["name"] == "v1"
        assert "subresources" not in version
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["x-kubernetes-preserve-unknown-fields"] is True


def test_dashboard_plots_gates_with_bounds_weights_decisions_and_phases() -> None:
    dashboard = json.loads((CHART / "dashboards" / "fairshift.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    text = "\n".join(exprs)
    for metric in (
        "fairshift_gate_estimate",
        "fairshift_gate_lower",
        "fairshift_gate_upper",
        "fairshift_canary_weight",
        "fairshift_fallback_weight",
        "fairshift_decisions_total",
        "fairshift_rollouts",
        "fairshift_guard_health",
    ):
        assert metric in text, metric
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace", "rollout", "gate", "slice"} <= variables
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


# --------------------------------------------------------------------------- renderings


@cache
def helm() -> str | None:
    found = subprocess.run(
        ["bash", str(ROOT / "charts" / "find-helm.sh")], capture_output=True, text=True, check=False
    )
    path = found.stdout.strip()
    return path if found.returncode == 0 and path else None


def render(*sets: str) -> list[dict[str, Any]]:
    binary = helm()
    if binary is None:
        pytest.skip("no helm binary (charts/find-helm.sh --build builds one; charts/lint.sh does)")
    args = [binary, "template", "fairshift", str(CHART), "--namespace", "fairshift-system"]
    args += ["--kube-version", KUBE_VERSION]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def rules_of(docs: list[dict[str, Any]], kind: str) -> dict[tuple[str, str], list[str]]:
    """(apiGroup, resource) -> verbs, over every rule of the objects of `kind`."""
    found: dict[tuple[str, str], list[str]] = {}
    for doc in docs:
        if doc["kind"] != kind:
            continue
        for rule in doc["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    found[(group, resource)] = sorted(rule["verbs"])
    return found


def operator_args(docs: list[dict[str, Any]]) -> list[str]:
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


NAMESPACED_RULES = {
    ("fairshift.io", "modelrollouts"): ["get", "list", "patch", "update", "watch"],
    ("fairshift.io", "modelrollouts/status"): ["get", "patch", "update"],
    ("apps", "deployments"): ["create", "get", "list", "patch", "update", "watch"],
    ("apps", "deployments/scale"): ["get", "patch", "update"],
    ("", "services"): ["create", "delete", "get", "list", "patch", "update", "watch"],
    ("", "configmaps"): ["create", "get", "list", "patch", "update", "watch"],
    ("", "events"): ["create", "patch"],
    ("events.k8s.io", "events"): ["create", "patch"],
    ("gateway.networking.k8s.io", "httproutes"): [
        "create",
        "delete",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ],
    ("networking.istio.io", "virtualservices"): [
        "create",
        "delete",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ],
}


@pytest.mark.parametrize(
    "sets",
    [
        pytest.param((), id="default"),
        pytest.param(("watch.namespaces={a,b}", "notifications.secretNames={hooks}"), id="cluster"),
        pytest.param(
            (
                "rbac.scope=namespaced",
                "watch.namespaces={a,b}",
                "notifications.secretNames={hooks}",
            ),
            id="namespaced",
        ),
        pytest.param(("replicas=2",), id="peering"),
        pytest.param(("replicas=2", "sharding.shards=8"), id="sharded"),
        pytest.param(
            (
                "serviceMonitor.enabled=true",
                "prometheusRule.enabled=true",
                "dashboard.enabled=true",
            ),
            id="monitoring",
        ),
    ],
)
def test_every_rendering_passes_the_lint_checks(sets: tuple[str, ...]) -> None:
    assert check_rendered().check(render(*sets)) == []


def test_default_install_is_cluster_wide_standalone_with_exact_rules() -> None:
    docs = render()
    assert operator_args(docs) == [
        "--all-namespaces",
        "--log-format", "json",
        "--liveness", "http://0.0.0.0:8080/healthz",
        "--metrics-port", "9090",
        "--standalone",
        "--audit-configmap",
    ]  # fmt: skip
    assert rules_of(docs, "ClusterRole") == NAMESPACED_RULES | {
        ("apiextensions.k8s.io", "customresourcedefinitions"): ["list", "watch"],
    }
    assert not [d for d in docs if d["kind"] in ("Role", "RoleBinding", "ClusterKopfPeering")]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["FAIRSHIFT_PROMETHEUS_ADDRESS"] == default_values()["prometheus"]["address"]


def test_namespaced_scope_grants_nothing_cluster_wide() -> None:
    docs = render(
        "rbac.scope=namespaced",
        "watch.namespaces={lending,ads}",
        "notifications.secretNames={hooks}",
        "replicas=2",
    )
    assert not [d for d in docs if d["kind"].startswith("Cluster")]
    roles = [d for d in docs if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["ads", "lending"]
    for role in roles:
        assert rules_of([role], "Role") == NAMESPACED_RULES | {
            ("kopf.dev", "kopfpeerings"): ["get", "list", "patch", "watch"],
            ("", "secrets"): ["get"],
        }
        (secret_rule,) = [r for r in role["rules"] if r["resources"] == ["secrets"]]
        assert secret_rule["resourceNames"] == ["hooks"]
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert {b["subjects"][0]["namespace"] for b in bindings} == {"fairshift-system"}
    peerings = [d for d in docs if d["kind"] == "KopfPeering"]
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["ads", "lending"]
    args = operator_args(docs)
    assert args[:4] == ["--namespace", "lending", "--namespace", "ads"]
    assert args[args.index("--peering") + 1] == "fairshift"
    assert "--no-scanning" in args  # kopf may not list CRDs or namespaces here


def test_cluster_scope_with_namespaces_reads_secrets_only_there() -> None:
    docs = render("watch.namespaces={lending,ads}", "notifications.secretNames={hooks}")
    cluster = rules_of(docs, "ClusterRole")
    assert ("", "secrets") not in cluster
    assert cluster[("", "namespaces")] == ["list", "watch"]
    roles = [d for d in docs if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["ads", "lending"]
    assert all(rules_of([r], "Role") == {("", "secrets"): ["get"]} for r in roles)


def test_no_notification_secrets_means_no_secret_access() -> None:
    for sets in [(), ("rbac.scope=namespaced", "watch.namespaces={a}")]:
        docs = render(*sets)
        for kind in ("Role", "ClusterRole"):
            assert ("", "secrets") not in rules_of(docs, kind)


def test_two_replicas_use_cluster_peering() -> None:
    docs = render("replicas=2")
    assert rules_of(docs, "ClusterRole")[("kopf.dev", "clusterkopfpeerings")] == [
        "get", "list", "patch", "watch",
    ]  # fmt: skip
    (peering,) = [d for d in docs if d["kind"] == "ClusterKopfPeering"]
    assert peering["metadata"]["name"] == "fairshift"
    args = operator_args(docs)
    assert "--standalone" not in args and args[args.index("--peering") + 1] == "fairshift"
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


LEASE_RULES = {("coordination.k8s.io", "leases"): ["create", "delete", "list", "update"]}


@pytest.mark.parametrize(
    "scope",
    [("rbac.scope=cluster",), ("rbac.scope=namespaced", "watch.namespaces={lending,ads}")],
    ids=["cluster", "namespaced"],
)
def test_sharded_replicas_all_work_and_may_write_only_leases_of_their_namespace(
    scope: tuple[str, ...],
) -> None:
    docs = render("replicas=3", "sharding.shards=12", "sharding.leaseSeconds=30", *scope)
    args = operator_args(docs)
    assert "--standalone" in args and "--peering" not in args
    assert args[args.index("--shards") + 1] == "12"
    assert args[args.index("--shard-group") + 1] == "fairshift"
    assert args[args.index("--shard-lease-seconds") + 1] == "30"
    assert not [d for d in docs if d["kind"] in ("KopfPeering", "ClusterKopfPeering")]
    (lease_role,) = [
        d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "fairshift-shards"
    ]
    assert lease_role["metadata"]["namespace"] == "fairshift-system"
    assert rules_of([lease_role], "Role") == LEASE_RULES
    for kind in ("ClusterRole", "Role"):
        others = [d for d in docs if d["kind"] == kind and d is not lease_role]
        assert ("coordination.k8s.io", "leases") not in rules_of(others, kind)
    (binding,) = [
        d
        for d in docs
        if d["kind"] == "RoleBinding" and d["metadata"]["name"] == "fairshift-shards"
    ]
    assert binding["roleRef"]["name"] == "fairshift-shards"
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {e["name"] for e in env} >= {"POD_ID", "POD_NAMESPACE"}  # identity, Lease namespace
    assert [d["kind"] for d in docs if d["kind"] == "PodDisruptionBudget"] == [
        "PodDisruptionBudget"
    ]


def test_no_lease_access_without_sharding() -> None:
    for sets in [(), ("replicas=2",)]:
        docs = render(*sets)
        for kind in ("Role", "ClusterRole"):
            assert ("coordination.k8s.io", "leases") not in rules_of(docs, kind)


@pytest.mark.parametrize(
    "sets",
    [("sharding.shards=4", "peering.enabled=true"), ("sharding.shards=4", "rbac.create=false")],
    ids=["with-peering", "without-rbac"],
)
def test_helm_refuses_sharding_it_cannot_serve(sets: tuple[str, ...]) -> None:
    with pytest.raises(subprocess.CalledProcessError):
        render(*sets)


def test_monitoring_objects() -> None:
    docs = render(
        "serviceMonitor.enabled=true", "prometheusRule.enabled=true", "dashboard.enabled=true"
    )
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["honorLabels"] is True
    (service,) = [d for d in docs if d["kind"] == "Service"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    exprs = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert (
        'fairshift_decisions_total{action="rollback"}[10m]' in exprs["FairshiftRolloutRolledBack"]
    )
    assert 'fairshift_rollouts{phase="Paused"}' in exprs["FairshiftRolloutPausedTooLong"]
    assert "rate(fairshift_analysis_errors_total[5m])" in exprs["FairshiftAnalysisErrors"]
    (dashboard,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    json.loads(dashboard["data"]["fairshift.json"])


BEHIND = "FairshiftLooksFallingBehind"


def behind_case(due: str, done: str, overdue: str, fires: bool, alert: dict[str, Any]) -> Any:
    """A promtool test of the falling-behind alert over 40 minutes of the given series."""
    expected = [{"exp_labels": alert["labels"], "exp_annotations": alert["annotations"]}]
    return {
        "interval": "1m",
        "input_series": [
            {"series": 'fairshift_looks_due_total{pod="a"}', "values": due},
            {"series": 'fairshift_looks_done_total{pod="a"}', "values": done},
            {"series": 'fairshift_oldest_overdue_seconds{pod="a"}', "values": overdue},
        ],
        "alert_rule_test": [
            {"eval_time": "40m", "alertname": BEHIND, "exp_alerts": expected if fires else []}
        ],
    }


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_the_falling_behind_alert_fires_on_a_backlog_or_an_old_owed_look(tmp_path: Path) -> None:
    (rule,) = [d for d in render("prometheusRule.enabled=true") if d["kind"] == "PrometheusRule"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    (alert,) = [r for g in rule["spec"]["groups"] for r in g["rules"] if r.get("alert") == BEHIND]
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            behind_case("0+60x40", "0+60x40", "0+0x40", False, alert),  # keeping up
            behind_case("0+60x40", "0+54x40", "0+0x40", True, alert),  # 10% not done
            behind_case("0+60x40", "0+58x40", "0+0x40", False, alert),  # 3%: within 5%
            behind_case("0+60x40", "0+60x40", "400+0x40", True, alert),  # one owed for 400 s
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(tests))
    checked = subprocess.run(
        ["promtool", "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_helm_refuses_namespaced_scope_without_namespaces() -> None:
    with pytest.raises(subprocess.CalledProcessError):
        render("rbac.scope=namespaced")


# --------------------------------------------------------------------------- the checker itself


@pytest.mark.parametrize(
    ("rule", "complaint"),
    [
        pytest.param(
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]},
            "wildcard in verbs",
            id="verb",
        ),
        pytest.param(
            {"apiGroups": [""], "resources": ["*"], "verbs": ["get"]},
            "wildcard in resources",
            id="resource",
        ),
        pytest.param(
            {"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]},
            "wildcard in apiGroups",
            id="group",
        ),
        pytest.param(
            {"apiGroups": ["apps"], "resources": ["deployments/*"], "verbs": ["get"]},
            "wildcard in resources",
            id="subresource",
        ),
        pytest.param(
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
            "without resourceNames",
            id="secrets",
        ),
        pytest.param(
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": ["a"],
                "verbs": ["get", "list"],
            },
            "other than get",
            id="secret-list",
        ),
        pytest.param(
            {
                "apiGroups": ["rbac.authorization.k8s.io"],
                "resources": ["clusterroles"],
                "verbs": ["bind"],
            },
            "escalating",
            id="bind",
        ),
    ],
)
def test_the_rbac_checker_catches(rule: dict[str, Any], complaint: str) -> None:
    role = {"kind": "ClusterRole", "metadata": {"name": "bad"}, "rules": [rule]}
    problems = check_rendered().rbac_violations(role)
    assert any(complaint in p for p in problems), problems


# --------------------------------------------------------------------------- the operator's CLI


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        pytest.param(
            (), {"all_namespaces": True, "standalone": True, "peering": None}, id="default"
        ),
        pytest.param(
            ("watch.namespaces={a,b}", "replicas=2", "logFormat=text", "audit.configMap=false"),
            {
                "namespace": ["a", "b"],
                "peering": "fairshift",
                "log_format": "text",
                "audit_configmap": False,
            },
            id="listed",
        ),
        pytest.param(
            ("rbac.scope=namespaced", "watch.namespaces={a}"),
            {"namespace": ["a"], "no_scanning": True},
            id="namespaced",
        ),
        pytest.param(
            ("replicas=2", "sharding.shards=8"),
            {"standalone": True, "peering": None, "shards": 8, "shard_lease_seconds": 20.0},
            id="sharded",
        ),
    ],
)
def test_fairshift_run_accepts_the_rendered_arguments(
    sets: tuple[str, ...], expected: dict[str, Any]
) -> None:
    from fairshift.cli import build_parser

    docs = render(*sets)
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["fairshift", "run"]
    args = build_parser().parse_args(["run", *container["args"]])
    assert args.liveness == "http://0.0.0.0:8080/healthz"
    assert args.metrics_port == 9090
    for key, value in expected.items():
        assert getattr(args, key) == value, key
