#!/usr/bin/env bash
# fairshift e2e cluster: a real local Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler built from the Kubernetes Go modules, kwok for
# fake nodes that make pods Ready), the Gateway API and Istio VirtualService CRDs, and a
# real Prometheus with file-based service discovery.
#
#   e2e/cluster.sh build    build the binaries once into the versioned cache
#   e2e/cluster.sh up       build if needed, start everything, wait until ready
#   e2e/cluster.sh down     stop exactly the processes `up` started (pid files)
#   e2e/cluster.sh status   show what runs
#   e2e/cluster.sh env      print `export ...` lines (KUBECONFIG, Prometheus URL, ...)
#
# Modes: "local" (default here) or "kind" (when `docker info` and `kind` work, or
# FAIRSHIFT_E2E_MODE=kind). See e2e/README.md for every variable.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

K8S_VERSION="${FAIRSHIFT_K8S_VERSION:-v1.33.13}"
ETCD_VERSION="${FAIRSHIFT_ETCD_VERSION:-v3.5.35}"
KWOK_VERSION="${FAIRSHIFT_KWOK_VERSION:-v0.7.0}"
HELM_VERSION="${FAIRSHIFT_HELM_VERSION:-v3.19.0}"
GATEWAY_API_VERSION="${FAIRSHIFT_GATEWAY_API_VERSION:-v1.3.0}"
ISTIO_API_VERSION="${FAIRSHIFT_ISTIO_API_VERSION:-v1.24.2}"

CACHE="${FAIRSHIFT_CACHE:-$HOME/.cache/fairshift}"
K8S_CACHE="$CACHE/k8s-$K8S_VERSION"
BIN="$K8S_CACHE/bin"
SRC="$K8S_CACHE/src"
RUN="${FAIRSHIFT_E2E_RUN:-$HOME/.cache/fairshift/run}"
BUILD_LOG="${FAIRSHIFT_BUILD_LOG:-$K8S_CACHE/build.log}"
BUILD_P="${FAIRSHIFT_BUILD_P:-2}"

HOST=127.0.0.1
# FAIRSHIFT_E2E_PORT_OFFSET shifts every default port, so that several clusters (say, one
# per developer or per CI job on a shared machine) can run side by side with their own
# FAIRSHIFT_E2E_RUN directory.
PORT_OFFSET="${FAIRSHIFT_E2E_PORT_OFFSET:-0}"
ETCD_PORT="${FAIRSHIFT_ETCD_PORT:-$((12379 + PORT_OFFSET))}"
ETCD_PEER_PORT="${FAIRSHIFT_ETCD_PEER_PORT:-$((12380 + PORT_OFFSET))}"
APISERVER_PORT="${FAIRSHIFT_APISERVER_PORT:-$((16443 + PORT_OFFSET))}"
KCM_PORT="${FAIRSHIFT_KCM_PORT:-$((20257 + PORT_OFFSET))}"
SCHED_PORT="${FAIRSHIFT_SCHEDULER_PORT:-$((20259 + PORT_OFFSET))}"
KWOK_PORT="${FAIRSHIFT_KWOK_PORT:-$((20247 + PORT_OFFSET))}"
PROM_PORT="${FAIRSHIFT_PROMETHEUS_PORT:-$((19090 + PORT_OFFSET))}"
PROM_SCRAPE_INTERVAL="${FAIRSHIFT_PROMETHEUS_SCRAPE_INTERVAL:-2s}"
NODE_NAME="${FAIRSHIFT_E2E_NODE:-fairshift-node-0}"
KIND_CLUSTER="${FAIRSHIFT_KIND_CLUSTER:-fairshift-e2e}"
READY_TIMEOUT="${FAIRSHIFT_E2E_READY_TIMEOUT:-120}"

KUBECONFIG_FILE="$RUN/kubeconfig"
PKI="$RUN/pki"
LOGS="$RUN/logs"
PIDS="$RUN/pids"
PROM_DIR="$RUN/prometheus"
PROM_SD_DIR="$PROM_DIR/targets"

