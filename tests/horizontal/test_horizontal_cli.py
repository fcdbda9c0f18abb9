"""``vfl horizontal`` through ``vfl.cli.main``, as a user runs it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import vfl.cli
from vfl.cli import horizontal

FAST = ["--key-bits", "512", "--insecure-key", "--backend", "phe"]


def test_the_options_match_the_library() -> None:
    from parties.horizontal.config import ALGORITHMS, SERVER_OPTIMIZERS, HorizontalConfig
    from parties.horizontal.models import HORIZONTAL_MODELS

    assert horizontal.MODELS == HORIZONTAL_MODELS
    assert horizontal.ALGORITHMS == ALGORITHMS
    assert horizontal.SERVER_OPTIMIZERS == SERVER_OPTIMIZERS
    library = HorizontalConfig().to_dict()
    assert {k: library[k] for k in horizontal.DEFAULTS} == horizontal.DEFAULTS
    args = vfl.cli.build_parser().parse_args(["horizontal", "--client", "a", "--client", "b",
                                              "--label-column", "y", "--out", "o"])
    assert {k: getattr(args, k) for k in horizontal.DEFAULTS} == horizontal.DEFAULTS


def test_one_client_is_refused(tmp_path, capsys) -> None:
    paths = _files(tmp_path)
    assert vfl.cli.main(_args(paths[:1], tmp_path / "out")) == 2
    assert "two or more --client" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _files(tmp_path, model: str = "logistic"):
    rng = np.random.default_rng(4)
    paths = []
    for k, n in enumerate((40, 55, 47), start=1):
        x = rng.normal(size=(n, 2)) + k
        z = x @ np.array([1.5, -1.0]) + 0.3 * rng.normal(size=n)
        y = (z > 0.5 * k).astype(float) if model == "logistic" else np.digitize(
            z, [-0.5, 0.5]).astype(float)
        path = tmp_path / f"C{k}.csv"
        pd.DataFrame({"id": range(n), "a": x[:, 0], "b": x[:, 1], "y": y}).to_csv(path,
                                                                                  index=False)
        paths.append(str(path))
    return paths


def _args(paths, out, *extra):
    return ["horizontal", *[a for p in paths for a in ("--client", p)], "--label-column", "y",
            "--drop-column", "id", "--out", str(out), "--quiet", *FAST, *extra]


def test_writes_the_report_and_model_file(tmp_path) -> None:
    paths = _files(tmp_path)
    out = tmp_path / "out"
    assert vfl.cli.main(_args(paths, out, "--model", "logistic", "--rounds", "5",
                              "--local-epochs", "2",
                              "--batch-size", "16", "--learning-rate", "0.3")) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == "logistic" and report["algorithm"] == "fedavg"
    assert report["clients"] == {f"C{k}": {"rows": n, "file": p}
                                 for k, (n, p) in enumerate(zip((40, 55, 47), paths), 1)}
    assert report["features"] == ["a", "b"] and len(report["weights"]) == 2
    assert [h["round"] for h in report["history"]] == [1, 2, 3, 4, 5]
    losses = [h["loss"] for h in report["history"]]
    assert losses[-1] < losses[0]
    assert report["metrics"]["accuracy"] > 0.7
    model = json.loads((out / "model.json").read_text())
    assert model["format"] == horizontal.MODEL_FORMAT
    # The model file predicts like the report says: recompute the accuracy from it.
    frame = pd.concat(pd.read_csv(p) for p in paths)
    score = frame[["a", "b"]].to_numpy() @ np.array(model["weights"]) + model["intercept"]
    accuracy = np.mean((score > 0) == (frame["y"].to_numpy() == 1))
    assert accuracy == pytest.approx(report["metrics"]["accuracy"])


def test_softmax_report_has_one_weight_list_per_class(tmp_path) -> None:
    paths = _files(tmp_path, "softmax")
    out = tmp_path / "out"
    assert vfl.cli.main(_args(paths, out, "--model", "softmax", "--algorithm", "fedsgd",
                              "--rounds", "3", "--learning-rate", "0.5")) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["classes"] == [0.0, 1.0, 2.0]
    assert np.shape(report["weights"]) == (3, 2) and len(report["intercept"]) == 3


def test_a_missing_label_column_names_the_client_and_file(tmp_path, capsys) -> None:
    paths = _files(tmp_path)
    pd.read_csv(paths[1]).drop(columns=["y"]).to_csv(paths[1], index=False)
    out = tmp_path / "out"
    assert vfl.cli.main(_args(paths, out)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "party C2:" in err and "C2.csv has no label column 'y'" in err
    assert not out.exists()


def test_clients_whose_columns_differ_are_refused(tmp_path, capsys) -> None:
    paths = _files(tmp_path)
    pd.read_csv(paths[2]).rename(columns={"b": "c"}).to_csv(paths[2], index=False)
    out = tmp_path / "out"
    assert vfl.cli.main(_args(paths, out)) == 2
    err = capsys.readouterr().err
    assert "party C3:" in err and "C3.csv" in err and "missing 'b'" in err
    assert not out.exists()


def test_an_existing_report_is_kept_unless_force(tmp_path, capsys) -> None:
    paths = _files(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("keep me")
    assert vfl.cli.main(_args(paths, out, "--rounds", "1")) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "report.json").read_text() == "keep me"
    assert not (out / "model.json").exists()
    assert vfl.cli.main(_args(paths, out, "--rounds", "1", "--force", "--model", "logistic")) == 0
    assert json.loads((out / "report.json").read_text())["model"] == "logistic"


def test_mlp_model_file_predicts_what_the_report_says(tmp_path) -> None:
    paths = _files(tmp_path, "softmax")
    out = tmp_path / "out"
    assert vfl.cli.main(_args(paths, out, "--model", "mlp", "--hidden-units", "4",
                              "--rounds", "8", "--local-epochs", "3", "--batch-size", "16",
                              "--learning-rate", "0.3")) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["classes"] == [0.0, 1.0, 2.0] and "weights" not in report
    model = json.loads((out / "model.json").read_text())
    assert [len(layer) for layer in model["layers"]] == [4, 3]  # units per layer
    # Forward pass from the file alone, on raw columns.
    frame = pd.concat(pd.read_csv(p) for p in paths)
    x = frame[["a", "b"]].to_numpy()
    for k, layer in enumerate(model["layers"]):
        w = np.array([unit["weights"] for unit in layer]).T
        b = np.array([unit["intercept"] for unit in layer])
        x = x @ w + b
        if k == 0:
            x = np.tanh(x)
    predicted = np.array(model["classes"])[x.argmax(axis=1)]
    accuracy = np.mean(predicted == frame["y"].to_numpy())
    assert accuracy == pytest.approx(report["metrics"]["accuracy"])
    assert accuracy > 0.6


def test_a_coarser_precision_gives_the_same_model_to_its_resolution(tmp_path) -> None:
    paths = _files(tmp_path)
    options = ("--model", "logistic", "--algorithm", "fedsgd", "--rounds", "4",
               "--learning-rate", "0.5")
    assert vfl.cli.main(_args(paths, tmp_path / "fine", *options)) == 0
    # SecAgg+'s precision in the benchmark: 22 fractional bits (not a multiple of 4).
    assert vfl.cli.main(_args(paths, tmp_path / "coarse", *options, "--frac-bits", "22",
                              "--value-bits", "10")) == 0
    fine = json.loads((tmp_path / "fine" / "report.json").read_text())
    coarse = json.loads((tmp_path / "coarse" / "report.json").read_text())
    np.testing.assert_allclose(coarse["weights"], fine["weights"], rtol=0, atol=1e-4)
    assert coarse["weights"] != fine["weights"]  # the precision did change
