"""Properties of the replica split that approximates a canary weight."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fairshift.routing.replicas import split_replicas

totals = st.integers(min_value=1, max_value=1000)
percents = st.integers(min_value=0, max_value=100)


@given(totals, percents)
def test_the_candidate_serves_exactly_when_the_canary_has_weight(total: int, canary: int) -> None:
    split = split_replicas(total, canary)

    assert (split.candidate > 0) == (canary > 0)
    assert (split.primary > 0) == (canary < 100)


@given(totals, percents)
def test_the_total_is_kept_unless_both_sides_need_a_replica(total: int, canary: int) -> None:
    split = split_replicas(total, canary)

    expected = 2 if total == 1 and 0 < canary < 100 else total
    assert split.primary + split.candidate == expected


@given(st.integers(min_value=2, max_value=1000), percents)
def test_the_split_is_within_one_replica_of_the_weight(total: int, canary: int) -> None:
    split = split_replicas(total, canary)

    assert abs(split.candidate - total * canary / 100) <= 1


@given(totals, percents, percents)
def test_more_weight_never_means_fewer_candidate_replicas(total: int, a: int, b: int) -> None:
    low, high = sorted((a, b))

    assert split_replicas(total, low).candidate <= split_replicas(total, high).candidate
