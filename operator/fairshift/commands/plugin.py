"""``fairshift get``, ``fairshift status`` and ``fairshift history``: reading rollouts.

``get`` lists rollouts as a table, ``status NAME`` shows one as a tree (``--watch`` redraws
it in place until a terminal phase or Ctrl-C), ``history NAME`` prints its audit chain.
Exits ``OK``, ``USAGE``, ``NOT_FOUND`` or ``API`` (see ``commands.exitcodes``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console, RenderableType
from rich.live import Live

from fairshift.commands.exitcodes import ExitCode
from fairshift.commands.invocation import (
    CommandError,
    add_cluster_options,
    cluster_handler,
    require_rollout,
)
from fairshift.commands.views import (
    StatusError,
    history_table,
    parse_status,
    render_status,
    rollouts_table,
)
from fairshift.engine.machine import DESIRED

if TYPE_CHECKING:
    from fairshift.k8s.cli_access import RolloutAccess

Clock = Callable[[], datetime]


def now_utc() -> datetime:
    return datetime.now(UTC)


def register(subparsers: Any) -> None:
    get = subparsers.add_parser("get", help="list ModelRollouts with phase, step and weights")
    add_cluster_options(get, all_namespaces=True)
    get.set_defaults(handler=cluster_handler("get", run_get), clock=now_utc)

    status = subparsers.add_parser("status", help="show one rollout: phase, gates, decisions")
    status.add_argument("name", help="ModelRollout name")
    status.add_argument("-w", "--watch", action="store_true", help="redraw until it settles")
    status.add_argument("--interval", type=positive_seconds, default=2.0, help="watch period")
    add_cluster_options(status)
    status.set_defaults(
        handler=cluster_handler("status", run_status), clock=now_utc, sleep=time.sleep
    )

    history = subparsers.add_parser("history", help="the audit chain of a rollout")
    history.add_argument("name", help="ModelRollout name")
    add_cluster_options(history)
    history.set_defaults(handler=cluster_handler("history", run_history))


def positive_seconds(text: str) -> float:
    """An argparse type: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def run_get(args: argparse.Namespace, access: RolloutAccess, namespace: str, out: Console) -> int:
    scope = None if args.all_namespaces else namespace
    found = access.list_rollouts(scope)
    if not found:
        where = "any namespace" if scope is None else f"namespace {scope}"
        out.print(f"No ModelRollouts found in {where}.")
        return ExitCode.OK
    out.print(rollouts_table(found, args.clock(), all_namespaces=scope is None))
    return ExitCode.OK


def status_view(obj: dict[str, Any], now: datetime) -> RenderableType:
    """``render_status``, with an unreadable status reported as a command error."""
    try:
        return render_status(obj, now)
    except StatusError as error:
        raise CommandError(f"cannot read the status: {error}", ExitCode.API) from None


def run_status(
    args: argparse.Namespace, access: RolloutAccess, namespace: str, out: Console
) -> int:
    obj = require_rollout(access, namespace, args.name)
    if not args.watch:
        out.print(status_view(obj, args.clock()))
        return ExitCode.OK
    return watch_status(lambda: require_rollout(access, namespace, args.name), args, out)


def settled(obj: dict[str, Any]) -> bool:
    """Whether a rollout rests in a terminal phase (nothing will change until a new revision)."""
    try:
        return DESIRED[parse_status(obj).phase].terminal
    except StatusError:
        return False


def watch_status(
    fetch: Callable[[], dict[str, Any]], args: argparse.Namespace, out: Console
) -> int:
    """Redraw the status every ``args.interval`` seconds until it settles or Ctrl-C."""
    obj = fetch()
    with Live(status_view(obj, args.clock()), console=out, auto_refresh=False) as live:
        try:
            while not settled(obj):
                args.sleep(args.interval)
                obj = fetch()
                live.update(status_view(obj, args.clock()), refresh=True)
        except KeyboardInterrupt:
            return ExitCode.OK
    return ExitCode.OK


def run_history(
    args: argparse.Namespace, access: RolloutAccess, namespace: str, out: Console
) -> int:
    require_rollout(access, namespace, args.name)
    trail = access.audit_trail(namespace, args.name)
    if not trail.records:
        out.print(f"No audit records for {namespace}/{args.name} yet.")
        return ExitCode.OK
    out.print(history_table(trail.records, trail.dropped, trail.summary))
    return ExitCode.OK
