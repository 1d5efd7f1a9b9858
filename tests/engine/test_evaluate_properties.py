"""Property: ``evaluate`` turns any valid non-negative counts into outcomes, never an exception.

A crash is never a verdict: live data (zeros everywhere, a group that never gets a positive
decision, a version without one of the groups, empty histograms) must give every cell an
outcome with a reason. The generators are cheap and nothing depends on wall-clock time.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fairshift.api.analysis import Analysis, Gate
from fairshift.api.catalog import METRICS, MetricFamily
from fairshift.api.status import Outcome
from fairshift.engine.counts import BinaryCounts, Histogram, VersionCounts, slice_key
from fairshift.engine.gates import evaluate, evidence

SCORE_BOUNDS = (0.3, 0.7, float("inf"))
LATENCY_BOUNDS = (0.1, 0.5, float("inf"))
CELL_KEYS = tuple(slice_key({"sex": s, "age": a}) for s in ("F", "M") for a in ("a", "b"))
COUNT = st.sampled_from((0, 0, 1, 2, 7, 40, 300))
THRESHOLDS = st.sampled_from((0.0, 0.01, 0.05, 0.2, 0.8, 1.0, 1.25))


def bounds_for(metric: str) -> tuple[str, ...]:
    info = METRICS[metric]
    if info.family is MetricFamily.LATENCY:
        return ("max", "maxIncrease")
    if not info.relative_bounds:
        return ("max",)
    return ("min", "max", "maxIncrease", "maxDecrease", "maxChange")


def every_gate(threshold: float) -> list[dict[str, Any]]:
    gates = [
        {"name": f"g{i}-{j}", "metric": metric, bound: threshold}
        for i, metric in enumerate(METRICS)
        for j, bound in enumerate(bounds_for(metric))
    ]
    gates.append({"name": "query", "query": "sum(x)", "max": threshold})
    gates.append(
        {"name": "warned", "metric": "tpr_gap", "maxIncrease": threshold, "severity": "warning"}
    )
    return gates


@st.composite
def binary_counts(draw: st.DrawFn) -> BinaryCounts:
    tp, fp, fn, tn = draw(COUNT), draw(COUNT), draw(COUNT), draw(COUNT)
    unlabelled_selected, unlabelled_rejected = draw(COUNT), draw(COUNT)
    if draw(st.sampled_from((False, False, True))):  # a cell that is never selected
        tp = fp = unlabelled_selected = 0
    selected = tp + fp + unlabelled_selected
    return BinaryCounts(
        predictions=selected + fn + tn + unlabelled_rejected,
        selected=selected,
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
    )


def histograms(bounds: tuple[float, ...]) -> st.SearchStrategy[Histogram]:
    return st.tuples(*(COUNT for _ in bounds)).map(
        lambda counts: Histogram(bounds, tuple(float(c) for c in counts))
    )


@st.composite
def version_counts(draw: st.DrawFn) -> VersionCounts:
    present = [key for key in CELL_KEYS if draw(st.booleans())]
    requests = draw(COUNT)
    return VersionCounts(
        cells={key: draw(binary_counts()) for key in present},
        scores={key: draw(histograms(SCORE_BOUNDS)) for key in present if draw(st.booleans())},
        labelled_scores={
            key: {label: draw(histograms(SCORE_BOUNDS)) for label in (0, 1) if draw(st.booleans())}
            for key in present
        },
        latency=draw(st.none() | histograms(LATENCY_BOUNDS)),
        requests=float(requests),
        errors=float(draw(st.integers(0, requests))),
        custom={"query": draw(st.none() | st.floats(0, 2))},
    )


def analysis(threshold: float, reference: str, intersections: bool, min_samples: int) -> Analysis:
    return Analysis.model_validate(
        {
            "prometheus": {"address": "http://prometheus:9090"},
            "slices": {
                "attributes": ["sex", "age"],
                "intersections": intersections,
                "reference": reference,
                "minSamples": min_samples,
            },
            "gates": every_gate(threshold)[:1],
        }
    )


ZEROS = VersionCounts(cells={key: BinaryCounts() for key in CELL_KEYS})
NEVER_SELECTS_WOMEN = VersionCounts(
    cells={
        key: BinaryCounts(predictions=500, selected=0 if ("sex", "F") in key else 300)
        for key in CELL_KEYS
    }
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
@given(
    stable=version_counts(),
    candidate=version_counts(),
    threshold=THRESHOLDS,
    reference=st.sampled_from(("majority", "worst", "sex=F", "sex=F,age=b")),
    intersections=st.booleans(),
    min_samples=st.sampled_from((1, 10, 100)),
    single_look=st.booleans(),
)
@example(ZEROS, ZEROS, 0.05, "majority", True, 1, False)
@example(NEVER_SELECTS_WOMEN, NEVER_SELECTS_WOMEN, 0.05, "majority", False, 10, False)
@example(ZEROS, ZEROS, 0.0, "worst", True, 1, True)
def test_evaluate_never_raises_on_valid_counts(
    stable: VersionCounts,
    candidate: VersionCounts,
    threshold: float,
    reference: str,
    intersections: bool,
    min_samples: int,
    single_look: bool,
) -> None:
    spec = analysis(threshold, reference, intersections, min_samples)
    gates = [Gate.model_validate(g) for g in every_gate(threshold)]
    result = evaluate(spec, stable, candidate, single_look=single_look, gates=gates)
    for cell in result.cells:
        assert cell.outcome in Outcome
        shown = evidence(cell)
        assert shown.outcome is cell.outcome
        if cell.outcome in (Outcome.INSUFFICIENT, Outcome.NO_DATA):
            assert cell.reason, "a cell that cannot be judged says why"
        assert "engine error" not in cell.reason, cell.reason
