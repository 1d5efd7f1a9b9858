"""PromQL for fairshift: ``{{variable}}`` templates, label escaping and the convention's queries.

Every query is one per series and version, grouped ``by`` the slice attributes, so the number of
queries per analysis tick does not grow with the number of slices. For the attributes
``sex, age_band``, a 300 s window and the selector ``namespace="lending"`` (``{...}`` below)
they read::

    sum by (sex, age_band, decision) (increase(fairshift_predictions_total{...}[300s]))
    sum by (sex, age_band, decision, label) (increase(fairshift_outcomes_total{...}[300s]))
    sum by (sex, age_band, label, le) (increase(fairshift_score_bucket{...}[300s]))
    sum by (le) (increase(fairshift_request_duration_seconds_bucket{...}[300s]))
    sum(increase(fairshift_errors_total{...}[300s]))

Templates (the analysis ``selector`` and custom gate ``query``) may use ``{{namespace}}``,
``{{rollout}}``, ``{{deployment}}``, ``{{version}}``, ``{{service}}`` (escaped as label values),
``{{window}}`` (``300s``), ``{{interval}}`` (``30s``) and, in gate queries, ``{{selector}}`` (the
rendered selector). An unknown variable raises :class:`TemplateError` naming it.
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
    REQUEST_DURATION,
    SCORE,
    check_attribute_names,
)

from fairshift.metrics.source import InvalidQueryError, QueryContext

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


def increase(series: str, selector: str, window: str) -> str:
    """``increase(series{selector}[window])``; no braces when the selector is empty."""
    matchers = f"{{{selector}}}" if selector else ""
    return f"increase({series}{matchers}[{window}])"


def sum_by(labels: Sequence[str], expression: str) -> str:
    """``sum by (a, b) (expression)``, or ``sum(expression)`` without labels."""
    if not labels:
        return f"sum({expression})"
    return f"sum by ({', '.join(labels)}) ({expression})"


def bucket_series(histogram: str) -> str:
    return f"{histogram}_bucket"


@dataclass(frozen=True)
class ConventionQueries:
    """The convention's queries for one version over one window."""

    predictions: str
    outcomes: str
    scores: str
    latency: str
    errors: str

    def all(self) -> tuple[str, ...]:
        return (self.predictions, self.outcomes, self.scores, self.latency, self.errors)


def convention_queries(
    attributes: Sequence[str], selector: str, window_seconds: float
) -> ConventionQueries:
    """One query per series, grouped by the slice attributes (checked as label names)."""
    slices = label_names(attributes)
    window = window_literal(window_seconds)
    selector = selector.strip()
    return ConventionQueries(
        predictions=sum_by([*slices, DECISION], increase(PREDICTIONS, selector, window)),
        outcomes=sum_by([*slices, DECISION, LABEL], increase(OUTCOMES, selector, window)),
        scores=sum_by(
            [*slices, LABEL, BUCKET_BOUND], increase(bucket_series(SCORE), selector, window)
        ),
        latency=sum_by([BUCKET_BOUND], increase(bucket_series(REQUEST_DURATION), selector, window)),
        errors=sum_by([], increase(ERRORS, selector, window)),
    )
