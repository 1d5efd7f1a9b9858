"""Counts of one model version read from a CSV file of decisions (``fairshift measure``/``gate``).

One row per decision. Columns: one per slice attribute (named on the command line),
``prediction`` (0/1, required), and optionally ``label`` (0/1, empty while the outcome is
unknown), ``score`` (0..1) and ``latency_seconds`` (>= 0); an empty optional cell means "not
recorded" for that row. The result has the same shape as counts gathered from Prometheus, so
the engine cannot tell the two sources apart: confusion counts per finest cell, score
histograms with :data:`SCORE_BOUNDS`, per-label score histograms, and a latency histogram with
Prometheus' default buckets. Any problem raises :class:`DataFileError` with a one-line message
naming the file, line and column. An optional ``id`` column (unique, never empty) names the
rows, so that two files that score the same rows can be compared row by row
(:class:`Decisions`).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from fairshift_instrument.convention import LATENCY_BUCKETS, SCORE_BUCKETS

from fairshift.engine.counts import (
    BinaryCounts,
    Histogram,
    SliceKey,
    VersionCounts,
    slice_key,
    slice_name,
)
from fairshift.engine.paired import PairedRows

SCORE_BOUNDS: tuple[float, ...] = SCORE_BUCKETS
"""Twenty equal score buckets on [0, 1] (upper bounds 0.05 ... 1.0), as the convention's."""

LATENCY_BOUNDS: tuple[float, ...] = (*LATENCY_BUCKETS, math.inf)
"""The convention's latency buckets (Prometheus' defaults), in seconds, and +Inf."""

PREDICTION = "prediction"
LABEL = "label"
SCORE = "score"
LATENCY = "latency_seconds"
ID = "id"
RESERVED_COLUMNS = (PREDICTION, LABEL, SCORE, LATENCY, ID)


class DataFileError(ValueError):
    """A data file that cannot be read as decisions; the message is one line for a person."""


FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True, eq=False)
class Decisions:
    """Every decision of a file in file order, for comparing two files row by row.

    ``codes[i]`` is the index in ``cells`` of row ``i``'s finest cell; ``label`` is NaN where
    the outcome is unknown; ``ids`` holds the ``id`` column when the file has one.
    """

    cells: tuple[SliceKey, ...]
    codes: IntArray
    prediction: FloatArray
    label: FloatArray
    ids: npt.NDArray[np.object_] | None = None

    def __len__(self) -> int:
        return len(self.codes)


def pair_rows(stable: Decisions, candidate: Decisions) -> tuple[PairedRows | None, str]:
    """The rows both files decided, matched by ``id`` or by position, and how they were matched.

    Files pair when both have an ``id`` column naming the same rows, or when neither has one
    and they have the same length with the same attributes and labels row by row. Otherwise
    the comparison is between independent samples (None, and the reason). Two files whose ids
    match but whose attributes or labels differ for a row are refused (DataFileError).
    """
    if (stable.ids is None) != (candidate.ids is None):
        return None, "independent samples: only one file has an id column"
    if len(stable) != len(candidate):
        return None, "independent samples: the files have different numbers of rows"
    s_rows, c_rows = np.arange(len(stable)), np.arange(len(candidate))
    how = "row position"
    if stable.ids is not None and candidate.ids is not None:
        s_rows, c_rows = np.argsort(stable.ids), np.argsort(candidate.ids)
        if not np.array_equal(stable.ids[s_rows], candidate.ids[c_rows]):
            return None, "independent samples: the id columns name different rows"
        how = "the id column"
    cells = list(dict.fromkeys((*stable.cells, *candidate.cells)))
    joint = {key: i for i, key in enumerate(cells)}
    s_codes = np.array([joint[k] for k in stable.cells], dtype=np.intp)[stable.codes][s_rows]
    c_codes = np.array([joint[k] for k in candidate.cells], dtype=np.intp)[candidate.codes][c_rows]
    s_label, c_label = stable.label[s_rows], candidate.label[c_rows]
    differ = np.flatnonzero((s_codes != c_codes) | ~_same(s_label, c_label))
    if differ.size and stable.ids is not None:
        row = s_rows[differ[0]]
        raise DataFileError(
            f"row id {stable.ids[row]!r} has different attributes or label in the two files"
            f" (stable: {slice_name(cells[s_codes[differ[0]]])}, label {_text(s_label[differ[0]])};"
            f" candidate: {slice_name(cells[c_codes[differ[0]]])},"
            f" label {_text(c_label[differ[0]])})"
        )
    if differ.size:
        return None, "independent samples: the rows differ in their attributes or labels"
    rows = PairedRows(
        cells, s_codes, s_label, stable.prediction[s_rows], candidate.prediction[c_rows]
    )
    return rows, f"paired: both files decided the same {len(stable)} rows (matched by {how})"


