# shellcheck shell=bash
# e2e/cluster.sh, build: the control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler), kwok and helm built from their Go modules into the versioned cache, once.
# Also fetches module trees (for the CRDs). Needs Go and the Go module proxy.

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

module_dir() { # $1 = module@version
  local json dir
  json="$(module_download "$1")"; dir="$(gomod_json_field "$json" Dir)"; rm -f "$json"; echo "$dir"
}
