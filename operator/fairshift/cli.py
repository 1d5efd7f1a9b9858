"""The ``fairshift`` command (also installed as the ``kubectl fairshift`` plugin).

Each subcommand lives in ``fairshift.commands.<name>`` and exposes ``register(subparsers)``,
which adds its parser and sets ``handler`` to a function ``(args) -> exit code``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from fairshift import __version__
from fairshift.commands.exitcodes import ExitCode, exit_code_table

COMMAND_MODULES = (
    "crd",
    "measure",
    "gate",
    "plugin",
    "actions",
    "audit",
    "report",
    "card",
    "run",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fairshift",
        description="Progressive delivery of ML models, gated on per-slice fairness.",
        epilog=f"exit codes (every command):\n{exit_code_table()}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fairshift {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"fairshift.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return ExitCode.USAGE
    code: int = handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
