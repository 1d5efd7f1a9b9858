"""Fixtures for the metric-source tests: a fake Prometheus server per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_fake import FakePrometheus


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
