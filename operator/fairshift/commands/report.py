"""``fairshift report``: charts and an HTML page of a rollout's gates, weights and decisions.

Sources (exactly one):

- ``NAME`` (with ``-n``): the rollout's audit chain from the cluster (its status when the
  chain is empty);
- ``--from-status FILE``: a saved ``kubectl get mro NAME -o yaml`` (or ``-o json``);
- ``--from-gate FILE``: the output of ``fairshift gate --format json`` (one look).

Writes the PNG charts and ``report.html`` (the same charts embedded, self-contained) into
``--out`` (default ``fairshift-report-<name>``). Exits ``OK`` when written, ``USAGE`` on invalid
input, ``NOT_FOUND`` or ``API`` (see ``commands.exitcodes``).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
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
from fairshift.report.timeline import (
    ReportData,
    ReportInputError,
    from_gate,
    from_records,
    from_rollout,
    rollout_facts,
)

if TYPE_CHECKING:
    from fairshift.k8s.cli_access import RolloutAccess


def load_document(path: Path) -> Mapping[str, Any]:
    """A YAML or JSON mapping from ``path`` (JSON is YAML)."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file", ExitCode.NOT_FOUND) from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise CommandError(f"{path}: not YAML or JSON ({error})", ExitCode.USAGE) from None
    if not isinstance(document, Mapping):
        raise CommandError(f"{path}: not a mapping", ExitCode.USAGE)
    return document


def data_from_files(args: argparse.Namespace) -> ReportData:
    if args.from_gate is not None:
        return from_gate(load_document(args.from_gate), args.from_gate.stem)
    return from_rollout(load_document(args.from_status))


def data_from_cluster(access: RolloutAccess, namespace: str, name: str) -> ReportData:
    """The audit chain (lines that are not records are left out and counted); the status
    when there is no chain yet."""
    obj = require_rollout(access, namespace, name)
    trail = access.audit_trail(namespace, name)
    if not trail.records:
        return from_rollout(obj)
    skipped = set(trail.unreadable)
    records = [r for i, r in enumerate(trail.records) if i not in skipped]
    facts = rollout_facts(obj)
    problems, _ = chain_problems(trail, (obj.get("status") or {}).get("auditHead"))
    verdict = f"{len(problems)} problem(s): see fairshift audit verify" if problems else "intact"
    facts.append(("audit chain", f"{verdict} ({len(trail.records)} records)"))
    if skipped:
        facts.append(
            ("unreadable audit lines left out", f"{len(skipped)} (fairshift audit verify)")
        )
    return from_records(f"{namespace}/{name}", records, facts)


def default_out(data: ReportData) -> Path:
    return Path("fairshift-report-" + (data.title.rsplit("/", 1)[-1] or "rollout"))


def emit(data: ReportData, args: argparse.Namespace, out: Console) -> int:
    """Write the report and list what was written.

    matplotlib is imported here, not at module level: every ``fairshift`` invocation builds
    the parser, and only this one needs it.
    """
    from fairshift.report.building import write_report

    files = write_report(data, args.out or default_out(data), args.clock())
    out.print(f"wrote {files.page}")
    for chart in files.charts:
        out.print(f"wrote {chart}")
    return ExitCode.OK


def run_cluster(
    args: argparse.Namespace, access: RolloutAccess, namespace: str, out: Console
) -> int:
    try:
        data = data_from_cluster(access, namespace, args.name)
    except ReportInputError as error:
        raise CommandError(str(error), ExitCode.USAGE) from None
    return emit(data, args, out)


def run(args: argparse.Namespace) -> int:
    sources = [args.name is not None, args.from_status is not None, args.from_gate is not None]
    if sum(sources) != 1:
        return fail(
            "report", "give exactly one of NAME, --from-status, --from-gate", ExitCode.USAGE
        )
    if args.name is not None:
        return cluster_handler("report", run_cluster)(args)
    try:
        return emit(data_from_files(args), args, make_console())
    except CommandError as error:
        return fail("report", str(error), error.code)
    except ReportInputError as error:
        return fail("report", str(error), ExitCode.USAGE)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="charts and an HTML page of a rollout's gates, weights and decisions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", nargs="?", help="ModelRollout name (read from the cluster)")
    parser.add_argument("--from-status", type=Path, help="a saved ModelRollout (YAML or JSON)")
    parser.add_argument("--from-gate", type=Path, help="fairshift gate --format json output")
    parser.add_argument("--out", type=Path, help="output directory")
    add_cluster_options(parser)
    parser.set_defaults(handler=run, clock=lambda: datetime.now(UTC))
