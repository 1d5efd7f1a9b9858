"""The local cluster tooling (``e2e/cluster.sh`` and its parts): parses, and leaves the host
alone outside CI (it says how to install Prometheus instead of installing it)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted([ROOT / "e2e" / "cluster.sh", *(ROOT / "e2e" / "cluster").glob("*.sh")])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_every_part_parses(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)


def ensure_prometheus(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    """``ensure_prometheus`` on a host without Prometheus, installing nothing for real."""
    probe = f"""
        set -euo pipefail
        SCRIPT_DIR={ROOT / "e2e"}
        source "$SCRIPT_DIR/cluster/settings.sh"
        source "$SCRIPT_DIR/cluster/prometheus.sh"
        prometheus_bin() {{ true; }}                # no Prometheus anywhere
        install_prometheus() {{ echo "INSTALLED"; }}  # what CI would run
        ensure_prometheus
        echo "ready"
    """
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["FAIRSHIFT_E2E_RUN"] = str(tmp_path)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(["bash", "-c", probe], env=env, capture_output=True, text=True)


def test_outside_ci_it_tells_how_to_install_prometheus(tmp_path: Path) -> None:
    done = ensure_prometheus(tmp_path, ci=None)

    assert done.returncode != 0
    assert "sudo apt-get install prometheus" in done.stderr
    assert "INSTALLED" not in done.stdout


def test_in_ci_it_installs_prometheus(tmp_path: Path) -> None:
    done = ensure_prometheus(tmp_path, ci="true")

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["INSTALLED", "ready"]
