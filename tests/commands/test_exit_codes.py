"""One exit-code vocabulary for every command: each number has one meaning, documented once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fairshift.cli import main
from fairshift.commands.exitcodes import MEANINGS, ExitCode
from tests.commands.conftest import Runner
from tests.test_gate_command import POLICY, decisions

ROOT = Path(__file__).resolve().parents[2]


def test_no_two_meanings_share_a_number() -> None:
    assert len(ExitCode.__members__) == len(list(ExitCode)), "an exit code is an alias"
    assert set(MEANINGS) == set(ExitCode)


def test_not_proven_and_not_found_are_different_numbers(tmp_path: Path, run: Runner) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(POLICY))
    little = decisions(tmp_path / "s.csv", 300, 0.8, 1)
    not_proven = main(["gate", "--policy", str(policy), "--stable", str(little),
                       "--candidate", str(decisions(tmp_path / "c.csv", 300, 0.8, 2))])  # fmt: skip
    not_found = run("status", "no-such-rollout")

    assert not_proven != not_found
    assert (not_proven, not_found) == (ExitCode.NOT_PROVEN, ExitCode.NOT_FOUND)


def test_the_readme_lists_every_code() -> None:
    readme = (ROOT / "README.md").read_text()
    for code in ExitCode:
        assert f"| {code.value} | `{code.name}` | {MEANINGS[code]} |" in readme


def test_help_lists_every_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    shown = capsys.readouterr().out
    for code in ExitCode:
        assert MEANINGS[code] in " ".join(shown.split())
