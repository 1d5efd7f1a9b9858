"""The ``fairshift measure`` document: one model version's metrics per slice, as plain JSON data.

Groupings are each attribute alone, in the order given, then (with two or more attributes) the
intersection of all of them, named by joining the attributes with ``*`` (``sex*age_band``).
Per grouping the document lists every group's rates and its standing against the reference
group (chosen by a :class:`~fairshift.engine.slices.ReferencePolicy`; ``worst`` means the
lowest selection rate among groups with at least ``--min-samples`` decisions), and
Fairlearn's between-groups disparities (undefined with fewer than two groups). Undefined values
are None (JSON null); groups are sorted by their attribute values. It lives with the command,
not in the engine: it is one command's output format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from fairshift.engine.counts import OVERALL, BinaryCounts, Histogram, SliceKey, VersionCounts
from fairshift.engine.distributions import quantile
from fairshift.engine.fairness import (
    GroupMetrics,
    calibration_in_the_large,
    disparities,
    expected_calibration_error,
    group_metrics,
)
from fairshift.engine.rates import (
    accuracy,
    false_positive_rate,
    positive_predictive_value,
    selection_rate,
    true_positive_rate,
)
from fairshift.engine.slices import Grouping, ReferencePolicy, aggregate

INTERSECTION_SEPARATOR = "*"
LATENCY_QUANTILES = (0.5, 0.9, 0.99)

Document = dict[str, Any]


def grouping_name(attributes: Sequence[str]) -> str:
    """``sex`` for one attribute, ``sex*age_band`` for an intersection (order as given)."""
    return INTERSECTION_SEPARATOR.join(attributes)


def measured_groupings(attributes: Sequence[str]) -> list[tuple[str, ...]]:
    """Each attribute alone, then the intersection of all of them (when there are two or more)."""
    ordered = tuple(dict.fromkeys(attributes))
    singles: list[tuple[str, ...]] = [(attribute,) for attribute in ordered]
    return [*singles, ordered] if len(ordered) > 1 else singles


def _number(value: float) -> int | float:
    """Counts print as integers when they are whole (they are, from files)."""
    return int(value) if float(value).is_integer() else value


def _calibration(scores_by_label: Mapping[int, Histogram] | None) -> Document:
    labelled = scores_by_label or {}
    return {
        "calibration_in_the_large": calibration_in_the_large(labelled),
        "ece": expected_calibration_error(labelled),
    }


def _labelled_scores(
    counts: VersionCounts, grouping: Grouping
) -> dict[SliceKey, dict[int, Histogram]]:
    """Per-label score histograms summed into the groups of ``grouping``."""
    by_label = {
        label: aggregate(
            {key: hists[label] for key, hists in counts.labelled_scores.items() if label in hists},
            grouping,
        )
        for label in (0, 1)
    }
    result: dict[SliceKey, dict[int, Histogram]] = {}
    for label, groups in by_label.items():
        for key, histogram in groups.items():
            result.setdefault(key, {})[label] = histogram
    return result


def _latency(counts: VersionCounts) -> Document:
    latency = counts.latency
    return {
        f"latency_p{round(q * 100)}": quantile(latency, q) if latency is not None else None
        for q in LATENCY_QUANTILES
    }


def _overall(counts: VersionCounts) -> Document:
    total = aggregate(counts.cells, ()).get(OVERALL, BinaryCounts())
    return {
        "n": _number(total.predictions),
        "labelled": _number(total.labelled),
        "selection_rate": selection_rate(total).value,
        "tpr": true_positive_rate(total).value,
        "fpr": false_positive_rate(total).value,
        "ppv": positive_predictive_value(total).value,
        "accuracy": accuracy(total).value,
        **_calibration(_labelled_scores(counts, ()).get(OVERALL)),
        **_latency(counts),
    }


def _group_entry(
    metrics: GroupMetrics,
    order: Sequence[str],
    reference: SliceKey | None,
    scores_by_label: Mapping[int, Histogram] | None,
) -> Document:
    values = dict(metrics.key)
    entry: Document = {"group": {attribute: values[attribute] for attribute in order}}
    fields = asdict(metrics)
    del fields["key"]
    fields["n"] = _number(metrics.n)
    entry.update(fields)
    entry["reference"] = metrics.key == reference
    entry.update(_calibration(scores_by_label))
    return entry


def _lowest_selection_rate(counts: BinaryCounts) -> float | None:
    return selection_rate(counts).value


def _reference(
    policy: ReferencePolicy, groups: Mapping[SliceKey, BinaryCounts], grouping: Grouping
) -> SliceKey | None:
    policy.check_present(groups, grouping)
    return policy.choose(groups, grouping, score=_lowest_selection_rate)


def _grouping_section(
    counts: VersionCounts, order: Sequence[str], policy: ReferencePolicy
) -> tuple[list[Document], Document]:
    grouping: Grouping = tuple(sorted(order))
    groups = aggregate(counts.cells, grouping)
    reference = _reference(policy, groups, grouping)
    metrics = group_metrics(groups, reference)
    scores = _labelled_scores(counts, grouping)
    entries = [
        _group_entry(metrics[key], order, reference, scores.get(key))
        for key in sorted(groups, key=lambda k: tuple(dict(k)[a] for a in order))
    ]
    return entries, asdict(disparities(groups))


def measurement_document(
    counts: VersionCounts, attributes: Sequence[str], policy: ReferencePolicy
) -> Document:
    """The JSON-ready measurement of one version (raises ValueError on a bad reference)."""
    policy.check_attributes(attributes)
    groups: Document = {}
    disparity: Document = {}
    for order in measured_groupings(attributes):
        name = grouping_name(order)
        groups[name], disparity[name] = _grouping_section(counts, order, policy)
    overall = _overall(counts)
    return {"n": overall["n"], "overall": overall, "groups": groups, "disparities": disparity}
