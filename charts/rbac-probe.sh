#!/usr/bin/env bash
# Prove the chart's RBAC against a real kube-apiserver: for each RBAC mode, helm-install the chart,
# mint a token for its ServiceAccount, run charts/rbac_probe_operator.py (a kopf operator making
# fairshift's calls) with that token and with the kopf options the rendered Deployment passes,
# and require that it serves every ModelRollout in the watched namespaces with no 403 at all;
# then check with `kubectl auth can-i` what the ServiceAccount must NOT be able to do.
#
# Modes: cluster scope over all namespaces with two replicas (ClusterKopfPeering), cluster scope
# over two listed namespaces, namespaced scope over two namespaces with two replicas (KopfPeering,
# --no-scanning).
#
# Starts its own etcd and kube-apiserver (only these two: no pod ever runs) on free local ports,
# from the binaries `e2e/cluster.sh build` caches ($FAIRSHIFT_E2E_BIN or
# ${FAIRSHIFT_CACHE:-~/.cache/fairshift}/k8s-*/bin), and stops exactly those processes at exit.
# Without the binaries it prints SKIPPED and exits 0 (exit 1 with FAIRSHIFT_RBAC_PROBE_REQUIRED=1).
# Needs helm (charts/find-helm.sh --build), kubectl, openssl, and kopf in $PYTHON. About a minute.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${FAIRSHIFT_CACHE:-$HOME/.cache/fairshift}"
PYTHON="${PYTHON:-python3}"
KUBECTL="${FAIRSHIFT_KUBECTL:-$(command -v kubectl || echo /usr/bin/kubectl)}"
WORK="$(mktemp -d)"
PIDS=()

