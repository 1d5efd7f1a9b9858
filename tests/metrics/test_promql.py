"""PromQL rendering: templates, escaping, and one grouped query per convention series."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fairshift.metrics.promql import (
    AttributeNameError,
    Reading,
    TemplateError,
    convention_queries,
    escape_label_value,
    query_variables,
    readings_of,
    render_template,
    window_literal,
)
from fairshift.metrics.source import InvalidQueryError, QueryContext

SELECTOR = 'namespace="lending",pod=~"credit-scorer-[0-9a-z]+-[0-9a-z]+"'
END = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
START = END - timedelta(seconds=300)
CONTEXT = QueryContext(
    namespace="lending",
    rollout="credit-scorer",
    deployment="credit-scorer",
    version="candidate",
    service="credit-scorer-canary",
    start=START,
    end=END,
)
READINGS = readings_of(CONTEXT, SELECTOR)


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
        context = QueryContext('we"ird\\ns', "r", "d", "stable", "s", START, END)
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


class TestContext:
    def test_window_is_the_age_of_the_analysis_in_whole_seconds_at_least_one(self) -> None:
        assert CONTEXT.window_seconds == 300
        assert QueryContext("n", "r", "d", "stable", "s", END, END).window_seconds == 1

    def test_times_must_be_aware_and_ordered(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            QueryContext("n", "r", "d", "stable", "s", START.replace(tzinfo=None), END)
        with pytest.raises(ValueError, match="before it starts"):
            QueryContext("n", "r", "d", "stable", "s", END, START)

    def test_readings_at_the_start_and_the_end(self) -> None:
        expected = (
            Reading("candidate", "start", SELECTOR, START.timestamp()),
            Reading("candidate", "end", SELECTOR, END.timestamp()),
        )
        assert expected == READINGS


def reading(series: str, instant: str, at: datetime, version: str = "candidate") -> str:
    return (
        f"label_replace(label_replace({series}{{{SELECTOR}}} @ {at.timestamp():.3f}, "
        f'"fairshift_reading", "{instant}", "", ""), "fairshift_version", "{version}", "", "")'
    )


class TestConventionQueries:
    def test_the_design_example(self) -> None:
        queries = convention_queries(["sex", "age_band"], READINGS)

        def both(series: str) -> str:
            return f"{reading(series, 'start', START)} or {reading(series, 'end', END)}"

        assert queries.predictions.query == both("fairshift_predictions_total")
        assert queries.outcomes.query == both("fairshift_outcomes_total")
        assert queries.scores.query == both("fairshift_score_bucket")
        assert queries.latency.query == both("fairshift_request_duration_seconds_bucket")
        assert queries.errors.query == both("fairshift_errors_total")

    def test_each_family_sums_by_its_labels(self) -> None:
        queries = convention_queries(["sex", "age_band"], READINGS)
        assert [family.by for family in queries.all()] == [
            ("sex", "age_band", "decision"),
            ("sex", "age_band", "decision", "label"),
            ("sex", "age_band", "label", "le"),
            ("le",),
            (),
        ]

    def test_query_count_does_not_depend_on_slices_or_versions(self) -> None:
        stable = readings_of(
            QueryContext("lending", "r", "d-primary", "stable", "s", START, END), SELECTOR
        )
        one = convention_queries(["sex"], READINGS).all()
        many = convention_queries(["sex", "age_band", "region"], (*READINGS, *stable)).all()
        assert len(one) == len(many) == 5
        assert all('"fairshift_version", "stable"' in family.query for family in many)

    def test_without_a_selector_there_are_no_braces(self) -> None:
        queries = convention_queries([], readings_of(CONTEXT, ""))
        assert (
            f"fairshift_predictions_total @ {START.timestamp():.3f}," in queries.predictions.query
        )
        assert queries.predictions.by == ("decision",)

    @pytest.mark.parametrize(("seconds", "literal"), [(0, "1s"), (0.4, "1s"), (59.9, "59s")])
    def test_window_literal_is_whole_seconds_and_at_least_one(
        self, seconds: float, literal: str
    ) -> None:
        assert window_literal(seconds) == literal

    @pytest.mark.parametrize(
        "attribute",
        [
            "age-band",
            "1x",
            "sex)",
            'x"',
            "label",
            "decision",
            "le",
            "__name__",
            "fairshift_version",
            "fairshift_reading",
        ],
    )
    def test_unusable_attribute_names_are_refused(self, attribute: str) -> None:
        with pytest.raises(AttributeNameError, match=re.escape(repr(attribute))):
            convention_queries(["sex", attribute], READINGS)

    def test_attribute_errors_are_invalid_queries(self) -> None:
        with pytest.raises(InvalidQueryError):
            convention_queries(["bad name"], READINGS)