KUBECTL="${FAIRSHIFT_KUBECTL:-$(command -v kubectl || echo /usr/bin/kubectl)}"

log() { printf '[cluster.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------------------
# mode
# ---------------------------------------------------------------------------------------
mode() {
  if [[ -n "${FAIRSHIFT_E2E_MODE:-}" ]]; then echo "$FAIRSHIFT_E2E_MODE"; return; fi
  if [[ -f "$RUN/mode" ]]; then cat "$RUN/mode"; return; fi
  if command -v kind >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; then echo kind; else echo local; fi
}

# ---------------------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------------------
gomod_json_field() { # $1 = json file, $2 = field
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

module_download() { # $1 = module@version -> prints path of a json file describing it
  local out; out="$(mktemp)"
  GOFLAGS=-mod=mod go mod download -json "$1" >"$out" || { cat "$out" >&2; die "go mod download $1 failed"; }
  if grep -q '"Error"' "$out"; then cat "$out" >&2; die "go mod download $1 failed"; fi
  echo "$out"
}

# Write a wrapper module in $1 that requires $2@$3, copying the go/godebug lines of the
# module's own go.mod, its replace directives that point at other modules (local-path
# replaces are dropped, except Kubernetes staging ones which become k8s.io/x v0.X.Y).
write_wrapper_module() {
  local dir="$1" mod="$2" ver="$3" json gomod
  mkdir -p "$dir"
  json="$(module_download "$mod@$ver")"
  gomod="$(gomod_json_field "$json" GoMod)"
  rm -f "$json"
  python3 - "$gomod" "$mod" "$ver" >"$dir/go.mod" <<'PY'
import re, sys
gomod, mod, ver = sys.argv[1:4]
text = open(gomod).read()
lines = ["module fairshift.dev/e2e-build/" + re.sub(r"[^a-z0-9]+", "-", mod.lower()), ""]
go_line = re.search(r"^go\s+(\S+)", text, re.M)
lines.append("go " + (go_line.group(1) if go_line else "1.24.0"))
for m in re.finditer(r"^godebug\s+(.+)$", text, re.M):
    lines.append("godebug " + m.group(1))
lines += ["", "require %s %s" % (mod, ver), ""]
# collect replace directives (block and single-line forms)
repl = []
for block in re.finditer(r"^replace\s*\((.*?)^\)", text, re.M | re.S):
    repl += [l.strip() for l in block.group(1).splitlines() if "=>" in l]
repl += [m.group(1).strip() for m in re.finditer(r"^replace\s+([^(\n].*=>.*)$", text, re.M)]
staging_ver = None
if mod == "k8s.io/kubernetes":
    staging_ver = "v0." + ver.split(".", 1)[1]
out = []
for r in repl:
    r = r.split("//")[0].strip() if " //" in r else r
    left, right = [s.strip() for s in r.split("=>", 1)]
    target = right.split()
    m = re.match(r"\./staging/src/(k8s\.io/\S+)$", target[0])
    if m and staging_ver:
        out.append("\t%s => %s %s" % (left.split()[0], m.group(1), staging_ver))
    elif target[0].startswith(".") or target[0].startswith("/"):
        continue  # local replace inside the upstream repo: meaningless for a dependency
    else:
        out.append("\t%s => %s" % (left, right))
if staging_ver and not out:
    sys.exit("no staging replaces found in k8s.io/kubernetes go.mod")
if out:
    lines += ["replace ("] + out + [")"]
print("\n".join(lines))
PY
}

# go build inside a wrapper module. $1 = dir, $2 = ldflags, $3 = output binary, $4 = package
wrapper_build() {
  local dir="$1" ldflags="$2" out="$3" pkg="$4"
  log "  go build $pkg -> $out"
  ( cd "$dir" && CGO_ENABLED=0 GOWORK=off GOTOOLCHAIN=local GOFLAGS=-mod=mod \
      go build -trimpath -p "$BUILD_P" -ldflags "$ldflags" -o "$out.tmp" "$pkg" )
  mv "$out.tmp" "$out"
}

build_k8s() {
  [[ -x "$BIN/kube-apiserver" && -x "$BIN/kube-controller-manager" && -x "$BIN/kube-scheduler" ]] && return 0
  log "building kube-apiserver, kube-controller-manager, kube-scheduler $K8S_VERSION"
  local dir="$SRC/kubernetes" info commit="" minor date
  write_wrapper_module "$dir" k8s.io/kubernetes "$K8S_VERSION"
  info="$(module_download "k8s.io/kubernetes@$K8S_VERSION")"
  commit="$(python3 -c 'import json,sys; d=json.load(open(json.load(open(sys.argv[1]))["Info"])); print((d.get("Origin") or {}).get("Hash",""))' "$info" 2>/dev/null || true)"
  rm -f "$info"
  minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
  date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  local ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
    [[ -n "$commit" ]] && ld+=" -X $pkg.gitCommit=$commit"
  done
  # one binary at a time: linking kube-apiserver is the memory peak
  for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
    [[ -x "$BIN/$cmd" ]] && continue
    wrapper_build "$dir" "$ld" "$BIN/$cmd" "k8s.io/kubernetes/cmd/$cmd"
  done
}

build_etcd() {
  [[ -x "$BIN/etcd" ]] && return 0
  log "building etcd $ETCD_VERSION"
  local dir="$SRC/etcd"
  write_wrapper_module "$dir" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
  wrapper_build "$dir" "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" "$BIN/etcd" go.etcd.io/etcd/server/v3
}

build_kwok() {
  [[ -x "$BIN/kwok" ]] && return 0
  log "building kwok $KWOK_VERSION"
  local dir="$SRC/kwok"
  write_wrapper_module "$dir" sigs.k8s.io/kwok "$KWOK_VERSION"
  wrapper_build "$dir" "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" "$BIN/kwok" sigs.k8s.io/kwok/cmd/kwok
}

build_helm() {
  [[ -x "$BIN/helm" ]] && return 0
  log "building helm $HELM_VERSION"
  local dir="$SRC/helm"
  write_wrapper_module "$dir" helm.sh/helm/v3 "$HELM_VERSION"
  wrapper_build "$dir" "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" "$BIN/helm" helm.sh/helm/v3/cmd/helm
}

built() {
  local b
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kwok helm; do
    [[ -x "$BIN/$b" ]] || return 1
  done
}

cmd_build() {
  command -v go >/dev/null || die "go is required to build the control plane"
  if built; then log "binaries cached in $BIN"; return 0; fi
  mkdir -p "$BIN" "$SRC"
  log "building into $BIN (log: $BUILD_LOG)"
  local start=$SECONDS rc=0
  # a subshell outside any ||/&& list, so that `set -e` stops at the first failing step
  set +e
  ( set -e; build_etcd; build_k8s; build_kwok; build_helm ) >>"$BUILD_LOG" 2>&1
  rc=$?
  set -e
  if [[ $rc -ne 0 ]]; then tail -n 40 "$BUILD_LOG" >&2; die "build failed (exit $rc), see $BUILD_LOG"; fi
  log "build done in $((SECONDS - start))s"
  "$BIN/kube-apiserver" --version >&2
}


# ---------------------------------------------------------------------------------------
# processes (pid files; a pid is only ours while its /proc cmdline starts with our binary)
# ---------------------------------------------------------------------------------------
alive() { # $1 = pid; a zombie (exited, not yet reaped by its parent) counts as dead
  local state
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z ]]
}

