#!/usr/bin/env bash
# fairshift-instrument stands alone: `pip install ./instrument` into a fresh virtual environment
# installs prometheus_client and nothing of the operator (no kopf, kubernetes, scipy, numpy,
# matplotlib, pydantic), ModelMetrics emits the convention there, and the distribution's own
# tests pass there (pytest is added to that environment for them, after the check).
# Needs PyPI (or a pip cache) for prometheus_client and pytest; about 20 seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
OPERATOR_ONLY=(fairshift kopf kubernetes scipy numpy matplotlib pydantic prometheus-api-client)

log() { printf '[instrument %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { log "FAIL: $*" >&2; exit 1; }

log "pip install ./instrument into a fresh virtual environment"
"$PYTHON" -m venv "$WORK/venv"
# a copy, so that the build leaves nothing behind in the checkout
cp -R "$ROOT/instrument" "$WORK/instrument"
"$WORK/venv/bin/python" -m pip install -q --disable-pip-version-check "$WORK/instrument" \
  || die "pip install ./instrument failed"

installed="$("$WORK/venv/bin/python" -m pip list --disable-pip-version-check --format=freeze)"
log "installed: $(echo "$installed" | cut -d= -f1 | tr '\n' ' ')"
for name in "${OPERATOR_ONLY[@]}"; do
  if echo "$installed" | grep -qix "$name==.*"; then
    die "pip install ./instrument installed $name, a dependency of the operator only"
  fi
done
echo "$installed" | grep -qix 'prometheus[-_]client==.*' || die "prometheus_client is missing"

log "ModelMetrics emits the convention"
(cd "$WORK" && "$WORK/venv/bin/python" - <<'PY') || die "ModelMetrics does not work when installed alone"
from prometheus_client import CollectorRegistry, generate_latest
from fairshift_instrument import ModelMetrics

registry = CollectorRegistry()
metrics = ModelMetrics(["sex"], registry=registry)
metrics.record_prediction({"sex": "F"}, 1, score=0.7, latency_seconds=0.01)
text = generate_latest(registry).decode()
assert 'fairshift_predictions_total{decision="1",sex="F"} 1.0' in text, text
print("fairshift_predictions_total exposed")
PY

log "the distribution's tests, in that environment"
"$WORK/venv/bin/python" -m pip install -q --disable-pip-version-check pytest \
  || die "could not install pytest"
(cd "$WORK" && "$WORK/venv/bin/python" -m pytest -q -p no:cacheprovider "$WORK/instrument/tests") \
  || die "fairshift-instrument's tests fail when it is installed alone"
log "ok"
