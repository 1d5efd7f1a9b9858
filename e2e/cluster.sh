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
#
# The parts, one concern each, are sourced from e2e/cluster/: settings.sh (versions, paths,
# ports, mode), build.sh (Go builds), processes.sh (pid files, waiting, the run-dir lock),
# certificates.sh (PKI, kubeconfigs), control_plane.sh (up/down of the cluster, CRDs, kind)
# and prometheus.sh. Prometheus is never installed on a developer's machine: without it,
# `up` says how to install it (in CI, CI=true, it installs the Debian package).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PARTS="$SCRIPT_DIR/cluster"
# shellcheck source=e2e/cluster/settings.sh
source "$PARTS/settings.sh"
# shellcheck source=e2e/cluster/build.sh
source "$PARTS/build.sh"
# shellcheck source=e2e/cluster/processes.sh
source "$PARTS/processes.sh"
# shellcheck source=e2e/cluster/certificates.sh
source "$PARTS/certificates.sh"
# shellcheck source=e2e/cluster/control_plane.sh
source "$PARTS/control_plane.sh"
# shellcheck source=e2e/cluster/prometheus.sh
source "$PARTS/prometheus.sh"

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
