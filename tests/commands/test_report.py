"""``fairshift report``: from an audit chain, a saved rollout and a gate document."""

from __future__ import annotations

import argparse
import base64
import json
import math
import re
from pathlib import Path
from typing import Any

import matplotlib.image
import pytest
import yaml

from fairshift.commands import gate as gate_command
from fairshift.commands.exitcodes import ExitCode
from fairshift.report.building import build_charts, write_report
from fairshift.report.charts import gate_series
from fairshift.report.regions import acceptable_region, estimate_label
from fairshift.report.timeline import (
    ReportInputError,
    from_gate,
    from_records,
    from_rollout,
    parse_evidence,
    weight_at,
)
from tests.commands.conftest import Runner
from tests.commands.fixtures import (
    NOW,
    audit_configmap,
    evidence_item,
    rollout,
    status_fixture,
    synthetic_chain,
)
from tests.fakes import FakeObjects

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "credit-scorer.yaml"
DATA = ROOT / "examples" / "data"


def png_shape(path: Path) -> tuple[int, ...]:
    """The decoded image's shape (fails on anything that is not a PNG)."""
    image = matplotlib.image.imread(str(path), format="png")
    return tuple(image.shape)


def embedded_images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def assert_report(out: Path, expected_charts: set[str]) -> str:
    """Every chart written, decodable and embedded byte for byte in the page."""
    pngs = {p.name for p in out.glob("*.png")}
    assert pngs == expected_charts
    for name in pngs:
        height, width, *_ = png_shape(out / name)
        assert height > 150 and width > 400
    page = (out / "report.html").read_text(encoding="utf-8")
    embedded = embedded_images(page)
    assert sorted(embedded) == sorted((out / name).read_bytes() for name in pngs)
    assert "<script" not in page and "http://" not in page and "https://" not in page
    return page


CHAIN_CHARTS = {
    "canary-weight.png",
    "gate-equal-opportunity.png",
    "gate-four-fifths.png",
    "gate-accuracy.png",
    "gate-latency.png",
    "forest-equal-opportunity.png",
    "forest-four-fifths.png",
    "forest-accuracy.png",
    "forest-latency.png",
}


class TestFromAnAuditChain:
    def test_writes_weight_gate_and_forest_charts_and_the_page(self, tmp_path: Path) -> None:
        data = from_records("lending/credit-scorer", synthetic_chain())
        files = write_report(data, tmp_path, NOW)
        assert files.page == tmp_path / "report.html"
        page = assert_report(tmp_path, CHAIN_CHARTS)
        assert "fairshift report: lending/credit-scorer" in page
        assert page.count("<tr><td>2026-11-22") == len(synthetic_chain())
        assert "analysis-failed" in page and "rollback-done" in page

    def test_looks_keep_time_weights_and_evidence(self) -> None:
        data = from_records("x", list(reversed(synthetic_chain())))
        times = [look.time for look in data.looks]
        assert times == sorted(times)
        assert [look.canary_weight for look in data.looks][:2] == [0, 0]
        assert {look.canary_weight for look in data.looks} == {0, 5, 25}
        assert data.looks[0].mirror_percent == 100
        assert data.snapshot == data.looks[-2].evidence  # rollback-done carries none
        assert any(e.outcome.value == "fail" for e in data.snapshot)

    def test_a_transition_repeating_the_last_look_adds_no_point(self) -> None:
        data = from_records("x", synthetic_chain())
        series = gate_series(data.looks, "equal-opportunity")
        holds = [look for look in data.looks if look.action == "hold"]
        assert {len(points) for points in series.values()} == {len(holds)}

    def test_a_record_without_time_is_refused(self) -> None:
        records = synthetic_chain()
        del records[3]["time"]
        with pytest.raises(ReportInputError, match="audit record 4"):
            from_records("x", records)