def _same(first: FloatArray, second: FloatArray) -> npt.NDArray[np.bool_]:
    same: npt.NDArray[np.bool_] = (first == second) | (np.isnan(first) & np.isnan(second))
    return same


def _text(label: float) -> str:
    return "unknown" if math.isnan(label) else f"{label:g}"


@dataclass(frozen=True, eq=False)
class CsvCounts:
    """The counts read from one file, the number of data rows, and the rows themselves."""

    counts: VersionCounts
    rows: int
    decisions: Decisions


@dataclass(frozen=True)
class _Table:
    """The raw text of a file: its header, its non-blank data rows and their line numbers."""

    path: str
    header: list[str]
    rows: list[list[str]]
    lines: list[int]

    def error(self, index: int, column: str, problem: str) -> DataFileError:
        return DataFileError(f"{self.path}: line {self.lines[index]}: column {column!r}: {problem}")

    def texts(self, column: str) -> npt.NDArray[np.object_] | None:
        """The stripped cells of ``column`` (None when the file has no such column)."""
        if column not in self.header:
            return None
        position = self.header.index(column)
        for index, row in enumerate(self.rows):
            if position >= len(row):
                raise self.error(index, column, f"missing value (row has {len(row)} fields)")
        return np.array([row[position].strip() for row in self.rows], dtype=object)

    def required_texts(self, column: str, problem: str) -> npt.NDArray[np.object_]:
        """Cells of a column every row must fill."""
        texts = self.texts(column)
        assert texts is not None  # the header was checked
        empty = np.flatnonzero(texts == "")
        if empty.size:
            raise self.error(int(empty[0]), column, problem)
        return texts

    def numbers(self, column: str, low: float, high: float, binary: bool = False) -> FloatArray:
        """The column as numbers, NaN where empty; a located error for any other value."""
        texts = self.texts(column)
        if texts is None:
            return np.full(len(self.rows), np.nan)
        empty = texts == ""
        values = _floats(np.where(empty, "nan", texts))
        valid = np.isfinite(values) & (values >= low) & (values <= high)
        if binary:
            valid &= (values == 0) | (values == 1)
        bad = np.flatnonzero(~empty & ~valid)
        if bad.size:
            text = texts[bad[0]]
            expected = "0 or 1" if binary else f"a number in [{low:g}, {high:g}]"
            raise self.error(int(bad[0]), column, f"expected {expected}, got {text!r}")
        values[empty] = np.nan
        return values


def _floats(texts: npt.NDArray[np.object_]) -> FloatArray:
    """Texts as floats; NaN for a text that is not a number."""
    try:
        return texts.astype(np.float64)
    except ValueError:
        return np.array([_number(text) for text in texts], dtype=np.float64)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _codes(values: Sequence[npt.NDArray[np.object_]]) -> IntArray:
    """One index per distinct combination of values, row by row (sorted combination order)."""
    codes = np.zeros(len(values[0]), dtype=np.intp)
    for column in values:
        distinct, inverse = np.unique(column, return_inverse=True)
        combined = codes * len(distinct) + inverse
        codes = np.unique(combined, return_inverse=True)[1].astype(np.intp)
    return codes


def _cells(table: _Table, attributes: Sequence[str]) -> tuple[tuple[SliceKey, ...], IntArray]:
    """The finest cells and each row's index into them."""
    if not attributes:
        return (slice_key({}),), np.zeros(len(table.rows), dtype=np.intp)
    values = {a: table.required_texts(a, "empty attribute value") for a in attributes}
    codes = _codes(list(values.values()))
    firsts = np.unique(codes, return_index=True)[1]
    cells = tuple(slice_key({a: values[a][row] for a in attributes}) for row in firsts)
    return cells, codes


def _ids(table: _Table) -> npt.NDArray[np.object_] | None:
    """The ``id`` column: every row has one, and no two rows share one."""
    ids = table.texts(ID)
    if ids is None:
        return None
    table.required_texts(ID, "empty id (an id column needs one for every row)")
    distinct, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        rows = np.flatnonzero(np.isin(ids, distinct[counts > 1]))
        first = ids[rows[0]]
        same = [int(i) for i in rows if ids[i] == first]
        lines = ", ".join(str(table.lines[i]) for i in same)
        raise table.error(same[1], ID, f"id {first!r} repeated on lines {lines}")
    return ids


