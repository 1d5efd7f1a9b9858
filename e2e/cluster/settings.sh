# shellcheck shell=bash
# e2e/cluster.sh, settings: versions, the cache and run directories, ports, logging, the
# mode (local or kind) and kubectl on the cluster. Sourced by e2e/cluster.sh, which sets
# SCRIPT_DIR; every other part reads these names.

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


mode() {
  if [[ -n "${FAIRSHIFT_E2E_MODE:-}" ]]; then echo "$FAIRSHIFT_E2E_MODE"; return; fi
  if [[ -f "$RUN/mode" ]]; then cat "$RUN/mode"; return; fi
  if command -v kind >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; then echo kind; else echo local; fi
}


kc() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }
