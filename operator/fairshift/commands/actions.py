"""``fairshift promote|pause|resume|abort|retry NAME``: ask the operator for a manual action.

The request is the annotation ``fairshift.io/action`` holding
``{"action", "id", "requestedAt"}`` (a merge patch guarded by the resourceVersion the phase
was checked on). The operator handles each id once and records it in
``status.handledAction``; ``--wait`` polls for that and prints the phase reached.

The CLI refuses (``NOT_ALLOWED``) what the rollout's phase does not accept, by the operator's
own transition table, and a new request while an earlier one is still unhandled (unless
``--force``); ``FAILED`` when ``--wait`` times out (exit codes: ``commands.exitcodes``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console

from fairshift.api.names import ACTION_ANNOTATION
from fairshift.api.status import ModelRolloutStatus
from fairshift.api.times import format_time
from fairshift.commands.exitcodes import ExitCode
from fairshift.commands.invocation import (
    CommandError,
    add_cluster_options,
    cluster_handler,
    require_rollout,
)
from fairshift.commands.views import (
    StatusError,
    parse_status,
    pending_request,
    step_text,
)
from fairshift.k8s.errors import Conflict
from fairshift.planning.actions import NEEDS_REASON, allowed, needs_reason, possible

if TYPE_CHECKING:
    from fairshift.k8s.cli_access import RolloutAccess

ATTEMPTS = 5

HELP = {
    "promote": "skip the current step or pause (--full: all remaining steps and analysis)",
    "pause": "hold the rollout where it is",
    "resume": "continue a paused rollout",
    "abort": "roll back now (while guarding: switch back to the last known good revision)",
    "retry": "start the same candidate again after a rollback or failure",
    "kill": "take the model out of the path at once: all traffic to spec.fallbackRef when one "
    "is declared, else its primary scaled to zero; --reason",
    "revive": "serve again after a kill, or end a degrade (--reason needed then)",
    "ack": "acknowledge an escalated guard breach, so the next rollout may start; --reason",
}


@dataclass(frozen=True)
class ActionRequest:
    """What the CLI writes into the annotation."""

    action: str
    id: str
    requested_at: str
    by: str = ""
    reason: str = ""

    def annotation_value(self) -> str:
        body = {"action": self.action, "id": self.id, "requestedAt": self.requested_at}
        body.update({k: v for k, v in (("by", self.by), ("reason", self.reason)) if v})
        return json.dumps(body, separators=(",", ":"))


def new_request(
    action: str, now: datetime, make_id: Callable[[], str], by: str = "", reason: str = ""
) -> ActionRequest:
    """A request with a fresh id and an RFC 3339 UTC time (seconds, ``Z``)."""
    return ActionRequest(action, make_id(), format_time(now), by, reason)


def uuid_hex() -> str:
    return uuid.uuid4().hex


def local_user() -> str:
    """Who asks: the local user name (the API server's audit log has the Kubernetes user)."""
    return getpass.getuser()


def refusal(action: str, status: ModelRolloutStatus, name: str) -> str:
    """Why ``action`` is refused now, and what is possible instead."""
    possible_now = ", ".join(a.replace("-full", " --full") for a in possible(status))
    verb = action.replace("-full", " --full")
    phase = status.phase.value
    return f"cannot {verb} {name} while it is {phase}; possible now: {possible_now or 'nothing'}"


def current_status(obj: Mapping[str, Any]) -> ModelRolloutStatus:
    try:
        return parse_status(obj)
    except StatusError as error:
        raise CommandError(f"cannot read the status: {error}", ExitCode.NOT_ALLOWED) from None


def check_request(
    obj: Mapping[str, Any], action: str, name: str, force: bool, reason: str = ""
) -> None:
    """Raise ``CommandError`` (``NOT_ALLOWED``) when the action must not be requested now."""
    status = current_status(obj)
    if not allowed(action, status):
        raise CommandError(refusal(action, status, name), ExitCode.NOT_ALLOWED)
    if needs_reason(action, status) and not reason:
        raise CommandError(
            f"{action} of {name} ends a degrade (traffic on the fallback) and needs --reason: "
            "the audit trail says why",
            ExitCode.USAGE,
        )
    pending = pending_request(obj)
    if pending is not None and not force:
        raise CommandError(
            f"an earlier request ({pending.get('action')}, id {pending.get('id')}, "
            f"at {pending.get('requestedAt')}) is not handled yet; is the operator running? "
            "--force replaces it",
            ExitCode.NOT_ALLOWED,
        )


def send_request(
    access: RolloutAccess,
    namespace: str,
    name: str,
    request: ActionRequest,
    force: bool = False,
) -> None:
    """Check on a fresh read, then write guarded by its resourceVersion; retry 409s."""
    for _ in range(ATTEMPTS):
        obj = require_rollout(access, namespace, name)
        check_request(obj, request.action, name, force, request.reason)
        version = (obj.get("metadata") or {}).get("resourceVersion")
        try:
            access.annotate(
                namespace, name, {ACTION_ANNOTATION: request.annotation_value()}, version
            )
        except Conflict:
            continue
        return
    raise Conflict(f"ModelRollout {namespace}/{name} kept changing; gave up", 409)


def wait_handled(
    fetch: Callable[[], dict[str, Any]],
    request_id: str,
    timeout: float,
    sleep: Callable[[float], None],
    monotonic: Callable[[], float],
    poll: float = 1.0,
) -> dict[str, Any] | None:
    """Poll until ``status.handledAction`` is ``request_id``; None after ``timeout`` seconds."""
    deadline = monotonic() + timeout
    while True:
        obj = fetch()
        if (obj.get("status") or {}).get("handledAction") == request_id:
            return obj
        if monotonic() >= deadline:
            return None
        sleep(min(poll, max(0.0, deadline - monotonic())))


def outcome_line(obj: Mapping[str, Any], action: str) -> str:
    status = parse_status(obj)
    return (
        f"{action} handled: phase {status.phase.value}, step {step_text(status)}, "
        f"canary {status.canary_weight}%" + (f" ({status.message})" if status.message else "")
    )


def run_action(
    args: argparse.Namespace, access: RolloutAccess, namespace: str, out: Console
) -> int:
    action = "promote-full" if getattr(args, "full", False) else args.action
    reason = str(getattr(args, "reason", "") or "")
    if action in NEEDS_REASON and not reason:
        raise CommandError(f"{action} needs --reason: the audit trail says why", ExitCode.USAGE)
    request = new_request(action, args.clock(), args.make_id, args.who(), reason)
    send_request(access, namespace, args.name, request, args.force)
    out.print(f"requested {action} of {namespace}/{args.name} (id {request.id})")
    if not args.wait:
        return ExitCode.OK
    obj = wait_handled(
        lambda: require_rollout(access, namespace, args.name),
        request.id,
        args.timeout,
        args.sleep,
        args.monotonic,
    )
    if obj is None:
        out.print(f"not handled within {args.timeout:g}s; is the operator running?")
        return ExitCode.FAILED
    out.print(outcome_line(obj, action))
    return ExitCode.OK


def register(subparsers: Any) -> None:
    for action in HELP:
        parser = subparsers.add_parser(action, help=HELP[action], description=__doc__)
        parser.add_argument("name", help="ModelRollout name")
        if action == "promote":
            parser.add_argument(
                "--full", action="store_true", help="skip all remaining steps and analysis"
            )
        if action in NEEDS_REASON:
            parser.add_argument("--reason", required=True, help="why (kept in the audit trail)")
        elif action == "revive":
            parser.add_argument("--reason", help="why (needed to end a degrade; kept)")
        add_action_options(parser)
        parser.set_defaults(action=action, handler=cluster_handler(action, run_action))


def add_action_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", action="store_true", help="wait until the operator handles it")
    parser.add_argument("--timeout", type=float, default=60.0, help="--wait limit in seconds")
    parser.add_argument("--force", action="store_true", help="replace an unhandled request")
    add_cluster_options(parser)
    parser.set_defaults(
        clock=lambda: datetime.now(UTC),
        make_id=uuid_hex,
        who=local_user,
        sleep=time.sleep,
        monotonic=time.monotonic,
    )
