"""PromQL rendering: templates, escaping, and one grouped query per convention series."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fairshift.metrics.promql import (
    AttributeNameError,
    TemplateError,
    convention_queries,
    escape_label_value,
    query_variables,
    render_template,
    window_literal,
)
from fairshift.metrics.source import InvalidQueryError, QueryContext

SELECTOR = 'namespace="lending",pod=~"credit-scorer-[0-9a-z]+-[0-9a-z]+"'
CONTEXT = QueryContext(
    namespace="lending",
    rollout="credit-scorer",
    deployment="credit-scorer",
    version="candidate",
    service="credit-scorer-canary",
    window_seconds=300,
)


class TestTemplates:
    def test_replaces_variables_with_or_without_spaces(self) -> None:
        rendered = render_template("a={{x}} b={{ y }} c={{  x}}", {"x": "1", "y": "2"})
        assert rendered == "a=1 b=2 c=1"

    def test_unknown_variable_names_it_and_the_known_ones(self) -> None:
        with pytest.raises(TemplateError, match=r"\{\{nmespace\}\}; known: deployment, namespace"):
            render_template('namespace="{{ nmespace }}"', {"namespace": "a", "deployment": "b"})

    def test_template_errors_are_invalid_queries_and_value_errors(self) -> None:
        with pytest.raises(InvalidQueryError):
            render_template("{{missing}}", {})
        with pytest.raises(ValueError):
            render_template("{{missing}}", {})

    def test_values_are_not_expanded_again(self) -> None:
        assert render_template("{{a}}", {"a": "{{b}}"}) == "{{b}}"

    def test_single_braces_of_promql_are_left_alone(self) -> None:
        rendered = render_template('sum(rate(x{ {{selector}},code=~"5.."}[1m]))', {"selector": "a"})
        assert rendered == 'sum(rate(x{ a,code=~"5.."}[1m]))'

    def test_selector_and_gate_variables(self) -> None:
        variables = query_variables(
            CONTEXT, 'namespace="{{namespace}}",pod=~"{{deployment}}-[0-9a-z]+-[0-9a-z]+"', "30s"
        )
        assert variables == {
            "namespace": "lending",
            "rollout": "credit-scorer",
            "deployment": "credit-scorer",
            "version": "candidate",
            "service": "credit-scorer-canary",
            "window": "300s",
            "interval": "30s",
            "selector": SELECTOR,
        }

    def test_context_values_are_escaped_in_the_selector(self) -> None:
        context = QueryContext('we"ird\\ns', "r", "d", "stable", "s", 60)
        variables = query_variables(context, 'namespace="{{namespace}}"', "30s")
        assert variables["selector"] == 'namespace="we\\"ird\\\\ns"'


class TestEscaping:
    @pytest.mark.parametrize(
        ("raw", "escaped"),
        [
            ("plain", "plain"),
            ('say "hi"', 'say \\"hi\\"'),
            ("back\\slash", "back\\\\slash"),
            ("two\nlines", "two\\nlines"),
            ('\\"', '\\\\\\"'),
        ],
    )
    def test_escapes_backslash_quote_and_newline(self, raw: str, escaped: str) -> None:
        assert escape_label_value(raw) == escaped

    @given(st.text())
    def test_escaped_value_has_no_bare_quote_or_newline(self, raw: str) -> None:
        escaped = escape_label_value(raw)
        assert "\n" not in escaped
        unescaped = escaped.replace("\\\\", "").replace('\\"', "")
        assert '"' not in unescaped

    @given(st.text())
    def test_escaping_round_trips(self, raw: str) -> None:
        escaped = escape_label_value(raw)
        decoded = []
        characters = iter(escaped)
        for character in characters:
            if character == "\\":
                following = next(characters)
                decoded.append({"n": "\n"}.get(following, following))
            else:
                decoded.append(character)
        assert "".join(decoded) == raw


class TestConventionQueries:
    def test_the_design_example(self) -> None:
        queries = convention_queries(["sex", "age_band"], SELECTOR, 300)
        sel = SELECTOR
        assert queries.predictions == (
            "sum by (sex, age_band, decision) "
            f"(increase(fairshift_predictions_total{{{sel}}}[300s]))"
        )
        assert queries.outcomes == (
            "sum by (sex, age_band, decision, label) "
            f"(increase(fairshift_outcomes_total{{{sel}}}[300s]))"
        )
        assert queries.scores == (
            f"sum by (sex, age_band, label, le) (increase(fairshift_score_bucket{{{sel}}}[300s]))"
        )
        assert queries.latency == (
            f"sum by (le) (increase(fairshift_request_duration_seconds_bucket{{{sel}}}[300s]))"
        )
        assert queries.errors == f"sum(increase(fairshift_errors_total{{{sel}}}[300s]))"

    def test_query_count_does_not_depend_on_slices(self) -> None:
        one = convention_queries(["sex"], SELECTOR, 60).all()
        many = convention_queries(["sex", "age_band", "region", "income"], SELECTOR, 60).all()
        assert len(one) == len(many) == 5

    def test_without_attributes_groups_only_by_convention_labels(self) -> None:
        queries = convention_queries([], "", 60)
        assert queries.predictions == (
            "sum by (decision) (increase(fairshift_predictions_total[60s]))"
        )
        assert queries.scores == "sum by (label, le) (increase(fairshift_score_bucket[60s]))"

    @pytest.mark.parametrize(("seconds", "literal"), [(0, "1s"), (0.4, "1s"), (59.9, "59s")])
    def test_window_is_whole_seconds_and_at_least_one(self, seconds: float, literal: str) -> None:
        assert window_literal(seconds) == literal
        assert f"[{literal}]" in convention_queries(["sex"], "", seconds).errors

    @pytest.mark.parametrize(
        "attribute", ["age-band", "1x", "sex)", 'x"', "label", "decision", "le", "__name__"]
    )
    def test_unusable_attribute_names_are_refused(self, attribute: str) -> None:
        with pytest.raises(AttributeNameError, match=re.escape(repr(attribute))):
            convention_queries(["sex", attribute], SELECTOR, 60)

    def test_attribute_errors_are_invalid_queries(self) -> None:
        with pytest.raises(InvalidQueryError):
            convention_queries(["bad name"], SELECTOR, 60)