pid_of() { # $1 = name -> prints pid if the process started by us is alive
  local f="$PIDS/$1.pid" pid exe
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  [[ -n "$pid" ]] && alive "$pid" || return 1
  exe="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  [[ -f "$PIDS/$1.cmd" && "$exe" == "$(cat "$PIDS/$1.cmd")"* ]] || return 1
  echo "$pid"
}

start_proc() { # $1 = name, $2.. = command
  local name="$1"; shift
  if pid_of "$name" >/dev/null; then log "$name already running (pid $(pid_of "$name"))"; return 0; fi
  mkdir -p "$LOGS" "$PIDS"
  [[ -f "$LOGS/$name.log" ]] && mv -f "$LOGS/$name.log" "$LOGS/$name.log.prev"
  # setsid: own session, so the process outlives the shell (or pytest) that ran `up`
  # (9>&-: the daemons must not inherit the run-dir lock)
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
  local pid=$!
  echo "$pid" >"$PIDS/$name.pid"
  printf '%s' "$1" >"$PIDS/$name.cmd"
  sleep 0.3
  alive "$pid" || { tail -n 30 "$LOGS/$name.log" >&2; die "$name exited at once, see $LOGS/$name.log"; }
  log "started $name (pid $pid, log $LOGS/$name.log)"
}

