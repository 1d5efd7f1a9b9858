"""The kubectl-plugin commands: views, manual actions, audit verification and exit codes."""

from __future__ import annotations

import copy
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console, RenderableType

from fairshift.api.status import ModelRolloutStatus, Phase
from fairshift.commands import actions, views
from fairshift.commands.actions import ACTION_ANNOTATION, new_request, refusal
from fairshift.commands.audit import chain_problems
from fairshift.commands.exitcodes import ExitCode
from fairshift.commands.invocation import CommandError
from fairshift.engine.audit import chain_record, summarize
from fairshift.k8s.auditstore import DROPPED_KEY, DROPPED_LAST_KEY, SUMMARY_KEY, AuditTrail
from fairshift.k8s.cli_access import context_namespace
from fairshift.k8s.errors import Conflict, Forbidden, KubeError
from fairshift.planning.actions import allowed
from tests.commands.conftest import Runner, build_parser
from tests.commands.fixtures import (
    NAME,
    NAMESPACE,
    NOW,
    T0,
    audit_configmap,
    rollout,
    status_fixture,
    synthetic_chain,
)
from tests.fakes import FakeObjects

API, KIND = "fairshift.io/v1alpha1", "ModelRollout"
ROOT = Path(__file__).resolve().parents[2]


def text(renderable: RenderableType, width: int = 160) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def stored(cluster: FakeObjects) -> dict[str, Any]:
    return cluster.stored(API, KIND, NAMESPACE, NAME)


def with_phase(cluster: FakeObjects, phase: str, **status: Any) -> None:
    cluster.patch_status(API, KIND, NAMESPACE, NAME, {"status": {"phase": phase, **status}})


# --- views ------------------------------------------------------------------------------------


