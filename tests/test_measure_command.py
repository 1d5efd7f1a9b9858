"""``fairshift measure``: JSON document, tables, exit codes, and Fairlearn agreement end to end."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

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
from sklearn.metrics import accuracy_score, precision_score

from fairshift.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "data"
STABLE = EXAMPLES / "credit-stable.csv"
CANDIDATE = EXAMPLES / "credit-candidate.csv"


def measure(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["measure", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def measure_json(capsys: pytest.CaptureFixture[str], data: Path, *args: str) -> dict[str, Any]:
    code, out, err = measure(capsys, "--data", str(data), "--format", "json", *args)
    assert code == 0, err
    document: dict[str, Any] = json.loads(out)
    return document


def entry(document: dict[str, Any], grouping: str, **group: str) -> dict[str, Any]:
    matches: list[dict[str, Any]] = [e for e in document["groups"][grouping] if e["group"] == group]
    assert len(matches) == 1
    return matches[0]


class TestDocument:
    def test_shape_on_the_example_file(self, capsys: pytest.CaptureFixture[str]) -> None:
        doc = measure_json(capsys, STABLE, "--attributes", "sex,age_band")
        assert doc["n"] == 4000
        assert list(doc["groups"]) == ["sex", "age_band", "sex*age_band"]
        assert list(doc["disparities"]) == ["sex", "age_band", "sex*age_band"]
        assert [e["group"] for e in doc["groups"]["sex"]] == [{"sex": "F"}, {"sex": "M"}]
        assert len(doc["groups"]["sex*age_band"]) == 6
        assert list(doc["groups"]["sex*age_band"][0]["group"]) == ["sex", "age_band"]
        assert sum(e["n"] for e in doc["groups"]["age_band"]) == 4000
        first = doc["groups"]["sex"][0]
        for field in (
            "n",
            "selection_rate",
            "tpr",
            "fpr",
            "ppv",
            "accuracy",
            "disparate_impact",
            "statistical_parity_difference",
        ):
            assert field in first
        assert set(doc["disparities"]["sex"]) == {
            "demographic_parity_difference",
            "demographic_parity_ratio",
            "equalized_odds_difference",
            "equalized_odds_ratio",
            "equal_opportunity_difference",
            "equal_opportunity_ratio",
        }
        overall = doc["overall"]
        assert overall["labelled"] < overall["n"] == 4000
        assert 0 < overall["latency_p50"] < overall["latency_p99"] < 1
        assert overall["ece"] is not None and 0 <= overall["ece"] <= 1

    def test_intersection_follows_the_command_line_order(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        doc = measure_json(capsys, STABLE, "--attributes", "age_band,sex")
        assert list(doc["groups"]) == ["age_band", "sex", "age_band*sex"]
        assert list(doc["groups"]["age_band*sex"][0]["group"]) == ["age_band", "sex"]

    def test_single_attribute_has_no_intersection(self, capsys: pytest.CaptureFixture[str]) -> None:
        doc = measure_json(capsys, STABLE, "--attributes", "sex")
        assert list(doc["groups"]) == ["sex"]

    def test_candidate_example_drops_tpr_for_older_women_only(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        stable = measure_json(capsys, STABLE, "--attributes", "sex,age_band")
        candidate = measure_json(capsys, CANDIDATE, "--attributes", "sex,age_band")
        for old, new in zip(
            stable["groups"]["sex*age_band"], candidate["groups"]["sex*age_band"], strict=True
        ):
            change = new["tpr"] - old["tpr"]
            if old["group"] == {"sex": "F", "age_band": "60+"}:
                assert -0.13 < change < -0.07
            else:
                assert abs(change) < 0.03

    def test_output_is_deterministic(self, capsys: pytest.CaptureFixture[str]) -> None:
        args = ("--data", str(CANDIDATE), "--attributes", "sex,age_band", "--format", "json")
        assert measure(capsys, *args)[1] == measure(capsys, *args)[1]


class TestReference:
    def test_majority_is_the_default(self, capsys: pytest.CaptureFixture[str]) -> None:
        doc = measure_json(capsys, STABLE, "--attributes", "sex,age_band")
        reference = [e for e in doc["groups"]["age_band"] if e["reference"]]
        assert [e["group"] for e in reference] == [{"age_band": "30-59"}]
        assert reference[0]["disparate_impact"] == 1.0
        largest = max(doc["groups"]["age_band"], key=lambda e: e["n"])
        assert largest["reference"]

    def test_worst_is_the_lowest_selection_rate(self, capsys: pytest.CaptureFixture[str]) -> None:
        doc = measure_json(capsys, STABLE, "--attributes", "sex,age_band", "--reference", "worst")
        for entries in doc["groups"].values():
            lowest = min(entries, key=lambda e: e["selection_rate"])
            assert lowest["reference"]
            assert all(e["disparate_impact"] >= 1.0 for e in entries)

    def test_explicit_group(self, capsys: pytest.CaptureFixture[str]) -> None:
        doc = measure_json(capsys, STABLE, "--attributes", "sex,age_band", "--reference", "sex=F")
        assert entry(doc, "sex", sex="F")["reference"]
        assert entry(doc, "sex", sex="F")["statistical_parity_difference"] == 0.0
        # age_band is not named by the reference: its majority group is used.
        assert entry(doc, "age_band", age_band="30-59")["reference"]


def test_one_group_has_no_disparities(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "women.csv"
    path.write_text("sex,prediction,label\n" + "F,1,1\nF,0,1\nF,1,0\n" * 50)
    doc = measure_json(capsys, path, "--attributes", "sex")
    assert doc["disparities"]["sex"] == dict.fromkeys(doc["disparities"]["sex"])
    assert len(doc["disparities"]["sex"]) == 6


def test_worst_reference_needs_min_samples(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "rare.csv"
    rows = "F,1,1\nF,0,1\nM,1,1\nM,1,0\n" * 100 + "X,0,1\n"
    path.write_text("sex,prediction,label\n" + rows)
    doc = measure_json(capsys, path, "--attributes", "sex", "--reference", "worst")
    assert entry(doc, "sex", sex="F")["reference"]
    assert entry(doc, "sex", sex="X")["disparate_impact"] == 0.0
    doc = measure_json(
        capsys, path, "--attributes", "sex", "--reference", "worst", "--min-samples", "1"
    )
    assert entry(doc, "sex", sex="X")["reference"]


class TestInvalidInput:
    @pytest.mark.parametrize(
        ("args", "reason"),
        [
            (["--data", "absent.csv", "--attributes", "sex"], "no such file"),
            (["--data", str(STABLE), "--attributes", "race"], "'race'"),
            (["--data", str(STABLE), "--attributes", "sex,sex"], "repeated"),
            (["--data", str(STABLE), "--attributes", "sex,age band"], "not a Prometheus label"),
            (["--data", str(STABLE), "--attributes", "sex,"], "not a Prometheus label name"),
            (["--data", str(STABLE), "--attributes", "sex,le"], "reserved by the metric"),
            (["--data", str(STABLE), "--attributes", "sex,score"], "not a slice attribute"),
            (["--data", str(STABLE), "--attributes", "sex", "--reference", "sex"], "reference"),
            (["--data", str(STABLE), "--attributes", "sex", "--reference", "race=x"], "race"),
            (["--data", str(STABLE), "--attributes", "sex", "--reference", "sex=X"], "sex=X"),
            (
                ["--data", str(STABLE), "--attributes", "sex", "--reference", "sex=f"],
                "sex=F, sex=M",
            ),
        ],
    )
    def test_exit_2_with_one_line(
        self, capsys: pytest.CaptureFixture[str], args: list[str], reason: str
    ) -> None:
        code, out, err = measure(capsys, *args)
        assert code == 2
        assert out == ""
        assert err.startswith("fairshift measure: error: ")
        assert err.count("\n") == 1
        assert reason in err
        assert "Traceback" not in err

    def test_bad_value_in_the_file(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        path = tmp_path / "bad.csv"
        path.write_text("sex,prediction\nF,1\nM,7\n")
        code, _, err = measure(capsys, "--data", str(path), "--attributes", "sex")
        assert code == 2
        assert "line 3" in err and "'prediction'" in err

    def test_unknown_format_is_an_argparse_error(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as caught:
            main(["measure", "--data", str(STABLE), "--attributes", "sex", "--format", "xml"])
        assert caught.value.code == 2
        assert "fairshift measure: error:" in capsys.readouterr().err


def test_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = measure(capsys, "--data", str(CANDIDATE), "--attributes", "sex,age_band")
    assert code == 0
    for text in ("sex*age_band", "sex=F, age_band=60+", "disparities", "DP ratio", "TPR gap"):
        assert text in out


def test_example_files_match_their_generator(tmp_path: Path) -> None:
    generator = runpy.run_path(str(EXAMPLES / "generate.py"), run_name="generator")
    generator["main"](tmp_path)
    for name in ("credit-stable.csv", "credit-candidate.csv"):
        assert (tmp_path / name).read_bytes() == (EXAMPLES / name).read_bytes()
        assert (EXAMPLES / name).stat().st_size < 300_000


def random_decisions_csv(seed: int, path: Path) -> pd.DataFrame:
    """Random decisions over two attributes with group effects; label empty when unknown."""
    rng = np.random.default_rng(seed)
    size = 1500
    sex = rng.choice(["F", "M"], size=size)
    race = rng.choice(["a", "b", "c"], size=size, p=[0.5, 0.3, 0.2])
    effect = (sex == "F") * 0.08 + (race == "c") * -0.12
    label = (rng.random(size) < 0.4 + effect).astype(int)
    prediction = (rng.random(size) < 0.15 + 0.55 * label + effect).astype(int)
    known = rng.random(size) > 0.25
    frame = pd.DataFrame({"sex": sex, "race": race, "prediction": prediction, "label": label})
    frame["known"] = known
    written = frame[["sex", "race", "prediction"]].copy()
    written["label"] = np.where(known, label.astype(str), "")
    written["score"] = np.round(rng.random(size), 3)
    written.to_csv(path, index=False)
    return frame


def fairlearn_expectations(frame: pd.DataFrame, features: list[str]) -> dict[str, Any]:
    labelled = frame[frame.known]
    sensitive_all = frame[features]
    sensitive_labelled = labelled[features]
    selection = MetricFrame(
        metrics=selection_rate,
        y_true=frame.prediction,
        y_pred=frame.prediction,
        sensitive_features=sensitive_all,
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
        sensitive_features=sensitive_labelled,
    ).by_group
    everyone = {"y_true": frame.prediction, "y_pred": frame.prediction}
    with_labels = {"y_true": labelled.label, "y_pred": labelled.prediction}
    disparities = {
        "demographic_parity_difference": demographic_parity_difference(
            **everyone, sensitive_features=sensitive_all
        ),
        "demographic_parity_ratio": demographic_parity_ratio(
            **everyone, sensitive_features=sensitive_all
        ),
        "equalized_odds_difference": equalized_odds_difference(
            **with_labels, sensitive_features=sensitive_labelled
        ),
        "equalized_odds_ratio": equalized_odds_ratio(
            **with_labels, sensitive_features=sensitive_labelled
        ),
        "equal_opportunity_difference": equal_opportunity_difference(
            **with_labels, sensitive_features=sensitive_labelled
        ),
        "equal_opportunity_ratio": equal_opportunity_ratio(
            **with_labels, sensitive_features=sensitive_labelled
        ),
    }
    return {"selection": selection, "rates": rates, "disparities": disparities}


@pytest.mark.parametrize("seed", range(3))
def test_csv_to_measure_agrees_with_fairlearn(
    seed: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "random.csv"
    frame = random_decisions_csv(seed, path)
    doc = measure_json(capsys, path, "--attributes", "sex,race")
    for grouping, features in (("sex", ["sex"]), ("race", ["race"]), ("sex*race", ["sex", "race"])):
        expected = fairlearn_expectations(frame, features)
        for group_entry in doc["groups"][grouping]:
            values = tuple(group_entry["group"][f] for f in features)
            index = values if len(values) > 1 else values[0]
            assert group_entry["selection_rate"] == pytest.approx(
                expected["selection"][index], abs=1e-9
            )
            for metric in ("tpr", "fpr", "ppv", "accuracy"):
                assert group_entry[metric] == pytest.approx(
                    expected["rates"].loc[index, metric], abs=1e-9
                ), (grouping, values, metric)
        for name, value in expected["disparities"].items():
            assert doc["disparities"][grouping][name] == pytest.approx(value, abs=1e-9), (
                grouping,
                name,
            )
