"""``vfl binning``: one file per party, edges only in the owner's, bad input refused."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from vfl.cli import main
from vfl.risk import Bins, woe_table

KEY = ["--key-bits", "512", "--insecure-key"]


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(7)
    n = 300
    x = rng.normal(size=(n, 3))
    y = (x[:, 0] + 0.5 * x[:, 2] + rng.normal(size=n) > 0).astype(int)
    ids = [f"c{i}" for i in range(n)]
    a = pd.DataFrame({"id": ids, "income": x[:, 0], "age": x[:, 1]})
    a.loc[::9, "age"] = np.nan  # 34 missing: a bin of their own
    b = pd.DataFrame({"id": ids[::-1], "default": y[::-1], "score": x[::-1, 2]})
    a.to_csv(tmp_path / "a.csv", index=False)
    b.to_csv(tmp_path / "b.csv", index=False)
    joined = b.merge(a, on="id")
    return tmp_path, joined


def args(tmp_path, *extra):
    return ["binning", "--party-a", str(tmp_path / "a.csv"), "--party-b", str(tmp_path / "b.csv"),
            "--id-column", "id", "--label-column", "default", "--out", str(tmp_path / "out"),
            *KEY, "--quiet", *extra]


def test_each_party_gets_its_file_with_edges_only_for_its_own_columns(files, capsys):
    tmp_path, joined = files
    assert main(args(tmp_path, "--bins", "4", "--min-bin-rows", "30", "--select-iv",
                     "0.05")) == 0
    a = json.loads((tmp_path / "out" / "binning_A1.json").read_text())
    b = json.loads((tmp_path / "out" / "binning_B.json").read_text())
    assert a["party"] == "A1" and b["party"] == "B" and a["rows"] == b["rows"] == 300
    assert [f["name"] for f in a["features"]] == ["income", "age"]
    for feature in a["features"]:
        bins = Bins(tuple(feature["edges"]), feature["missing_bin"])
        index = bins.assign(joined[feature["name"]].to_numpy(dtype=float))
        counts = np.bincount(index, minlength=bins.n_bins)
        events = np.bincount(index, weights=joined["default"], minlength=bins.n_bins)
        table = woe_table(counts, events.round().astype(int))
        assert feature["counts"] == counts.tolist() and feature["events"] is None
        np.testing.assert_allclose(feature["woe"], table.woe, rtol=1e-9)
        assert feature["selected"] == (table.iv >= 0.05) and min(counts) >= 30
        # B's file: the same column, anonymous, with events and no edges.
        twin = [f for f in b["features"] if f["owner"] == "A1"
                and f["counts"] == counts.tolist()]
        assert len(twin) == 1 and twin[0]["edges"] is None
        assert twin[0]["events"] == events.round().astype(int).tolist()
        assert twin[0]["name"].startswith("A1#") and twin[0]["iv"] == pytest.approx(table.iv)
    assert a["features"][1]["missing_bin"] == len(a["features"][1]["counts"]) - 1
    own = next(f for f in b["features"] if f["name"] == "score")
    assert own["edges"] is not None and own["events"] is not None
    assert "income" not in (tmp_path / "out" / "binning_B.json").read_text()


@pytest.mark.parametrize("extra, message", [
    (["--label-column", "y"], "party B: .*no label column 'y'"),
    (["--id-column", "key"], "party B: .*no ID column 'key'"),
    (["--method", "chimerge", "--bins", "10", "--prebins", "5"], "prebins"),
    (["--min-bin-rows", "5000"], "fewer than the minimum"),
    (["--bins", "3"], None),  # accepted: a control
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(files, capsys, extra, message):
    tmp_path, _ = files
    code = main(args(tmp_path, *extra))
    err = capsys.readouterr().err
    if message is None:
        assert code == 0
        return
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("vfl binning: error: ")
    assert re.search(message, err)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_small_keys_need_the_opt_out(files, capsys):
    tmp_path, _ = files
    argv = [a for a in args(tmp_path) if a != "--insecure-key"]
    assert main(argv) == 2
    assert "key" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_outputs_are_not_replaced_without_force(files, capsys):
    tmp_path, _ = files
    assert main(args(tmp_path)) == 0
    before = (tmp_path / "out" / "binning_B.json").read_text()
    assert main(args(tmp_path, "--bins", "3")) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "out" / "binning_B.json").read_text() == before
    assert main(args(tmp_path, "--bins", "3", "--force")) == 0
    assert json.loads((tmp_path / "out" / "binning_B.json").read_text())["config"]["bins"] == 3


def test_threshold_and_top_k_exclude_each_other(files, capsys):
    tmp_path, _ = files
    with pytest.raises(SystemExit) as exit_:
        main(args(tmp_path, "--select-iv", "0.1", "--select-top", "2"))
    assert exit_.value.code == 2
