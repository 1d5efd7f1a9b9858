"""Group fairness metrics: hand-worked cases, undefined values, Fairlearn as the oracle."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equal_opportunity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, precision_score

from fairshift.engine.counts import BinaryCounts, Histogram, SliceKey, slice_key
from fairshift.engine.fairness import (
    calibration_in_the_large,
    disparities,
    expected_calibration_error,
    group_metrics,
)

F = slice_key({"sex": "F"})
M = slice_key({"sex": "M"})
X = slice_key({"sex": "X"})


def counts(
    tp: float,
    fp: float,
    fn: float,
    tn: float,
    unlabelled_selected: float = 0,
    unlabelled_rejected: float = 0,
) -> BinaryCounts:
    return BinaryCounts(
        predictions=tp + fp + fn + tn + unlabelled_selected + unlabelled_rejected,
        selected=tp + fp + unlabelled_selected,
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
    )


HAND_GROUPS = {F: counts(tp=30, fp=10, fn=20, tn=40), M: counts(tp=60, fp=20, fn=15, tn=105)}


class TestGroupMetricsByHand:
    def test_rates_of_each_group(self) -> None:
        metrics = group_metrics(HAND_GROUPS, reference=M)
        female = metrics[F]
        assert female.n == 100
        assert female.selection_rate == pytest.approx(0.4)
        assert female.tpr == pytest.approx(0.6)
        assert female.fpr == pytest.approx(0.2)
        assert female.ppv == pytest.approx(0.75)
        assert female.accuracy == pytest.approx(0.7)

    def test_relative_metrics_against_the_reference(self) -> None:
        female = group_metrics(HAND_GROUPS, reference=M)[F]
        assert female.disparate_impact == pytest.approx(0.4 / 0.4)
        assert female.statistical_parity_difference == pytest.approx(0.0)
        assert female.tpr_gap == pytest.approx(0.8 - 0.6)
        assert female.fpr_gap == pytest.approx(0.16 - 0.2)
        assert female.equalized_odds == pytest.approx(0.2)

    def test_reference_against_itself_is_neutral(self) -> None:
        male = group_metrics(HAND_GROUPS, reference=M)[M]
        assert male.disparate_impact == 1.0
        assert male.statistical_parity_difference == 0.0
        assert male.tpr_gap == 0.0
        assert male.fpr_gap == 0.0
        assert male.equalized_odds == 0.0

    def test_selection_rate_counts_unlabelled_decisions(self) -> None:
        groups = {F: counts(tp=1, fp=1, fn=1, tn=1, unlabelled_selected=4, unlabelled_rejected=2)}
        female = group_metrics(groups, reference=None)[F]
        assert female.n == 10
        assert female.selection_rate == pytest.approx(0.6)
        assert female.accuracy == pytest.approx(0.5)


class TestUndefinedIsNone:
    def test_group_without_positives_has_no_tpr_and_no_gap(self) -> None:
        groups = {F: counts(tp=0, fp=3, fn=0, tn=7), M: counts(tp=5, fp=1, fn=5, tn=9)}
        female = group_metrics(groups, reference=M)[F]
        assert female.tpr is None
        assert female.tpr_gap is None
        assert female.equalized_odds is None
        assert female.fpr_gap == pytest.approx(0.1 - 0.3)

    def test_unlabelled_group_has_no_label_rates(self) -> None:
        groups = {F: counts(0, 0, 0, 0, unlabelled_selected=3, unlabelled_rejected=1)}
        female = group_metrics(groups, reference=None)[F]
        assert (female.tpr, female.fpr, female.ppv, female.accuracy) == (None, None, None, None)
        assert female.selection_rate == pytest.approx(0.75)

    def test_reference_with_zero_selection_rate_gives_no_disparate_impact(self) -> None:
        groups = {F: counts(2, 2, 2, 2), M: counts(0, 0, 4, 4)}
        female = group_metrics(groups, reference=M)[F]
        assert female.disparate_impact is None
        assert female.statistical_parity_difference == pytest.approx(0.5)

    def test_no_reference_or_absent_reference(self) -> None:
        groups = {F: counts(2, 2, 2, 2)}
        for reference in (None, M):
            female = group_metrics(groups, reference=reference)[F]
            assert female.disparate_impact is None
            assert female.statistical_parity_difference is None
            assert female.tpr_gap is None

    def test_empty_group_has_no_rates(self) -> None:
        empty = group_metrics({F: BinaryCounts()}, reference=F)[F]
        assert empty.selection_rate is None
        assert empty.disparate_impact is None


class TestDisparities:
    def test_between_groups_by_hand(self) -> None:
        groups = {
            F: counts(tp=30, fp=10, fn=20, tn=40),  # sel 0.4, tpr 0.6, fpr 0.2
            M: counts(tp=60, fp=20, fn=15, tn=105),  # sel 0.4, tpr 0.8, fpr 0.16
            X: counts(tp=9, fp=1, fn=1, tn=9),  # sel 0.5, tpr 0.9, fpr 0.1
        }
        d = disparities(groups)
        assert d.demographic_parity_difference == pytest.approx(0.1)
        assert d.demographic_parity_ratio == pytest.approx(0.8)
        assert d.equal_opportunity_difference == pytest.approx(0.3)
        assert d.equal_opportunity_ratio == pytest.approx(0.6 / 0.9)
        assert d.equalized_odds_difference == pytest.approx(0.3)
        assert d.equalized_odds_ratio == pytest.approx(0.5)

    def test_one_defined_group_has_no_spread(self) -> None:
        groups = {F: counts(4, 0, 1, 5), M: counts(0, 2, 0, 8)}  # M has no positives
        d = disparities(groups)
        assert d.equal_opportunity_difference is None  # not a perfect 0
        assert d.equal_opportunity_ratio is None  # not a perfect 1
        assert d.equalized_odds_difference is None  # needs both spreads
        assert d.demographic_parity_difference == pytest.approx(0.4 - 0.2)

    def test_undefined_groups_are_left_out(self) -> None:
        groups = {F: counts(4, 0, 1, 5), M: counts(0, 2, 0, 8), X: counts(3, 1, 1, 5)}
        d = disparities(groups)
        assert d.equal_opportunity_difference == pytest.approx(0.8 - 0.75)
        assert d.equalized_odds_difference == pytest.approx(0.2)

    def test_all_undefined_is_none(self) -> None:
        groups = {F: counts(0, 0, 0, 0, 1, 1), M: counts(0, 0, 0, 0, 2, 0)}
        d = disparities(groups)
        assert d.equal_opportunity_difference is None
        assert d.equalized_odds_difference is None
        assert d.equalized_odds_ratio is None
        assert d.demographic_parity_difference == pytest.approx(0.5)

    def test_ratio_with_all_rates_zero_is_undefined(self) -> None:
        groups = {F: counts(0, 0, 3, 3), M: counts(0, 0, 1, 5)}
        d = disparities(groups)
        assert d.demographic_parity_difference == 0.0
        assert d.demographic_parity_ratio is None

    def test_no_groups(self) -> None:
        assert disparities({}).demographic_parity_difference is None


def _counts_of(y_true: np.ndarray, y_pred: np.ndarray) -> BinaryCounts:
    labelled = y_true >= 0
    t, p = y_true[labelled], y_pred[labelled]
    return BinaryCounts(
        predictions=float(len(y_pred)),
        selected=float(y_pred.sum()),
        tp=float(np.sum((t == 1) & (p == 1))),
        fp=float(np.sum((t == 0) & (p == 1))),
        fn=float(np.sum((t == 1) & (p == 0))),
        tn=float(np.sum((t == 0) & (p == 0))),
    )


def random_decisions(seed: int, size: int = 600) -> pd.DataFrame:
    """Random decisions of 4 groups with different rates; label -1 where unknown."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b", "c", "d"], size=size, p=[0.4, 0.3, 0.2, 0.1])
    shift = pd.Series(group).map({"a": 0.0, "b": 0.1, "c": -0.15, "d": 0.2}).to_numpy()
    label = (rng.random(size) < 0.45 + shift / 2).astype(int)
    prediction = (rng.random(size) < 0.2 + 0.5 * label + shift).astype(int)
    label = np.where(rng.random(size) < 0.2, -1, label)
    return pd.DataFrame({"group": group, "label": label, "prediction": prediction})


