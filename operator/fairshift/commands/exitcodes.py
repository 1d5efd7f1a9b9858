"""The exit codes of every ``fairshift`` command: one vocabulary, one number per meaning.

Scripts and CI pipelines branch on these, so a number never changes its meaning from one
command to another: ``fairshift gate`` and ``kubectl fairshift status`` use the same table.
:func:`exit_code_table` renders it for ``fairshift --help`` and the README's CLI section.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a command's exit status means."""

    OK = 0
    FAILED = 1
    USAGE = 2
    NOT_PROVEN = 3
    NOT_ALLOWED = 4
    API = 5
    NOT_FOUND = 6
    INTERRUPTED = 130


MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "done: the gate passed, the audit chain is intact, the action was handled",
    ExitCode.FAILED: "a check failed: a critical gate failed, the audit chain is broken, "
    "the action was not handled in time",
    ExitCode.USAGE: "usage error or invalid input (a bad option, policy, data or status file)",
    ExitCode.NOT_PROVEN: "not proven: the gate found a warning, too little data or pending "
    "evidence; neither pass nor fail",
    ExitCode.NOT_ALLOWED: "the action is not possible in the rollout's current phase",
    ExitCode.API: "the Kubernetes API server failed or refused, or credentials are missing",
    ExitCode.NOT_FOUND: "the rollout does not exist",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


def exit_code_table() -> str:
    """The codes and their meanings, one per line (for ``--help``)."""
    return "\n".join(f"  {code.value:>3}  {MEANINGS[code]}" for code in ExitCode)
