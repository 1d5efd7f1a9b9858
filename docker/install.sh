#!/bin/sh
# The install steps of the fairshift image, shared by the Dockerfile and docker/test_install.sh
# so that the test runs exactly what the image build runs.
#
#   install.sh wheels SRC WHEELS   build wheels of the project in SRC, of fairshift-instrument
#                                  in SRC/instrument and of all their dependencies into WHEELS
#                                  (`pip wheel`)
#   install.sh venv WHEELS VENV    create a virtual environment VENV (without pip) and install
#                                  fairshift from WHEELS only (`pip install --no-index`)
#
# POSIX sh. The pip cache follows the environment (the Dockerfile sets PIP_NO_CACHE_DIR=1).
set -eu

usage() { echo "usage: $0 wheels SRC WHEELS | venv WHEELS VENV" >&2; exit 2; }

[ $# -eq 3 ] || usage
PYTHON="${PYTHON:-python3}"

case "$1" in
  wheels)
    "$PYTHON" -m pip wheel --disable-pip-version-check --wheel-dir "$3" "$2/instrument" "$2"
    ;;
  venv)
    "$PYTHON" -m venv --without-pip "$3"
    # The interpreter's own pip installs into the venv: the venv itself carries no pip.
    "$PYTHON" -m pip --python "$3/bin/python" install --disable-pip-version-check \
      --no-index --find-links "$2" --no-compile fairshift
    # Byte-compile once at build time (the image's root filesystem is read-only at run time).
    "$3/bin/python" -m compileall -q "$3/lib" >/dev/null
    ;;
  *) usage ;;
esac
