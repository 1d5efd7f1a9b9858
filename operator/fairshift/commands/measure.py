"""``fairshift measure``: per-slice fairness and quality metrics of one model from a CSV file.

Reads decisions (see ``fairshift.metrics.csvfile``), measures every attribute alone and the
intersection of all of them, and prints the document as JSON or as tables. Invalid input exits
with status 2 and a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fairshift_instrument.convention import attribute_name_problem
from rich.console import Console
from rich.table import Table

from fairshift.api.analysis import Slices
from fairshift.commands.exitcodes import ExitCode
from fairshift.engine.slices import ReferencePolicy
from fairshift.metrics.csvfile import RESERVED_COLUMNS, DataFileError, read_counts

if TYPE_CHECKING:  # the engine (numpy, scipy) loads only when the command runs
    from fairshift.commands.measurement import Document

TABLE_WIDTH = 140
DEFAULT_MIN_SAMPLES: int = Slices.model_fields["min_samples"].default

GROUP_COLUMNS = (
    ("n", "n"),
    ("selection_rate", "sel. rate"),
    ("disparate_impact", "DI"),
    ("statistical_parity_difference", "SPD"),
    ("tpr", "TPR"),
    ("fpr", "FPR"),
    ("ppv", "PPV"),
    ("accuracy", "acc."),
    ("tpr_gap", "TPR gap"),
    ("fpr_gap", "FPR gap"),
    ("equalized_odds", "EO"),
    ("ece", "ECE"),
)


def parse_attributes(text: str) -> list[str]:
    """``sex,age_band`` -> ``["sex", "age_band"]``; ValueError on a bad or repeated name."""
    names = [part.strip() for part in text.split(",")]
    for name in names:
        problem = attribute_name_problem(name)
        if problem is not None:
            raise ValueError(f"{problem} (in {text!r})")
        if name in RESERVED_COLUMNS:
            raise ValueError(f"{name!r} is a data column, not a slice attribute")
    if len(set(names)) != len(names):
        raise ValueError(f"an attribute is repeated in {text!r}")
    return names


def _format(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _group_table(name: str, entries: Sequence[Document]) -> Table:
    table = Table(title=f"{name} (* = reference)", title_justify="left")
    table.add_column("group")
    for _, header in GROUP_COLUMNS:
        table.add_column(header, justify="right")
    for entry in entries:
        label = ", ".join(f"{a}={v}" for a, v in entry["group"].items())
        marker = " *" if entry["reference"] else ""
        table.add_row(label + marker, *(_format(entry[field]) for field, _ in GROUP_COLUMNS))
    return table


DISPARITY_COLUMNS = (
    ("demographic_parity_difference", "DP diff."),
    ("demographic_parity_ratio", "DP ratio"),
    ("equalized_odds_difference", "EOdds diff."),
    ("equalized_odds_ratio", "EOdds ratio"),
    ("equal_opportunity_difference", "EOpp diff."),
    ("equal_opportunity_ratio", "EOpp ratio"),
)


def _disparity_table(disparities: Document) -> Table:
    table = Table(title="disparities between groups (max - min, min / max)", title_justify="left")
    table.add_column("grouping")
    for _, header in DISPARITY_COLUMNS:
        table.add_column(header, justify="right")
    for name, values in disparities.items():
        table.add_row(name, *(_format(values[field]) for field, _ in DISPARITY_COLUMNS))
    return table


def print_tables(document: Document, console: Console) -> None:
    """Overall line, one table per grouping, then the disparities."""
    overall = document["overall"]
    summary = ", ".join(f"{key} {_format(value)}" for key, value in overall.items())
    console.print(f"overall: {summary}")
    for name, entries in document["groups"].items():
        console.print(_group_table(name, entries))
    console.print(_disparity_table(document["disparities"]))


def run(args: argparse.Namespace) -> int:
    """Handler of ``fairshift measure``."""
    try:
        attributes = parse_attributes(args.attributes)
        from fairshift.commands.measurement import measurement_document

        policy = ReferencePolicy.parse(args.reference, args.min_samples)
        data = read_counts(args.data, attributes)
        document = measurement_document(data.counts, attributes, policy)
    except (DataFileError, ValueError) as error:
        print(f"fairshift measure: error: {error}", file=sys.stderr)
        return ExitCode.USAGE
    if args.format == "json":
        print(json.dumps(document, indent=2))
    else:
        width = None if sys.stdout.isatty() else TABLE_WIDTH
        print_tables(document, Console(file=sys.stdout, width=width))
    return ExitCode.OK


def register(subparsers: Any) -> None:
    """Add ``measure`` to the ``fairshift`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "measure",
        help="per-slice fairness, quality and calibration metrics of one model from a CSV file",
        description=(
            "Measure a model's decisions per slice: every attribute alone and the intersection"
            " of all of them. The CSV has one column per attribute, prediction (0/1), and"
            " optionally label (0/1, empty if unknown), score (0..1) and latency_seconds."
        ),
    )
    parser.add_argument("--data", required=True, metavar="FILE.csv", help="decisions CSV file")
    parser.add_argument(
        "--attributes",
        required=True,
        metavar="A,B",
        help="comma-separated slice attributes (columns of the file), e.g. sex,age_band",
    )
    parser.add_argument(
        "--reference",
        default="majority",
        metavar="POLICY",
        help="reference group: majority (default), worst (lowest selection rate among groups"
        " with at least --min-samples decisions) or sex=M",
    )
    parser.add_argument(
        "--min-samples",
        type=int,
        default=DEFAULT_MIN_SAMPLES,
        metavar="N",
        help=f"decisions a group needs to be the worst reference (default {DEFAULT_MIN_SAMPLES},"
        " as slices.minSamples)",
    )
    parser.add_argument("--format", choices=("json", "table"), default="table")
    parser.set_defaults(handler=run)
