"""``fairshift audit verify NAME``: check a rollout's audit chain against its status.

Reads the records from the ConfigMap ``<rollout>-audit`` and checks every hash, link and
sequence number, and that the newest record is the head the rollout's status recorded
(``status.auditHead``), so edits, removals, reorderings and a cut tail all show. When older
records were trimmed, the oldest kept record must follow the last trimmed one, and the summary
kept of the trimmed span must end where the kept chain begins; it is shown.
Exits ``OK`` when intact, ``FAILED`` when not (one line per problem), ``NOT_FOUND`` or ``API``
(see ``commands.exitcodes``).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console

from fairshift.commands.exitcodes import ExitCode
from fairshift.commands.invocation import (
    add_cluster_options,
    cluster_handler,
    require_rollout,
)
from fairshift.commands.views import short_hash
from fairshift.engine.audit import describe_summary, summary_problems, verify_chain

if TYPE_CHECKING:
    from fairshift.k8s.auditstore import AuditTrail
    from fairshift.k8s.cli_access import RolloutAccess


def chain_problems(trail: AuditTrail, expected_head: str | None) -> tuple[list[str], str]:
    """Every problem of the stored chain (empty when intact) and the head it ends in."""
    if not trail.records:
        if expected_head:
            return [
                f"the store holds no records, but the rollout recorded head "
                f"{short_hash(expected_head)} (records removed)"
            ], expected_head
        return [], ""
    check = verify_chain(trail.records, expected_head, trail.first_prev_hash)
    unreadable = trail.unreadable
    problems = [f"record {index}: not a JSON object (edited)" for index in unreadable]
    # what the chain check says about the unreadable lines themselves adds nothing
    noise = tuple(f"record {index} (" for index in unreadable)
    problems += [p for p in check.problems if not p.startswith(noise)]
    problems += summary_problems(trail.summary, trail.dropped, trail.records[0])
    extra = records_after(trail.records, expected_head)
    if extra:
        problems.append(
            f"{len(extra)} record(s) follow the head the rollout recorded "
            f"(seq {', '.join(str(r.get('seq')) for r in extra)}): written after the last "
            "status update, or not by the operator"
        )
    return problems, check.head


def records_after(
    records: Sequence[Mapping[str, Any]], head: str | None
) -> list[Mapping[str, Any]]:
    """The records stored after the one whose hash is ``head`` (none if head is absent)."""
    hashes = [r.get("hash") for r in records]
    if head is None or head not in hashes[:-1]:
        return []
    return list(records[hashes.index(head) + 1 :])


def read_and_check(
    access: RolloutAccess, namespace: str, name: str, attempts: int = 2
) -> tuple[AuditTrail, list[str], str]:
    """Read the recorded head, then the chain, and check them.

    The operator appends a record before it writes the new head into status, so a chain read
    just after an append can hold records past the head just read; reading again (head first)
    tells that race from records nobody recorded.
    """
    for _ in range(attempts):
        obj = require_rollout(access, namespace, name)
        expected = (obj.get("status") or {}).get("auditHead")
        trail = access.audit_trail(namespace, name)
        problems, head = chain_problems(trail, expected)
        if not records_after(trail.records, expected):
            break
    return trail, problems, head


def run_verify(
    args: argparse.Namespace, access: RolloutAccess, namespace: str, out: Console
) -> int:
    trail, problems, head = read_and_check(access, namespace, args.name)
    where = f"{namespace}/{args.name}"
    trimmed = f", {trail.dropped} older trimmed" if trail.dropped else ""
    if not problems:
        out.print(
            f"[green]ok[/]: the audit chain of {where} is intact "
            f"({len(trail.records)} records{trimmed}, head {short_hash(head)})"
        )
        if trail.summary is not None:
            out.print(f"  trimmed: {describe_summary(trail.summary)}", markup=False)
        return ExitCode.OK
    out.print(f"[bold red]TAMPERED[/]: the audit chain of {where} has {len(problems)} problem(s)")
    for problem in problems:
        out.print(f"  - {problem}", markup=False)
    return ExitCode.FAILED


def register(subparsers: Any) -> None:
    audit = subparsers.add_parser("audit", help="check the audit trail of a rollout")
    verbs = audit.add_subparsers(dest="audit_command", metavar="VERB", required=True)
    verify = verbs.add_parser(
        "verify",
        help="verify the hash chain against the rollout's recorded head",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("name", help="ModelRollout name")
    add_cluster_options(verify)
    verify.set_defaults(handler=cluster_handler("audit verify", run_verify))
