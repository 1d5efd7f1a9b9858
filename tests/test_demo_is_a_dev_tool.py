"""The demo is a tool of the repository checkout, not a command of the installed product."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

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
