#!/usr/bin/env bash
# Print the path of a helm v3 binary, looking in this order:
#   $FAIRSHIFT_HELM, the fairshift cache ($FAIRSHIFT_CACHE, default ~/.cache/fairshift):
#   helm-<version>/bin/helm (built by this script) and k8s-*/bin/helm (built by
#   `e2e/cluster.sh build`), then `helm` on PATH.
# With --build, build helm from the Go module proxy when none is found:
#   go install helm.sh/helm/v3/cmd/helm@$FAIRSHIFT_HELM_VERSION into $CACHE/helm-<version>/bin
# (about 2-3 minutes on 2 cores with a cold module cache). Exits 1 when no helm is found.
set -euo pipefail

HELM_VERSION="${FAIRSHIFT_HELM_VERSION:-v3.19.0}"
CACHE="${FAIRSHIFT_CACHE:-$HOME/.cache/fairshift}"
OWN="$CACHE/helm-$HELM_VERSION/bin/helm"

log() { printf '[find-helm %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

found() { [[ -n "$1" && -x "$1" ]] && "$1" version --short 2>/dev/null | grep -q '^v3\.'; }

find_helm() {
  local c
  if [[ -n "${FAIRSHIFT_HELM:-}" ]]; then
    found "$FAIRSHIFT_HELM" && { echo "$FAIRSHIFT_HELM"; return 0; }
    log "FAIRSHIFT_HELM=$FAIRSHIFT_HELM is not a helm v3 binary"; return 1
  fi
  for c in "$OWN" "$CACHE"/k8s-*/bin/helm "$(command -v helm || true)"; do
    if found "$c"; then echo "$c"; return 0; fi
  done
  return 1
}

build_helm() {
  command -v go >/dev/null || { log "no helm found and no go toolchain to build it"; return 1; }
  log "building helm $HELM_VERSION from the Go module proxy into $(dirname "$OWN")"
  local tmp client_minor start=$SECONDS
  tmp="$(mktemp -d)"
  # Default Kubernetes version of `helm template` / lint: that of helm's client-go (as upstream's
  # Makefile sets it); charts/lint.sh passes --kube-version explicitly anyway.
  client_minor="$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "helm.sh/helm/v3@$HELM_VERSION" \
    | python3 -c 'import json,re,sys; t=open(json.load(sys.stdin)["GoMod"]).read(); print(re.search(r"k8s.io/client-go v0\.(\d+)", t).group(1))' \
    || echo 33)"
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$client_minor"
  ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$client_minor"
  ( cd "$tmp" && GOBIN="$tmp/bin" CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-trimpath \
      go install -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" ) >&2
  mkdir -p "$(dirname "$OWN")"
  mv "$tmp/bin/helm" "$OWN"
  rm -rf "$tmp"
  log "built $("$OWN" version --short) in $((SECONDS - start))s"
}

if path="$(find_helm)"; then
  echo "$path"
elif [[ "${1:-}" == "--build" ]]; then
  build_helm && echo "$OWN"
else
  log "no helm v3 found (run $0 --build to build $HELM_VERSION)"
  exit 1
fi