class TestStatusView:
    def test_shows_phase_revisions_step_weights_conditions_gates_and_decisions(self) -> None:
        status = status_fixture()
        shown = text(views.render_status(rollout(status), NOW))
        assert "lending/credit-scorer  Canary  (Analysing)" in shown
        assert "step 3/7: analysing at 25%" in shown
        assert "stable 5d1e0c9b22  candidate 7f9c2d41ab" in shown
        assert "step 3/7 (for 20m)  canary 25%  mirror 0%" in shown
        assert "verdict Running  analysing for 20m  last look 20s ago" in shown
        assert re.search(r"✓ Progressing\s+Canary 90m step 3/7", shown)
        assert re.search(r"✗ Paused", shown)
        first = status["evidence"][0]
        assert re.search(
            rf"equal-opportunity \(c\)\s+{re.escape(first['slice'])}\s+.*"
            rf"\[{first['lower']:.4g}, {first['upper']:.4g}\]\s+maxIncrease 0.05",
            shown,
        )
        head = status["auditHead"]
        assert f"{head[:12]} (head)" in shown
        for decision in status["decisions"][:-1]:
            assert decision["hash"][:12] in shown
            assert decision["hash"][:13] not in shown

    def test_a_rollout_the_operator_has_not_seen_is_initializing(self) -> None:
        shown = text(views.render_status(rollout(None), NOW))
        assert "Initializing" in shown
        assert "step -" in shown
        assert "gates" not in shown and "decisions" not in shown

    def test_fields_of_a_newer_operator_are_ignored(self) -> None:
        status = status_fixture()
        status["futureField"] = {"x": 1}
        status["evidence"][0]["newMeasure"] = 3
        assert "Canary" in text(views.render_status(rollout(status), NOW))

    def test_an_unknown_phase_is_a_status_error(self) -> None:
        with pytest.raises(views.StatusError, match=r"status\.phase"):
            views.render_status(rollout({"phase": "Dancing"}), NOW)

    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            ({"phase": "Shadow"}, "shadow"),
            ({"phase": "Idle"}, "-"),
            ({"phase": "Canary", "currentStep": 0, "stepCount": 7}, "1/7"),
            ({"phase": "Promoting", "currentStep": 7, "stepCount": 7}, "7/7"),
            ({"phase": "Canary", "currentStep": 1}, "2"),
        ],
    )
    def test_step_text(self, status: dict[str, Any], expected: str) -> None:
        assert views.step_text(views.parse_status(rollout(status))) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(5, "5s"), (119, "119s"), (120, "2m"), (3 * 3600 - 1, "179m"), (3 * 3600, "3h"),
     (47 * 3600, "47h"), (49 * 3600, "2d")],
)  # fmt: skip
def test_age_reads_like_kubectl(seconds: int, expected: str) -> None:
    then = (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert views.age(then, NOW) == expected


def test_age_of_nothing_or_garbage_is_a_dash() -> None:
    assert views.age(None, NOW) == "-"
    assert views.age("yesterday", NOW) == "-"


class TestGetTable:
    def test_rows_sorted_with_phase_step_weights_verdict_reason_age(self) -> None:
        other = rollout({"phase": "Succeeded", "verdict": "Successful"}, name="a-fraud")
        shown = text(views.rollouts_table([rollout(status_fixture()), other], NOW))
        lines = [line.split() for line in shown.strip().splitlines()]
        assert lines[0] == [
            "NAME", "PHASE", "STEP", "CANARY%", "MIRROR%", "VERDICT", "REASON", "AGE",
        ]  # fmt: skip
        assert lines[1] == ["a-fraud", "Succeeded", "-", "0", "0", "Successful", "-", "3d"]
        assert lines[2] == ["credit-scorer", "Canary", "3/7", "25", "0", "Running", "Analysing",
                            "3d"]  # fmt: skip

    def test_all_namespaces_adds_the_namespace_column(self) -> None:
        shown = text(views.rollouts_table([rollout(status_fixture())], NOW, all_namespaces=True))
        assert shown.split()[:2] == ["NAMESPACE", "NAME"]
        assert "lending" in shown

    def test_an_unreadable_status_does_not_hide_the_others(self) -> None:
        bad = rollout({"phase": "Dancing"}, name="broken")
        shown = text(views.rollouts_table([bad, rollout(status_fixture())], NOW))
        assert "broken" in shown and "credit-scorer" in shown and "Canary" in shown


def test_history_table_has_a_row_per_record_linked_by_short_hashes() -> None:
    chain = synthetic_chain()
    shown = text(views.history_table(chain, dropped=3), width=220)
    for record in chain:
        assert f"{record['hash'][:12]}" in shown
    assert "3 older records were trimmed" in shown
    second = next(line for line in shown.splitlines() if chain[1]["hash"][:12] in line)
    assert chain[0]["hash"][:12] in second


# --- actions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "phase", "expected"),
    [
        ("promote", Phase.CANARY, True),
        ("promote", Phase.SHADOW, True),
        ("promote", Phase.PAUSED, True),
        ("promote", Phase.SUCCEEDED, False),
        ("promote", Phase.PROMOTING, False),
        ("promote-full", Phase.SHADOW, True),
        ("promote-full", Phase.ROLLED_BACK, False),
        ("pause", Phase.CANARY, True),
        ("pause", Phase.SHADOW, True),
        ("pause", Phase.PAUSED, False),
        ("pause", Phase.IDLE, False),
        ("resume", Phase.PAUSED, True),
        ("resume", Phase.CANARY, False),
        ("abort", Phase.CANARY, True),
        ("abort", Phase.PAUSED, True),
        ("abort", Phase.SUCCEEDED, False),
        ("retry", Phase.ROLLED_BACK, True),
        ("retry", Phase.FAILED, True),
        ("retry", Phase.CANARY, False),
    ],
)
def test_actions_follow_the_operators_transition_table(
    action: str, phase: Phase, expected: bool
) -> None:
    assert allowed(action, ModelRolloutStatus(phase=phase)) is expected


def test_a_refusal_says_what_is_possible_instead() -> None:
    message = refusal("resume", ModelRolloutStatus(phase=Phase.CANARY), NAME)
    assert message.startswith("cannot resume credit-scorer while it is Canary; possible now:")
    assert "pause" in message and "promote --full" in message and "abort" in message
    assert "resume" not in message.split("possible now:")[1]


