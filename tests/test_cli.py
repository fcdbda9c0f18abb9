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
                 "--penalty", "l2", "--alpha", "0.01", "--out", str(out), "--seed", "5", "--quiet",
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


def test_logistic_with_two_feature_holders_and_prediction_to_c(frames, tmp_path):
    import numpy as np
    import pandas as pd

    a_frame, b_frame = frames
    paths = {name: tmp_path / f"{name}.csv" for name in ("A1", "A2", "B")}
    a_frame[["patient_id", "age", "sex"]].to_csv(paths["A1"], index=False)
    a_frame[["patient_id", "bmi", "bp"]].to_csv(paths["A2"], index=False)
    b_frame.assign(progression=(b_frame["progression"] > 140).astype(int)).to_csv(
        paths["B"], index=False)
    out = tmp_path / "run"
    assert main(["simulate", "--party-a", str(paths["A1"]), "--party-a", str(paths["A2"]),
                 "--party-b", str(paths["B"]), "--id-column", "patient_id",
                 "--label-column", "progression", "--model", "logistic", "--epochs", "4",
                 "--learning-rate", "0.5", "--optimizer", "adam", "--validation-fraction",
                 "0.2", "--out", str(out), "--seed", "1", "--quiet", *SMALL_KEY]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == "logistic"
    assert set(report["parties"]) == {"A1", "A2", "B"}
    assert set(report["metrics"]) == set(report["validation_metrics"]) == {
        "auc", "accuracy", "log_loss"}
    assert report["metrics"]["auc"] > 0.7
    assert report["training_rows"] + report["validation_rows"] == report["aligned_rows"]
    assert all("validation_loss" in h for h in report["history"])
    assert report["config"]["optimizer"] == "adam"

    preds_path = tmp_path / "preds.csv"
    assert main(["predict", "--party-a", str(paths["A1"]), "--party-a", str(paths["A2"]),
                 "--party-b", str(paths["B"]), "--id-column", "patient_id", "--model",
                 str(out), "--deliver-to", "C", "--out", str(preds_path)]) == 0
    preds = pd.read_csv(preds_path, dtype={"patient_id": str}).set_index("patient_id")
    frames_by_party = {n: pd.read_csv(p, dtype={"patient_id": str}).set_index("patient_id")
                       for n, p in paths.items()}
    rows = preds.index
    score = report["parties"]["B"]["intercept"] + sum(
        frames_by_party[n].loc[rows, report["parties"][n]["features"]].to_numpy()
        @ report["parties"][n]["weights"] for n in ("A1", "A2", "B"))
    np.testing.assert_allclose(preds["probability"].to_numpy(), 1 / (1 + np.exp(-score)),
                               rtol=1e-9)


@pytest.mark.parametrize("extra, named", [
    (["--penalty", "none", "--alpha", "0.1"], "alpha"),
    (["--tol", "0"], "tol"),
    (["--early-stopping", "validation"], "validation_fraction"),
    (["--nesterov", "--optimizer", "adam"], "nesterov"),
])
def test_invalid_training_options_are_refused(csvs, tmp_path, capsys, extra, named):
    a_path, b_path = csvs
    assert simulate(a_path, b_path, tmp_path / "x", *extra) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_existing_report_survives_a_failed_run(csvs, tmp_path):
    a_path, b_path = csvs
    out = tmp_path / "run"
    assert simulate(a_path, b_path, out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert simulate(a_path, b_path, out, "--batch-size", "5") == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_demo_script_runs(tmp_path):
    plot = tmp_path / "curve.png"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--epochs", "2", *SMALL_KEY,
         "--plot", str(plot)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert "aligned rows" in result.stdout
    assert "federated (encrypted)" in result.stdout and "closed form" in result.stdout
    assert "epoch   2/2" in result.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_help_documents_every_simulate_option(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = capsys.readouterr().out
    for option in ["--party-a", "--party-b", "--id-column", "--label-column", "--key-bits",
                   "--insecure-key", "--seed", "--backend", "--alignment", "--out"]:
        assert option in text
    # One option per training parameter, each with its default.
    from dataclasses import fields

    from vfl.training import TrainingConfig
    for field in fields(TrainingConfig):
        flag = "--" + field.name.replace("_", "-")
        assert flag in text, flag
    assert "(default: adam)" not in text and "(default: sgd)" in text
    assert "(default: 20)" in text


def test_contribution_and_signed_audit_log(csvs, tmp_path, capsys):
    a_path, b_path = csvs
    keys, log = tmp_path / "keys", tmp_path / "audit.jsonl"
    for party in ("A1", "B", "C"):
        assert main(["audit", "keygen", "--party", party, "--out", str(keys)]) == 0
    for run in ("one", "two"):
        assert simulate(a_path, b_path, tmp_path / run, "--validation-fraction", "0.25",
                        "--contribution", "--audit-log", str(log),
                        "--audit-keys", str(keys)) == 0
    report = json.loads((tmp_path / "one" / "report.json").read_text())
    contribution = report["contribution"]
    assert contribution["method"] == "leave-one-out"
    assert set(contribution["contributions"]) == {"A1", "B"}
    assert contribution["contributions"]["B"] > 0
    capsys.readouterr()
    assert main(["audit", "verify", str(log)]) == 0
    assert "2 records" in capsys.readouterr().out
    lines = log.read_text().splitlines()
    first = json.loads(lines[0])
    assert first["session"] == report["session"]
    assert first["contributions"] == pytest.approx(contribution["contributions"])
    # Any edit is caught.
    tampered = json.loads(lines[1])
    tampered["metrics"]["r2"] = 0.99
    log.write_text(lines[0] + "\n" + json.dumps(tampered) + "\n")
    assert main(["audit", "verify", str(log)]) == 2


def test_audit_log_needs_every_partys_key(csvs, tmp_path, capsys):
    a_path, b_path = csvs
    keys = tmp_path / "keys"
    assert main(["audit", "keygen", "--party", "B", "--out", str(keys)]) == 0
    assert simulate(a_path, b_path, tmp_path / "x", "--audit-log", str(tmp_path / "log"),
                    "--audit-keys", str(keys)) == 2
    assert "vfl audit keygen --party" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_backend_plain_needs_its_flag_and_then_gives_the_encrypted_runs_model(csvs, tmp_path,
                                                                              capsys):
    a_path, b_path = csvs
    assert simulate(a_path, b_path, tmp_path / "refused", "--backend", "plain") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--insecure-plaintext" in err
    assert not (tmp_path / "refused").exists()
    assert simulate(a_path, b_path, tmp_path / "plain", "--backend", "plain",
                    "--insecure-plaintext") == 0
    assert simulate(a_path, b_path, tmp_path / "fast") == 0
    plain = json.loads((tmp_path / "plain" / "report.json").read_text())
    fast = json.loads((tmp_path / "fast" / "report.json").read_text())
    assert plain["config"]["backend"] == "plain"
    assert plain["metrics"] == fast["metrics"]
    assert plain["history"] == fast["history"]
