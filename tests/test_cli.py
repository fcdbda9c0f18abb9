"""The ``vfl`` command and the demo script, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vfl.cli import main
from vfl.model import ModelPart

ROOT = Path(__file__).resolve().parents[1]
SMALL_KEY = ["--key-bits", "512", "--insecure-key"]


@pytest.fixture
def csvs(tmp_path, frames):
    a_path, b_path = tmp_path / "A.csv", tmp_path / "B.csv"
    frames[0].to_csv(a_path, index=False)
    frames[1].to_csv(b_path, index=False)
    return a_path, b_path


def simulate(a_path, b_path, out, *extra):
    return main(["simulate", "--party-a", str(a_path), "--party-b", str(b_path),
                 "--id-column", "patient_id", "--label-column", "progression",
                 "--epochs", "3", "--learning-rate", "0.1", "--batch-size", "100",
                 "--l2", "0.01", "--out", str(out), "--seed", "5", "--quiet",
                 *SMALL_KEY, *extra])


def test_simulate_writes_report_and_one_model_part_per_party(csvs, tmp_path):
    a_path, b_path = csvs
    before = (a_path.read_bytes(), b_path.read_bytes())
    out = tmp_path / "run"
    assert simulate(a_path, b_path, out) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["aligned_rows"] > 300
    assert set(report["parties"]) == {"A1", "B"}
    assert report["parties"]["A1"]["features"] == ["age", "sex", "bmi", "bp"]
    assert len(report["parties"]["B"]["weights"]) == 6
    assert isinstance(report["parties"]["B"]["intercept"], float)
    assert "intercept" not in report["parties"]["A1"]
    assert [h["epoch"] for h in report["history"]] == [1, 2, 3]
    assert set(report["metrics"]) == {"mse", "rmse", "mae", "r2"}
    assert report["metrics"]["rmse"] == pytest.approx(report["metrics"]["mse"] ** 0.5)
    # Each part holds its own party's columns only.
    part_a = ModelPart.load(out / "model_A1.json", party="A1")
    part_b = ModelPart.load(out / "model_B.json", party="B")
    assert part_a.features == report["parties"]["A1"]["features"]
    assert part_a.intercept is None
    assert not set(part_a.features) & set(part_b.features)
    assert "progression" not in (out / "model_A1.json").read_text()
    assert (a_path.read_bytes(), b_path.read_bytes()) == before


def test_saved_parts_predict_like_the_report(csvs, tmp_path):
    import pandas as pd

    a_path, b_path = csvs
    out = tmp_path / "run"
    assert simulate(a_path, b_path, out, "--batch-size", "full") == 0
    report = json.loads((out / "report.json").read_text())
    preds_path = tmp_path / "preds.csv"
    assert main(["predict", "--party-a", str(a_path), "--party-b", str(b_path),
                 "--id-column", "patient_id", "--model", str(out),
                 "--out", str(preds_path)]) == 0
    preds = pd.read_csv(preds_path, dtype={"patient_id": str}).set_index("patient_id")
    a = pd.read_csv(a_path, dtype={"patient_id": str}).set_index("patient_id")
    b = pd.read_csv(b_path, dtype={"patient_id": str}).set_index("patient_id")
    rows = preds.index
    expected = (a.loc[rows, report["parties"]["A1"]["features"]].to_numpy()
                @ report["parties"]["A1"]["weights"]
                + b.loc[rows, report["parties"]["B"]["features"]].to_numpy()
                @ report["parties"]["B"]["weights"] + report["parties"]["B"]["intercept"])
    assert len(rows) == report["aligned_rows"]
    assert preds["prediction"].to_numpy() == pytest.approx(expected, rel=1e-9)


def test_failure_writes_nothing(csvs, tmp_path, capsys):
    a_path, b_path = csvs
    out = tmp_path / "never"
    code = main(["simulate", "--party-a", str(a_path), "--party-b", str(b_path),
                 "--id-column", "patient_id", "--label-column", "nope",
                 "--out", str(out), *SMALL_KEY])
    assert code == 2
    assert "party B" in capsys.readouterr().err
    assert not out.exists()


def test_small_key_without_flag_is_refused(csvs, tmp_path, capsys):
    a_path, b_path = csvs
    code = main(["simulate", "--party-a", str(a_path), "--party-b", str(b_path),
                 "--id-column", "patient_id", "--label-column", "progression",
                 "--key-bits", "1024", "--out", str(tmp_path / "x")])
    assert code == 2
    assert "--insecure-key" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_second_feature_holder_is_refused_clearly(csvs, tmp_path, capsys):
    a_path, b_path = csvs
    code = simulate(a_path, b_path, tmp_path / "x", "--party-a", str(a_path))
    assert code == 2
    assert "exactly one feature holder" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_existing_report_survives_a_failed_run(csvs, tmp_path):
    a_path, b_path = csvs
    out = tmp_path / "run"
    assert simulate(a_path, b_path, out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert simulate(a_path, b_path, out, "--batch-size", "5") == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_demo_script_runs():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--epochs", "2", *SMALL_KEY],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert "aligned rows" in result.stdout
    assert "federated (encrypted)" in result.stdout and "closed form" in result.stdout
    assert "epoch   2/2" in result.stderr


def test_help_documents_every_simulate_option(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = capsys.readouterr().out
    for option in ["--party-a", "--party-b", "--id-column", "--label-column", "--epochs",
                   "--learning-rate", "--batch-size", "--l2", "--tol", "--key-bits",
                   "--insecure-key", "--seed", "--backend", "--alignment", "--out"]:
        assert option in text
