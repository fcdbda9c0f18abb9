"""Federated binning as ``vfl party`` processes (``[federation] kind = "binning"``, a
``[binning]`` table) with mutual TLS: each party's file equals the in-process run's, and the
files train a WOE-encoded model with ``vfl simulate --woe``; bad binning files are one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from three_parties import start, wait_all, write_csvs

from parties.binning import (
    BinningConfig,
    BinningCoordinator,
    BinningFeatureHolder,
    BinningLabelHolder,
    run_binning,
)
from vfl.cli import main
from vfl.errors import ConfigFileError
from vfl.net import create_federation_certificates
from vfl.party_config import load_party_config
from vfl.runtime.loopback import free_loopback_ports, write_binning_loopback_configs

NAMES = ("C", "B", "A1")
CONFIG = BinningConfig(method="chimerge", bins=4, prebins=8, min_bin_rows=25, select_top=3)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("certs")
    create_federation_certificates(folder, NAMES)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(4)
    n = 300
    x = rng.normal(size=(n, 4))
    y = (x @ [1.0, -0.7, 0.5, 0.3] + rng.logistic(size=n) > 0).astype(int)
    ids = [f"k{i}" for i in range(n)]
    a = pd.DataFrame({"id": ids, "income": x[:, 0], "age": x[:, 1]})
    a.loc[::8, "age"] = np.nan
    b = pd.DataFrame({"id": ids[::-1], "default": y[::-1], "score": x[::-1, 2],
                      "debt": x[::-1, 3]})
    folder = tmp_path_factory.mktemp("data")
    return write_csvs(folder, {"A1": a, "B": b}), a, b


def write_configs(folder, data, certs):
    paths, _, _ = data
    return write_binning_loopback_configs(
        folder, run_id="binning-test", ports=free_loopback_ports(NAMES),
        label_holder=("B", paths["B"]), feature_holders=[("A1", paths["A1"])],
        id_column="id", label_column="default", config=CONFIG, certs=certs, key_bits=512,
        insecure_key=True, timeout=30.0, connect_timeout=20.0)


@pytest.mark.slow
def test_networked_binning_equals_the_in_process_run_and_trains_woe(tmp_path, data, certs):
    paths, a_frame, b_frame = data
    configs = write_configs(tmp_path, data, certs)
    assert load_party_config(configs["A1"]).binning == CONFIG
    running = start(configs, names=NAMES)
    codes = wait_all(running, timeout=90)
    assert set(codes.values()) == {0}, {n: r.output()[-2000:] for n, r in running.items()}
    out = tmp_path / "output"
    files = {p: json.loads((out / p / f"binning_{p}.json").read_text()) for p in ("A1", "B")}
    assert files["A1"]["session"] == files["B"]["session"] == "binning-test"
    summary = json.loads((out / "C" / "summary_C.json").read_text())
    assert summary["decrypted_values"] > 0 and set(summary) == {"run_id", "decrypted_values"}

    a = BinningFeatureHolder(a_frame, id_column="id")
    b = BinningLabelHolder(b_frame, id_column="id", label_column="default")
    run_binning(b, a, BinningCoordinator(key_bits=512, insecure_key=True), CONFIG)
    local = {"A1": a.report(), "B": b.report()}
    for party in ("A1", "B"):
        own = [f for f in files[party]["features"] if f["owner"] == party]
        expected = [f for f in local[party]["features"] if f["owner"] == party]
        assert own == expected  # edges, counts, WOE, IV, selection: every bit
    # B's anonymous view of A1's columns: the same bins (the order is A1's secret).
    def anonymous(report):
        return sorted((f["counts"], f["events"], f["woe"]) for f in report["features"]
                      if f["owner"] == "A1")

    assert anonymous(files["B"]) == anonymous(local["B"])

    # The parties' files, gathered, train a WOE-encoded model.
    woe = tmp_path / "woe"
    woe.mkdir()
    for party in ("A1", "B"):
        shutil.copy(out / party / f"binning_{party}.json", woe)
    assert main(["simulate", "--party-a", str(paths["A1"]), "--party-b", str(paths["B"]),
                 "--id-column", "id", "--label-column", "default", "--model", "logistic",
                 "--epochs", "2", "--out", str(tmp_path / "run"), "--woe", str(woe),
                 "--key-bits", "512", "--insecure-key", "--quiet"]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    selected = {p: [f["name"] for f in files[p]["features"] if f["owner"] == p and f["selected"]]
                for p in ("A1", "B")}
    assert report["woe"]["columns"] == selected


@pytest.mark.parametrize(("name", "edit", "words"), [
    ("A1", ("bins = 4", "bins = 1"), "bins must be at least 2"),
    ("B", ("[binning]", "[training]\nepochs = 2\n\n[binning]"), "training"),
    ("C", ("[binning]", "[binning]\nfolds = 3"), "folds"),
    ("A1", ('kind = "binning"', 'kind = "horizontal"'), "kind"),
    ("B", ("[federation]", "seed = 3\n\n[federation]"), "seed"),
])
def test_a_bad_binning_party_file_is_one_line_naming_file_and_key(tmp_path, data, certs, capsys,
                                                                  name, edit, words):
    path = write_configs(tmp_path, data, certs)[name]
    text = path.read_text()
    assert edit[0] in text, text
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(ConfigFileError, match=words) as error:
        load_party_config(path)
    assert str(path) in str(error.value)
    assert main(["party", "--config", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0], lines


def test_the_binning_family_is_stated_and_the_vertical_one_unchanged(tmp_path, data, certs):
    configs = write_configs(tmp_path, data, certs)
    config = load_party_config(configs["B"])
    assert (config.kind, config.role, config.epochs) == ("binning", "label_holder", 0)
    assert config.feature_holders == ("A1",) and config.binning == CONFIG
    assert set(config.peers) == {"A1", "C"}
    # Without the kind, the same roles are a vertical party's, and [binning] is refused.
    path = configs["C"]
    path.write_text(path.read_text().replace('kind = "binning"\n', ""))
    with pytest.raises(ConfigFileError, match="binning"):
        load_party_config(path)