@pytest.mark.parametrize("seed", range(5))
def test_engine_agrees_with_fairlearn(seed: int) -> None:
    data = random_decisions(seed)
    labelled = data[data.label >= 0]
    groups: dict[SliceKey, BinaryCounts] = {
        slice_key({"group": g}): _counts_of(rows.label.to_numpy(), rows.prediction.to_numpy())
        for g, rows in data.groupby("group")
    }
    reference = slice_key({"group": "a"})
    ours = group_metrics(groups, reference)

    selection = MetricFrame(
        metrics=selection_rate,
        y_true=data.prediction,
        y_pred=data.prediction,
        sensitive_features=data.group,
    ).by_group
    rates = MetricFrame(
        metrics={
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
            "ppv": precision_score,
            "accuracy": accuracy_score,
        },
        y_true=labelled.label,
        y_pred=labelled.prediction,
        sensitive_features=labelled.group,
    ).by_group
    for g in "abcd":
        mine = ours[slice_key({"group": g})]
        assert mine.selection_rate == pytest.approx(selection[g], abs=1e-9)
        for name in ("tpr", "fpr", "ppv", "accuracy"):
            assert getattr(mine, name) == pytest.approx(rates.loc[g, name], abs=1e-9)
        assert mine.disparate_impact == pytest.approx(selection[g] / selection["a"], abs=1e-9)
        assert mine.tpr_gap == pytest.approx(rates.loc["a", "tpr"] - rates.loc[g, "tpr"], abs=1e-9)

    d = disparities(groups)
    everyone = {"y_true": data.prediction, "y_pred": data.prediction}
    with_labels = {"y_true": labelled.label, "y_pred": labelled.prediction}
    expected = {
        "demographic_parity_difference": demographic_parity_difference(
            **everyone, sensitive_features=data.group
        ),
        "demographic_parity_ratio": demographic_parity_ratio(
            **everyone, sensitive_features=data.group
        ),
        "equalized_odds_difference": equalized_odds_difference(
            **with_labels, sensitive_features=labelled.group
        ),
        "equalized_odds_ratio": equalized_odds_ratio(
            **with_labels, sensitive_features=labelled.group
        ),
        "equal_opportunity_difference": equal_opportunity_difference(
            **with_labels, sensitive_features=labelled.group
        ),
        "equal_opportunity_ratio": equal_opportunity_ratio(
            **with_labels, sensitive_features=labelled.group
        ),
    }
    for name, value in expected.items():
        assert getattr(d, name) == pytest.approx(value, abs=1e-9), name


