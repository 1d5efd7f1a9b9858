"""The demo is a tool of the repository checkout, not a command of the installed product."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fairshift.api.spec import parse_spec
from fairshift.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent


def test_the_product_has_no_demo_command() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo"])
    assert importlib.util.find_spec("fairshift.commands.demo") is None


def test_make_demo_runs_the_checkout_module() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "$(PYTHON) -m e2e.demo" in makefile
    shown = subprocess.run(
        [sys.executable, "-m", "e2e.demo", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--keep" in shown.stdout


def test_the_demo_ends_with_a_promoted_model_that_drifts_and_a_guard_that_looks_often() -> None:
    from e2e.dataplane.population import ModelBehaviour
    from e2e.demo import ACTS, DRIFTING_CANDIDATE, guard_acted, rollout_ended

    assert [act.over for act in ACTS] == [rollout_ended, guard_acted]
    drifting = ModelBehaviour.from_json(json.dumps(DRIFTING_CANDIDATE))
    assert drifting.production_bias and not drifting.bias  # fair in its canary
    assert drifting.in_production().rates({"sex": "F", "age_band": "60+"})[0] < 0.5
    assert not guard_acted({"phase": "Guarding"}) and guard_acted({"phase": "RolledBack"})
    docs = list(yaml.safe_load_all((ROOT / "examples" / "demo-rollout.yaml").read_text()))
    rollout = next(d for d in docs if d["kind"] == "ModelRollout")
    spec = parse_spec(rollout["spec"])
    assert spec.guarded and spec.guard.interval_seconds == 30
    assert spec.guard.on_breach == "rollback"
