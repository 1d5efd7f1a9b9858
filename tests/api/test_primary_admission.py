"""A primary gate must be critical: pydantic and the CRD's CEL rule refuse the same gates."""

from __future__ import annotations

from typing import Any

import celpy
import pytest

from fairshift.api.analysis import PRIMARY_NEEDS_CRITICAL, Gate
from fairshift.api.crd import render_crd


def gate_rules() -> list[Any]:
    """The compiled CEL rules of one gate, as the CRD carries them."""
    root = render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    analysis = root["properties"]["spec"]["properties"]["analysis"]
    gate = analysis["properties"]["gates"]["items"]
    environment = celpy.Environment()
    return [
        environment.program(environment.compile(rule["rule"]))
        for rule in gate["x-kubernetes-validations"]
        if rule["message"] == PRIMARY_NEEDS_CRITICAL
    ]


GATES = [
    ({"name": "g", "metric": "tpr_gap", "max": 0.1}, True),
    ({"name": "g", "metric": "tpr_gap", "max": 0.1, "primary": True}, True),
    ({"name": "g", "metric": "tpr_gap", "max": 0.1, "primary": True, "severity": "critical"}, True),
    ({"name": "g", "metric": "tpr_gap", "max": 0.1, "primary": False, "severity": "warning"}, True),
    ({"name": "g", "metric": "tpr_gap", "max": 0.1, "primary": True, "severity": "warning"}, False),
]


@pytest.mark.parametrize(("gate", "admitted"), GATES)
def test_crd_and_pydantic_agree(gate: dict[str, Any], admitted: bool) -> None:
    (rule,) = gate_rules()
    assert bool(rule.evaluate({"self": celpy.json_to_cel(gate)})) is admitted
    if admitted:
        Gate.model_validate(gate)
    else:
        with pytest.raises(ValueError, match=PRIMARY_NEEDS_CRITICAL.split(":")[0]):
            Gate.model_validate(gate)
