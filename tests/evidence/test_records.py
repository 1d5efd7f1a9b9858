"""What one audit record becomes in MLflow: metric keys, points, tags, run and outcome."""

from __future__ import annotations

import re

import pytest

from fairshift.evidence.records import (
    AUDIT_HEAD_TAG,
    BREACHED,
    OUTCOME_TAG,
    is_routine,
    metric_key,
    outcome,
    record_artifact_path,
    record_metrics,
    record_tags,
    run_key,
    timestamp_ms,
)
from tests.evidence.rollout_records import rollout_records

PORTABLE = re.compile(r"^[/\w.\- ]*$")  # what MLflow accepts on every platform


@pytest.mark.parametrize(
    ("parts", "key"),
    [
        (("equal-opportunity", "sex=female", "estimate"), "equal-opportunity/sex.female/estimate"),
        (("tpr", "sex=female,age=young", "lower"), "tpr/sex.female.age.young/lower"),
        (("g", "region=São Paulo", "upper"), "g/region.São Paulo/upper"),
        (("g", "city=a/b:c", "upper"), "g/city.a_b_c/upper"),
        (("g", "", "upper"), "g/_/upper"),
    ],
)
def test_metric_keys_use_only_what_mlflow_accepts(parts: tuple[str, ...], key: str) -> None:
    assert metric_key(*parts) == key
    assert PORTABLE.match(key)


def test_a_key_never_exceeds_mlflows_limit() -> None:
    assert len(metric_key("g" * 200, "s" * 200, "estimate")) == 250


def test_an_analysis_look_becomes_estimates_and_bounds_per_gate_and_slice() -> None:
    look = rollout_records()[2]
    points = {p.key: p for p in record_metrics(look)}

    assert points["equal-opportunity/sex.female/estimate"].value == pytest.approx(0.01)
    assert points["equal-opportunity/sex.female/lower"].value == pytest.approx(-0.04)
    assert points["equal-opportunity/sex.female.age.young/upper"].value == pytest.approx(0.064)
    assert points["accuracy/all/estimate"].value == pytest.approx(0.9)
    assert points["traffic/canary_weight"].value == 10
    assert {p.step for p in points.values()} == {look["seq"]}
    assert {p.timestamp_ms for p in points.values()} == {timestamp_ms(look)}
    assert len(points) == 2 + 4 * 3


def test_missing_or_non_finite_values_are_not_metrics() -> None:
    record = {
        "seq": 3,
        "time": "2026-03-02T09:00:00Z",
        "evidence": [{"gate": "g", "slice": "all", "estimate": None, "lower": float("nan")}],
    }
    assert record_metrics(record) == []


def test_timestamps_are_milliseconds_since_the_epoch() -> None:
    assert timestamp_ms({"time": "1970-01-01T00:00:01.5Z"}) == 1500
    assert timestamp_ms({"time": "1970-01-01T00:00:02+00:00"}) == 2000
    assert timestamp_ms({}) == 0


def test_a_run_per_candidate_revision_and_none_before_a_candidate() -> None:
    initialized, new_revision = rollout_records()[:2]
    assert run_key("lending", "credit-scorer", initialized) is None
    key = run_key("lending", "credit-scorer", new_revision)
    assert key is not None
    assert key.name == "credit-scorer-7d9f8c6b5"
    assert key.tags == {
        "fairshift.io/rollout": "lending/credit-scorer",
        "fairshift.io/revision": "7d9f8c6b5",
    }


def test_an_ending_record_without_its_candidate_belongs_to_the_previous_one() -> None:
    promoted = rollout_records()[-1]
    assert promoted["candidateRevision"] is None
    key = run_key("lending", "credit-scorer", promoted, previous="7d9f8c6b5")
    assert key is not None and key.revision == "7d9f8c6b5"
    assert run_key("lending", "credit-scorer", promoted) is None
    initialized = rollout_records()[0]
    assert run_key("lending", "credit-scorer", initialized, previous="7d9f8c6b5") is None


def test_a_reverted_target_ends_the_candidate() -> None:
    reverted = {**rollout_records()[-1], "action": "reverted", "phase": "Idle"}
    assert outcome(reverted) == "reverted"


def test_tags_carry_the_decision_and_the_chain_head() -> None:
    record = rollout_records()[5]
    tags = record_tags(record)
    assert tags["fairshift.io/last-decision"] == "step-done"
    assert tags["fairshift.io/audit-seq"] == "6"
    assert tags[AUDIT_HEAD_TAG] == record["hash"]
    assert OUTCOME_TAG not in tags


@pytest.mark.parametrize(("end", "expected"), [("promoted", "promoted"), ("rolled", "rolled-back")])
def test_the_last_record_names_the_outcome(end: str, expected: str) -> None:
    records = rollout_records(end=end)
    assert [outcome(r) for r in records[:-1]] == [None] * (len(records) - 1)
    assert outcome(records[-1]) == expected
    assert record_tags(records[-1])[OUTCOME_TAG] == expected


def test_holds_are_routine_and_other_decisions_get_a_file() -> None:
    records = rollout_records()
    assert [is_routine(r) for r in records].count(True) == 3
    assert record_artifact_path(records[5]) == "decisions/000006-step-done.json"


def test_long_messages_are_cut_to_what_mlflow_keeps() -> None:
    record = {**rollout_records()[5], "message": "x" * 9000}
    assert len(record_tags(record)["fairshift.io/last-message"]) == 5000


def test_a_degrade_to_the_fallback_marks_the_run_breached() -> None:
    assert outcome({"action": "guard-fallback", "phase": "Fallback"}) == BREACHED