stop_procs() { # $@ = names; SIGTERM all, wait up to 10s, then SIGKILL what is left
  local name pid i alive
  declare -A pids=()
  for name in "$@"; do
    if pid="$(pid_of "$name")"; then pids[$name]=$pid; kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for i in $(seq 1 100); do
    alive=0
    for name in "${!pids[@]}"; do alive "${pids[$name]}" && alive=1; done
    [[ $alive -eq 0 ]] && break
    sleep 0.1
  done
  for name in "$@"; do
    if [[ -n "${pids[$name]:-}" ]]; then
      pid=${pids[$name]}
      if alive "$pid"; then log "$name (pid $pid) ignored SIGTERM, sending SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
      log "stopped $name (pid $pid)"
    fi
    rm -f "$PIDS/$name.pid" "$PIDS/$name.cmd"
  done
}
stop_proc() { stop_procs "$1"; }

wait_until() { # $1 = timeout seconds, $2 = description, $3.. = command
  local timeout="$1" what="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    (( SECONDS < deadline )) || die "timed out after ${timeout}s waiting for $what"
    # give up at once when a component we wait on has died
    if [[ -n "${WATCH:-}" ]] && ! pid_of "$WATCH" >/dev/null; then
      tail -n 30 "$LOGS/$WATCH.log" >&2 || true
      die "$WATCH exited while waiting for $what, see $LOGS/$WATCH.log"
    fi
    sleep 0.5
  done
}

