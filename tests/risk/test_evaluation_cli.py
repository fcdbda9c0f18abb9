"""``vfl simulate`` of a logistic model: KS, lift/gain and the confusion matrix in report.json,
ROC and KS curves as PNGs; each equal to a direct computation on the model's predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vfl.cli import main

KEY = ["--key-bits", "512", "--insecure-key"]


@pytest.fixture
def csvs(tmp_path):
    rng = np.random.default_rng(11)
    n = 300
    x = rng.normal(size=(n, 4))
    y = (x @ [1.5, -1.0, 0.5, 0.8] + rng.logistic(size=n) > 0).astype(int)
    ids = [f"p{i}" for i in range(n)]
    pd.DataFrame({"id": ids, "a0": x[:, 0], "a1": x[:, 1]}).to_csv(tmp_path / "a.csv",
                                                                  index=False)
    pd.DataFrame({"id": ids, "y": y, "b0": x[:, 2], "b1": x[:, 3]}).to_csv(tmp_path / "b.csv",
                                                                          index=False)
    return tmp_path, pd.Series(y, index=ids)


def simulate(tmp_path, *extra):
    return main(["simulate", "--party-a", str(tmp_path / "a.csv"), "--party-b",
                 str(tmp_path / "b.csv"), "--id-column", "id", "--label-column", "y",
                 "--model", "logistic", "--epochs", "3", "--learning-rate", "0.5",
                 "--seed", "3", "--quiet", "--out", str(tmp_path / "run"), *KEY, *extra])


def test_report_holds_ks_lift_and_confusion_matrix_of_the_predictions(csvs):
    from vfl.risk import confusion_matrix, ks_statistic, lift_table

    tmp_path, labels = csvs
    assert simulate(tmp_path, "--curves") == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert main(["predict", "--party-a", str(tmp_path / "a.csv"), "--party-b",
                 str(tmp_path / "b.csv"), "--id-column", "id", "--model",
                 str(tmp_path / "run"), "--out", str(tmp_path / "p.csv")]) == 0
    predicted = pd.read_csv(tmp_path / "p.csv", dtype={"id": str}).set_index("id")["probability"]
    y, p = labels.loc[predicted.index].to_numpy(), predicted.to_numpy()
    evaluation = report["evaluation"]
    assert evaluation["ks"] == pytest.approx(ks_statistic(y, p), abs=1e-9)
    expected = lift_table(y, p)
    assert [row["events"] for row in evaluation["lift"]] == [r.events for r in expected]
    assert [row["lift"] for row in evaluation["lift"]] == pytest.approx(
        [r.lift for r in expected])
    assert evaluation["lift"][-1]["gain"] == pytest.approx(1.0)
    matrix = confusion_matrix(y, p, 0.5)
    assert evaluation["confusion_matrix"]["true_positive"] == matrix.true_positive
    assert evaluation["confusion_matrix"]["false_negative"] == matrix.false_negative
    # The metrics that were there before are untouched.
    assert set(report["metrics"]) == {"auc", "accuracy", "log_loss"}
    for name in ("roc.png", "ks.png"):
        assert (tmp_path / "run" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_validation_rows_get_their_own_evaluation(csvs):
    tmp_path, _ = csvs
    assert simulate(tmp_path, "--validation-fraction", "0.3") == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert sum(r["rows"] for r in report["validation_evaluation"]["lift"]) == \
        report["validation_rows"]
    assert sum(r["rows"] for r in report["evaluation"]["lift"]) == report["training_rows"]
    assert not (tmp_path / "run" / "roc.png").exists()


def test_curves_need_a_classifier(csvs, capsys):
    tmp_path, _ = csvs
    argv = ["simulate", "--party-a", str(tmp_path / "a.csv"), "--party-b",
            str(tmp_path / "b.csv"), "--id-column", "id", "--label-column", "y", "--curves",
            "--quiet", "--out", str(tmp_path / "run"), *KEY]
    assert main(argv) == 2
    assert "--model logistic" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_plot_roc_ks_writes_two_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    from vfl.plot import plot_roc_ks
    from vfl.risk import roc_ks_points

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 100)
    plot_roc_ks(roc_ks_points(y, rng.random(100) + y), tmp_path / "r.png", tmp_path / "k.png")
    assert (tmp_path / "r.png").stat().st_size > 1000 and (tmp_path / "k.png").exists()
