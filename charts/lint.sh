#!/usr/bin/env bash
# Lint and render the fairshift Helm chart with a real helm v3, and check every rendering:
#   helm lint (plain and --strict), then helm template with default values, cluster RBAC with
#   listed namespaces, namespaced RBAC in two namespaces, two replicas (kopf peering), two
#   sharded replicas (Leases, cluster and namespaced RBAC), and
#   ServiceMonitor + PrometheusRule + dashboard; each rendering goes through
#   charts/check_rendered.py (no RBAC wildcard, hardened operator pod, coherent flags), and the
#   chart's CRD must equal crds/modelrollouts.yaml. Combinations the chart must refuse are
#   checked to fail.
# helm comes from charts/find-helm.sh --build (cache, e2e build, PATH, else `go install`).
# Takes a few seconds with helm cached; about 3 minutes when helm must be built.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="$ROOT/charts/fairshift"
KUBE_VERSION="${FAIRSHIFT_LINT_KUBE_VERSION:-v1.33.0}"
PYTHON="${PYTHON:-python3}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

HELM="$("$ROOT/charts/find-helm.sh" --build)"
echo "helm: $HELM ($("$HELM" version --short))"

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

cmp -s "$ROOT/crds/modelrollouts.yaml" "$CHART/crds/modelrollouts.yaml" \
  || fail "charts/fairshift/crds/modelrollouts.yaml differs from crds/modelrollouts.yaml (run: make crds)"

echo "== helm lint"
"$HELM" lint "$CHART" --kube-version "$KUBE_VERSION" || fail "helm lint"
echo "== helm lint --strict"
"$HELM" lint --strict "$CHART" --kube-version "$KUBE_VERSION" || fail "helm lint --strict"
"$HELM" lint --strict "$CHART" --kube-version "$KUBE_VERSION" \
  --set rbac.scope=namespaced --set 'watch.namespaces={team-a,team-b}' --set replicas=2 \
  --set serviceMonitor.enabled=true --set prometheusRule.enabled=true --set dashboard.enabled=true \
  || fail "helm lint --strict (namespaced, peering, monitoring)"

# render NAME EXPECTED-KINDS -- helm args...
render() {
  local name="$1" kinds="$2"; shift 3
  local file="$OUT/$name.yaml" expect=() k
  for k in $kinds; do expect+=(--expect-kind "$k"); done
  if ! "$HELM" template fairshift "$CHART" --namespace fairshift-system \
      --kube-version "$KUBE_VERSION" "$@" >"$file"; then
    fail "helm template ($name)"; return
  fi
  "$PYTHON" "$ROOT/charts/check_rendered.py" --name "$name" "${expect[@]}" "$file" || fail "checks ($name)"
}

echo "== helm package"
"$HELM" package "$CHART" --destination "$OUT" >/dev/null || fail "helm package"
tar -tzf "$OUT"/fairshift-*.tgz | sort >"$OUT/package.txt"
grep -qx 'fairshift/crds/modelrollouts.yaml' "$OUT/package.txt" || fail "the package lacks the CRD"
grep -qx 'fairshift/dashboards/fairshift.json' "$OUT/package.txt" || fail "the package lacks the dashboard"
echo "packaged $(basename "$OUT"/fairshift-*.tgz) ($(wc -l <"$OUT/package.txt") files)"

echo "== helm template"
render default "ServiceAccount ClusterRole ClusterRoleBinding Deployment Service" --
render cluster-scope "ClusterRole ClusterRoleBinding Role RoleBinding" -- \
  --set rbac.scope=cluster --set 'watch.namespaces={team-a,team-b}' \
  --set 'notifications.secretNames={fairshift-webhooks}'
render namespaced-scope "Role RoleBinding Deployment" -- \
  --set rbac.scope=namespaced --set 'watch.namespaces={team-a,team-b}' \
  --set 'notifications.secretNames={fairshift-webhooks}' --set logFormat=text
render replicas-2 "ClusterKopfPeering ClusterRole PodDisruptionBudget" -- --set replicas=2
render replicas-2-namespaced "KopfPeering Role" -- \
  --set replicas=2 --set rbac.scope=namespaced --set 'watch.namespaces={team-a,team-b}'
render sharded "Role RoleBinding PodDisruptionBudget Deployment" -- \
  --set replicas=2 --set sharding.shards=8
render sharded-namespaced "Role RoleBinding Deployment" -- \
  --set replicas=2 --set sharding.shards=8 --set rbac.scope=namespaced \
  --set 'watch.namespaces={team-a,team-b}'
render monitoring "ServiceMonitor PrometheusRule ConfigMap" -- \
  --set serviceMonitor.enabled=true --set prometheusRule.enabled=true --set dashboard.enabled=true \
  --set dashboard.namespace=monitoring

