"""PromQL for fairshift: ``{{variable}}`` templates, label escaping and the convention's queries.

Counts are differences of raw counter readings pinned with ``@`` at the analysis start and at
its end, never ``increase(...[window])``: Prometheus extrapolates ``increase`` beyond the first
and last samples and guesses across resets, and its cost grows with the window, while a pinned
reading costs the same for any window. One query per series answers every reading (both
instants, and every version asked for), each element marked with ``fairshift_reading`` and
``fairshift_version``, so the number of queries per analysis does not grow with slices,
versions or the step's age. For the selector ``namespace="lending"`` and the instants 1000 and
1600 (``{...}`` below) the predictions query of one version reads::

    label_replace(label_replace(fairshift_predictions_total{...} @ 1000.000,
        "fairshift_reading", "start", "", ""), "fairshift_version", "candidate", "", "")
    or label_replace(label_replace(fairshift_predictions_total{...} @ 1600.000,
        "fairshift_reading", "end", "", ""), "fairshift_version", "candidate", "", "")

``metrics.readings`` turns the readings into counts (reset-aware, per series) and sums them by
each family's labels (:class:`Family`).

Templates (the analysis ``selector`` and custom gate ``query``) may use ``{{namespace}}``,
``{{rollout}}``, ``{{deployment}}``, ``{{version}}``, ``{{service}}`` (escaped as label values),
``{{window}}`` (``300s``, the analysis' age), ``{{interval}}`` (``30s``) and, in gate queries,
``{{selector}}`` (the rendered selector). An unknown variable raises :class:`TemplateError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fairshift_instrument.convention import (
    BUCKET_BOUND,
    DECISION,
    ERRORS,
    LABEL,
    OUTCOMES,
    PREDICTIONS,
    QUANTILE,
    READING_INSTANT,
    READING_VERSION,
    REASON,
    REQUEST_DURATION,
    SCORE,
    check_attribute_names,
)

from fairshift.metrics.source import Instant, InvalidQueryError, QueryContext, Version

VARIABLE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
"""``{{ name }}``: a template variable; whitespace inside the braces is ignored."""

ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n"}


class TemplateError(InvalidQueryError, ValueError):
    """A template uses a variable that is not defined."""


class AttributeNameError(InvalidQueryError, ValueError):
    """A slice attribute cannot be used as a PromQL label name."""


def render_template(template: str, variables: Mapping[str, str]) -> str:
    """Replace every ``{{name}}`` in one pass; raise TemplateError naming an unknown one.

    Values are inserted as given (a value containing ``{{`` is not expanded again).
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            known = ", ".join(sorted(variables))
            raise TemplateError(f"unknown template variable {{{{{name}}}}}; known: {known}")
        return variables[name]

    return VARIABLE.sub(substitute, template)


def escape_label_value(value: str) -> str:
    """Escape a value for a double-quoted PromQL label matcher."""
    return "".join(ESCAPES.get(character, character) for character in value)


def label_names(attributes: Sequence[str]) -> tuple[str, ...]:
    """The attributes, checked as usable label names (AttributeNameError otherwise)."""
    try:
        return check_attribute_names(attributes)
    except ValueError as error:
        raise AttributeNameError(str(error)) from None


def window_literal(seconds: float) -> str:
    """A PromQL range of whole seconds, at least ``1s`` (``[0s]`` is not valid PromQL)."""
    return f"{max(1, int(seconds))}s"


def base_variables(context: QueryContext, interval: str) -> dict[str, str]:
    """The variables every template may use, label values escaped."""
    return {
        "namespace": escape_label_value(context.namespace),
        "rollout": escape_label_value(context.rollout),
        "deployment": escape_label_value(context.deployment),
        "version": escape_label_value(context.version),
        "service": escape_label_value(context.service),
        "window": window_literal(context.window_seconds),
        "interval": interval,
    }


def query_variables(context: QueryContext, selector_template: str, interval: str) -> dict[str, str]:
    """Variables for gate queries: the base ones plus ``selector``, rendered from them."""
    variables = base_variables(context, interval)
    variables["selector"] = render_template(selector_template, variables).strip()
    return variables


def pinned(series: str, selector: str, at: float) -> str:
    """``series{selector} @ at``: the raw counter readings at one instant (no braces if empty)."""
    matchers = f"{{{selector}}}" if selector else ""
    return f"{series}{matchers} @ {at:.3f}"


def marked(expression: str, label: str, value: str) -> str:
    """``expression`` with ``label="value"`` set on every element (``label_replace``)."""
    return f'label_replace({expression}, "{label}", "{value}", "", "")'


@dataclass(frozen=True)
class Reading:
    """One pinned reading of one version's counters: its selector and instant."""

    version: Version
    instant: Instant
    selector: str
    at: float  # unix seconds


def readings_of(context: QueryContext, selector: str) -> tuple[Reading, Reading]:
    """The readings at the analysis start and at its end, of the context's version."""
    selector = selector.strip()
    return (
        Reading(context.version, "start", selector, context.start.timestamp()),
        Reading(context.version, "end", selector, context.end.timestamp()),
    )


def readings_query(series: str, readings: Sequence[Reading]) -> str:
    """One query answering every reading of ``series``, each element marked with its version
    and instant; the number of readings changes the query's length, not its count."""
    parts = [
        marked(
            marked(pinned(series, reading.selector, reading.at), READING_INSTANT, reading.instant),
            READING_VERSION,
            reading.version,
        )
        for reading in readings
    ]
    return " or ".join(parts)


def counted_query(
    series: str, readings: Sequence[Reading], by: Sequence[str], slices: Sequence[str]
) -> str:
    """One query whose answer is already the counts, summed by ``by`` per version: the rule of
    ``metrics.readings`` applied by Prometheus, so an answer has one element per cell and
    version instead of two per raw series.

    Per version, with ``A`` the end reading, ``B`` the start reading and ``L`` the labels that
    tell a process' series apart (slices and the convention's)::

        sum by (by) ((A and ignoring(L) count without(L) (A < B)) or ((A - B) >= 0) or A)

    a process with a series that went down counts its end readings, any other series
    ``A - B``, a series new since the start ``A``, a departed series nothing. Prometheus sees
    a restart within one series family, where the client-side rule looks across families.
    """
    process = ", ".join([*slices, DECISION, LABEL, REASON, BUCKET_BOUND, QUANTILE])
    grouping = ", ".join(by)
    parts = []
    for version in dict.fromkeys(reading.version for reading in readings):
        start = next(r for r in readings if r.version == version and r.instant == "start")
        end = next(r for r in readings if r.version == version and r.instant == "end")
        a, b = pinned(series, end.selector, end.at), pinned(series, start.selector, start.at)
        count = (
            f"sum by ({grouping}) (({a} and ignoring({process}) count without({process}) "
            f"({a} < {b})) or (({a} - {b}) >= 0) or {a})"
        )
        parts.append(marked(count, READING_VERSION, version))
    return " or ".join(parts)


def bucket_series(histogram: str) -> str:
    return f"{histogram}_bucket"


@dataclass(frozen=True)
class Family:
    """One series of the convention: its query and the labels its counts are summed by."""

    name: str
    query: str
    by: tuple[str, ...]


@dataclass(frozen=True)
class ConventionQueries:
    """The convention's queries for a set of readings: one per series."""

    predictions: Family
    outcomes: Family
    scores: Family
    latency: Family
    errors: Family

    def all(self) -> tuple[Family, ...]:
        return (self.predictions, self.outcomes, self.scores, self.latency, self.errors)


def convention_queries(
    attributes: Sequence[str], readings: Sequence[Reading], counted: bool = False
) -> ConventionQueries:
    """One query per series for all ``readings`` (attributes checked as label names): the raw
    readings, or with ``counted`` the counts per cell and version (:func:`counted_query`)."""
    slices = label_names(attributes)

    def family(name: str, series: str, by: Sequence[str]) -> Family:
        if counted:
            return Family(name, counted_query(series, readings, by, slices), tuple(by))
        return Family(name, readings_query(series, readings), tuple(by))

    return ConventionQueries(
        predictions=family("predictions", PREDICTIONS, [*slices, DECISION]),
        outcomes=family("outcomes", OUTCOMES, [*slices, DECISION, LABEL]),
        scores=family("scores", bucket_series(SCORE), [*slices, LABEL, BUCKET_BOUND]),
        latency=family("latency", bucket_series(REQUEST_DURATION), [BUCKET_BOUND]),
        errors=family("errors", ERRORS, []),
    )
