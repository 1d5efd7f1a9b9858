"""`fairshift gate`: exit codes 0 / 1 / 3 / 2 on decision files with known truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from fairshift.cli import main
from fairshift.commands.exitcodes import ExitCode

ROOT = Path(__file__).resolve().parent.parent
POLICY = {
    "apiVersion": "fairshift.io/v1alpha1",
    "kind": "ModelRollout",
    "metadata": {"name": "m"},
    "spec": {
        "targetRef": {"name": "m"},
        "service": {"port": 8080},
        "routing": {"replicas": {}},
        "strategy": {"canary": {"steps": [{"setWeight": 50}, {"analyze": {"duration": "1m"}}]}},
        "analysis": {
            "prometheus": {"address": "http://prometheus:9090"},
            "slices": {"attributes": ["sex"], "minSamples": 100},
            "gates": [
                {"name": "equal-opportunity", "metric": "tpr_gap", "maxIncrease": 0.05},
                {"name": "errors", "query": "sum(rate(x[1m])) or vector(0)", "max": 0.01},
            ],
        },
    },
}


def decisions(path: Path, rows: int, tpr_women: float, seed: int, women_share: float = 0.5) -> Path:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], size=rows, p=[women_share, 1 - women_share])
    label = rng.integers(0, 2, size=rows)
    tpr = np.where(sex == "F", tpr_women, 0.8)
    prediction = np.where(label == 1, rng.random(rows) < tpr, rng.random(rows) < 0.2).astype(int)
    lines = ["sex,prediction,label"] + [
        f"{s},{p},{y}" for s, p, y in zip(sex, prediction, label, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "rollout.yaml"
    path.write_text(yaml.safe_dump(POLICY))
    return path


def gate(policy: Path, stable: Path, candidate: Path, *extra: str) -> int:
    files = ["--policy", str(policy), "--stable", str(stable), "--candidate", str(candidate)]
    return main(["gate", *files, *extra])


def test_a_fair_candidate_passes(
    tmp_path: Path, policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stable = decisions(tmp_path / "s.csv", 40_000, 0.8, 1)
    candidate = decisions(tmp_path / "c.csv", 40_000, 0.8, 2)
    assert gate(policy, stable, candidate, "--format", "json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["verdict"] == "pass"
    skipped = [g for g in document["gates"] if g["outcome"] == "skipped"]
    assert [g["gate"] for g in skipped] == ["errors"]


@pytest.mark.parametrize("women_share", [0.4, 0.6])  # women the minority, then the reference
def test_a_tpr_drop_for_women_fails_whoever_is_the_reference(
    tmp_path: Path, policy: Path, capsys: pytest.CaptureFixture[str], women_share: float
) -> None:
    stable = decisions(tmp_path / "s.csv", 40_000, 0.8, 1, women_share)
    candidate = decisions(tmp_path / "c.csv", 40_000, 0.6, 2, women_share)
    assert gate(policy, stable, candidate, "--format", "json") == 1
    failed = [g for g in json.loads(capsys.readouterr().out)["gates"] if g["outcome"] == "fail"]
    assert len(failed) == 1
    assert failed[0]["reference"] == ("sex=M" if women_share < 0.5 else "sex=F")


def test_too_little_data_is_not_proven(tmp_path: Path, policy: Path) -> None:
    stable = decisions(tmp_path / "s.csv", 300, 0.8, 1)
    candidate = decisions(tmp_path / "c.csv", 300, 0.8, 2)
    assert gate(policy, stable, candidate) == ExitCode.NOT_PROVEN


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("sex,label\nF,1\n", "prediction"),
        ("sex,prediction,label\nF,1,7\n", "label"),
        ("age,prediction,label\n30,1,1\n", "sex"),
    ],
)
def test_invalid_files_exit_2_with_one_line(
    tmp_path: Path, policy: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    stable = decisions(tmp_path / "s.csv", 500, 0.8, 1)
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    assert gate(policy, stable, bad) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("fairshift gate: error:") and "\n" not in error
    assert message in error


def test_a_malformed_policy_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stable = decisions(tmp_path / "s.csv", 500, 0.8, 1)
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({**POLICY, "spec": {**POLICY["spec"], "routing": {}}}))
    assert gate(broken, stable, stable) == 2
    assert "exactly one router" in capsys.readouterr().err


def test_the_readme_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    data = ROOT / "examples" / "data"
    code = gate(
        ROOT / "examples" / "credit-scorer.yaml",
        data / "credit-stable.csv",
        data / "credit-candidate.csv",
    )
    assert code in (1, 3)
    assert "equal-opportunity" in capsys.readouterr().out


def policy_with(tmp_path: Path, **slices: object) -> Path:
    document = yaml.safe_load(yaml.safe_dump(POLICY))
    document["spec"]["analysis"]["slices"].update(slices)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def with_rare_group(path: Path, group: str, rows: int, selected: int) -> Path:
    """Append ``rows`` decisions of sex=``group`` (the first ``selected`` of them selected)."""
    lines = [f"{group},{int(i < selected)},{i % 2}" for i in range(rows)]
    path.write_text(path.read_text() + "\n".join(lines) + "\n")
    return path


class TestReference:
    def test_a_reference_group_absent_from_the_data_is_refused_and_named(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        policy = policy_with(tmp_path, reference="sex=f")
        stable = decisions(tmp_path / "s.csv", 2_000, 0.8, 1)
        candidate = decisions(tmp_path / "c.csv", 2_000, 0.8, 2)
        assert gate(policy, stable, candidate) == 2
        error = capsys.readouterr().err
        assert "reference group sex=f has no decisions in the data" in error
        assert "sex=F, sex=M" in error

    def test_a_reference_outside_the_slices_is_refused_as_measure_refuses_it(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        policy = policy_with(tmp_path, reference="race=white")
        stable = decisions(tmp_path / "s.csv", 2_000, 0.8, 1)
        assert gate(policy, stable, stable) == 2
        gate_error = capsys.readouterr().err
        assert (
            main(
                [
                    "measure",
                    "--data",
                    str(stable),
                    "--attributes",
                    "sex",
                    "--reference",
                    "race=white",
                ]
            )
            == 2
        )
        measure_error = capsys.readouterr().err
        rule = "reference names attribute(s) race not among the slice attributes (sex)"
        assert rule in gate_error and rule in measure_error

    def test_worst_is_chosen_among_groups_with_min_samples(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        policy = policy_with(tmp_path, reference="worst")
        stable = with_rare_group(decisions(tmp_path / "s.csv", 40_000, 0.8, 1), "X", 3, 0)
        candidate = with_rare_group(decisions(tmp_path / "c.csv", 40_000, 0.8, 2), "X", 3, 0)
        gate(policy, stable, candidate, "--format", "json")
        references = {g["reference"] for g in json.loads(capsys.readouterr().out)["gates"]}
        assert "sex=X" not in references
        assert references & {"sex=F", "sex=M"}


class TestLostGroups:
    def test_a_candidate_that_lost_a_group_fails_and_names_it(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        stable = with_rare_group(decisions(tmp_path / "s.csv", 40_000, 0.8, 1), "X", 500, 100)
        candidate = decisions(tmp_path / "c.csv", 40_000, 0.8, 2)
        assert gate(policy_with(tmp_path), stable, candidate, "--format", "json") == 1
        failed = [g for g in json.loads(capsys.readouterr().out)["gates"] if g["outcome"] == "fail"]
        assert [(g["gate"], g["slice"]) for g in failed] == [("(groups)", "sex=X")]
        assert (
            "the candidate file has no decisions for sex=X (stable has 500)" in failed[0]["reason"]
        )

    def test_a_lost_group_below_min_samples_is_not_proven(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        stable = with_rare_group(decisions(tmp_path / "s.csv", 40_000, 0.8, 1), "X", 20, 5)
        candidate = decisions(tmp_path / "c.csv", 40_000, 0.8, 2)
        assert gate(policy_with(tmp_path), stable, candidate) == 3
        assert "sex=X" in capsys.readouterr().out


def population_and_stable(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sex, label and a stable model's predictions (TPR 0.8, FPR 0.2 for everyone)."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], size=rows)
    label = rng.integers(0, 2, size=rows)
    prediction = np.where(label == 1, rng.random(rows) < 0.8, rng.random(rows) < 0.2)
    return sex, label, prediction.astype(int)


def write_rows(path: Path, columns: dict[str, np.ndarray]) -> Path:
    names = list(columns)
    lines = [",".join(names)] + [
        ",".join(str(columns[n][i]) for n in names) for i in range(len(columns[names[0]]))
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def widen_womens_gap(sex: np.ndarray, label: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """The candidate: the stable predictions with women's TPR cut by 7.4 points, exactly."""
    selected_women = np.flatnonzero((sex == "F") & (label == 1) & (prediction == 1))
    women_positives = int(np.sum((sex == "F") & (label == 1)))
    flipped = prediction.copy()
    flipped[selected_women[: round(0.074 * women_positives)]] = 0
    return flipped