# scenario-specific expectations on the rendered objects
"$PYTHON" - "$OUT" <<'PY' || fail "scenario expectations"
import json, sys, yaml
out = sys.argv[1]
def load(name):
    return [d for d in yaml.safe_load_all(open(f"{out}/{name}.yaml")) if d]
def args(docs):
    return [d for d in docs if d["kind"] == "Deployment"][0]["spec"]["template"]["spec"]["containers"][0]["args"]
def kinds(docs):
    return sorted(d["kind"] for d in docs)
d = load("default")
assert "--all-namespaces" in args(d) and "--standalone" in args(d), args(d)
assert [x["spec"]["strategy"]["type"] for x in d if x["kind"] == "Deployment"] == ["Recreate"]
assert not [x for x in d if x["kind"] in ("Role", "RoleBinding")], kinds(d)
n = load("namespaced-scope")
assert not [x for x in n if x["kind"].startswith("Cluster")], kinds(n)
assert sorted(x["metadata"]["namespace"] for x in n if x["kind"] == "Role") == ["team-a", "team-b"]
a = args(n)
assert a[:4] == ["--namespace", "team-a", "--namespace", "team-b"], a
assert a[a.index("--log-format") + 1] == "text", a
assert "--no-scanning" in a and "--no-scanning" not in args(d), a
r = load("replicas-2")
assert args(r)[args(r).index("--peering") + 1] == "fairshift", args(r)
rn = load("replicas-2-namespaced")
assert sorted(x["metadata"]["namespace"] for x in rn if x["kind"] == "KopfPeering") == ["team-a", "team-b"]
s = load("sharded")
assert "--standalone" in args(s) and "--peering" not in args(s), args(s)
assert args(s)[args(s).index("--shards") + 1] == "8", args(s)
assert not [x for x in s if "KopfPeering" in x["kind"]], kinds(s)
lease_roles = [x for x in s if x["kind"] == "Role" and x["metadata"]["name"].endswith("-shards")]
assert [r["metadata"]["namespace"] for r in lease_roles] == ["fairshift-system"], lease_roles
assert lease_roles[0]["rules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                                    "verbs": ["list", "create", "update", "delete"]}], lease_roles
m = load("monitoring")
cm = [x for x in m if x["kind"] == "ConfigMap"][0]
assert cm["metadata"]["labels"]["grafana_dashboard"] == "1" and cm["metadata"]["namespace"] == "monitoring"
dash = json.loads(cm["data"]["fairshift.json"])
exprs = json.dumps(dash)
for metric in ("fairshift_gate_estimate", "fairshift_gate_lower", "fairshift_gate_upper",
               "fairshift_canary_weight", "fairshift_decisions_total", "fairshift_rollouts"):
    assert metric in exprs, metric
alerts = {r["alert"] for x in m if x["kind"] == "PrometheusRule" for g in x["spec"]["groups"] for r in g["rules"]}
assert {"FairshiftRolloutRolledBack", "FairshiftRolloutPausedTooLong", "FairshiftAnalysisErrors"} <= alerts, alerts
print("scenario expectations: ok")
PY

echo "== alert rules"
if command -v promtool >/dev/null; then
  "$PYTHON" - "$OUT/monitoring.yaml" "$OUT/rules.yaml" <<'PY' || fail "extract alert rules"
import sys, yaml
rule = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "PrometheusRule"][0]
yaml.safe_dump({"groups": rule["spec"]["groups"]}, open(sys.argv[2], "w"), sort_keys=False)
PY
  cp "$ROOT/charts/tests/alerts.test.yaml" "$OUT/"
  promtool check rules "$OUT/rules.yaml" || fail "promtool check rules"
  (cd "$OUT" && promtool test rules alerts.test.yaml) || fail "promtool test rules"
else
  echo "promtool not found: alert rules not checked (apt-get install prometheus provides it)"
fi

echo "== refused values"
refuse() { # name -- helm args...
  local name="$1"; shift 2
  if "$HELM" template fairshift "$CHART" --kube-version "$KUBE_VERSION" "$@" >/dev/null 2>"$OUT/err"; then
    fail "helm template accepted $name"
  else
    echo "refused as expected: $name: $(grep . "$OUT/err" | tail -n 1 | sed 's/^ *//' | head -c 160)"
  fi
}
refuse "namespaced scope without namespaces" -- --set rbac.scope=namespaced
refuse "unknown rbac scope" -- --set rbac.scope=everything
refuse "unknown log format" -- --set logFormat=xml
refuse "zero replicas" -- --set replicas=0
refuse "unknown value" -- --set imagee.tag=x
refuse "sharding with kopf peering" -- --set sharding.shards=4 --set peering.enabled=true
refuse "too many shards" -- --set sharding.shards=5000

if [[ $failures -ne 0 ]]; then echo "charts/lint.sh: $failures failure(s)" >&2; exit 1; fi
echo "charts/lint.sh: all checks passed"
