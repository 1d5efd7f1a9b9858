"""The metrics a gate may name, and what each needs and how it may be bounded.

This is the single list the CRD enum, the spec validation, the Prometheus queries and the
engine's harm functions all read from.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class MetricFamily(StrEnum):
    """What a metric is computed from."""

    RATE = "rate"  # a per-slice proportion of the classifier's decisions
    FAIRNESS = "fairness"  # a per-slice comparison of a rate with the reference group
    CALIBRATION = "calibration"  # per slice, from labelled score histograms
    DRIFT = "drift"  # per slice, candidate's score distribution against stable's
    LATENCY = "latency"  # overall, from the request-duration histogram
    ERRORS = "errors"  # overall, errors per request


@dataclass(frozen=True)
class MetricInfo:
    """One gate metric: its family, whether it needs ground-truth labels, and its meaning."""

    name: str
    family: MetricFamily
    needs_labels: bool
    higher_is_better: bool | None
    description: str
    relative_bounds: bool = True  # whether maxIncrease/maxDecrease/maxChange make sense


def _m(
    name: str,
    family: MetricFamily,
    needs_labels: bool,
    higher_is_better: bool | None,
    description: str,
    relative_bounds: bool = True,
) -> MetricInfo:
    return MetricInfo(name, family, needs_labels, higher_is_better, description, relative_bounds)


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        _m("selection_rate", MetricFamily.RATE, False, None, "share of positive decisions"),
        _m("tpr", MetricFamily.RATE, True, True, "true positive rate (recall)"),
        _m("fpr", MetricFamily.RATE, True, False, "false positive rate"),
        _m("ppv", MetricFamily.RATE, True, True, "positive predictive value (precision)"),
        _m("accuracy", MetricFamily.RATE, True, True, "share of labelled decisions that are right"),
        _m(
            "disparate_impact",
            MetricFamily.FAIRNESS,
            False,
            True,
            "selection rate over the reference group's (four-fifths rule: min 0.8)",
        ),
        _m(
            "statistical_parity_difference",
            MetricFamily.FAIRNESS,
            False,
            None,
            "selection rate minus the reference group's",
        ),
        _m("tpr_gap", MetricFamily.FAIRNESS, True, False, "reference TPR minus the group's TPR"),
        _m("fpr_gap", MetricFamily.FAIRNESS, True, False, "reference FPR minus the group's FPR"),
        _m(
            "equalized_odds",
            MetricFamily.FAIRNESS,
            True,
            False,
            "larger of |tpr_gap| and |fpr_gap|",
        ),
        _m(
            "calibration",
            MetricFamily.CALIBRATION,
            True,
            None,
            "calibration-in-the-large: mean score minus observed positive rate",
        ),
        _m("ece", MetricFamily.CALIBRATION, True, False, "expected calibration error"),
        _m(
            "score_psi",
            MetricFamily.DRIFT,
            False,
            False,
            "population stability index of candidate scores against stable scores",
            relative_bounds=False,
        ),
        _m(
            "score_js",
            MetricFamily.DRIFT,
            False,
            False,
            "Jensen-Shannon divergence of candidate scores against stable scores",
            relative_bounds=False,
        ),
        _m(
            "score_ks",
            MetricFamily.DRIFT,
            False,
            False,
            "largest gap between the score CDFs (Kolmogorov-Smirnov, at bucket bounds)",
            relative_bounds=False,
        ),
        _m("latency_p50", MetricFamily.LATENCY, False, False, "median request latency, seconds"),
        _m("latency_p90", MetricFamily.LATENCY, False, False, "90th percentile latency, seconds"),
        _m("latency_p95", MetricFamily.LATENCY, False, False, "95th percentile latency, seconds"),
        _m("latency_p99", MetricFamily.LATENCY, False, False, "99th percentile latency, seconds"),
        _m("error_rate", MetricFamily.ERRORS, False, False, "errors per request"),
    )
}

METRIC_NAMES: tuple[str, ...] = tuple(METRICS)


def metric_info(name: str) -> MetricInfo:
    """The catalog entry; raises ValueError naming the known metrics."""
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(
            f"unknown metric {name!r}; known metrics: {', '.join(METRIC_NAMES)}"
        ) from None


def latency_quantile(name: str) -> float:
    """``latency_p99`` -> 0.99."""
    return int(name.removeprefix("latency_p")) / 100.0
