"""Shared fixtures for the cluster-free suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def example_manifest() -> dict[str, Any]:
    """The README's example ModelRollout as a dict."""
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "credit-scorer.yaml").read_text())
    return loaded


@pytest.fixture
def example_spec(example_manifest: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = example_manifest["spec"]
    return spec