def _per_cell(codes: IntArray, cells: int, weights: npt.ArrayLike | None = None) -> list[float]:
    return [float(x) for x in np.bincount(codes, weights=weights, minlength=cells)]


def _confusion(decisions: Decisions) -> dict[SliceKey, BinaryCounts]:
    codes, n = decisions.codes, len(decisions.cells)
    selected = decisions.prediction == 1
    positive, negative = decisions.label == 1, decisions.label == 0
    columns = zip(
        _per_cell(codes, n),
        _per_cell(codes, n, selected),
        _per_cell(codes, n, positive & selected),
        _per_cell(codes, n, negative & selected),
        _per_cell(codes, n, positive & ~selected),
        _per_cell(codes, n, negative & ~selected),
        strict=True,
    )
    return {
        key: BinaryCounts(predictions=p, selected=s, tp=tp, fp=fp, fn=fn, tn=tn)
        for key, (p, s, tp, fp, fn, tn) in zip(decisions.cells, columns, strict=True)
    }


def _histograms(codes: IntArray, buckets: IntArray, cells: int) -> FloatArray:
    """Counts per (cell, score bucket)."""
    width = len(SCORE_BOUNDS)
    flat = np.bincount(codes * width + buckets, minlength=cells * width)
    return flat.reshape(cells, width).astype(float)


def _score_histograms(
    decisions: Decisions, score: FloatArray
) -> tuple[dict[SliceKey, Histogram], dict[SliceKey, dict[int, Histogram]]]:
    """Score histograms per cell, and per cell and label for the labelled rows."""
    scored = ~np.isnan(score)
    buckets = np.searchsorted(SCORE_BOUNDS, score[scored], side="left")
    codes, labels, n = decisions.codes[scored], decisions.label[scored], len(decisions.cells)
    everything = _histograms(codes, buckets, n)
    by_label = {y: _histograms(codes[labels == y], buckets[labels == y], n) for y in (0, 1)}
    labelled = by_label[0] + by_label[1]
    cells = decisions.cells

    def histogram(counts: FloatArray) -> Histogram:
        return Histogram(SCORE_BOUNDS, tuple(counts.tolist()))

    scores = {cells[i]: histogram(everything[i]) for i in np.flatnonzero(everything.sum(1))}
    labelled_scores = {
        cells[i]: {y: histogram(by_label[y][i]) for y in (0, 1)}
        for i in np.flatnonzero(labelled.sum(1))
    }
    return scores, labelled_scores


def _latency(latency: FloatArray) -> Histogram | None:
    seen = latency[~np.isnan(latency)]
    if not seen.size:
        return None
    buckets = np.searchsorted(LATENCY_BOUNDS, seen, side="left")
    counts = np.bincount(buckets, minlength=len(LATENCY_BOUNDS))
    return Histogram(LATENCY_BOUNDS, tuple(float(x) for x in counts))


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


def _table(path: str) -> _Table:
    rows = _rows(path)
    first = next(rows, None)
    if first is None:
        raise DataFileError(f"{path}: empty file (no header, no rows)")
    header = [column.strip() for column in first[1]]
    lines: list[int] = []
    data: list[list[str]] = []
    for line, row in rows:
        lines.append(line)
        data.append(row)
    return _Table(path, header, data, lines)


def read_counts(path: str | os.PathLike[str], attributes: Sequence[str]) -> CsvCounts:
    """Read a decisions CSV into counts keyed by all ``attributes`` (raises DataFileError).

    The file is read column by column and every count is summed once per cell with numpy, so
    the cost grows with the rows, not with rows times cells.
    """
    table = _table(os.fspath(path))
    _check_header(table.path, table.header, attributes)
    if not table.rows:
        raise DataFileError(f"{table.path}: no data rows after the header")
    cells, codes = _cells(table, attributes)
    table.required_texts(PREDICTION, "a prediction (0 or 1) is required")
    decisions = Decisions(
        cells=cells,
        codes=codes,
        prediction=table.numbers(PREDICTION, 0, 1, binary=True),
        label=table.numbers(LABEL, 0, 1, binary=True),
        ids=_ids(table),
    )
    scores, labelled_scores = _score_histograms(decisions, table.numbers(SCORE, 0.0, 1.0))
    counts = VersionCounts(
        cells=_confusion(decisions),
        scores=scores,
        labelled_scores=labelled_scores,
        latency=_latency(table.numbers(LATENCY, 0.0, math.inf)),
        requests=float(len(decisions)),
    )
    return CsvCounts(counts=counts, rows=len(decisions), decisions=decisions)
