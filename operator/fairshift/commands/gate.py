"""``fairshift gate``: judge a candidate against the stable model offline, before deployment.

Reads ``spec.analysis`` of a ModelRollout manifest and two decision CSVs, evaluates every gate
on every slice with single-look statistics (Wilson, Newcombe, Katz; Holm across critical cells,
Benjamini-Hochberg across warnings) and exits 0 (pass), 1 (a critical gate failed), 3 (not
proven: a warning, pending, or insufficient data) or 2 (invalid input, one line on stderr).
Gates that need Prometheus (a PromQL ``query``) are reported as skipped.

When both files decided the same rows (an ``id`` column naming the same rows, or the same
length with the same attributes and labels row by row), relative gates on rates and on the
gaps built on them are tested paired, with a variance from the discordant pairs
(``fairshift.engine.paired``); the report says which test was used.

Nothing passes by omission: an explicit reference group on an attribute that is not sliced, or
absent from both files, is invalid input (the rule ``measure`` applies); a group the stable
file has and the candidate file lacks is a failing ``(groups)`` row (not proven below
``minSamples``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from rich.console import Console
from rich.table import Table

from fairshift.api.analysis import Analysis, Slices
from fairshift.api.schema import Model
from fairshift.api.spec import SpecError, parse_spec
from fairshift.api.status import GateEvidence, Outcome
from fairshift.commands.exitcodes import ExitCode

if TYPE_CHECKING:  # the engine (numpy, scipy) loads only when the command runs
    from fairshift.engine.counts import BinaryCounts, SliceKey, VersionCounts
    from fairshift.engine.gates import Evaluation
    from fairshift.engine.slices import Grouping

COVERAGE_GATE = "(groups)"
"""The row of a group the candidate file lost (not a gate name a policy can use)."""
OUTCOME_STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "skipped": "dim"}


class PolicyError(ValueError):
    """A policy file that is not a usable ModelRollout manifest."""


def load_analysis(path: Path) -> Analysis:
    """``spec.analysis`` of a ModelRollout manifest (the whole spec is validated)."""
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise PolicyError(f"{path}: no such file") from None
    except yaml.YAMLError as error:
        raise PolicyError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(document, dict) or not isinstance(document.get("spec"), dict):
        raise PolicyError(f"{path}: not a ModelRollout manifest (no spec)")
    try:
        spec = parse_spec(document["spec"])
    except SpecError as error:
        raise PolicyError(f"{path}: {error}") from None
    if spec.analysis is None:
        raise PolicyError(f"{path}: spec.analysis is missing; there are no gates to check")
    return spec.analysis


@dataclass(frozen=True)
class GateResult:
    """What ``gate`` found: the rows to show and which test compared the two files."""

    rows: list[GateEvidence]
    test: str


def run_gate(args: argparse.Namespace) -> GateResult:
    """The evaluation of the offline gates and the rows to show (raises on invalid input)."""
    from fairshift.engine.gates import evaluate
    from fairshift.engine.paired import paired_measurement
    from fairshift.metrics.csvfile import pair_rows, read_counts

    analysis = load_analysis(args.policy)
    attributes = analysis.slices.attributes
    stable_file = read_counts(args.stable, attributes)
    candidate_file = read_counts(args.candidate, attributes)
    stable, candidate = stable_file.counts, candidate_file.counts
    stable_groups, candidate_groups = (
        grouped(analysis.slices, stable),
        grouped(analysis.slices, candidate),
    )
    try:
        check_reference(analysis.slices, stable_groups, candidate_groups)
    except ValueError as error:
        raise PolicyError(f"{args.policy}: {error}") from None
    paired, test = pair_rows(stable_file.decisions, candidate_file.decisions)
    offline = [g for g in analysis.gates if g.query is None]
    evaluation = evaluate(
        analysis,
        stable,
        candidate,
        single_look=True,
        gates=offline,
        refine=None if paired is None else partial(paired_measurement, rows=paired),
    )
    found = lost_groups(analysis.slices, stable_groups, candidate_groups)
    found += rows(analysis, evaluation)
    return GateResult(found, test)


def grouped(slices: Slices, counts: VersionCounts) -> dict[Grouping, dict[SliceKey, BinaryCounts]]:
    """One version's counts summed into every grouping the policy analyses, once."""
    from fairshift.engine.slices import aggregate, groupings

    return {
        g: aggregate(counts.cells, g) for g in groupings(slices.attributes, slices.intersections)
    }


def check_reference(
    slices: Slices,
    stable: Mapping[Grouping, Mapping[SliceKey, BinaryCounts]],
    candidate: Mapping[Grouping, Mapping[SliceKey, BinaryCounts]],
) -> None:
    """The reference rule ``measure`` applies: a sliced attribute, a group present in the data."""
    from fairshift.engine.slices import ReferencePolicy

    policy = ReferencePolicy.parse(slices.reference, slices.min_samples)
    policy.check_attributes(slices.attributes)
    for grouping, groups in stable.items():
        together = dict(groups)
        for key, counts in candidate[grouping].items():
            together[key] = together[key] + counts if key in together else counts
        policy.check_present(together, grouping)


