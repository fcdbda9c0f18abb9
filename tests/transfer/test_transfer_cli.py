"""``vfl transfer`` through ``vfl.cli.main``, as a user runs it."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from transfer_frames import KEY_BITS, make_frames

from vfl.cli import main


@pytest.fixture
def files(tmp_path):
    frame_a, frame_b = make_frames()
    frame_a.to_csv(tmp_path / "A.csv", index=False)
    frame_b.to_csv(tmp_path / "B.csv", index=False)
    return tmp_path


def args(folder, *extra):
    return ["transfer", "--source", str(folder / "A.csv"), "--target", str(folder / "B.csv"),
            "--id-column", "ID", "--label-column", "y", "--hidden", "3", "--epochs", "2",
            "--learning-rate", "0.05", "--alpha", "2", "--seed", "3", "--quiet",
            "--out", str(folder / "out"), *extra]


def test_writes_report_predictions_and_models(files):
    assert main(args(files, "--key-bits", str(KEY_BITS), "--insecure-key",
                      "--local-rounds", "2")) == 0
    out = files / "out"
    report = json.loads((out / "report.json").read_text())
    assert report["overlap_rows"] == 15 and report["target_rows"] == 30
    assert [h["epoch"] for h in report["history"]] == [1, 2]
    assert set(report["overlap_metrics"]) == {"auc", "accuracy", "log_loss"}
    predictions = pd.read_csv(out / "predictions_B.csv", dtype={"ID": str})
    assert list(predictions.columns) == ["ID", "probability"]
    assert len(predictions) == 30
    assert json.loads((out / "model_A.json").read_text())["role"] == "source"
    model_b = json.loads((out / "model_B.json").read_text())
    assert model_b["role"] == "target" and len(model_b["phi"]) == 3


def test_refuses_to_overwrite_without_force(files, capsys):
    assert main(args(files, "--mode", "plain", "--insecure-plain")) == 0
    before = (files / "out" / "report.json").read_text()
    assert main(args(files, "--mode", "plain", "--insecure-plain", "--epochs", "3")) == 2
    assert "--force" in capsys.readouterr().err
    assert (files / "out" / "report.json").read_text() == before
    assert main(args(files, "--mode", "plain", "--insecure-plain", "--force")) == 0


@pytest.mark.parametrize("extra,message", [
    (["--mode", "plain"], "--insecure-plain"),
    (["--key-bits", "512"], "--insecure-key"),
    (["--id-column", "nope", "--mode", "plain", "--insecure-plain"], "party A: .*nope"),
])
def test_errors_are_clear_and_nothing_is_written(files, capsys, extra, message):
    assert main(args(files, *extra)) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (files / "out").exists()


def test_a_bad_target_column_names_party_and_column(files, capsys):
    frame_b = pd.read_csv(files / "B.csv", dtype=str)
    frame_b.loc[3, "b2"] = "oops"
    frame_b.to_csv(files / "B.csv", index=False)
    assert main(args(files, "--mode", "plain", "--insecure-plain")) == 2
    out = capsys.readouterr().err
    assert "party B" in out and "'b2'" in out
    assert not (files / "out").exists()
