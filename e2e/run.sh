#!/usr/bin/env bash
# Run the fairshift e2e suite: build the control plane binaries if the cache is empty,
# bring the cluster up, run `python -m pytest e2e -m e2e "$@"`, bring it down again.
#
#   e2e/run.sh                      # whole suite
#   e2e/run.sh -k smoke -x          # extra args go to pytest
#
# A cluster that was already running before this script (e.g. a developer's
# `e2e/cluster.sh up`) is left running; FAIRSHIFT_E2E_KEEP_UP=1 keeps ours up too.
# Exit code: pytest's.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
CLUSTER="$SCRIPT_DIR/cluster.sh"
PYTHON="${PYTHON:-python}"
command -v "$PYTHON" >/dev/null || PYTHON=python3

start=$SECONDS
stamp() { printf '[e2e/run.sh %s +%ss] %s\n' "$(date -u +%H:%M:%S)" "$((SECONDS - start))" "$*" >&2; }

cd "$REPO"

was_up=0
if bash "$CLUSTER" status >/dev/null 2>&1; then was_up=1; fi

# `cluster.sh up` builds the binaries first when the cache is empty (local mode)

down() {
  local rc=$?
  if [[ $was_up -eq 0 && "${FAIRSHIFT_E2E_KEEP_UP:-0}" != 1 ]]; then
    stamp "bringing the cluster down"
    bash "$CLUSTER" down || true
  fi
  stamp "done (exit $rc)"
  exit $rc
}
trap down EXIT
trap 'exit 130' INT TERM

stamp "bringing the cluster up (builds the control plane on the first run)"
bash "$CLUSTER" up
eval "$(bash "$CLUSTER" env)"
bash "$CLUSTER" status >&2 || true

stamp "running pytest"
set +e
"$PYTHON" -m pytest e2e -m e2e --durations=15 "$@"
rc=$?
set -e
exit $rc
