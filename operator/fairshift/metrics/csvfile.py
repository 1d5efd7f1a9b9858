"""Counts of one model version read from a CSV file of decisions (``fairshift measure``/``gate``).

One row per decision. Columns: one per slice attribute (named on the command line),
``prediction`` (0/1, required), and optionally ``label`` (0/1, empty while the outcome is
unknown), ``score`` (0..1) and ``latency_seconds`` (>= 0); an empty optional cell means "not
recorded" for that row. The result has the same shape as counts gathered from Prometheus, so
the engine cannot tell the two sources apart: confusion counts per finest cell, score
histograms with :data:`SCORE_BOUNDS`, per-label score histograms, and a latency histogram with
Prometheus' default buckets. Any problem raises :class:`DataFileError` with a one-line message
naming the file, line and column.
"""

from __future__ import annotations

import csv
import math
import os
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from fairshift_instrument.convention import LATENCY_BUCKETS, SCORE_BUCKETS

from fairshift.engine.counts import BinaryCounts, Histogram, SliceKey, VersionCounts, slice_key

SCORE_BOUNDS: tuple[float, ...] = SCORE_BUCKETS
"""Twenty equal score buckets on [0, 1] (upper bounds 0.05 ... 1.0), as the convention's."""

LATENCY_BOUNDS: tuple[float, ...] = (*LATENCY_BUCKETS, math.inf)
"""The convention's latency buckets (Prometheus' defaults), in seconds, and +Inf."""

PREDICTION = "prediction"
LABEL = "label"
SCORE = "score"
LATENCY = "latency_seconds"
RESERVED_COLUMNS = (PREDICTION, LABEL, SCORE, LATENCY)


class DataFileError(ValueError):
    """A data file that cannot be read as decisions; the message is one line for a person."""


@dataclass(frozen=True)
class CsvCounts:
    """The counts read from one file and the number of data rows they came from."""

    counts: VersionCounts
    rows: int


@dataclass(frozen=True)
class _Decision:
    cell: SliceKey
    prediction: int
    label: int | None
    score: float | None
    latency: float | None


@dataclass
class _Tally:
    """Mutable accumulator used while reading; frozen into a VersionCounts at the end."""

    cells: dict[SliceKey, BinaryCounts] = field(default_factory=dict)
    scores: dict[SliceKey, list[float]] = field(default_factory=dict)
    labelled_scores: dict[SliceKey, dict[int, list[float]]] = field(default_factory=dict)
    latency: list[float] = field(default_factory=lambda: [0.0] * len(LATENCY_BOUNDS))
    latency_seen: bool = False
    rows: int = 0

    def add(self, decision: _Decision) -> None:
        self.rows += 1
        cell = decision.cell
        self.cells[cell] = self.cells.get(cell, BinaryCounts()) + _confusion(decision)
        if decision.score is not None:
            bucket = bisect_left(SCORE_BOUNDS, decision.score)
            self.scores.setdefault(cell, [0.0] * len(SCORE_BOUNDS))[bucket] += 1
            if decision.label is not None:
                by_label = self.labelled_scores.setdefault(
                    cell, {0: [0.0] * len(SCORE_BOUNDS), 1: [0.0] * len(SCORE_BOUNDS)}
                )
                by_label[decision.label][bucket] += 1
        if decision.latency is not None:
            self.latency_seen = True
            self.latency[bisect_left(LATENCY_BOUNDS, decision.latency)] += 1

    def freeze(self) -> VersionCounts:
        return VersionCounts(
            cells=dict(self.cells),
            scores={k: Histogram(SCORE_BOUNDS, tuple(v)) for k, v in self.scores.items()},
            labelled_scores={
                k: {label: Histogram(SCORE_BOUNDS, tuple(v)) for label, v in by_label.items()}
                for k, by_label in self.labelled_scores.items()
            },
            latency=Histogram(LATENCY_BOUNDS, tuple(self.latency)) if self.latency_seen else None,
            requests=float(self.rows),
        )


def _confusion(decision: _Decision) -> BinaryCounts:
    selected = float(decision.prediction)
    label = decision.label
    return BinaryCounts(
        predictions=1.0,
        selected=selected,
        tp=float(label == 1 and selected == 1),
        fp=float(label == 0 and selected == 1),
        fn=float(label == 1 and selected == 0),
        tn=float(label == 0 and selected == 0),
    )