log() { printf '[rbac-probe %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { log "FAIL: $*" >&2; exit 1; }

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

BIN="${FAIRSHIFT_E2E_BIN:-}"
if [[ -z "$BIN" ]]; then
  for d in "$CACHE"/k8s-*/bin; do [[ -x "$d/kube-apiserver" && -x "$d/etcd" ]] && BIN="$d"; done
fi
if [[ -z "$BIN" || ! -x "$BIN/kube-apiserver" || ! -x "$BIN/etcd" ]]; then
  if [[ "${FAIRSHIFT_RBAC_PROBE_REQUIRED:-0}" == 1 ]]; then die "no etcd/kube-apiserver: run e2e/cluster.sh build"; fi
  log "SKIPPED: no etcd/kube-apiserver binaries (run e2e/cluster.sh build)"; exit 0
fi
[[ -x "$KUBECTL" ]] || die "kubectl not found"
"$PYTHON" -c 'import kopf, kubernetes' || die "$PYTHON has no kopf/kubernetes (pip install -e .)"
HELM="$("$ROOT/charts/find-helm.sh" --build)"

# ------------------------------------------------------------------ a private control plane
free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ETCD_PORT="$(free_port)"; ETCD_PEER="$(free_port)"; API_PORT="$(free_port)"
PKI="$WORK/pki"; mkdir -p "$PKI"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -days 1 \
  -subj "/CN=fairshift-rbac-probe-ca" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$PKI/api.key" -out "$PKI/api.csr" -subj "/CN=kube-apiserver" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$PKI/api.ext"
openssl x509 -req -in "$PKI/api.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
  -days 1 -extfile "$PKI/api.ext" -out "$PKI/api.crt" 2>/dev/null
openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
ADMIN_TOKEN="$("$PYTHON" -c 'import secrets; print(secrets.token_hex(16))')"
echo "$ADMIN_TOKEN,fairshift-rbac-probe-admin,probe-admin,system:masters" >"$PKI/tokens.csv"

"$BIN/etcd" --name probe --data-dir "$WORK/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-cluster "probe=http://127.0.0.1:$ETCD_PEER" --unsafe-no-fsync --log-level=warn \
  >"$WORK/etcd.log" 2>&1 &
PIDS+=($!)
"$BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
  --tls-cert-file="$PKI/api.crt" --tls-private-key-file="$PKI/api.key" \
  --token-auth-file="$PKI/tokens.csv" --authorization-mode=RBAC \
  --service-account-issuer=https://kubernetes.default.svc \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --service-cluster-ip-range=10.96.0.0/16 --endpoint-reconciler-type=none --profiling=false \
  >"$WORK/apiserver.log" 2>&1 &
PIDS+=($!)

kubeconfig() { # $1 = file, $2 = token
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: probe
  cluster: {server: "https://127.0.0.1:$API_PORT", certificate-authority: "$PKI/ca.crt"}
users:
- name: probe
  user: {token: "$2"}
contexts:
- name: probe
  context: {cluster: probe, user: probe}
current-context: probe
EOF
}
export KUBECONFIG="$WORK/admin.kubeconfig"
kubeconfig "$KUBECONFIG" "$ADMIN_TOKEN"
kc() { "$KUBECTL" "$@"; }
for _ in $(seq 1 120); do kc get --raw /readyz >/dev/null 2>&1 && break; sleep 0.5; done
kc get --raw /readyz >/dev/null 2>&1 || { tail -n 20 "$WORK/apiserver.log" >&2; die "kube-apiserver not ready"; }
log "kube-apiserver $("$BIN/kube-apiserver" --version | awk '{print $2}') ready on :$API_PORT"

for ns in lending ads other; do kc create namespace "$ns" >/dev/null; done

# ------------------------------------------------------------------ one mode
SA="system:serviceaccount:fairshift-system:fairshift"
failures=0
fail() { log "FAIL: $*" >&2; failures=$((failures + 1)); }

can() { # expected(yes|no) args... : kubectl auth can-i as the ServiceAccount
  local expected="$1" got; shift
  got="$(kc auth can-i --as="$SA" "$@" 2>/dev/null || true)"
  [[ "$got" == "$expected" ]] || fail "can-i $*: expected $expected, got ${got:-error}"
}

probe_mode() { # name, watched namespaces (space separated), helm --set args...
  local mode="$1" watched="$2"; shift 2
  log "== $mode"
  "$HELM" upgrade --install fairshift "$ROOT/charts/fairshift" -n fairshift-system --create-namespace \
    --set 'notifications.secretNames={hooks}' "$@" >"$WORK/$mode.helm.log" 2>&1 \
    || { cat "$WORK/$mode.helm.log" >&2; fail "$mode: helm install"; return; }

  # the kopf options exactly as the rendered Deployment passes them to `fairshift run`
  local opts
  opts="$("$HELM" get manifest fairshift -n fairshift-system | "$PYTHON" -c '
import sys, yaml
dep = [d for d in yaml.safe_load_all(sys.stdin) if d and d["kind"] == "Deployment"][0]
args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
out, i = [], 0
while i < len(args):
    a = args[i]
    if a in ("--namespace", "--peering"):
        out += [a, args[i + 1]]; i += 2; continue
    if a in ("--all-namespaces", "--standalone"):
        out.append(a)
    elif a == "--no-scanning":
        out.append("NOSCAN")
    i += 1
print(" ".join(out))')"
  local noscan=0
  [[ "$opts" == *NOSCAN* ]] && noscan=1 && opts="${opts//NOSCAN/}"
  log "operator options: $opts$([[ $noscan == 1 ]] && echo ' (scanning disabled)')"

  local ns
  for ns in lending ads other; do
    kc -n "$ns" create secret generic hooks --from-literal=slack=https://hooks.invalid/x >/dev/null 2>&1 || true
    sed "s/^  namespace: .*/  namespace: $ns/" "$ROOT/examples/credit-scorer.yaml" | kc apply -f - >/dev/null
  done

  kubeconfig "$WORK/sa.kubeconfig" "$(kc -n fairshift-system create token fairshift --duration=10m)"
  # shellcheck disable=SC2086  # opts is a list of words
  KUBECONFIG="$WORK/sa.kubeconfig" PROBE_NO_SCANNING="$noscan" POD_ID="probe-$mode" \
    "$PYTHON" -m kopf run $opts --verbose "$ROOT/charts/rbac_probe_operator.py" >"$WORK/$mode.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")

  local deadline=$((SECONDS + 45)) ok=0
  while (( SECONDS < deadline )); do
    ok=1
    for ns in $watched; do
      [[ "$(kc -n "$ns" get modelrollout credit-scorer -o jsonpath='{.status.message}')" == "probe ok"* ]] || ok=0
    done
    [[ $ok == 1 ]] && break
    sleep 1
  done
  [[ $ok == 1 ]] || fail "$mode: not every watched ModelRollout was served (see the log below)"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true

  if grep -Eq 'Forbidden|Not enough permissions|HTTP/1\.1" 403 ' "$WORK/$mode.log"; then
    grep -E 'Forbidden|Not enough permissions|HTTP/1\.1" 403 ' "$WORK/$mode.log" | cut -c1-300 | head -n 5 >&2 || true
    fail "$mode: the operator met a permission error"
  fi
  if [[ $ok != 1 ]]; then grep -E 'ERROR|WARNING' "$WORK/$mode.log" | cut -c1-300 | head -n 10 >&2 || true; fi
  if [[ " $watched " != *" other "* && "$(kc -n other get modelrollout credit-scorer -o jsonpath='{.status.message}')" == "probe ok"* ]]; then
    fail "$mode: served a namespace it does not watch"
  fi
  [[ "$(kc get events.events.k8s.io -n lending -o name 2>/dev/null | wc -l)" -ge 1 ]] || fail "$mode: no events posted"

  # what the ServiceAccount must not be able to do, in any mode
  can no -n lending get secrets/other-secret
  can no -n lending list secrets
  can no -n lending delete deployments.apps
  can no -n lending delete configmaps
  can no -n lending create pods
  can no -n lending delete modelrollouts.fairshift.io
  can no create clusterroles.rbac.authorization.k8s.io
  can no create customresourcedefinitions.apiextensions.k8s.io
  can yes -n lending get secrets/hooks
  can yes -n lending patch modelrollouts.fairshift.io/status
  can yes -n lending patch deployments.apps/scale
  if [[ "$mode" != cluster-all ]]; then
    can no -n other get secrets/hooks
    can no -n other patch kopfpeerings.kopf.dev
  fi
  if [[ "$mode" == namespaced ]]; then
    can no -n other list modelrollouts.fairshift.io
    can no -n other create deployments.apps
    can no list customresourcedefinitions.apiextensions.k8s.io
    can no list namespaces
  fi
  # cleanup for the next mode: drop kopf's finalizers, then the rollouts and the release
  for ns in lending ads other; do
    kc -n "$ns" patch modelrollout credit-scorer --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
    kc -n "$ns" delete modelrollout credit-scorer --wait=false >/dev/null 2>&1 || true
    kc -n "$ns" delete events.events.k8s.io --all >/dev/null 2>&1 || true
  done
  "$HELM" uninstall fairshift -n fairshift-system >/dev/null
  log "$mode: done"
}

probe_mode cluster-all "lending ads other" --set replicas=2
probe_mode cluster-listed "lending ads" --set 'watch.namespaces={lending,ads}'
probe_mode namespaced "lending ads" --set rbac.scope=namespaced --set 'watch.namespaces={lending,ads}' --set replicas=2

if [[ $failures -ne 0 ]]; then log "$failures failure(s)"; exit 1; fi
log "the chart's RBAC serves fairshift's calls in every mode, and nothing more was checked allowed"