def lost_groups(
    slices: Slices,
    stable: Mapping[Grouping, Mapping[SliceKey, BinaryCounts]],
    candidate: Mapping[Grouping, Mapping[SliceKey, BinaryCounts]],
) -> list[GateEvidence]:
    """A group the stable file has and the candidate file lacks: its gates cannot vanish.

    It fails when stable has at least ``minSamples`` decisions for it, and is insufficient
    (not proven) otherwise; either way the gate cannot pass.
    """
    from fairshift.engine.counts import slice_name

    found: list[GateEvidence] = []
    for grouping, groups in stable.items():
        after = candidate[grouping]
        for key, counts in sorted(groups.items()):
            n = counts.predictions
            if n == 0 or (key in after and after[key].predictions > 0):
                continue
            enough = n >= slices.min_samples
            found.append(
                GateEvidence(
                    gate=COVERAGE_GATE,
                    metric="decisions",
                    severity="critical",
                    slice=slice_name(key),
                    stable=n,
                    candidate=0,
                    bound="min",
                    threshold=1,
                    stable_samples=n,
                    outcome=Outcome.FAIL if enough else Outcome.INSUFFICIENT,
                    reason=f"the candidate file has no decisions for {slice_name(key)}"
                    f" (stable has {n:.0f}{'' if enough else ', fewer than minSamples'});"
                    " its gates cannot be checked",
                )
            )
    return found


def rows(analysis: Analysis, evaluation: Evaluation) -> list[GateEvidence]:
    from fairshift.engine.gates import evidence

    found = [evidence(cell) for cell in sorted(evaluation.cells, key=row_order(analysis))]
    for gate in analysis.gates:
        if gate.query is not None:
            found.append(
                GateEvidence(
                    gate=gate.name,
                    metric="query",
                    severity=gate.severity,
                    slice="overall",
                    bound=gate.bound_kind,
                    threshold=gate.threshold,
                    outcome=Outcome.SKIPPED,
                    reason="PromQL gates need Prometheus; checked by the operator",
                )
            )
    return found


def row_order(analysis: Analysis) -> Any:
    order = {g.name: i for i, g in enumerate(analysis.gates)}
    return lambda cell: (
        order.get(cell.gate.name, len(order)),  # the engine's own checks after the policy's
        len(cell.measurement.slice),
        cell.measurement.slice,
    )


def exit_code(found: list[GateEvidence]) -> ExitCode:
    """fail when any row failed; pass only when every checked row passed; else not proven."""
    outcomes = {e.outcome for e in found} - {Outcome.SKIPPED}
    if Outcome.FAIL in outcomes:
        return ExitCode.FAILED
    if outcomes - {Outcome.PASS} or not outcomes:
        return ExitCode.NOT_PROVEN
    return ExitCode.OK


VERDICTS = {ExitCode.OK: "pass", ExitCode.FAILED: "fail", ExitCode.NOT_PROVEN: "not proven"}


class GateReport(Model):
    """The JSON document of ``fairshift gate --format json``."""

    verdict: str
    exit_code: int
    test: str
    gates: list[GateEvidence]


def print_json(result: GateResult, code: ExitCode) -> None:
    report = GateReport(
        verdict=VERDICTS[code], exit_code=int(code), test=result.test, gates=result.rows
    )
    sys.stdout.write(report.model_dump_json(indent=2, by_alias=True) + "\n")


def print_table(result: GateResult, code: ExitCode) -> None:
    found = result.rows
    title = f"fairshift gate: {VERDICTS[code]} ({result.test})"
    table = Table(title=title, title_justify="left")
    for name in (
        "gate",
        "slice",
        "stable",
        "candidate",
        "estimate",
        "bounds",
        "bound",
        "n",
        "outcome",
        "why",
    ):
        table.add_column(name, overflow="fold")
    for e in found:
        bounds = "" if e.lower is None else f"[{fmt(e.lower)}, {fmt(e.upper)}]"
        style = OUTCOME_STYLE.get(e.outcome.value, "")
        table.add_row(
            f"{e.gate} ({e.severity[0]})",
            e.slice,
            fmt(e.stable),
            fmt(e.candidate),
            fmt(e.estimate),
            bounds,
            f"{e.bound} {e.threshold:g}",
            f"{e.stable_samples:.0f}/{e.candidate_samples:.0f}",
            f"[{style}]{e.outcome.value}[/]" if style else e.outcome.value,
            "" if e.outcome is Outcome.PASS else e.reason,
        )
    Console(width=200).print(table)


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "gate",
        help="judge a candidate against stable from decision files (CI/CD gate)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--policy", type=Path, required=True, help="ModelRollout manifest")
    parser.add_argument("--stable", type=Path, required=True, help="stable model decisions CSV")
    parser.add_argument("--candidate", type=Path, required=True, help="candidate decisions CSV")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from fairshift.metrics.csvfile import DataFileError

    try:
        result = run_gate(args)
    except (PolicyError, DataFileError) as error:
        print(f"fairshift gate: error: {error}", file=sys.stderr)
        return ExitCode.USAGE
    code = exit_code(result.rows)
    (print_json if args.format == "json" else print_table)(result, code)
    return code