class _RowReader:
    """Turns the cells of one CSV row into a decision, or raises a located DataFileError."""

    def __init__(self, path: str, header: Sequence[str], attributes: Sequence[str]) -> None:
        self.path = path
        self.header = list(header)
        self.attributes = list(attributes)
        self.columns = {name: index for index, name in enumerate(self.header)}

    def error(self, line: int, column: str, problem: str) -> DataFileError:
        return DataFileError(f"{self.path}: line {line}: column {column!r}: {problem}")

    def cell(self, row: Sequence[str], line: int, column: str) -> str:
        index = self.columns.get(column)
        if index is None:
            return ""
        if index >= len(row):
            raise self.error(line, column, f"missing value (row has {len(row)} fields)")
        return row[index].strip()

    def binary(self, row: Sequence[str], line: int, column: str) -> int | None:
        text = self.cell(row, line, column)
        if not text:
            return None
        value = _number(text)
        if value is None or value not in (0.0, 1.0):
            raise self.error(line, column, f"expected 0 or 1, got {text!r}")
        return int(value)

    def measurement(
        self, row: Sequence[str], line: int, column: str, low: float, high: float
    ) -> float | None:
        text = self.cell(row, line, column)
        if not text:
            return None
        value = _number(text)
        if value is None or not low <= value <= high:
            raise self.error(
                line, column, f"expected a number in [{low:g}, {high:g}], got {text!r}"
            )
        return value

    def decision(self, row: Sequence[str], line: int) -> _Decision:
        values: dict[str, str] = {}
        for attribute in self.attributes:
            value = self.cell(row, line, attribute)
            if not value:
                raise self.error(line, attribute, "empty attribute value")
            values[attribute] = value
        prediction = self.binary(row, line, PREDICTION)
        if prediction is None:
            raise self.error(line, PREDICTION, "a prediction (0 or 1) is required")
        return _Decision(
            cell=slice_key(values),
            prediction=prediction,
            label=self.binary(row, line, LABEL),
            score=self.measurement(row, line, SCORE, 0.0, 1.0),
            latency=self.measurement(row, line, LATENCY, 0.0, math.inf),
        )


def _number(text: str) -> float | None:
    """A finite float, or None when the text is not one (NaN and infinities are refused)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _check_header(path: str, header: Sequence[str], attributes: Sequence[str]) -> None:
    _refuse_duplicates(path, header)
    present = set(header)
    if PREDICTION not in present:
        raise DataFileError(f"{path}: line 1: missing required column {PREDICTION!r}")
    for attribute in attributes:
        if attribute in RESERVED_COLUMNS:
            raise DataFileError(f"{path}: {attribute!r} is a data column, not a slice attribute")
        if attribute not in present:
            raise DataFileError(
                f"{path}: line 1: no column for attribute {attribute!r}"
                f" (columns: {', '.join(header)})"
            )


def _refuse_duplicates(path: str, header: Sequence[str]) -> None:
    """Two columns with one name are ambiguous (which one holds the values?): refuse them."""
    positions: dict[str, list[int]] = {}
    for position, name in enumerate(header, start=1):
        positions.setdefault(name, []).append(position)
    repeated = [
        f"{name!r} (columns {', '.join(map(str, where))})"
        for name, where in positions.items()
        if len(where) > 1
    ]
    if repeated:
        raise DataFileError(
            f"{path}: line 1: duplicate column names: {'; '.join(repeated)};"
            " rename or drop the copies"
        )


def _rows(path: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank row, header first."""
    line = 0
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            for row in reader:
                line = reader.line_num
                if any(value.strip() for value in row):
                    yield line, row
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataFileError(f"{path}: is a directory, not a CSV file") from None
    except PermissionError:
        raise DataFileError(f"{path}: permission denied") from None
    except UnicodeDecodeError:
        raise DataFileError(f"{path}: not a UTF-8 text file") from None
    except csv.Error as error:
        raise DataFileError(f"{path}: line {line + 1}: malformed CSV: {error}") from None


def read_counts(path: str | os.PathLike[str], attributes: Sequence[str]) -> CsvCounts:
    """Read a decisions CSV into counts keyed by all ``attributes`` (raises DataFileError)."""
    name = os.fspath(path)
    rows = _rows(name)
    first = next(rows, None)
    if first is None:
        raise DataFileError(f"{name}: empty file (no header, no rows)")
    header = [column.strip() for column in first[1]]
    _check_header(name, header, attributes)
    reader = _RowReader(name, header, attributes)
    tally = _Tally()
    for line, row in rows:
        tally.add(reader.decision(row, line))
    if tally.rows == 0:
        raise DataFileError(f"{name}: no data rows after the header")
    return CsvCounts(counts=tally.freeze(), rows=tally.rows)
