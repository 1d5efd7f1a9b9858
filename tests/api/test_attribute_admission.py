"""Slice attributes the metric convention reserves are refused by pydantic and by the CRD alike.

The CEL rule is evaluated here with cel-python against the rule the CRD really carries, so the
two twins cannot drift apart: the API server refuses exactly the names the operator would.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import celpy
import pytest
from fairshift_instrument.convention import RESERVED_LABELS, attribute_name_problem
from hypothesis import given
from hypothesis import strategies as st

from fairshift.api.crd import render_crd
from fairshift.api.spec import SpecError, parse_spec


def attribute_item_schema() -> dict[str, Any]:
    """The CRD schema of one entry of ``spec.analysis.slices.attributes``."""
    root = render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    slices = root["properties"]["spec"]["properties"]["analysis"]["properties"]["slices"]
    item: dict[str, Any] = slices["properties"]["attributes"]["items"]
    return item


@cache
def attribute_rules() -> tuple[Any, ...]:
    """The compiled CEL rules of an attribute entry, as the CRD carries them."""
    environment = celpy.Environment()
    rules = attribute_item_schema()["x-kubernetes-validations"]
    return tuple(environment.program(environment.compile(rule["rule"])) for rule in rules)


def admitted_by_the_crd(name: str) -> bool:
    """Whether every CEL rule on an attribute entry holds for ``name``."""
    value = celpy.json_to_cel(name)
    return all(bool(program.evaluate({"self": value})) for program in attribute_rules())


def admitted_by_the_spec(example_spec: dict[str, Any], name: str) -> bool:
    spec = {**example_spec, "analysis": {**example_spec["analysis"]}}
    spec["analysis"]["slices"] = {"attributes": [name], "reference": "majority"}
    try:
        parse_spec(spec)
    except SpecError:
        return False
    return True


@pytest.mark.parametrize("name", ["label", "decision", "le", "version", "__name__", "__x", "job"])
def test_reserved_names_are_refused_by_both(example_spec: dict[str, Any], name: str) -> None:
    assert not admitted_by_the_crd(name)
    assert not admitted_by_the_spec(example_spec, name)


@pytest.mark.parametrize("name", ["sex", "age_band", "labels", "_region"])
def test_usable_names_are_admitted_by_both(example_spec: dict[str, Any], name: str) -> None:
    assert admitted_by_the_crd(name)
    assert admitted_by_the_spec(example_spec, name)


def test_the_crd_message_names_the_reserved_labels() -> None:
    (rule,) = attribute_item_schema()["x-kubernetes-validations"]
    assert "reserved by the metric convention" in rule["message"]
    for name in RESERVED_LABELS - {"__name__"}:
        assert name in rule["message"]


label_names = st.one_of(
    st.sampled_from(sorted(RESERVED_LABELS)),
    st.text(alphabet="_abdeilnorsv", min_size=1, max_size=9),
)


@given(label_names)
def test_the_crd_rule_and_the_convention_agree(name: str) -> None:
    assert admitted_by_the_crd(name) == (attribute_name_problem(name) is None)
