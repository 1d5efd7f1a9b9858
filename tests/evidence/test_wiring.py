"""Credentials from a Secret, the closing artifacts, and the fan-out to several notifiers."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from fairshift.api.notifications import Notification
from fairshift.engine.audit import verify_chain
from fairshift.evidence.closing import RECORDS_ARTIFACT, REPORT_ARTIFACT, EvidenceFiles
from fairshift.evidence.tracking import Credentials, secret_credentials
from fairshift.k8s.errors import NotFound
from fairshift.notify.fanout import FanOut
from tests.evidence.rollout_records import rollout_records


def secret(values: Mapping[str, str] | None) -> Any:
    def read_key(namespace: str, name: str, key: str) -> str:
        if values is None:
            raise NotFound(f"Secret {namespace}/{name} not found", 404)
        if key not in values:
            raise NotFound(f"Secret {namespace}/{name} has no key {key!r}", 404)
        return values[key]

    return read_key


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"MLFLOW_TRACKING_TOKEN": "t"}, Credentials(token="t")),
        (
            {"MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_PASSWORD": "p"},
            Credentials(username="u", password="p"),
        ),
    ],
)
def test_credentials_are_a_token_or_a_user_and_password(
    values: dict[str, str], expected: Credentials
) -> None:
    assert secret_credentials(secret(values))("lending", "mlflow") == expected


@pytest.mark.parametrize("values", [{}, {"MLFLOW_TRACKING_USERNAME": "u"}])
def test_a_secret_without_usable_credentials_says_what_it_needs(values: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="neither MLFLOW_TRACKING_TOKEN nor both"):
        secret_credentials(secret(values))("lending", "mlflow")


def test_a_missing_secret_is_not_mistaken_for_a_missing_key() -> None:
    with pytest.raises(NotFound, match="Secret lending/mlflow not found"):
        secret_credentials(secret(None))("lending", "mlflow")


def test_closing_files_hold_the_card_the_whole_chain_and_the_candidates_report() -> None:
    records = rollout_records()
    rollout = {"metadata": {"name": "credit-scorer"}, "status": {"phase": "Succeeded"}}
    files = EvidenceFiles(
        lambda ns, name: records,
        lambda ns, name: rollout,
        clock=lambda: datetime(2026, 3, 2, 10, tzinfo=UTC),
    )

    artifacts = files.closing("lending", "credit-scorer", records[-1])

    stored = [json.loads(line) for line in artifacts[RECORDS_ARTIFACT].splitlines()]
    assert stored == records
    assert verify_chain(stored, records[-1]["hash"]).ok
    page = artifacts[REPORT_ARTIFACT]
    assert "lending/credit-scorer 7d9f8c6b5" in page
    assert "equal-opportunity" in page and "<img" in page
    card = artifacts["model-card.md"]
    assert card.startswith("# Model card: lending/credit-scorer")
    assert f"| Head (SHA-256) | {records[-1]['hash']} |" in card
    assert f"| Verification | intact ({len(records)} records" in card
    assert "<h1>Model card: lending/credit-scorer</h1>" in artifacts["model-card.html"]


def test_the_candidate_before_a_record_is_read_from_the_chain() -> None:
    records = rollout_records()
    files = EvidenceFiles(lambda ns, name: records, lambda ns, name: None)
    assert files.candidate_before("lending", "credit-scorer", 8) == "7d9f8c6b5"
    assert files.candidate_before("lending", "credit-scorer", 2) is None


def test_the_card_alone_at_a_decision() -> None:
    records = rollout_records()[:6]
    files = EvidenceFiles(lambda ns, name: records, lambda ns, name: None)
    assert set(files.card("lending", "credit-scorer", records[-1])) == {
        "model-card.md",
        "model-card.html",
    }


def test_the_files_add_the_last_record_when_the_store_lacks_it() -> None:
    records = rollout_records()
    files = EvidenceFiles(lambda ns, name: records[:-1], lambda ns, name: None)
    lines = files.closing("lending", "credit-scorer", records[-1])[RECORDS_ARTIFACT].splitlines()
    assert json.loads(lines[-1]) == records[-1]


def test_a_tampered_store_shows_on_the_card() -> None:
    records = rollout_records()
    records[3] = {**records[3], "reason": "edited"}
    files = EvidenceFiles(lambda ns, name: records, lambda ns, name: None)
    card = files.card("lending", "credit-scorer", records[-1])["model-card.md"]
    assert "| Verification | 1 problem(s) over 8 records" in card


class Recording:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.seen: list[int] = []

    def notify(
        self,
        namespace: str,
        rollout: str,
        record: Mapping[str, Any],
        notifications: Sequence[Notification] = (),
    ) -> None:
        if self.fail:
            raise RuntimeError("sink broken")
        self.seen.append(int(record["seq"]))


def test_fan_out_gives_every_notifier_every_record_even_when_one_raises() -> None:
    broken, working = Recording(fail=True), Recording()
    fan_out = FanOut(broken, working)
    for record in rollout_records()[:3]:
        fan_out.notify("lending", "credit-scorer", record, [])
    assert working.seen == [1, 2, 3]


def test_the_fan_out_reports_the_first_sink_problem_for_the_named_sinks() -> None:
    from fairshift.api.notifications import Notification
    from fairshift.notify.fanout import FanOut

    class Quiet:
        def notify(self, *_: object) -> None: ...

        def problem(self, _notifications: object) -> str | None:
            return None

    class Down(Quiet):
        def problem(self, _notifications: object) -> str | None:
            return "MLflow unreachable"

    server = {"trackingUri": "http://m:5000", "experiment": "credit"}
    named = [Notification.model_validate({"mlflow": server})]
    assert FanOut(Quiet(), Down()).problem(named) == "MLflow unreachable"
    assert FanOut(Quiet()).problem(named) is None