def test_the_annotation_is_the_operators_key_and_shape() -> None:
    from fairshift.api.names import ACTION_ANNOTATION as OPERATOR_KEY

    assert ACTION_ANNOTATION == OPERATOR_KEY
    request = new_request("promote-full", NOW, actions.uuid_hex)
    value = json.loads(request.annotation_value())
    assert set(value) == {"action", "id", "requestedAt"}
    assert value["action"] == "promote-full"
    assert re.fullmatch(r"[0-9a-f]{32}", value["id"])
    assert value["requestedAt"] == "2026-11-22T12:00:00Z"
    assert new_request("pause", NOW, actions.uuid_hex).id != request.id


class TestActionCommands:
    def test_promote_writes_the_annotation_guarded_by_the_read_version(
        self, run: Runner, cluster: FakeObjects, capsys: pytest.CaptureFixture[str]
    ) -> None:
        version = stored(cluster)["metadata"]["resourceVersion"]
        code = run("promote", NAME, make_id=lambda: "a" * 32, clock=lambda: NOW, who=lambda: "")
        assert code == ExitCode.OK
        written = cluster.writes_of(KIND, "patch")[-1].body
        assert written["metadata"]["resourceVersion"] == version
        value = json.loads(stored(cluster)["metadata"]["annotations"][ACTION_ANNOTATION])
        assert value == {"action": "promote", "id": "a" * 32, "requestedAt": "2026-11-22T12:00:00Z"}
        assert "requested promote of lending/credit-scorer" in capsys.readouterr().out

    def test_promote_full(self, run: Runner, cluster: FakeObjects) -> None:
        assert run("promote", NAME, "--full") == ExitCode.OK
        value = json.loads(stored(cluster)["metadata"]["annotations"][ACTION_ANNOTATION])
        assert value["action"] == "promote-full"

    def test_resume_while_not_paused_is_refused_with_exit_4_and_nothing_written(
        self, run: Runner, cluster: FakeObjects, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert run("resume", NAME) == ExitCode.NOT_ALLOWED
        assert cluster.writes_of(KIND, "patch") == []
        assert "cannot resume credit-scorer while it is Canary" in capsys.readouterr().err

    def test_resume_while_paused(self, run: Runner, cluster: FakeObjects) -> None:
        with_phase(cluster, "Paused", pausedReason="manual")
        assert run("resume", NAME) == ExitCode.OK

    def test_retry_only_after_a_rollback(self, run: Runner, cluster: FakeObjects) -> None:
        assert run("retry", NAME) == ExitCode.NOT_ALLOWED
        with_phase(cluster, "RolledBack")
        assert run("retry", NAME) == ExitCode.OK

    def test_an_unhandled_earlier_request_blocks_a_new_one_unless_forced(
        self, run: Runner, cluster: FakeObjects, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert run("pause", NAME, make_id=lambda: "1" * 32) == ExitCode.OK
        assert run("abort", NAME) == ExitCode.NOT_ALLOWED
        assert "an earlier request (pause, id 1111" in capsys.readouterr().err
        assert run("abort", NAME, "--force") == ExitCode.OK

    def test_a_handled_earlier_request_does_not_block(
        self, run: Runner, cluster: FakeObjects
    ) -> None:
        assert run("pause", NAME, make_id=lambda: "1" * 32) == ExitCode.OK
        with_phase(cluster, "Paused", handledAction="1" * 32)
        assert run("resume", NAME) == ExitCode.OK

    def test_a_phase_change_between_read_and_write_is_rechecked(
        self, run: Runner, cluster: FakeObjects
    ) -> None:
        cluster.interleave("patch", KIND, lambda: with_phase(cluster, "RolledBack"))
        assert run("pause", NAME) == ExitCode.NOT_ALLOWED
        assert len(cluster.rejected) == 1
        assert ACTION_ANNOTATION not in (stored(cluster)["metadata"].get("annotations") or {})

    def test_a_conflict_with_an_unrelated_write_is_retried(
        self, run: Runner, cluster: FakeObjects
    ) -> None:
        cluster.interleave("patch", KIND, lambda: with_phase(cluster, "Canary", message="x"))
        assert run("pause", NAME) == ExitCode.OK
        assert ACTION_ANNOTATION in stored(cluster)["metadata"]["annotations"]

    def test_wait_reports_the_phase_the_operator_reached(
        self, run: Runner, cluster: FakeObjects, capsys: pytest.CaptureFixture[str]
    ) -> None:
        def operator_handles(_: float) -> None:
            with_phase(cluster, "Paused", handledAction="f" * 32, message="paused by hand")

        code = run("pause", NAME, "--wait", make_id=lambda: "f" * 32, sleep=operator_handles)
        assert code == ExitCode.OK
        assert "pause handled: phase Paused, step 3/7, canary 25% (paused by hand)" in (
            capsys.readouterr().out
        )

    def test_wait_times_out_with_exit_1(
        self, run: Runner, cluster: FakeObjects, capsys: pytest.CaptureFixture[str]
    ) -> None:
        clock = iter(float(x) for x in range(1000))
        slept: list[float] = []
        code = run(
            "abort", NAME, "--wait", "--timeout", "5",
            monotonic=lambda: next(clock), sleep=slept.append,
        )  # fmt: skip
        assert code == ExitCode.FAILED
        assert slept and all(0 <= s <= 1.0 for s in slept)
        assert "not handled within 5s" in capsys.readouterr().out

    def test_a_missing_rollout_is_not_found(self, run: Runner) -> None:
        assert run("pause", "nope") == ExitCode.NOT_FOUND

    def test_api_errors_are_exit_5(
        self, run: Runner, cluster: FakeObjects, capsys: pytest.CaptureFixture[str]
    ) -> None:
        cluster.fail("patch", Forbidden("patching ModelRollout: forbidden", 403))
        assert run("pause", NAME) == ExitCode.API
        assert "forbidden" in capsys.readouterr().err
        cluster.fail("patch", Conflict("changed", 409), times=10)
        assert run("pause", NAME) == ExitCode.API


# --- reading commands -------------------------------------------------------------------------


class TestReadingCommands:
    def test_get_lists_the_namespace(self, run: Runner, capsys: pytest.CaptureFixture[str]) -> None:
        assert run("get", clock=lambda: NOW) == ExitCode.OK
        out = capsys.readouterr().out
        assert "credit-scorer" in out and "Canary" in out and "3/7" in out

    def test_get_of_an_empty_namespace_says_so(
        self, run: Runner, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert run("get", "-n", "fraud") == ExitCode.OK
        assert "No ModelRollouts found in namespace fraud." in capsys.readouterr().out

    def test_get_all_namespaces(
        self, run: Runner, cluster: FakeObjects, capsys: pytest.CaptureFixture[str]
    ) -> None:
        cluster.seed(rollout({"phase": "Idle"}, namespace="fraud", name="detector"))
        assert run("get", "-A") == ExitCode.OK
        out = capsys.readouterr().out
        assert "fraud" in out and "detector" in out and "credit-scorer" in out

    def test_status(self, run: Runner, capsys: pytest.CaptureFixture[str]) -> None:
        assert run("status", NAME, clock=lambda: NOW) == ExitCode.OK
        assert "step 3/7" in capsys.readouterr().out

    def test_status_of_a_missing_rollout_is_not_found(
        self, run: Runner, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert run("status", "nope") == ExitCode.NOT_FOUND
        assert "ModelRollout lending/nope not found" in capsys.readouterr().err

    def test_status_when_the_api_fails_is_exit_5(self, run: Runner, cluster: FakeObjects) -> None:
        cluster.fail("get", KubeError("reading ModelRollout: connection refused"))
        assert run("status", NAME) == ExitCode.API

    def test_watch_redraws_until_a_terminal_phase(
        self, run: Runner, cluster: FakeObjects, capsys: pytest.CaptureFixture[str]
    ) -> None:
        phases = iter(["Promoting", "Succeeded"])
        sleeps: list[float] = []

        def later(seconds: float) -> None:
            sleeps.append(seconds)
            with_phase(cluster, next(phases))

        code = run("status", NAME, "--watch", "--interval", "0.5", sleep=later)
        assert code == ExitCode.OK
        assert sleeps == [0.5, 0.5]
        assert "Succeeded" in capsys.readouterr().out

    def test_watch_stops_on_ctrl_c(self, run: Runner) -> None:
        def interrupt(_: float) -> None:
            raise KeyboardInterrupt

        assert run("status", NAME, "--watch", sleep=interrupt) == ExitCode.OK

    def test_history(self, run: Runner, capsys: pytest.CaptureFixture[str]) -> None:
        assert run("history", NAME) == ExitCode.OK
        out = capsys.readouterr().out
        assert synthetic_chain()[13]["hash"][:12] in out

    def test_usage_errors_exit_2(self) -> None:
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args(["audit"])
        assert exited.value.code == 2
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args(["status", NAME, "--interval", "0"])
        assert exited.value.code == 2


# --- audit verify -----------------------------------------------------------------------------


def store_chain(cluster: FakeObjects, records: list[dict[str, Any]], **extra: str) -> None:
    body = audit_configmap(records)
    body["data"].update(extra)
    cluster.objects.pop(("v1", "ConfigMap", NAMESPACE, f"{NAME}-audit"), None)
    cluster.seed(body)


class TestAuditVerify:
    def test_an_intact_chain_is_exit_0(
        self, run: Runner, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert run("audit", "verify", NAME) == ExitCode.OK
        assert "is intact (14 records, head" in capsys.readouterr().out

    def test_an_edited_record_is_exit_1_naming_the_record(
        self, run: Runner, cluster: FakeObjects, capsys: pytest.CaptureFixture[str]
    ) -> None:
        records = synthetic_chain()[:14]
        records[4]["canaryWeight"] = 50
        store_chain(cluster, records)
        assert run("audit", "verify", NAME) == ExitCode.FAILED
        out = capsys.readouterr().out
        assert "TAMPERED" in out
        assert "record 4 (seq 5): content does not match its hash (edited)" in out

    def test_a_cut_tail_is_caught_by_the_recorded_head(
        self, run: Runner, cluster: FakeObjects, capsys: pytest.CaptureFixture[str]
    ) -> None:
        store_chain(cluster, synthetic_chain()[:12])
        assert run("audit", "verify", NAME) == ExitCode.FAILED
        assert "not the head the rollout recorded" in capsys.readouterr().out

    def test_an_emptied_store_is_caught(self, run: Runner, cluster: FakeObjects) -> None:
        store_chain(cluster, [])
        assert run("audit", "verify", NAME) == ExitCode.FAILED

    def test_a_trimmed_store_verifies_from_the_last_dropped_record(
        self, run: Runner, cluster: FakeObjects
    ) -> None:
        records = synthetic_chain()[:14]
        last_dropped = json.dumps(records[5])
        store_chain(cluster, records[6:], **{DROPPED_KEY: "6", DROPPED_LAST_KEY: last_dropped})
        assert run("audit", "verify", NAME) == ExitCode.OK
        store_chain(cluster, records[7:], **{DROPPED_KEY: "6", DROPPED_LAST_KEY: last_dropped})
        assert run("audit", "verify", NAME) == ExitCode.FAILED

    def test_the_trimmed_summary_is_shown_and_must_meet_the_kept_chain(
        self, run: Runner, cluster: FakeObjects, capsys: pytest.CaptureFixture[str]
    ) -> None:
        records = synthetic_chain()[:14]
        summary = json.dumps(summarize(None, records[:6]))
        trimmed = {DROPPED_KEY: "6", DROPPED_LAST_KEY: json.dumps(records[5])}
        store_chain(cluster, records[6:], **trimmed, **{SUMMARY_KEY: summary})
        assert run("audit", "verify", NAME) == ExitCode.OK
        out = capsys.readouterr().out
        assert "trimmed: seq 1..6 (" in out and "6 records" in out
        short = json.dumps(summarize(None, records[:5]))  # a summary that stops early
        store_chain(cluster, records[6:], **trimmed, **{SUMMARY_KEY: short})
        assert run("audit", "verify", NAME) == ExitCode.FAILED
        out = capsys.readouterr().out
        assert "the trimmed summary covers 5 records, but 6 were trimmed" in out
        assert "the trimmed summary ends at seq 5, the chain resumes at 7" in out

    def test_records_after_the_recorded_head_are_reported(self) -> None:
        records = synthetic_chain()[:16]
        problems, _ = chain_problems(AuditTrail(records), records[13]["hash"])
        assert any("2 record(s) follow the head" in p and "seq 15, 16" in p for p in problems)

    def test_a_forged_record_appended_and_rechained_is_caught(self) -> None:
        records = synthetic_chain()[:14]
        forged = chain_record({"action": "promote", "time": "2026-11-22T12:00:00Z"}, 15,
                              records[-1]["hash"])  # fmt: skip
        problems, _ = chain_problems(AuditTrail([*records, forged]), records[-1]["hash"])
        assert problems

    def test_a_rollout_without_records_or_head_is_fine(self) -> None:
        assert chain_problems(AuditTrail([]), None) == ([], "")


# --- connection -------------------------------------------------------------------------------


def kubeconfig(path: Path) -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "work",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [
            {"name": "work", "context": {"cluster": "c", "user": "u", "namespace": "lending"}},
            {"name": "bare", "context": {"cluster": "c", "user": "u"}},
        ],
    }
    path.write_text(json.dumps(document))
    return path


class TestDefaultNamespace:
    def test_from_the_current_or_named_context(self, tmp_path: Path) -> None:
        config = str(kubeconfig(tmp_path / "config"))
        assert context_namespace(config, None, environ={}) == "lending"
        assert context_namespace(config, "bare", environ={}) == "default"
        assert context_namespace(None, None, environ={"KUBECONFIG": config}) == "lending"

    def test_without_a_kubeconfig_it_is_default(self, tmp_path: Path) -> None:
        assert context_namespace(str(tmp_path / "missing"), None, environ={}) == "default"

    def test_an_explicit_namespace_wins(
        self, run: Runner, cluster: FakeObjects, capsys: pytest.CaptureFixture[str]
    ) -> None:
        moved = copy.deepcopy(rollout(status_fixture(), namespace="risk"))
        cluster.seed(moved)
        assert run("status", NAME, "-n", "risk", clock=lambda: T0) == ExitCode.OK
        assert "risk/credit-scorer" in capsys.readouterr().out


def test_building_the_parser_imports_neither_matplotlib_nor_the_kubernetes_client() -> None:
    """Every ``fairshift`` call builds the parser; these imports cost a second or more each."""
    import subprocess
    import sys

    code = (
        "import argparse, importlib, sys\n"
        "sub = argparse.ArgumentParser().add_subparsers()\n"
        "for name in ('plugin', 'actions', 'audit', 'report'):\n"
        "    importlib.import_module(f'fairshift.commands.{name}').register(sub)\n"
        "print(sorted(m for m in ('matplotlib', 'kubernetes') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"


def test_verify_reads_again_when_the_operator_appended_after_the_head_was_read(
    run: Runner, cluster: FakeObjects
) -> None:
    """The operator appends first and records the head in status after: not tampering."""
    records = synthetic_chain()[:15]
    store_chain(cluster, records)
    cluster.interleave(
        "get", "ConfigMap", lambda: with_phase(cluster, "Canary", auditHead=records[-1]["hash"])
    )
    assert run("audit", "verify", NAME) == ExitCode.OK


def test_a_settled_rollout_shows_no_running_clocks() -> None:
    status = {**status_fixture(), "phase": "Succeeded", "reason": "Promoted"}
    shown = text(views.render_status(rollout(status), NOW))
    assert "Succeeded" in shown
    assert "analysing for" not in shown and "(for " not in shown


def test_a_line_that_is_not_json_is_reported_in_place(
    run: Runner, cluster: FakeObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    body = audit_configmap(synthetic_chain()[:14])
    lines = body["data"]["records.jsonl"].splitlines()
    lines[6] = lines[6][:40]  # cut in the middle
    cluster.objects.pop(("v1", "ConfigMap", NAMESPACE, f"{NAME}-audit"))
    cluster.seed({**body, "data": {"records.jsonl": "\n".join(lines) + "\n"}})
    assert run("audit", "verify", NAME) == ExitCode.FAILED
    out = capsys.readouterr().out
    assert "record 6: not a JSON object (edited)" in out
    assert "record 7 (seq 8): does not follow the previous record" in out
    assert run("history", NAME) == ExitCode.OK


def test_status_shows_a_request_the_operator_has_not_handled() -> None:
    obj = rollout(status_fixture())
    request = {"action": "pause", "id": "b" * 32, "requestedAt": "2026-11-22T11:59:30Z"}
    obj["metadata"]["annotations"] = {ACTION_ANNOTATION: json.dumps(request)}
    assert f"requested pause 30s ago, not handled yet (id {'b' * 32})" in text(
        views.render_status(obj, NOW)
    )
    obj["status"]["handledAction"] = "b" * 32
    assert "not handled" not in text(views.render_status(obj, NOW))


def test_status_shows_the_guard_and_a_kill() -> None:
    from fairshift.commands.views import render_status

    status = {
        **status_fixture(),
        "phase": "Killed",
        "guard": {"health": "Breached", "looks": 12, "breaches": 1, "message": "guard breached"},
        "killed": {"by": "alice", "reason": "complaints", "at": "2026-11-22T11:58:00Z"},
    }
    console = Console(record=True, width=160)
    console.print(render_status(rollout(status), NOW))
    shown = console.export_text()
    assert "guard Breached" in shown and "12 looks" in shown and "1 breaches" in shown
    assert "killed 2m ago by alice: complaints" in shown


def test_status_shows_a_degrade_and_a_kill_to_the_fallback() -> None:
    fallback = {"percent": 30, "fallback": "rules-scorer", "gate": "equal-opportunity"}
    degraded = {
        **status_fixture(),
        "phase": "Fallback",
        "fallbackWeight": 30,
        "fallback": {**fallback, "at": "2026-11-22T11:55:00Z"},
    }
    shown = text(views.render_status(rollout(degraded), NOW))
    assert "degraded 5m ago: 30% of traffic on the fallback rules-scorer" in shown
    assert "(gate equal-opportunity)" in shown and "fallback 30%" in shown
    killed = {
        **status_fixture(),
        "phase": "Killed",
        "fallbackWeight": 100,
        "killed": {"by": "alice", "reason": "complaints", "fallback": True},
    }
    shown = text(views.render_status(rollout(killed), NOW))
    assert "by alice, all traffic on the fallback: complaints" in shown


def test_revive_that_ends_a_degrade_needs_a_reason() -> None:
    status = ModelRolloutStatus.model_validate(
        {"phase": "Fallback", "guard": {}, "fallback": {"percent": 30, "fallback": "rules"}}
    )
    assert allowed("revive", status)
    obj = rollout(status.model_dump(by_alias=True, mode="json"))
    with pytest.raises(CommandError, match="ends a degrade"):
        actions.check_request(obj, "revive", NAME, force=False)
    actions.check_request(obj, "revive", NAME, force=False, reason="reviewed")
    plain = ModelRolloutStatus.model_validate({"phase": "Guarding", "guard": {}})
    assert not allowed("revive", plain)  # nothing to revive: not killed, no degrade


def test_history_says_what_the_trimmed_records_held() -> None:
    chain = synthetic_chain()
    summary = summarize(None, chain[:3])
    shown = text(views.history_table(chain[3:], dropped=3, summary=summary), width=260)
    assert "3 older records were trimmed from the store: seq 1..3 (" in shown
    assert "3 records, 0 guard breaches" in shown
