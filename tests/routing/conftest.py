"""Fixtures of the router tests."""

from __future__ import annotations

import pytest

from tests.fakes import FakeObjects


@pytest.fixture
def objects() -> FakeObjects:
    return FakeObjects()
