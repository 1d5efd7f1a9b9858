#!/usr/bin/env bash
# Test the image's install steps without Docker: copy the same build context the Dockerfile
# copies (pyproject.toml, README.md, operator/, instrument/) into a temporary directory, run
# docker/install.sh exactly as the Dockerfile does (pip wheel of the project and its
# dependencies, then a fresh virtual environment installed with pip install --no-index from
# those wheels only), and check the result: `fairshift --version`, `fairshift crd` equal to
# crds/modelrollouts.yaml, the operator's modules import, no pip inside the environment, and
# only wheels (no sdist needing a compiler) among the dependencies.
# Uses the pip cache; about 1 minute warm, a few minutes cold (downloads numpy, scipy, ...).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

log() { printf '[test_install %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { log "FAIL: $*" >&2; exit 1; }

version="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[[ "$version" == 3.11 ]] || log "warning: $PYTHON is Python $version; the image uses 3.11"

# the build context, as the Dockerfile's COPY lines take it
for f in pyproject.toml README.md; do
  [[ -f "$ROOT/$f" ]] || die "$f is missing: the Dockerfile copies it (pyproject.toml names README.md as the readme)"
done
mkdir -p "$WORK/src"
cp "$ROOT/pyproject.toml" "$ROOT/README.md" "$WORK/src/"
cp -R "$ROOT/operator" "$WORK/src/operator"
cp -R "$ROOT/instrument" "$WORK/src/instrument"
find "$WORK/src" \( -name __pycache__ -o -name '*.egg-info' -o -name build -o -name tests \) \
  -prune -exec rm -rf {} +

start=$SECONDS
log "pip wheel (docker/install.sh wheels)"
PYTHON="$PYTHON" sh "$ROOT/docker/install.sh" wheels "$WORK/src" "$WORK/wheels" >"$WORK/wheels.log" 2>&1 \
  || { tail -n 30 "$WORK/wheels.log" >&2; die "pip wheel failed"; }
log "pip install --no-index into a fresh venv (docker/install.sh venv)"
PYTHON="$PYTHON" sh "$ROOT/docker/install.sh" venv "$WORK/wheels" "$WORK/venv" >"$WORK/venv.log" 2>&1 \
  || { tail -n 30 "$WORK/venv.log" >&2; die "pip install --no-index failed"; }
log "installed in $((SECONDS - start))s: $(find "$WORK/wheels" -name '*.whl' | wc -l) wheels"

# pip wheel builds any dependency that has no wheel for this platform from its sdist; the slim
# image has no compiler, so everything built here must be pure Python (…-none-any.whl)
built="$(grep -o 'filename=[^ ]*\.whl' "$WORK/wheels.log" | cut -d= -f2 | sort -u)"
log "wheels built from source: ${built//$'\n'/ }"
for w in $built; do
  [[ "$w" == *-none-any.whl ]] || die "$w was compiled from source: the slim image has no compiler"
done

[[ ! -e "$WORK/venv/bin/pip" ]] || die "the environment contains pip"

log "fairshift --version"
"$WORK/venv/bin/fairshift" --version
out="$("$WORK/venv/bin/fairshift" --version)"
[[ "$out" == "fairshift "* ]] || die "unexpected version output: $out"

log "fairshift crd | head"
"$WORK/venv/bin/fairshift" crd >"$WORK/crd.yaml"
head -n 12 "$WORK/crd.yaml"
cmp -s "$WORK/crd.yaml" "$ROOT/crds/modelrollouts.yaml" || die "fairshift crd differs from crds/modelrollouts.yaml"

log "import every fairshift module from the installed wheel"
(cd "$WORK" && "$WORK/venv/bin/python" - <<'PY') || die "an installed module does not import"
import importlib, pkgutil, sys
import fairshift
assert "/venv/" in fairshift.__file__, fairshift.__file__
names = [m.name for m in pkgutil.walk_packages(fairshift.__path__, "fairshift.")]
for name in names:
    importlib.import_module(name)
import kopf, kubernetes, scipy, numpy, prometheus_client  # the runtime dependencies load
import fairshift_instrument.convention  # the convention, from its own distribution
print(f"{len(names)} modules import from {fairshift.__file__.rsplit('/fairshift/', 1)[0]}")
PY

log "ok in $((SECONDS - start))s"
