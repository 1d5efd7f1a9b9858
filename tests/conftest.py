"""Shared fixtures for the cluster-free suite, and the Hypothesis profile it runs under.

The suite must pass on a busy machine (a 2-core CI runner, a laptop building Kubernetes in the
background), so no property depends on wall-clock speed: the ``busy`` profile, loaded here, has
no per-example deadline and does not fail a test because generating its inputs was slow. It is
the default; ``HYPOTHESIS_PROFILE=default`` runs Hypothesis' own settings instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent

settings.register_profile(
    "busy",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "busy"))


@pytest.fixture
def example_manifest() -> dict[str, Any]:
    """The README's example ModelRollout as a dict."""
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "credit-scorer.yaml").read_text())
    return loaded


@pytest.fixture
def example_spec(example_manifest: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = example_manifest["spec"]
    return spec