class TestFromAGateDocument:
    @pytest.fixture
    def gate_json(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
        """The real ``fairshift gate --format json`` on the example decisions."""
        parser = argparse.ArgumentParser()
        gate_command.register(parser.add_subparsers())
        args = parser.parse_args(
            ["gate", "--policy", str(EXAMPLE), "--stable", str(DATA / "credit-stable.csv"),
             "--candidate", str(DATA / "credit-candidate.csv"), "--format", "json"]
        )  # fmt: skip
        args.handler(args)
        path = tmp_path / "gate.json"
        path.write_text(capsys.readouterr().out)
        return path

    def test_one_forest_plot_per_gate_with_estimates(self, gate_json: Path, run: Runner) -> None:
        out = gate_json.parent / "out"
        assert run("report", "--from-gate", str(gate_json), "--out", str(out)) == ExitCode.OK
        document = json.loads(gate_json.read_text())
        with_estimates = {g["gate"] for g in document["gates"] if g["estimate"] is not None}
        assert "errors" not in with_estimates  # a PromQL gate is skipped offline
        page = assert_report(out, {f"forest-{gate}.png" for gate in with_estimates})
        assert f"verdict</th><td>{document['verdict']}" in page
        assert page.count("<tr><td>") == len(document["gates"])

    def test_a_document_without_gates_is_exit_2(self, tmp_path: Path, run: Runner) -> None:
        path = tmp_path / "other.json"
        path.write_text(json.dumps({"verdict": "pass"}))
        assert run("report", "--from-gate", str(path), "--out", str(tmp_path)) == ExitCode.USAGE


class TestFromASavedRollout:
    def test_decisions_with_weights_from_the_spec_and_the_status_evidence(
        self, tmp_path: Path, run: Runner
    ) -> None:
        manifest = yaml.safe_load(EXAMPLE.read_text())
        status = status_fixture()
        status["decisions"][-1]["step"] = 2  # the third step sets 25%
        saved = rollout(status, spec=manifest["spec"])
        path = tmp_path / "mro.yaml"
        path.write_text(yaml.safe_dump(saved))
        out = tmp_path / "out"
        assert run("report", "--from-status", str(path), "--out", str(out)) == ExitCode.OK
        assert_report(out, {"canary-weight.png", "forest-equal-opportunity.png",
                            "forest-four-fifths.png"})  # fmt: skip
        data = from_rollout(saved)
        assert [look.canary_weight for look in data.looks] == [5, 5, 5, 5, 25]

    def test_weight_at_each_step_is_the_last_set_weight(self) -> None:
        weights = [5, 5, 25, 25, 25, 50, 50]
        assert weight_at(None, "Shadow", weights) == 0
        assert weight_at(3, "Canary", weights) == 25
        assert weight_at(4, "Paused", weights) == 25
        assert weight_at(9, "Canary", weights) == 50
        assert weight_at(3, "RolledBack", weights) == 0
        assert weight_at(3, "Canary", []) is None

    def test_a_rollout_without_status_is_refused(self) -> None:
        with pytest.raises(ReportInputError, match="no status"):
            from_rollout(rollout(None))


class TestFromTheCluster:
    def test_reads_the_audit_chain(self, tmp_path: Path, run: Runner) -> None:
        assert run("report", "credit-scorer", "--out", str(tmp_path)) == ExitCode.OK
        page = assert_report(tmp_path, CHAIN_CHARTS)
        assert "auditHead" in page
        assert "audit chain</th><td>intact (14 records)" in page

    def test_a_missing_rollout_is_exit_3(self, tmp_path: Path, run: Runner) -> None:
        assert run("report", "nope", "--out", str(tmp_path)) == ExitCode.NOT_FOUND


class TestUsage:
    def test_exactly_one_source(self, tmp_path: Path, run: Runner) -> None:
        assert run("report") == ExitCode.USAGE
        other = str(tmp_path / "x.json")
        assert run("report", "credit-scorer", "--from-gate", other) == ExitCode.USAGE

    def test_missing_and_unreadable_files(self, tmp_path: Path, run: Runner) -> None:
        assert run("report", "--from-gate", str(tmp_path / "none.json")) == ExitCode.NOT_FOUND
        bad = tmp_path / "bad.yaml"
        bad.write_text("a: [unclosed")
        assert run("report", "--from-status", str(bad)) == ExitCode.USAGE
        bad.write_text("- a list")
        assert run("report", "--from-status", str(bad)) == ExitCode.USAGE


@pytest.mark.parametrize(
    ("gate", "inside", "outside"),
    [
        ("equal-opportunity", [-1.0, 0.05], [0.051]),
        ("four-fifths", [0.8, 1.3], [0.79]),
        ("accuracy", [-0.02, 0.5], [-0.021]),
        ("latency", [0.0, 0.01], [0.011]),  # p99: at most 1% slower than the bound
    ],
)
def test_acceptable_regions(gate: str, inside: list[float], outside: list[float]) -> None:
    region = acceptable_region(parse_evidence([evidence_item(gate, "overall", 0, 0, 1)], "t")[0])
    assert all(region.contains(x) for x in inside)
    assert not any(region.contains(x) for x in outside)
    assert all(math.isfinite(x) for x in region.limits) and region.limits


def test_max_change_has_two_limits() -> None:
    item: dict[str, Any] = evidence_item("accuracy", "overall", 0, 0, 1)
    item["bound"] = "maxChange"
    region = acceptable_region(parse_evidence([item], "t")[0])
    assert region.limits == [-0.02, 0.02]


def test_inputs_are_escaped_in_the_page(tmp_path: Path) -> None:
    item = evidence_item("four-fifths", "sex=<script>alert(1)</script>", 0.9, 0.05, 500)
    data = from_gate({"verdict": "pass", "gates": [item]}, "<b>title</b>")
    write_report(data, tmp_path, NOW)
    page = (tmp_path / "report.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<b>title</b>" not in page


def test_no_evidence_and_no_looks_makes_no_charts() -> None:
    assert build_charts(from_gate({"gates": []}, "empty")) == []


@pytest.mark.parametrize(
    ("metric", "bound", "label"),
    [
        ("tpr_gap", "maxIncrease", "tpr_gap: candidate − stable"),
        ("disparate_impact", "min", "disparate_impact (candidate)"),
        ("score_psi", "max", "score_psi: candidate's scores against stable's"),
        ("latency_p99", "max", "share of candidate requests slower than the bound"),
    ],
)
def test_axis_labels_say_what_the_estimate_measures(metric: str, bound: str, label: str) -> None:
    item = evidence_item("four-fifths", "overall", 0.9, 0.05, 500)
    item.update(metric=metric, bound=bound)
    assert estimate_label(parse_evidence([item], "t")[0]) == label


def test_unreadable_audit_lines_are_left_out_and_counted(
    tmp_path: Path, run: Runner, cluster: FakeObjects
) -> None:
    body = audit_configmap(synthetic_chain()[:14])
    lines = body["data"]["records.jsonl"].splitlines()
    lines[3] = "not json"
    cluster.objects.pop(("v1", "ConfigMap", "lending", "credit-scorer-audit"))
    cluster.seed({**body, "data": {"records.jsonl": "\n".join(lines) + "\n"}})
    assert run("report", "credit-scorer", "--out", str(tmp_path)) == ExitCode.OK
    page = (tmp_path / "report.html").read_text()
    assert "unreadable audit lines left out</th><td>1 (fairshift audit verify)" in page
    assert "audit chain</th><td>3 problem(s): see fairshift audit verify (14 records)" in page
    assert page.count("<tr><td>2026-11-22") == 13
