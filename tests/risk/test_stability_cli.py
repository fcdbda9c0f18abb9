"""``vfl stability``: PSI per column and of the score, equal to a direct numpy computation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vfl.cli import main


def direct_psi(train: np.ndarray, new: np.ndarray, bins: int = 10) -> float:
    cuts = np.unique(np.quantile(train, np.arange(1, bins) / bins))
    pe = np.bincount(np.digitize(train, cuts), minlength=len(cuts) + 1) / train.size
    pa = np.bincount(np.digitize(new, cuts), minlength=len(cuts) + 1) / new.size
    pe, pa = np.maximum(pe, 1e-4), np.maximum(pa, 1e-4)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(3)
    train = pd.DataFrame({"id": [f"t{i}" for i in range(800)], "y": rng.integers(0, 2, 800),
                          "income": rng.normal(size=800), "age": rng.normal(40, 10, 800)})
    new = pd.DataFrame({"id": [f"n{i}" for i in range(500)], "y": rng.integers(0, 2, 500),
                        "income": rng.normal(0.6, 1, 500), "age": rng.normal(40, 10, 500)})
    new.loc[:24, "age"] = np.nan
    train.to_csv(tmp_path / "train.csv", index=False)
    new.to_csv(tmp_path / "new.csv", index=False)
    return tmp_path, train, new


def stability(tmp_path, *extra):
    return main(["stability", "--expected", str(tmp_path / "train.csv"), "--actual",
                 str(tmp_path / "new.csv"), "--id-column", "id", "--label-column", "y",
                 "--out", str(tmp_path / "psi.json"), "--quiet", *extra])


def test_psi_per_column_equals_numpy(files):
    tmp_path, train, new = files
    assert stability(tmp_path) == 0
    report = json.loads((tmp_path / "psi.json").read_text())
    rows = {r["name"]: r for r in report["columns"]}
    assert set(rows) == {"income", "age"}
    assert rows["income"]["psi"] == pytest.approx(direct_psi(train["income"].to_numpy(),
                                                             new["income"].to_numpy()),
                                                  rel=1e-12)
    assert rows["income"]["status"] == ("shift" if rows["income"]["psi"] < 0.25 else "major shift")
    assert rows["income"]["psi"] > 0.1
    # New missing values get a bin of their own (the training rows had none).
    assert rows["age"]["actual_counts"][-1] == 25 and rows["age"]["expected_counts"][-1] == 0
    assert rows["age"]["psi"] > direct_psi(train["age"].to_numpy(),
                                           new["age"].dropna().to_numpy())


def test_score_psi_from_two_prediction_files(tmp_path):
    rng = np.random.default_rng(4)
    old, fresh = rng.beta(2, 5, 1000), rng.beta(2, 4, 700)
    pd.DataFrame({"id": range(1000), "probability": old}).to_csv(tmp_path / "train.csv",
                                                                 index=False)
    pd.DataFrame({"id": range(700), "probability": fresh}).to_csv(tmp_path / "new.csv",
                                                                  index=False)
    assert main(["stability", "--expected", str(tmp_path / "train.csv"), "--actual",
                 str(tmp_path / "new.csv"), "--id-column", "id", "--columns", "probability",
                 "--out", str(tmp_path / "psi.json"), "--quiet"]) == 0
    report = json.loads((tmp_path / "psi.json").read_text())
    assert report["columns"][0]["psi"] == pytest.approx(direct_psi(old, fresh), rel=1e-12)


def test_binning_file_bins_are_used(files):
    tmp_path, train, new = files
    binning = {"features": [{"name": "income", "edges": [-1.0, 0.0, 1.0], "missing_bin": None},
                            {"name": "A1#0", "edges": None, "missing_bin": None}]}
    (tmp_path / "binning_B.json").write_text(json.dumps(binning))
    assert stability(tmp_path, "--columns", "income", "--binning",
                     str(tmp_path / "binning_B.json")) == 0
    row = json.loads((tmp_path / "psi.json").read_text())["columns"][0]
    assert row["edges"] == [-1.0, 0.0, 1.0]
    pe = np.bincount(np.digitize(train["income"], [-1, 0, 1]), minlength=4) / len(train)
    pa = np.bincount(np.digitize(new["income"], [-1, 0, 1]), minlength=4) / len(new)
    assert row["psi"] == pytest.approx(float(np.sum((pa - pe) * np.log(pa / pe))), rel=1e-12)


@pytest.mark.parametrize("extra, message", [
    (["--columns", "salary"], "no column 'salary'"),
    (["--columns", "y,income", "--label-column", "z"], None),  # the label may be compared
    (["--binning", "missing.json"], "cannot read the binning file"),
])
def test_bad_input_is_one_line_and_writes_nothing(files, capsys, extra, message):
    tmp_path, _, _ = files
    code = stability(tmp_path, *extra)
    if message is None:
        assert code == 0
        return
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "psi.json").exists()


def test_report_is_not_replaced_without_force(files, capsys):
    tmp_path, _, _ = files
    assert stability(tmp_path) == 0
    assert stability(tmp_path) == 2 and "--force" in capsys.readouterr().err
    assert stability(tmp_path, "--force") == 0
