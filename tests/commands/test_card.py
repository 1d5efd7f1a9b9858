"""``fairshift card``: the live model card from the cluster and from saved files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml

from fairshift.commands.exitcodes import ExitCode
from fairshift.report.card import build_card, card_html, card_markdown
from tests.commands.conftest import parse
from tests.commands.fixtures import (
    NOW,
    audit_configmap,
    rollout,
    status_fixture,
    synthetic_chain,
)
from tests.evidence.rollout_records import chained, guarded_payloads, rollout_payloads
from tests.fakes import FakeObjects

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "credit-scorer.yaml"
MLFLOW = {
    "mlflow": {
        "trackingUri": "https://mlflow.example.org",
        "experiment": "credit-scorer",
        "registeredModel": {"name": "credit-scorer", "alias": "champion"},
    }
}


def example_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())["spec"]
    return {**spec, "notifications": [MLFLOW]}


def rolled_back_status() -> dict[str, Any]:
    chain = synthetic_chain()
    return {
        **status_fixture(),
        "phase": "RolledBack",
        "verdict": "Failed",
        "auditHead": chain[-1]["hash"],
        "auditSeq": chain[-1]["seq"],
    }


@pytest.fixture
def card_cluster() -> FakeObjects:
    objects = FakeObjects()
    objects.seed(rollout(rolled_back_status(), spec=example_spec()))
    objects.seed(audit_configmap(synthetic_chain()))
    return objects


def run_card(objects: FakeObjects, *argv: str) -> int:
    args = parse(["card", *argv], objects, clock=lambda: NOW)
    code: int = args.handler(args)
    return code


def test_the_card_from_the_cluster_says_what_a_reviewer_asks(
    card_cluster: FakeObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_card(card_cluster, "credit-scorer") == ExitCode.OK
    card = capsys.readouterr().out
    chain = synthetic_chain()

    assert card.startswith("# Model card: lending/credit-scorer")
    # what the model is
    assert "| Serving Deployment | credit-scorer |" in card
    assert "| Stable revision (serving) | 5d1e0c9b22 |" in card
    assert "| Candidate revision | 7f9c2d41ab |" in card
    assert "| Registered model | credit-scorer (alias @champion) |" in card
    assert "| MLflow experiment | credit-scorer at https://mlflow.example.org |" in card
    # what guards it
    assert "Slices: by sex, age_band, and their intersections" in card
    assert "| equal-opportunity | tpr_gap | at most this much above stable: 0.05 | critical |" in (
        card
    )
    assert "alpha = 0.05" in card
    # current values: the newest look with evidence, with bounds
    assert "| equal-opportunity | sex=F,age_band=60+ | 0.13 |" in card
    # decisions and alerts so far
    decisions = [r for r in chain if r["action"] != "hold"]
    assert f"{len(decisions)} decisions and {len(chain) - len(decisions)} analysis looks" in card
    assert "| rollback-done |" in card
    assert "| equal-opportunity | sex=F,age_band=60+ | fail |" in card
    # the chain
    assert f"| Head (SHA-256) | {chain[-1]['hash']} |" in card
    assert f"| Verification | intact ({len(chain)} records checked" in card


def test_a_tampered_chain_shows_on_the_card(
    card_cluster: FakeObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    chain = synthetic_chain()
    chain[3] = {**chain[3], "reason": "edited"}
    card_cluster.seed(audit_configmap(chain))

    assert run_card(card_cluster, "credit-scorer") == ExitCode.OK
    assert "| Verification | 1 problem(s) over" in capsys.readouterr().out


def test_the_card_as_files_in_markdown_and_html(card_cluster: FakeObjects, tmp_path: Path) -> None:
    assert run_card(card_cluster, "credit-scorer", "--out", str(tmp_path)) == ExitCode.OK

    markdown = (tmp_path / "model-card.md").read_text()
    page = (tmp_path / "model-card.html").read_text()
    assert markdown.startswith("# Model card: lending/credit-scorer")
    assert "<h1>Model card: lending/credit-scorer</h1>" in page
    assert '<td class="fail">fail</td>' in page
    HTMLParser().feed(page)  # well-formed enough to parse
    assert not any(tag in page for tag in ("src=", "href=", "<script", "<link"))  # loads nothing


def test_offline_from_a_saved_status_and_its_audit_configmap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = tmp_path / "rollout.yaml"
    status.write_text(yaml.safe_dump(rollout(rolled_back_status(), spec=example_spec())))
    configmap = tmp_path / "audit.json"
    configmap.write_text(json.dumps(audit_configmap(synthetic_chain())))
    lines = tmp_path / "records.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in synthetic_chain()))

    for audit in (configmap, lines):
        args = parse(
            ["card", "--from-status", str(status), "--from-audit", str(audit)], FakeObjects()
        )
        assert args.handler(args) == ExitCode.OK
        assert "| Verification | intact (" in capsys.readouterr().out


def test_offline_from_a_status_alone_says_the_chain_was_not_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = tmp_path / "rollout.json"
    status.write_text(json.dumps(rollout(status_fixture(), spec=example_spec())))
    args = parse(["card", "--from-status", str(status)], FakeObjects())
    assert args.handler(args) == ExitCode.OK
    card = capsys.readouterr().out
    assert "| Verification | not checked (no audit records given) |" in card
    assert "From the rollout's status" in card


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        ([], ExitCode.USAGE, "exactly one of NAME or --from-status"),
        (["credit-scorer", "--from-status", "x.yaml"], ExitCode.USAGE, "exactly one"),
        (["--from-audit", "a.jsonl"], ExitCode.USAGE, "exactly one"),
        (["absent"], ExitCode.NOT_FOUND, "ModelRollout lending/absent not found"),
        (["--from-status", "/nonexistent.yaml"], ExitCode.NOT_FOUND, "no such file"),
    ],
)
def test_bad_invocations_exit_with_a_message(
    card_cluster: FakeObjects,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    code: ExitCode,
    message: str,
) -> None:
    assert run_card(card_cluster, *argv) == code
    assert message in capsys.readouterr().err


def test_a_bad_audit_line_is_refused_with_its_line_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = tmp_path / "rollout.yaml"
    status.write_text(yaml.safe_dump(rollout(status_fixture(), spec=example_spec())))
    lines = tmp_path / "records.jsonl"
    lines.write_text(json.dumps(synthetic_chain()[0]) + "\nnot json\n")
    args = parse(["card", "--from-status", str(status), "--from-audit", str(lines)], FakeObjects())
    assert args.handler(args) == ExitCode.USAGE
    assert "records.jsonl: line 2 is not JSON" in capsys.readouterr().err


def test_an_invalid_spec_is_said_not_hidden() -> None:
    card = build_card(
        "lending/x", {"spec": {"targetRef": {}}, "status": {}}, [], "—", datetime.now(UTC)
    )
    text = card_markdown(card)
    assert "the spec is not valid: spec.targetRef.name: Field required" in text
    assert "No analysis is declared" in text
    assert "No analysis has looked at this model yet." in text
    assert "No gate has warned or failed" in text


def test_everything_from_the_inputs_is_escaped() -> None:
    status = {"phase": "<script>alert(1)</script>", "candidateRevision": "a|b"}
    card = build_card("lending/x", {"status": status}, [], "ok", datetime.now(UTC))
    assert "<script>" not in card_html(card)
    assert "| Candidate revision | a\\|b |" in card_markdown(card)


def test_the_guard_after_promotion_is_on_the_card() -> None:
    records = chained(guarded_payloads())
    guard = {"health": "Breached", "since": "2026-03-02T09:07:00Z", "looks": 20, "breaches": 1}
    obj = {"spec": example_spec(), "status": {"phase": "RolledBack", "guard": guard}}
    card = card_markdown(build_card("lending/credit-scorer", obj, records, "ok", NOW))

    assert "| Guard health (live model) | Breached since 2026-03-02T09:07:00Z: 20 looks, 1 " in card
    assert "keep judging the live model every 5m" in card
    assert "at most one false breach per 90 days" in card
    assert "| critical | rollback |" in card and "| warning | alert |" in card
    assert "| equal-opportunity | sex=female | guard warning | 0.06 (detector at 0.6 of" in card
    assert (
        "| guard breached | 0.12 (detector at 1.2 of its breach threshold) | guard-breached |"
        in (card)
    )


def test_a_look_repeated_by_the_next_transition_is_one_alert_not_two() -> None:
    records = chained(rollout_payloads(end="rolled"))  # rollback-done repeats the failed look
    card = card_markdown(build_card("lending/credit-scorer", {}, records, "ok", NOW))
    assert "1 alert(s): a gate warned or failed on a slice." in card
    assert f"From the look of {records[-2]['time']}" in card  # when it was taken


def test_a_degrade_to_the_fallback_is_a_guard_alert_on_the_card() -> None:
    payloads = guarded_payloads()[:-2]  # up to the warning: this time the breach degrades
    breach = {
        "health": "Breached",
        "looks": 20,
        "breaches": 1,
        "worst": [
            {
                "gate": "equal-opportunity",
                "slice": "sex=female",
                "grade": "breached",
                "level": 1.3,
                "estimate": 0.12,
            }
        ],
    }
    degraded = {**payloads[-1], "action": "guard-fallback", "phase": "Fallback", "guard": breach}
    records = chained([*payloads, degraded])
    card = card_markdown(build_card("lending/credit-scorer", {}, records, "ok", NOW))
    assert (
        "| guard breached | 0.12 (detector at 1.3 of its breach threshold) | guard-fallback |"
        in (card)
    )