class TestPaired:
    def test_a_byte_identical_candidate_passes(
        self, tmp_path: Path, policy: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        stable = decisions(tmp_path / "s.csv", 1_500, 0.8, 1)  # too few to prove independently
        candidate = tmp_path / "c.csv"
        candidate.write_bytes(stable.read_bytes())
        assert gate(policy, stable, candidate, "--format", "json") == 0
        document = json.loads(capsys.readouterr().out)
        assert document["test"].startswith("paired: both files decided the same 1500 rows")
        assert all(g["outcome"] in ("pass", "skipped") for g in document["gates"])

    def test_a_widened_tpr_gap_fails_paired_and_is_not_proven_independently(
        self, tmp_path: Path, policy: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        sex, label, before = population_and_stable(6_000, 3)
        after = widen_womens_gap(sex, label, before)
        stable = write_rows(tmp_path / "s.csv", {"sex": sex, "label": label, "prediction": before})
        candidate = write_rows(
            tmp_path / "c.csv", {"sex": sex, "label": label, "prediction": after}
        )
        assert gate(policy, stable, candidate, "--format", "json") == 1
        paired = json.loads(capsys.readouterr().out)
        assert paired["test"].startswith("paired")
        failed = [g for g in paired["gates"] if g["outcome"] == "fail"]
        assert [{g["slice"], g["reference"]} for g in failed] == [{"sex=F", "sex=M"}]
        assert "discordant pairs" in failed[0]["reason"]
        assert abs(failed[0]["estimate"]) == pytest.approx(0.074, abs=0.001)

        shuffled = np.random.default_rng(4).permutation(len(sex))  # same rows, no pairing known
        columns = {"sex": sex[shuffled], "label": label[shuffled], "prediction": after[shuffled]}
        candidate = write_rows(tmp_path / "c.csv", columns)
        assert gate(policy, stable, candidate, "--format", "json") == 3
        assert json.loads(capsys.readouterr().out)["test"].startswith("independent samples")

    def test_rows_are_matched_by_id_in_any_order(
        self, tmp_path: Path, policy: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        sex, label, before = population_and_stable(6_000, 3)
        after = widen_womens_gap(sex, label, before)
        ids = np.array([f"r{i}" for i in range(len(sex))])
        order = np.random.default_rng(5).permutation(len(sex))
        stable = write_rows(
            tmp_path / "s.csv", {"id": ids, "sex": sex, "label": label, "prediction": before}
        )
        shuffled = {"id": ids, "sex": sex, "label": label, "prediction": after}
        candidate = write_rows(tmp_path / "c.csv", {k: v[order] for k, v in shuffled.items()})
        assert gate(policy, stable, candidate, "--format", "json") == 1
        assert "matched by the id column" in json.loads(capsys.readouterr().out)["test"]

    def test_one_id_with_two_different_rows_is_refused(
        self, tmp_path: Path, policy: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        stable = tmp_path / "s.csv"
        stable.write_text("id,sex,label,prediction\na,F,1,1\nb,M,0,0\n")
        candidate = tmp_path / "c.csv"
        candidate.write_text("id,sex,label,prediction\nb,M,0,1\na,M,1,1\n")
        assert gate(policy, stable, candidate) == 2
        error = capsys.readouterr().err
        assert "row id 'a' has different attributes or label in the two files" in error
        assert "stable: sex=F, label 1; candidate: sex=M, label 1" in error


def selection_rows(path: Path, groups: list[tuple[str, int, int]]) -> Path:
    """Rows of ``(sex, decisions, selected)`` blocks, in the order given."""
    lines = ["sex,prediction"]
    for sex, rows, selected in groups:
        lines += [f"{sex},{int(i < selected)}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_every_failing_cell_says_why_and_its_bounds_show_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = yaml.safe_load(yaml.safe_dump(POLICY))
    document["spec"]["analysis"]["gates"] = [
        {"name": "selection", "metric": "selection_rate", "maxIncrease": 0.05}
    ]
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(document))
    stable = selection_rows(tmp_path / "s.csv", [("F", 5000, 1500), ("M", 5000, 1500)])
    # women +6.9 points: beyond 0.05 at Holm's last step, not at Bonferroni's alpha / 3
    candidate = selection_rows(tmp_path / "c.csv", [("M", 5000, 1925), ("F", 5000, 1844)])
    assert gate(policy, stable, candidate, "--format", "json") == 1
    rows = json.loads(capsys.readouterr().out)["gates"]
    assert {g["slice"] for g in rows if g["outcome"] == "fail"} == {"overall", "sex=F", "sex=M"}
    for row in rows:
        assert row["outcome"] == "fail" and row["reason"]
        assert row["lower"] > row["threshold"], row  # the bounds are beyond maxIncrease
        assert f"lower bound {row['lower']:.4g} is above the most allowed, 0.05" in row["reason"]
    women = next(g for g in rows if g["slice"] == "sex=F")
    assert "Holm, step 3 of 3" in women["reason"]


def test_the_table_shows_why_a_cell_failed(
    tmp_path: Path, policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stable = with_rare_group(decisions(tmp_path / "s.csv", 2_000, 0.8, 1), "X", 500, 100)
    candidate = decisions(tmp_path / "c.csv", 2_000, 0.8, 2)
    assert gate(policy, stable, candidate) == 1
    assert "the candidate file has no decisions for sex=X" in capsys.readouterr().out
