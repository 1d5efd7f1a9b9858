"""What every cluster-facing subcommand shares: options, exit codes, errors, the session.

A subcommand's work is a function ``(args, access, namespace, console) -> exit code``;
``cluster_handler`` turns it into an argparse handler that connects (with ``args.connect``,
which tests replace), resolves the namespace, and maps failures to ``commands.exitcodes``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console

from fairshift.commands.exitcodes import ExitCode
from fairshift.k8s.errors import KubeError, NotFound

if TYPE_CHECKING:
    from fairshift.k8s.cli_access import RolloutAccess, Session


PIPE_WIDTH = 200

Work = Callable[[argparse.Namespace, "RolloutAccess", str, Console], int]
Connector = Callable[[str | None, str | None], "Session"]


class CommandError(Exception):
    """A failure a subcommand reports as one line on stderr with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def add_cluster_options(parser: argparse.ArgumentParser, all_namespaces: bool = False) -> None:
    """``--kubeconfig``, ``--context``, ``-n/--namespace`` (and ``-A`` where it makes sense)."""
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube)")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument(
        "-n", "--namespace", help="namespace (default: the context's, else 'default')"
    )
    if all_namespaces:
        parser.add_argument(
            "-A", "--all-namespaces", action="store_true", help="rollouts of every namespace"
        )
    parser.set_defaults(connect=connect_cluster)


def connect_cluster(kubeconfig: str | None, context: str | None) -> Session:
    """``fairshift.k8s.cli_access.connect``, imported when a command runs, not when the
    parser is built: the Kubernetes client takes a second to import."""
    from fairshift.k8s.cli_access import connect

    return connect(kubeconfig, context)


def cluster_handler(name: str, work: Work) -> Callable[[argparse.Namespace], int]:
    """An argparse handler running ``work`` on a fresh session; errors become exit codes."""

    def handler(args: argparse.Namespace) -> int:
        connector: Connector = args.connect
        try:
            session = connector(args.kubeconfig, args.context)
            namespace = args.namespace or session.namespace
            return work(args, session.access, namespace, make_console())
        except CommandError as error:
            return fail(name, str(error), error.code)
        except NotFound as error:
            return fail(name, str(error), ExitCode.NOT_FOUND)
        except KubeError as error:
            return fail(name, str(error), ExitCode.API)

    return handler


def make_console() -> Console:
    """Rich output on stdout; as wide as a terminal, or 200 columns into a pipe or file."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else PIPE_WIDTH)


def fail(name: str, message: str, code: int) -> int:
    """Print ``fairshift NAME: error: MESSAGE`` on stderr and return ``code``."""
    print(f"fairshift {name}: error: {message}", file=sys.stderr)
    return code


def require_rollout(access: RolloutAccess, namespace: str, name: str) -> dict[str, Any]:
    """The rollout, or ``CommandError`` with ``NOT_FOUND``."""
    found = access.get_rollout(namespace, name)
    if found is None:
        raise CommandError(f"ModelRollout {namespace}/{name} not found", ExitCode.NOT_FOUND)
    return found
