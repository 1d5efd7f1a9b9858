"""``fairshift card``: the live model card of a rollout, for a compliance reviewer.

What the model is (target, revisions, MLflow experiment and registered model), which slices
and gates guard it, the current value of every gate per slice with its confidence bounds,
the decisions and alerts so far, and the audit chain's head and whether it verifies.

Sources (exactly one):

- ``NAME`` (with ``-n``): the ModelRollout and its audit ConfigMap from the cluster;
- ``--from-status FILE``: a saved ``kubectl get mro NAME -o yaml`` (or ``-o json``), with
  ``--from-audit FILE`` for its audit records (JSON lines, or the saved ConfigMap
  ``NAME-audit``); without it the card holds what the status keeps.

Prints the card as Markdown; with ``--out DIR`` writes ``model-card.md`` and
``model-card.html`` (self-contained) there instead. Exits ``OK`` when written, ``USAGE`` on
invalid input, ``NOT_FOUND`` when the rollout or a file does not exist, ``API`` on API errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from rich.console import Console

from fairshift.commands.audit import chain_problems
from fairshift.commands.exitcodes import ExitCode
from fairshift.commands.invocation import (
    CommandError,
    add_cluster_options,
    cluster_handler,
    fail,
    make_console,
    require_rollout,
)
from fairshift.commands.report import load_document
from fairshift.engine.audit import GENESIS_HASH, verify_chain
from fairshift.report.card import ModelCard, build_card, card_files, card_markdown, chain_note

if TYPE_CHECKING:
    from fairshift.k8s.cli_access import RolloutAccess

RECORDS_KEY = "records.jsonl"  # the audit ConfigMap's layout (fairshift.k8s.auditstore)
DROPPED_LAST_KEY = "dropped-last.json"


def card_from_cluster(access: RolloutAccess, namespace: str, name: str, now: datetime) -> ModelCard:
    obj = require_rollout(access, namespace, name)
    trail = access.audit_trail(namespace, name)
    problems, _ = chain_problems(trail, (obj.get("status") or {}).get("auditHead"))
    skipped = set(trail.unreadable)
    records = [r for i, r in enumerate(trail.records) if i not in skipped]
    note = chain_note(problems, len(trail.records))
    return build_card(f"{namespace}/{name}", obj, records, note, now)


def parse_jsonl(text: str, path: Path) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise CommandError(f"{path}: line {number} is not JSON", ExitCode.USAGE) from None
        if not isinstance(record, dict):
            raise CommandError(f"{path}: line {number} is not a record", ExitCode.USAGE)
        records.append(record)
    return records


def audit_from_file(path: Path) -> tuple[list[dict[str, Any]], str]:
    """Records and the hash the first must follow, from JSON lines or a saved ConfigMap."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file", ExitCode.NOT_FOUND) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        document = None  # several JSON lines are not one YAML document
    if not (isinstance(document, dict) and document.get("kind") == "ConfigMap"):
        return parse_jsonl(text, path), GENESIS_HASH
    data = document.get("data") or {}
    first_prev = GENESIS_HASH
    if data.get(DROPPED_LAST_KEY):
        first_prev = str(json.loads(data[DROPPED_LAST_KEY]).get("hash"))
    return parse_jsonl(str(data.get(RECORDS_KEY) or ""), path), first_prev


def card_from_files(args: argparse.Namespace, now: datetime) -> ModelCard:
    obj = load_document(args.from_status)
    metadata = obj.get("metadata") or {}
    rollout = f"{metadata.get('namespace') or 'default'}/{metadata.get('name') or 'rollout'}"
    if args.from_audit is None:
        return build_card(rollout, obj, [], "not checked (no audit records given)", now)
    records, first_prev = audit_from_file(args.from_audit)
    head = (obj.get("status") or {}).get("auditHead")
    check = verify_chain(records, head, first_prev)
    return build_card(rollout, obj, records, chain_note(list(check.problems), len(records)), now)


def emit(card: ModelCard, args: argparse.Namespace, out: Console) -> int:
    if args.out is None:
        sys.stdout.write(card_markdown(card))
        return ExitCode.OK
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in card_files(card).items():
        (args.out / name).write_text(text, encoding="utf-8")
        out.print(f"wrote {args.out / name}")
    return ExitCode.OK


def run_cluster(
    args: argparse.Namespace, access: RolloutAccess, namespace: str, out: Console
) -> int:
    return emit(card_from_cluster(access, namespace, args.name, args.clock()), args, out)


def run(args: argparse.Namespace) -> int:
    if (args.name is None) == (args.from_status is None):
        return fail("card", "give exactly one of NAME or --from-status", ExitCode.USAGE)
    if args.from_audit is not None and args.from_status is None:
        return fail("card", "--from-audit goes with --from-status", ExitCode.USAGE)
    if args.name is not None:
        return cluster_handler("card", run_cluster)(args)
    try:
        return emit(card_from_files(args, args.clock()), args, make_console())
    except CommandError as error:
        return fail("card", str(error), error.code)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "card",
        help="the live model card of a rollout (Markdown, or Markdown and HTML files)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", nargs="?", help="ModelRollout name (read from the cluster)")
    parser.add_argument("--from-status", type=Path, help="a saved ModelRollout (YAML or JSON)")
    parser.add_argument(
        "--from-audit", type=Path, help="its audit records (JSON lines or the saved ConfigMap)"
    )
    parser.add_argument("--out", type=Path, help="write model-card.md and model-card.html here")
    add_cluster_options(parser)
    parser.set_defaults(handler=run, clock=lambda: datetime.now(UTC))
