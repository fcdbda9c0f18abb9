"""WOE-encoded training (``woe_encode``, ``vfl simulate --woe``) against the centralized
reference on the joined WOE-encoded data, and new rows encoded as the training rows."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from federation_checks import federated_params, reference_run

from parties import Coordinator, FeatureHolder, Federation, LabelHolder
from parties.binning import (
    BinningConfig,
    BinningCoordinator,
    BinningFeatureHolder,
    BinningLabelHolder,
    BinningResult,
    run_binning,
    woe_encode,
)
from vfl.cli import main
from vfl.errors import BinningFileError, InvalidFeatureError
from vfl.risk import woe_table
from vfl.training import TrainingConfig

KEY_BITS = 512  # small and insecure: fast tests
KEY = ["--key-bits", str(KEY_BITS), "--insecure-key"]
CONFIG = TrainingConfig(model="logistic", epochs=4, learning_rate=0.5, batch_size=150)


def credit_data(n: int = 400, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(A1's frame, B's frame): A's 'age' has missing values (a bin of their own)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = (x @ [1.2, -0.8, 0.6, 0.5] + rng.logistic(size=n) > 0).astype(int)
    ids = [f"c{i}" for i in range(n)]
    a = pd.DataFrame({"id": ids, "income": x[:, 0], "age": x[:, 1]})
    a.loc[::9, "age"] = np.nan
    b = pd.DataFrame({"id": ids[::-1], "default": y[::-1], "score": x[::-1, 2],
                      "debt": x[::-1, 3]})
    return a, b


def binned(a_frame, b_frame, config=None):
    a = BinningFeatureHolder(a_frame, id_column="id", label_column="default")
    b = BinningLabelHolder(b_frame, id_column="id", label_column="default")
    run_binning(b, a, BinningCoordinator(key_bits=KEY_BITS, insecure_key=True),
                config or BinningConfig(bins=5, min_bin_rows=30))
    return a, b


def test_woe_federated_training_equals_centralized_training_on_joined_woe_data():
    a_frame, b_frame = credit_data()
    a_bins, b_bins = binned(a_frame, b_frame)
    # Each party encodes its own columns with its own result only.
    a_woe = woe_encode(a_frame, a_bins.binning)
    b_woe = woe_encode(b_frame, b_bins.binning)
    assert list(a_woe.columns) == ["id", "income", "age"]
    assert list(b_woe.columns) == ["id", "default", "score", "debt"]
    # The encoding is the WOE of each value's bin, computed centrally on the joined rows.
    joined = b_frame.merge(a_frame, on="id")
    encoded = joined[["id"]].merge(a_woe, on="id").merge(b_woe.drop(columns="default"),
                                                         on="id")
    for name, party in (("income", a_bins), ("age", a_bins), ("score", b_bins),
                        ("debt", b_bins)):
        bins = party.bins_[name]
        index = bins.assign(joined[name].to_numpy(dtype=float))
        table = woe_table(np.bincount(index, minlength=bins.n_bins),
                          np.bincount(index, weights=joined["default"],
                                      minlength=bins.n_bins).round().astype(int))
        np.testing.assert_allclose(encoded[name].to_numpy(), table.woe[index], rtol=1e-12)
    assert a_bins.bins_["age"].missing_apart  # missing values encoded by their own bin

    a = FeatureHolder(a_woe, id_column="id", seed=21)
    b = LabelHolder(b_woe, id_column="id", label_column="default", seed=22)
    Federation(Coordinator(key_bits=KEY_BITS, insecure_key=True), b, a, config=CONFIG).fit()
    ref, _, _ = reference_run([a], b, [a_woe], b_woe, CONFIG)
    np.testing.assert_allclose(federated_params([a], b), np.r_[ref.weights, ref.intercept],
                               rtol=1e-6)


def test_new_rows_are_encoded_as_the_training_rows():
    a_frame, b_frame = credit_data()
    a_bins, _ = binned(a_frame, b_frame)
    result = a_bins.binning
    training = woe_encode(a_frame, result).set_index("id")
    # The same values as new rows (other IDs, another order): the same encoding.
    new = a_frame.assign(id=[f"new{i}" for i in range(len(a_frame))]).iloc[::-1]
    again = woe_encode(new, result)
    np.testing.assert_array_equal(again["income"].to_numpy(),
                                  training["income"].to_numpy()[::-1])
    np.testing.assert_array_equal(again["age"].to_numpy(), training["age"].to_numpy()[::-1])
    # Beyond the training range: the end bins; missing: the missing bin.
    income, age = (next(f for f in result.features if f.name == n) for n in ("income", "age"))
    edge = pd.DataFrame({"id": ["lo", "hi", "na"], "income": [-1e6, 1e6, 0.0],
                         "age": [-1e6, 1e6, np.nan]})
    out = woe_encode(edge, result)
    assert out["income"].tolist()[:2] == [income.woe[0], income.woe[len(income.edges)]]
    assert out["age"].tolist() == [age.woe[0], age.woe[len(age.edges)],
                                   age.woe[age.missing_bin]]
    # A missing value where the column had none at binning: refused, naming it.
    with pytest.raises(InvalidFeatureError, match=r"income.*missing"):
        woe_encode(edge.assign(income=[0.0, np.nan, 1.0]), result)


def test_the_file_and_the_party_object_encode_alike_and_mismatches_are_refused(tmp_path):
    a_frame, b_frame = credit_data()
    a_bins, _ = binned(a_frame, b_frame)
    a_bins.save_report(tmp_path / "binning_A1.json")
    loaded = BinningResult.load(tmp_path / "binning_A1.json", party="A1")
    assert loaded.session == a_bins.session_ and loaded.id_column == "id"
    pd.testing.assert_frame_equal(woe_encode(a_frame, loaded),
                                  woe_encode(a_frame, tmp_path / "binning_A1.json"))
    with pytest.raises(BinningFileError, match=r"party B: .*A1's binning file, not B's"):
        BinningResult.load(tmp_path / "binning_A1.json", party="B")
    with pytest.raises(BinningFileError, match=r"bins column .age., which .* does not have"):
        woe_encode(a_frame.drop(columns="age"), loaded)
    with pytest.raises(BinningFileError, match=r"column .extra., which .* does not bin"):
        woe_encode(a_frame.assign(extra=1.0), loaded)
    # A feature holder none of whose columns was selected: leave it out, or take them all.
    unselected = replace(loaded, features=tuple(replace(f, selected=False)
                                                for f in loaded.features))
    with pytest.raises(BinningFileError, match="party A1: none of this party's columns"):
        woe_encode(a_frame, unselected)
    assert list(woe_encode(a_frame, unselected, all_columns=True).columns) == [
        "id", "income", "age"]


def write_csvs(tmp_path, a_frame, b_frame):
    a_frame.to_csv(tmp_path / "a.csv", index=False)
    b_frame.to_csv(tmp_path / "b.csv", index=False)


def binning_cli(tmp_path, out="bins", *extra):
    return main(["binning", "--party-a", str(tmp_path / "a.csv"), "--party-b",
                 str(tmp_path / "b.csv"), "--id-column", "id", "--label-column", "default",
                 "--out", str(tmp_path / out), "--bins", "5", "--min-bin-rows", "30", *KEY,
                 "--quiet", *extra])


def simulate_cli(tmp_path, *extra, out="run", a="a.csv"):
    return main(["simulate", "--party-a", str(tmp_path / a), "--party-b",
                 str(tmp_path / "b.csv"), "--id-column", "id", "--label-column", "default",
                 "--model", "logistic", "--epochs", "4", "--learning-rate", "0.5",
                 "--batch-size", "150", "--out", str(tmp_path / out), *KEY, "--quiet",
                 *extra])


def test_simulate_woe_trains_what_the_notebook_api_trains(tmp_path):
    a_frame, b_frame = credit_data()
    write_csvs(tmp_path, a_frame, b_frame)
    assert binning_cli(tmp_path) == 0
    assert simulate_cli(tmp_path, "--woe", str(tmp_path / "bins"), "--seed", "3") == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    session = json.loads((tmp_path / "bins" / "binning_B.json").read_text())["session"]
    assert report["woe"]["session"] == session
    assert report["woe"]["columns"] == {"B": ["score", "debt"], "A1": ["income", "age"]}
    # The same parties in a notebook: seeds 3 (B) and 4 (A1), as simulate gives them.
    from vfl.data import read_party_csv

    a_woe = woe_encode(read_party_csv(tmp_path / "a.csv", party="A1", id_column="id"),
                       tmp_path / "bins" / "binning_A1.json")
    b_woe = woe_encode(read_party_csv(tmp_path / "b.csv", party="B", id_column="id"),
                       tmp_path / "bins" / "binning_B.json")
    a = FeatureHolder(a_woe, id_column="id", seed=4)
    b = LabelHolder(b_woe, id_column="id", label_column="default", seed=3)
    Federation(Coordinator(key_bits=KEY_BITS, insecure_key=True), b, a, config=CONFIG).fit()
    ref, _, _ = reference_run([a], b, [a_woe], b_woe, CONFIG)
    cli = np.r_[report["parties"]["A1"]["weights"], report["parties"]["B"]["weights"],
                report["parties"]["B"]["intercept"]]
    np.testing.assert_allclose(cli, np.r_[ref.weights, ref.intercept], rtol=1e-6)


def test_only_the_selected_columns_unless_all_are_asked_for(tmp_path):
    a_frame, b_frame = credit_data()
    write_csvs(tmp_path, a_frame, b_frame)
    assert binning_cli(tmp_path, "bins", "--select-top", "2") == 0
    files = {p: json.loads((tmp_path / "bins" / f"binning_{p}.json").read_text())
             for p in ("A1", "B")}
    kept = {p: [f["name"] for f in files[p]["features"] if f["owner"] == p and f["selected"]]
            for p in files}
    assert sum(map(len, kept.values())) == 2
    assert simulate_cli(tmp_path, "--woe", str(tmp_path / "bins")) == 0
    trained = json.loads((tmp_path / "run" / "report.json").read_text())["woe"]["columns"]
    assert trained == {"B": kept["B"], "A1": kept["A1"]}
    assert simulate_cli(tmp_path, "--woe", str(tmp_path / "bins"), "--woe-all-columns",
                        out="all") == 0
    every = json.loads((tmp_path / "all" / "report.json").read_text())["woe"]["columns"]
    assert every == {"B": ["score", "debt"], "A1": ["income", "age"]}


def refused(capsys, code, *, party, file):
    """One line, exit 2, naming the party and the file."""
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "\n" not in err and "Traceback" not in err, err
    assert f"party {party}" in err and file in err, err
    return err


def test_bad_binning_folders_are_one_line_each_and_nothing_is_written(tmp_path, capsys):
    a_frame, b_frame = credit_data()
    write_csvs(tmp_path, a_frame, b_frame)
    assert binning_cli(tmp_path) == 0
    capsys.readouterr()
    bins = tmp_path / "bins"
    # A file missing for a party.
    (tmp_path / "lonely").mkdir()
    (tmp_path / "lonely" / "binning_B.json").write_text((bins / "binning_B.json").read_text())
    refused(capsys, simulate_cli(tmp_path, "--woe", str(tmp_path / "lonely")), party="A1",
            file="binning_A1.json")
    # A column in the binning file absent from the CSV.
    a_frame.drop(columns="age").to_csv(tmp_path / "a_short.csv", index=False)
    refused(capsys, simulate_cli(tmp_path, "--woe", str(bins), a="a_short.csv"),
            party="A1", file="binning_A1.json")
    # A column of the CSV the binning file does not know.
    a_frame.assign(extra=1.0).to_csv(tmp_path / "a_extra.csv", index=False)
    refused(capsys, simulate_cli(tmp_path, "--woe", str(bins), a="a_extra.csv"),
            party="A1", file="binning_A1.json")
    # A feature holder's file of another binning run.
    assert binning_cli(tmp_path, "other", "--bins", "4") == 0
    capsys.readouterr()
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "binning_B.json").write_text((bins / "binning_B.json").read_text())
    (mixed / "binning_A1.json").write_text(
        (tmp_path / "other" / "binning_A1.json").read_text())
    err = refused(capsys, simulate_cli(tmp_path, "--woe", str(mixed)), party="A1",
                  file="binning_A1.json")
    assert "different binning runs" in err
    # Another party's file under this party's name.
    swapped = tmp_path / "swapped"
    swapped.mkdir()
    (swapped / "binning_B.json").write_text((bins / "binning_B.json").read_text())
    (swapped / "binning_A1.json").write_text((bins / "binning_B.json").read_text())
    refused(capsys, simulate_cli(tmp_path, "--woe", str(swapped)), party="A1",
            file="binning_A1.json")
    # A binning run of other parties: two feature holders, simulated with one.
    a_frame[["id", "age"]].to_csv(tmp_path / "a2.csv", index=False)
    a_frame[["id", "income"]].to_csv(tmp_path / "a1.csv", index=False)
    assert main(["binning", "--party-a", str(tmp_path / "a1.csv"), "--party-a",
                 str(tmp_path / "a2.csv"), "--party-b", str(tmp_path / "b.csv"),
                 "--id-column", "id", "--label-column", "default", "--out",
                 str(tmp_path / "two"), "--bins", "5", "--min-bin-rows", "30", *KEY,
                 "--quiet"]) == 0
    capsys.readouterr()
    refused(capsys, simulate_cli(tmp_path, "--woe", str(tmp_path / "two"), a="a1.csv"),
            party="A2", file="binning_B.json")
    assert not (tmp_path / "run").exists()


def test_predict_refuses_rows_that_do_not_fit_the_encoding(tmp_path, capsys):
    a_frame, b_frame = credit_data()
    write_csvs(tmp_path, a_frame, b_frame)
    assert binning_cli(tmp_path) == 0
    assert simulate_cli(tmp_path, "--woe", str(tmp_path / "bins")) == 0
    capsys.readouterr()
    a_frame.assign(income=np.where(np.arange(len(a_frame)) == 5, np.nan,
                                   a_frame["income"])).to_csv(tmp_path / "a_na.csv",
                                                              index=False)

    def predict(a, *extra):
        return main(["predict", "--party-a", str(tmp_path / a), "--party-b",
                     str(tmp_path / "b.csv"), "--id-column", "id", "--model",
                     str(tmp_path / "run"), "--out", str(tmp_path / "p.csv"), *extra])

    err = refused(capsys, predict("a_na.csv", "--woe", str(tmp_path / "bins")), party="A1",
                  file="a_na.csv")
    assert "'income'" in err and "missing" in err
    assert predict("a.csv") == 2  # trained on WOE: --woe is needed
    assert "--woe" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()
    assert predict("a.csv", "--woe", str(tmp_path / "bins")) == 0
    # A model trained on the raw columns is not given WOE-encoded rows.
    a_frame[["id", "income"]].to_csv(tmp_path / "a_raw.csv", index=False)  # no missing
    assert simulate_cli(tmp_path, out="raw", a="a_raw.csv") == 0
    capsys.readouterr()
    assert main(["predict", "--party-a", str(tmp_path / "a_raw.csv"), "--party-b",
                 str(tmp_path / "b.csv"), "--id-column", "id", "--model", str(tmp_path / "raw"),
                 "--out", str(tmp_path / "q.csv"), "--woe", str(tmp_path / "bins")]) == 2
    assert "raw columns" in capsys.readouterr().err