cell_counts = st.builds(
    counts,
    tp=st.integers(0, 50),
    fp=st.integers(0, 50),
    fn=st.integers(0, 50),
    tn=st.integers(0, 50),
    unlabelled_selected=st.integers(0, 20),
    unlabelled_rejected=st.integers(0, 20),
)
group_maps = st.dictionaries(st.sampled_from([F, M, X]), cell_counts, min_size=1)


def _in_unit_interval(value: float | None) -> bool:
    return value is None or 0.0 <= value <= 1.0


@given(group_maps)
def test_metric_ranges(groups: dict[SliceKey, BinaryCounts]) -> None:
    reference = next(iter(groups))
    for m in group_metrics(groups, reference).values():
        for value in (m.selection_rate, m.tpr, m.fpr, m.ppv, m.accuracy, m.equalized_odds):
            assert _in_unit_interval(value)
        for gap in (m.statistical_parity_difference, m.tpr_gap, m.fpr_gap):
            assert gap is None or -1.0 <= gap <= 1.0
        assert m.disparate_impact is None or m.disparate_impact >= 0.0
    d = disparities(groups)
    for value in (
        d.demographic_parity_difference,
        d.demographic_parity_ratio,
        d.equalized_odds_difference,
        d.equalized_odds_ratio,
        d.equal_opportunity_difference,
        d.equal_opportunity_ratio,
    ):
        assert _in_unit_interval(value)


