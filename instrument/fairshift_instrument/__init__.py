"""fairshift-instrument: the metric convention fairshift reads, emitted from a model server.

``from fairshift_instrument import ModelMetrics`` is all a model server needs. The names and
rules of the convention are in :mod:`fairshift_instrument.convention`, which imports nothing
but the standard library: ``ModelMetrics`` (and with it prometheus_client) is loaded on first
use, so the operator's pure layers can import the convention alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fairshift_instrument.model_metrics import ModelMetrics

__all__ = ["ModelMetrics"]


def __getattr__(name: str) -> Any:
    """Load ``ModelMetrics`` on first use (PEP 562)."""
    if name == "ModelMetrics":
        from fairshift_instrument.model_metrics import ModelMetrics

        return ModelMetrics
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
