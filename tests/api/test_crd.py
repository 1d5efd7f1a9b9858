"""The committed CRD is the rendering of the API models, and it is a structural schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fairshift.api.crd import render_crd
from fairshift.commands.crd import crd_yaml

ROOT = Path(__file__).resolve().parents[2]


def walk(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found.extend(walk(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(walk(value))
    return found


def test_committed_crd_matches_rendering() -> None:
    committed = (ROOT / "crds" / "modelrollouts.yaml").read_text()
    assert committed == crd_yaml(), "crds/ is stale: run `fairshift crd -o crds/modelrollouts.yaml`"


def test_chart_crd_is_a_copy() -> None:
    chart_copy = ROOT / "charts" / "fairshift" / "crds" / "modelrollouts.yaml"
    assert chart_copy.is_file(), "the chart has no CRD: run `make crds`"
    assert chart_copy.read_text() == (ROOT / "crds" / "modelrollouts.yaml").read_text()


def test_schema_is_structural() -> None:
    schema = render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for node in walk(schema):
        assert "$ref" not in node
        assert "anyOf" not in node and "oneOf" not in node
        if "properties" in node:
            assert node.get("type") == "object"
            assert "additionalProperties" not in node  # not structural beside properties
        if "additionalProperties" in node:
            assert isinstance(node["additionalProperties"], dict), node


def test_no_object_is_pruned_to_nothing() -> None:
    """The API server prunes the unknown fields of an object whose schema declares neither
    properties nor a value schema: a map such as the alpha ledger or the guard's detector state
    would be stored as ``{}`` on every write (and the budget start again after each look)."""
    schema = render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    metadata = schema["properties"]["metadata"]  # the API server's own schema applies there
    for node in walk(schema):
        if node is metadata or node.get("type") != "object":
            continue
        assert "properties" in node or "additionalProperties" in node, node


def test_status_maps_keep_their_value_schema() -> None:
    status = render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "status"
    ]["properties"]
    ledger = status["alphaLedger"]["properties"]
    assert ledger["current"]["additionalProperties"] == {"type": "number"}
    assert ledger["carried"]["additionalProperties"] == {"type": "number"}
    detector = status["guard"]["properties"]["state"]
    assert detector["additionalProperties"]["additionalProperties"] == {"type": "number"}


def test_exclusive_bounds_are_openapi_v3_booleans() -> None:
    """Kubernetes reads OpenAPI v3.0: ``exclusiveMinimum: true`` beside ``minimum``, never the
    JSON Schema 2020 number (the API server refuses such a CRD)."""
    schema = render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    nodes = walk(schema)
    for node in nodes:
        for side, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if side in node:
                assert node[side] is True and bound in node, node
    false_alarm_days = schema["properties"]["spec"]["properties"]["guard"]["properties"][
        "falseAlarmDays"
    ]
    assert false_alarm_days["minimum"] == 0 and false_alarm_days["exclusiveMinimum"] is True


def test_cel_rules_carry_messages() -> None:
    schema = render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules = [r for n in walk(schema) for r in n.get("x-kubernetes-validations", [])]
    assert len(rules) >= 8
    assert all(r["message"] and r["rule"] for r in rules)


def test_crd_names_and_columns() -> None:
    crd = yaml.safe_load(crd_yaml())
    assert crd["spec"]["names"]["shortNames"] == ["mro"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    names = [c["name"] for c in version["additionalPrinterColumns"] if "priority" not in c]
    assert names == ["Phase", "Step", "Canary%", "Verdict", "Health", "Reason", "Age"]