# At least two groups, each with at least one positive decision: parity is always defined.
comparable_groups = st.dictionaries(
    st.sampled_from([F, M, X]),
    st.builds(
        counts,
        tp=st.integers(0, 50),
        fp=st.integers(0, 50),
        fn=st.integers(0, 50),
        tn=st.integers(0, 50),
        unlabelled_selected=st.integers(1, 20),
        unlabelled_rejected=st.integers(0, 20),
    ),
    min_size=2,
)


@given(comparable_groups)
def test_parity_difference_is_zero_exactly_when_ratio_is_one(
    groups: dict[SliceKey, BinaryCounts],
) -> None:
    d = disparities(groups)
    assert d.demographic_parity_ratio is not None
    assert d.demographic_parity_difference is not None
    assert (d.demographic_parity_difference == 0) == math.isclose(d.demographic_parity_ratio, 1.0)


SCORE_BOUNDS = (0.25, 0.5, 0.75, 1.0)  # midpoints 0.125, 0.375, 0.625, 0.875


def scores(counts: tuple[float, ...]) -> Histogram:
    return Histogram(SCORE_BOUNDS, counts)


class TestCalibration:
    def test_perfectly_calibrated_buckets(self) -> None:
        # Per bucket, the positive share equals the midpoint: 1/8, 3/8, 5/8, 7/8.
        by_label = {0: scores((7, 5, 3, 1)), 1: scores((1, 3, 5, 7))}
        assert expected_calibration_error(by_label) == pytest.approx(0.0)
        assert calibration_in_the_large(by_label) == pytest.approx(0.0)

    def test_matches_the_definition_on_midpoint_scores(self) -> None:
        rng = np.random.default_rng(3)
        midpoints = np.array([0.125, 0.375, 0.625, 0.875])
        bucket = rng.integers(0, 4, size=500)
        label = (rng.random(500) < midpoints[bucket] * 0.7).astype(int)
        by_label = {
            y: scores(tuple(np.bincount(bucket[label == y], minlength=4).astype(float)))
            for y in (0, 1)
        }
        score = midpoints[bucket]
        assert calibration_in_the_large(by_label) == pytest.approx(
            score.mean() - label.mean(), abs=1e-12
        )
        ece = sum(
            np.sum(bucket == b) / 500 * abs(score[bucket == b].mean() - label[bucket == b].mean())
            for b in range(4)
        )
        assert expected_calibration_error(by_label) == pytest.approx(ece, abs=1e-12)

    def test_over_prediction_is_positive(self) -> None:
        by_label = {0: scores((0, 0, 0, 10)), 1: scores((0, 0, 0, 0))}
        assert calibration_in_the_large(by_label) == pytest.approx(0.875)
        assert expected_calibration_error(by_label) == pytest.approx(0.875)

    def test_infinite_bucket_is_capped_at_one(self) -> None:
        bounds = (0.5, math.inf)
        by_label = {0: Histogram(bounds, (0, 0)), 1: Histogram(bounds, (0, 4))}
        # The +Inf bucket spans (0.5, 1]: midpoint 0.75, all positive.
        assert calibration_in_the_large(by_label) == pytest.approx(-0.25)

    def test_without_labelled_scores_is_none(self) -> None:
        assert calibration_in_the_large({}) is None
        empty = {0: scores((0, 0, 0, 0)), 1: scores((0, 0, 0, 0))}
        assert expected_calibration_error(empty) is None

    def test_one_label_only_is_allowed(self) -> None:
        assert calibration_in_the_large({1: scores((0, 0, 2, 2))}) == pytest.approx(0.75 - 1)

    def test_mismatched_bounds_are_rejected(self) -> None:
        with pytest.raises(ValueError):
            expected_calibration_error({0: scores((1, 1, 1, 1)), 1: Histogram((1.0,), (1,))})
