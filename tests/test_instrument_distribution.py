"""The operator and the fairshift-instrument distribution it depends on stay in step."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def test_the_operator_pins_the_instrument_version_of_this_checkout() -> None:
    operator = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    instrument = tomllib.loads((ROOT / "instrument" / "pyproject.toml").read_text())["project"]
    pins = [Requirement(text) for text in operator["dependencies"]]
    (pin,) = [r for r in pins if r.name == instrument["name"]]

    assert str(pin.specifier) == f"=={instrument['version']}"


def test_the_instrument_distribution_needs_prometheus_client_only() -> None:
    instrument = tomllib.loads((ROOT / "instrument" / "pyproject.toml").read_text())["project"]
    assert [Requirement(text).name for text in instrument["dependencies"]] == ["prometheus-client"]
