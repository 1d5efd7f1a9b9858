"""The operator process loads what it runs: drawing libraries only when it draws."""

from __future__ import annotations

import subprocess
import sys


def test_starting_the_operator_does_not_load_matplotlib() -> None:
    probe = (
        "import sys, fairshift.cli, fairshift.commands.run, fairshift.handlers; "
        "print(sorted(m for m in ('matplotlib', 'PIL') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()

    assert loaded == "[]"
