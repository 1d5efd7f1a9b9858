"""The convention module: which slice attribute names are usable, and that it stands alone."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fairshift_instrument.convention import (
    RESERVED_LABELS,
    attribute_name_problem,
    check_attribute_names,
)


@pytest.mark.parametrize("name", ["sex", "age_band", "_region", "A1", "labels", "versions"])
def test_label_names_that_are_not_reserved_are_usable(name: str) -> None:
    assert attribute_name_problem(name) is None
    assert check_attribute_names([name]) == (name,)


@pytest.mark.parametrize("name", ["label", "decision", "le", "version", "__name__", "__meta"])
def test_reserved_names_are_refused_with_the_reserved_list(name: str) -> None:
    problem = attribute_name_problem(name)

    assert problem is not None
    assert f"slice attribute {name!r} is reserved" in problem
    assert "label, le, quantile, reason, version" in problem


@pytest.mark.parametrize("name", ["age-band", "1st", "", "sex ", "é", 3])
def test_names_that_are_not_label_names_are_refused(name: object) -> None:
    problem = attribute_name_problem(name)

    assert problem is not None
    assert "is not a Prometheus label name" in problem


def test_the_issue_reserved_names_are_all_reserved() -> None:
    assert {"label", "decision", "le", "version", "__name__"} <= RESERVED_LABELS


def test_importing_the_convention_loads_no_third_party_module() -> None:
    probe = (
        "import sys, fairshift_instrument.convention\n"
        "third_party = ('prometheus_client', 'pydantic', 'kopf')\n"
        "print(','.join(m for m in third_party if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == ""