port_free() { ! (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# ---------------------------------------------------------------------------------------
# PKI and kubeconfigs (openssl)
# ---------------------------------------------------------------------------------------
sign_cert() { # $1 = name, $2 = subject, $3 = extensions
  local name="$1" subj="$2" ext="$3"
  [[ -f "$PKI/$name.crt" ]] && return 0
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  printf '%b' "$ext" >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr"
}

make_pki() {
  mkdir -p "$PKI"; chmod 700 "$PKI"
  if [[ ! -f "$PKI/ca.crt" ]]; then
    openssl genrsa -out "$PKI/ca.key" 2048 2>/dev/null
    openssl req -x509 -new -nodes -key "$PKI/ca.key" -subj "/CN=fairshift-e2e-ca" -days 3650 -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out "$PKI/ca.crt" 2>/dev/null
  fi
  local client="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
  sign_cert apiserver "/CN=kube-apiserver" \
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
  sign_cert admin "/O=system:masters/CN=fairshift-e2e-admin" "$client"
  sign_cert controller-manager "/CN=system:kube-controller-manager" "$client"
  sign_cert scheduler "/CN=system:kube-scheduler" "$client"
  sign_cert kwok "/O=system:masters/CN=fairshift-e2e-kwok" "$client"
  # front proxy (aggregation layer): lets aggregated API servers trust the apiserver
  if [[ ! -f "$PKI/front-proxy-ca.crt" ]]; then
    openssl genrsa -out "$PKI/front-proxy-ca.key" 2048 2>/dev/null
    openssl req -x509 -new -nodes -key "$PKI/front-proxy-ca.key" -subj "/CN=fairshift-e2e-front-proxy-ca" -days 3650 -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out "$PKI/front-proxy-ca.crt" 2>/dev/null
  fi
  if [[ ! -f "$PKI/front-proxy-client.crt" ]]; then
    openssl genrsa -out "$PKI/front-proxy-client.key" 2048 2>/dev/null
    openssl req -new -key "$PKI/front-proxy-client.key" -subj "/CN=front-proxy-client" -out "$PKI/front-proxy-client.csr" 2>/dev/null
    printf '%b' "$client" >"$PKI/front-proxy-client.ext"
    openssl x509 -req -in "$PKI/front-proxy-client.csr" -CA "$PKI/front-proxy-ca.crt" -CAkey "$PKI/front-proxy-ca.key" \
      -CAcreateserial -days 3650 -sha256 -extfile "$PKI/front-proxy-client.ext" -out "$PKI/front-proxy-client.crt" 2>/dev/null
    rm -f "$PKI/front-proxy-client.csr"
  fi
  if [[ ! -f "$PKI/sa.key" ]]; then
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  fi
}

write_kubeconfig() { # $1 = file, $2 = user (cert name)
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fairshift-e2e
  cluster:
    server: https://$HOST:$APISERVER_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $2
  user:
    client-certificate: $PKI/$2.crt
    client-key: $PKI/$2.key
contexts:
- name: fairshift-e2e
  context: {cluster: fairshift-e2e, user: $2}
current-context: fairshift-e2e
EOF
}

kc() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# ---------------------------------------------------------------------------------------
# control plane
# ---------------------------------------------------------------------------------------
start_control_plane() {
  mkdir -p "$RUN"
  make_pki
  write_kubeconfig "$KUBECONFIG_FILE" admin
  write_kubeconfig "$RUN/controller-manager.kubeconfig" controller-manager
  write_kubeconfig "$RUN/scheduler.kubeconfig" scheduler
  write_kubeconfig "$RUN/kwok.kubeconfig" kwok

  if ! pid_of etcd >/dev/null; then
    port_free "$ETCD_PORT" || die "port $ETCD_PORT (etcd) is taken by another process"
    [[ "${FAIRSHIFT_E2E_KEEP_STATE:-0}" == 1 ]] || rm -rf "$RUN/etcd"
  fi
  start_proc etcd "$BIN/etcd" --name fairshift-e2e --data-dir "$RUN/etcd" \
    --listen-client-urls "http://$HOST:$ETCD_PORT" --advertise-client-urls "http://$HOST:$ETCD_PORT" \
    --listen-peer-urls "http://$HOST:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://$HOST:$ETCD_PEER_PORT" \
    --initial-cluster "fairshift-e2e=http://$HOST:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --quota-backend-bytes=2147483648 --log-level=warn
  WATCH=etcd wait_until 30 "etcd health" curl -fsS "http://$HOST:$ETCD_PORT/health"

  if ! pid_of kube-apiserver >/dev/null; then
    port_free "$APISERVER_PORT" || die "port $APISERVER_PORT (kube-apiserver) is taken by another process"
  fi
  start_proc kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers="http://$HOST:$ETCD_PORT" \
    --bind-address="$HOST" --advertise-address="$HOST" --secure-port="$APISERVER_PORT" \
    --endpoint-reconciler-type=none \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --allow-privileged=true --profiling=false \
    --event-ttl=10m
  WATCH=kube-apiserver wait_until "$READY_TIMEOUT" "kube-apiserver /readyz" kc get --raw /readyz

  # Node lifecycle controller: it must run, since it removes the node.kubernetes.io/not-ready
  # taint that admission puts on every new node (without it nothing ever schedules). kwok's
  # fake heartbeats can lag on a loaded machine, and the controller would then mark every pod
  # NotReady, which kwok never sets back: so its grace period is far longer than any test.
  start_proc kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig="$RUN/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$RUN/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$RUN/controller-manager.kubeconfig" \
    --bind-address="$HOST" --secure-port="$KCM_PORT" \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --use-service-account-credentials=true \
    --controllers='*' --leader-elect=false --profiling=false \
    --node-monitor-grace-period=2h --node-startup-grace-period=2h \
    --service-cluster-ip-range=10.96.0.0/16 --allocate-node-cidrs=false

  start_proc kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig="$RUN/scheduler.kubeconfig" \
    --authentication-kubeconfig="$RUN/scheduler.kubeconfig" \
    --authorization-kubeconfig="$RUN/scheduler.kubeconfig" \
    --bind-address="$HOST" --secure-port="$SCHED_PORT" --leader-elect=false --profiling=false

  start_proc kwok "$BIN/kwok" --kubeconfig="$RUN/kwok.kubeconfig" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --cidr=10.244.0.1/16 --node-ip=127.0.0.1 \
    --server-address="$HOST:$KWOK_PORT"

  kc get node "$NODE_NAME" >/dev/null 2>&1 || kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $NODE_NAME
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: $NODE_NAME
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/role: agent
    type: kwok
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "250"}
  capacity: {cpu: "32", memory: 256Gi, pods: "250"}
EOF
  WATCH=kwok wait_until "$READY_TIMEOUT" "node $NODE_NAME Ready" kc wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s
  WATCH=kube-controller-manager wait_until "$READY_TIMEOUT" "default service account" kc -n default get serviceaccount default
}

stop_control_plane() {
  # clients first, then the API server, then etcd
  stop_procs kwok kube-scheduler kube-controller-manager
  stop_procs kube-apiserver
  stop_procs etcd
  [[ "${FAIRSHIFT_E2E_KEEP_STATE:-0}" == 1 ]] || rm -rf "$RUN/etcd"
}

# ---------------------------------------------------------------------------------------
# CRDs: Gateway API from the sigs.k8s.io/gateway-api module, Istio from istio.io/api
# ---------------------------------------------------------------------------------------
module_dir() { # $1 = module@version
  local json dir
  json="$(module_download "$1")"; dir="$(gomod_json_field "$json" Dir)"; rm -f "$json"; echo "$dir"
}

install_crds() {
  local gw channel istio
  mkdir -p "$RUN/crds"
  if [[ ! -f "$RUN/crds/.done-$GATEWAY_API_VERSION-$ISTIO_API_VERSION" ]]; then
    command -v go >/dev/null || die "go is required to fetch the Gateway API and Istio CRDs"
    gw="$(module_dir "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION")"
    # RequestMirror.percent is in the standard channel from v1.3 on; otherwise use experimental
    channel=standard
    if ! python3 - "$gw/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml" <<'PY'
import sys, yaml
crd = yaml.safe_load(open(sys.argv[1]))
v1 = [v for v in crd["spec"]["versions"] if v["name"] == "v1"][0]
rule = v1["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["rules"]["items"]
f = rule["properties"]["filters"]["items"]["properties"]["requestMirror"]["properties"]
sys.exit(0 if "percent" in f else 1)
PY
    then channel=experimental; fi
    rm -f "$RUN/crds"/*.yaml
    cp "$gw/config/crd/$channel"/gateway.networking.k8s.io_*.yaml "$RUN/crds/"
    chmod u+w "$RUN/crds"/*.yaml
    echo "$channel" >"$RUN/crds/gateway-api-channel"
    istio="$(module_dir "istio.io/api@$ISTIO_API_VERSION")"
    python3 - "$istio/kubernetes/customresourcedefinitions.gen.yaml" "$RUN/crds/istio.yaml" <<'PY'
import sys, yaml
wanted = {"virtualservices.networking.istio.io", "destinationrules.networking.istio.io"}
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("metadata", {}).get("name") in wanted]
vs = [d for d in docs if d["metadata"]["name"].startswith("virtualservices")]
assert vs and {"v1", "v1beta1"} <= {v["name"] for v in vs[0]["spec"]["versions"]}, "VirtualService v1/v1beta1 missing"
yaml.safe_dump_all(docs, open(sys.argv[2], "w"), sort_keys=False)
PY
    touch "$RUN/crds/.done-$GATEWAY_API_VERSION-$ISTIO_API_VERSION"
  fi
  # already installed at this version (a second `up`)? then nothing to do
  local have
  have="$(kc get crd httproutes.gateway.networking.k8s.io virtualservices.networking.istio.io \
    -o jsonpath='{.items[0].metadata.annotations.gateway\.networking\.k8s\.io/bundle-version} {.items[1].metadata.name}' 2>/dev/null || true)"
  if [[ "$have" == "$GATEWAY_API_VERSION virtualservices.networking.istio.io" ]]; then
    log "CRDs already installed (Gateway API $GATEWAY_API_VERSION, Istio)"
    return 0
  fi
  kc apply --server-side --force-conflicts -f "$RUN/crds/" >/dev/null
  wait_until 60 "CRDs established" kc wait --for=condition=Established --timeout=5s \
    crd/httproutes.gateway.networking.k8s.io crd/gateways.gateway.networking.k8s.io \
    crd/virtualservices.networking.istio.io
  log "CRDs installed (Gateway API $GATEWAY_API_VERSION $(cat "$RUN/crds/gateway-api-channel") channel, Istio $ISTIO_API_VERSION)"
}

# ---------------------------------------------------------------------------------------
# Prometheus (Debian package binary, our own process and config)
# ---------------------------------------------------------------------------------------
prometheus_bin() { command -v prometheus || { [[ -x /usr/bin/prometheus ]] && echo /usr/bin/prometheus; } || true; }

install_prometheus() {
  [[ -n "$(prometheus_bin)" ]] && return 0
  log "installing prometheus (Debian package)"
  command -v apt-get >/dev/null || die "prometheus not on PATH and no apt-get to install it"
  local sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  # keep the package's own service from starting: we run our own process
  local policy=/usr/sbin/policy-rc.d created=0 rc=0
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' | $sudo tee $policy >/dev/null; $sudo chmod +x $policy; created=1; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends prometheus >>"$RUN/apt.log" 2>&1 || {
    $sudo apt-get update >>"$RUN/apt.log" 2>&1 && $sudo apt-get install -y --no-install-recommends prometheus >>"$RUN/apt.log" 2>&1; } || rc=$?
  [[ $created -eq 1 ]] && $sudo rm -f $policy
  [[ $rc -eq 0 ]] || { tail -n 20 "$RUN/apt.log" >&2; die "apt-get install prometheus failed"; }
}

start_prometheus() {
  install_prometheus
  if ! pid_of prometheus >/dev/null; then
    port_free "$PROM_PORT" || die "port $PROM_PORT (prometheus) is taken by another process"
    [[ "${FAIRSHIFT_E2E_KEEP_STATE:-0}" == 1 ]] || rm -rf "$PROM_DIR/data"
  fi
  mkdir -p "$PROM_SD_DIR" "$PROM_DIR/data"
  cat >"$PROM_DIR/prometheus.yml" <<EOF
# generated by e2e/cluster.sh; scrape targets come from $PROM_SD_DIR/*.json
global:
  scrape_interval: $PROM_SCRAPE_INTERVAL
  scrape_timeout: $PROM_SCRAPE_INTERVAL
  evaluation_interval: $PROM_SCRAPE_INTERVAL
scrape_configs:
  - job_name: fairshift-e2e
    file_sd_configs:
      - files: ['$PROM_SD_DIR/*.json']
        refresh_interval: 1s
EOF
  start_proc prometheus "$(prometheus_bin)" --config.file="$PROM_DIR/prometheus.yml" \
    --storage.tsdb.path="$PROM_DIR/data" --storage.tsdb.retention.time=1d \
    --web.listen-address="$HOST:$PROM_PORT" --web.enable-lifecycle --web.enable-admin-api
  WATCH=prometheus wait_until 60 "prometheus ready" curl -fsS "http://$HOST:$PROM_PORT/-/ready"
}

# ---------------------------------------------------------------------------------------
# kind mode (where Docker and kind exist)
# ---------------------------------------------------------------------------------------
kind_up() {
  if ! kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
    kind create cluster --name "$KIND_CLUSTER" --kubeconfig "$KUBECONFIG_FILE" --wait 120s
  else
    kind export kubeconfig --name "$KIND_CLUSTER" --kubeconfig "$KUBECONFIG_FILE"
  fi
}
kind_down() { kind delete cluster --name "$KIND_CLUSTER" || true; }

# ---------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------
lock_run_dir() { # serialize up/down on one run directory (e.g. two pytest sessions at once)
  mkdir -p "$RUN"
  if command -v flock >/dev/null; then
    exec 9>"$RUN/.lock"
    flock -w 600 9 || die "another cluster.sh holds $RUN/.lock"
  fi
}

cmd_up() {
  local start=$SECONDS m; m="$(mode)"
  lock_run_dir
  echo "$m" >"$RUN/mode"
  if [[ "$m" == kind ]]; then
    kind_up
  else
    cmd_build
    start_control_plane
  fi
  install_crds
  start_prometheus
  log "up ($m) in $((SECONDS - start))s; use it with: eval \"\$(e2e/cluster.sh env)\""
}

cmd_down() {
  local m; m="$(mode)"
  lock_run_dir
  stop_proc prometheus
  [[ "${FAIRSHIFT_E2E_KEEP_STATE:-0}" == 1 ]] || rm -rf "$PROM_DIR/data" "$PROM_SD_DIR"
  if [[ "$m" == kind ]]; then kind_down; else stop_control_plane; fi
  rm -f "$RUN/mode"
}

cmd_env() {
  cat <<EOF
export KUBECONFIG='$KUBECONFIG_FILE'
export FAIRSHIFT_E2E_KUBECONFIG='$KUBECONFIG_FILE'
export FAIRSHIFT_E2E_RUN='$RUN'
export FAIRSHIFT_PROMETHEUS_URL='http://$HOST:$PROM_PORT'
export FAIRSHIFT_PROMETHEUS_SD_DIR='$PROM_SD_DIR'
export FAIRSHIFT_E2E_BIN='$BIN'
export PATH='$BIN':"\$PATH"
EOF
}

cmd_status() {
  local m c pid rc=0 comps="prometheus" total=0 rss; m="$(mode)"
  echo "mode:        $m"
  echo "binaries:    $BIN ($(built && echo built || echo 'not built'))"
  echo "run dir:     $RUN"
  echo "kubeconfig:  $KUBECONFIG_FILE"
  [[ "$m" == local ]] && comps="etcd kube-apiserver kube-controller-manager kube-scheduler kwok prometheus"
  for c in $comps; do
    if pid="$(pid_of "$c")"; then
      rss="$(awk '/VmRSS/{print $2}' "/proc/$pid/status")"; total=$((total + rss))
      printf '  %-24s running  pid %-8s rss %6d MiB\n' "$c" "$pid" "$((rss / 1024))"
    else
      printf '  %-24s stopped\n' "$c"; rc=1
    fi
  done
  echo "total rss:   $((total / 1024)) MiB"
  if [[ -f "$KUBECONFIG_FILE" ]] && kc get --raw /readyz >/dev/null 2>&1; then
    echo "apiserver:   ready ($(kc version -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])' 2>/dev/null))"
    kc get nodes --no-headers 2>/dev/null | sed 's/^/  node /'
  else
    echo "apiserver:   not reachable"; rc=1
  fi
  if curl -fsS "http://$HOST:$PROM_PORT/-/ready" >/dev/null 2>&1; then
    echo "prometheus:  ready at http://$HOST:$PROM_PORT (targets from $PROM_SD_DIR/*.json)"
  else
    echo "prometheus:  not reachable"; rc=1
  fi
  return $rc
}

case "${1:-}" in
  build) cmd_build ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 up|down|status|env|build" >&2; exit 2 ;;
esac
