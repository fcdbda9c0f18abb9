"""Nothing lost, nothing wrong: each class of failure of issue 17, with several cases each.

Classes here: wrong results that used to exit 0 (incomplete or mixed model
parts, overflow before encoding, ambiguous inputs, the session named in the
report, divergence); data loss (overwrites without --force, two runs into one
folder, audit checks before training); clear errors instead of tracebacks;
secrets that share no stream with sent values; what a feature holder is told.
The hostile-peer class is in tests/net/test_hostile_peer.py, the
cryptographic review's items in tests/crypto and tests/psi.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from parties import FeatureHolder, Federation, LabelHolder
from vfl.cli import main
from vfl.cli.common import write_outputs
from vfl.data import PartyTable, Standardizer, read_party_csv
from vfl.datasets import DIABETES_FEATURE_HOLDER_COLUMNS, load_diabetes, split_vertically
from vfl.errors import (
    ConfigError,
    InputDataError,
    InsecureSeedWarning,
    InvalidFeatureError,
    InvalidIDError,
    InvalidLabelError,
    ModelFileError,
    TrainingDivergedError,
)
from vfl.model import ModelPart, check_model_set
from vfl.training import TrainingConfig

ROOT = Path(__file__).resolve().parents[1]
SMALL_KEY = ["--key-bits", "512", "--insecure-key"]
ID, LABEL = "patient_id", "progression"


@pytest.fixture
def three_csvs(tmp_path) -> dict[str, Path]:
    """B and two feature holders (A1: age, sex; A2: bmi, bp) of the diabetes data."""
    a_frame, b_frame = split_vertically(
        load_diabetes(), id_column=ID, label_column=LABEL,
        feature_holder_columns=DIABETES_FEATURE_HOLDER_COLUMNS, seed=1)
    paths = {"A1": tmp_path / "A1.csv", "A2": tmp_path / "A2.csv", "B": tmp_path / "B.csv"}
    a_frame[[ID, "age", "sex"]].to_csv(paths["A1"], index=False)
    a_frame[[ID, "bmi", "bp"]].to_csv(paths["A2"], index=False)
    b_frame.to_csv(paths["B"], index=False)
    return paths


def simulate(paths, out, *extra, holders=("A1", "A2")) -> int:
    args = ["simulate", "--party-b", str(paths["B"]), "--id-column", ID,
            "--label-column", LABEL, "--epochs", "3", "--learning-rate", "0.1",
            "--out", str(out), "--seed", "3", "--quiet", *SMALL_KEY, *extra]
    for name in holders:
        args += ["--party-a", str(paths[name])]
    return main(args)


def predict(paths, model, out, *extra, holders=("A1", "A2")) -> int:
    args = ["predict", "--party-b", str(paths["B"]), "--id-column", ID, "--model", str(model),
            "--out", str(out), *extra]
    for name in holders:
        args += ["--party-a", str(paths[name])]
    return main(args)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# --- wrong results that exit 0 ---------------------------------------------------------


@pytest.fixture
def trained(three_csvs, tmp_path) -> Path:
    out = tmp_path / "model"
    assert simulate(three_csvs, out) == 0
    return out


def test_a_model_is_one_complete_set_of_parts_from_one_run(three_csvs, trained, tmp_path,
                                                           capsys):
    capsys.readouterr()
    # A feature holder left out (its part still in the folder): refused, not predicted without.
    assert predict(three_csvs, trained, tmp_path / "p.csv", holders=("A1",)) == 2
    assert "model_A2.json" in one_error_line(capsys)
    # ...also when the left-out part is gone: the parts record who trained them.
    (trained / "model_A2.json").unlink()
    assert predict(three_csvs, trained, tmp_path / "p.csv", holders=("A1",)) == 2
    assert "the part of A2 is missing" in one_error_line(capsys)
    assert not (tmp_path / "p.csv").exists()


def _parts(trained: Path) -> dict[str, ModelPart]:
    return {n: ModelPart.load(trained / f"model_{n}.json", party=n) for n in ("A1", "A2", "B")}


@pytest.mark.parametrize("change, words", [
    (lambda p: {**p, "A2": ModelPart(**{**vars(p["A2"]), "session": "another-run"})},
     "different training runs"),
    (lambda p: {**p, "A1": ModelPart(**{**vars(p["A1"]), "model": "logistic"})},
     "different kinds"),
    (lambda p: {**p, "A1": ModelPart(**{**vars(p["A1"]), "weights": [float("nan"), 1.0]})},
     "not a finite number"),
    (lambda p: {**p, "B": ModelPart(**{**vars(p["B"]), "intercept": None})},
     "no finite intercept"),
    (lambda p: {"A1": p["A1"], "A2": p["A2"]}, "got 0"),
    (lambda p: {**p, "A3": ModelPart(**{**vars(p["A2"]), "party": "A3"})},
     "A3 took no part"),
])
def test_mixed_or_damaged_parts_are_refused_by_name(trained, change, words):
    with pytest.raises(ModelFileError, match=words):
        check_model_set(change(_parts(trained)))


def test_a_damaged_part_file_is_refused_when_loaded(trained):
    path = trained / "model_A1.json"
    data = json.loads(path.read_text())
    data["weights"][0] = None
    path.write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match="not a finite number"):
        ModelPart.load(path, party="A1")


def test_a_part_saved_by_0_1_still_loads(trained):
    path = trained / "model_B.json"
    data = json.loads(path.read_text())
    data["format"] = "vfl-linear-model-part/1"
    del data["members"]
    path.write_text(json.dumps(data))
    assert ModelPart.load(path, party="B").members == []


def test_report_and_audit_name_the_session_that_trained_the_saved_models(three_csvs, tmp_path):
    keys = tmp_path / "keys"
    for name in ("A1", "A2", "B", "C"):
        assert main(["audit", "keygen", "--party", name, "--out", str(keys)]) == 0
    out, log = tmp_path / "run", tmp_path / "audit.jsonl"
    assert simulate(three_csvs, out, "--audit-log", str(log), "--audit-keys", str(keys)) == 0
    session = json.loads((out / "report.json").read_text())["session"]
    assert {ModelPart.load(out / f"model_{n}.json").session for n in ("A1", "A2", "B")} == {
        session}
    assert json.loads(log.read_text().splitlines()[-1])["session"] == session


@pytest.mark.parametrize("values, words", [
    ([1e200, 2e200, -3e200, 4e200], "too large to standardise"),
    ([1e155, 1e155, 3e155, 2e155], "too large to standardise"),
])
def test_overflow_before_encoding_is_an_error_not_zeros(values, words):
    frame = pd.DataFrame({"id": ["1", "2", "3", "4"], "x": values, "z": [1.0, 2.0, 3.0, 5.0]})
    table = PartyTable.from_frame(frame, party="A1", id_column="id")
    with pytest.raises(InvalidFeatureError, match=f"'x' .* {words}"), warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy overflow warning on the way
        Standardizer.fit(table, True)


def test_duplicate_column_names_are_refused_in_files_and_frames(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("id,x,x,y\n1,1,2,3\n2,4,5,6\n")
    with pytest.raises(InputDataError, match=r"more than one column named 'x'"):
        read_party_csv(path, party="A1", id_column="id")
    path.write_text("id,x,id\n1,1,2\n2,4,5\n")  # an ID column twice: which one holds the IDs?
    with pytest.raises(InputDataError, match=r"more than one column named 'id'"):
        read_party_csv(path, party="A1", id_column="id")
    frame = pd.DataFrame([[1, 2.0, 3.0]], columns=["id", "x", "x"])
    with pytest.raises(InputDataError, match="more than one column named 'x'"):
        FeatureHolder(frame, id_column="id")


@pytest.mark.parametrize("ids", [
    [2.0**53, 1.0, 2.0],                    # 9007199254740992.0: 2**53 + 1 reads the same
    [1e17, 3.0, 4.0],
    [-2.0**60, 3.0, 4.0],
])
def test_float_ids_a_float64_cannot_hold_exactly_are_refused(ids):
    frame = pd.DataFrame({"id": ids, "x": [1.0, 2.0, 3.0]})
    with pytest.raises(InvalidIDError, match="too large to be exact"):
        FeatureHolder(frame, id_column="id")


def test_exact_float_and_text_ids_still_match():
    frame = pd.DataFrame({"id": [2.0**53 - 1, 7.0], "x": [1.0, 2.0]})
    assert FeatureHolder(frame, id_column="id").table.ids == ["9007199254740991", "7"]


@pytest.mark.parametrize("command", ["simulate", "predict", "align"])
def test_the_same_file_for_two_parties_is_refused(three_csvs, trained, tmp_path, command,
                                                  capsys):
    paths = {**three_csvs, "A2": three_csvs["A1"]}
    capsys.readouterr()
    if command == "simulate":
        code = simulate(paths, tmp_path / "x")
    elif command == "predict":
        code = predict(paths, trained, tmp_path / "p.csv")
    else:
        code = main(["align", "--party-b", str(paths["B"]), "--party-a", str(paths["A1"]),
                     "--party-a", str(paths["A2"]), "--id-column", ID, "--out",
                     str(tmp_path / "x")])
    assert code == 2
    assert "A1 and A2 are both given" in one_error_line(capsys)
    assert not (tmp_path / "x").exists() and not (tmp_path / "p.csv").exists()


def test_a_diverging_run_is_an_error_and_writes_nothing(three_csvs, tmp_path, capsys):
    out = tmp_path / "run"
    assert simulate(three_csvs, out, "--learning-rate", "40", "--epochs", "6") == 2
    line = one_error_line(capsys)
    assert "diverged" in line or "did not converge" in line
    assert "lower the learning rate" in line
    assert not out.exists()


def test_divergence_is_caught_in_the_federation_too(parties, coordinator):
    a, b = parties
    config = TrainingConfig(epochs=8, learning_rate=40.0)
    with pytest.raises(TrainingDivergedError, match="lower the learning rate"):
        Federation(coordinator, b, a, config=config).fit()
    assert b.model_ is None and a.model_ is None


# --- data loss ---------------------------------------------------------------------------


def test_simulate_never_overwrites_an_earlier_run_without_force(three_csvs, trained, capsys):
    before = snapshot(trained)
    capsys.readouterr()
    assert simulate(three_csvs, trained) == 2
    line = one_error_line(capsys)
    assert "already exists" in line and "--force" in line
    assert snapshot(trained) == before
    assert simulate(three_csvs, trained, "--force") == 0
    after = snapshot(trained)
    assert after.keys() == before.keys() and after != before


def test_predict_never_writes_onto_a_model_or_an_existing_file(three_csvs, trained, tmp_path,
                                                              capsys):
    before = snapshot(trained)
    capsys.readouterr()
    assert predict(three_csvs, trained, trained / "model_B.json") == 2
    assert "model file" in one_error_line(capsys)
    existing = tmp_path / "old.csv"
    existing.write_text("keep me\n")
    assert predict(three_csvs, trained, existing) == 2
    assert "already exists" in one_error_line(capsys)
    assert existing.read_text() == "keep me\n" and snapshot(trained) == before
    assert predict(three_csvs, trained, existing, "--force") == 0
    assert existing.read_text().startswith(ID)


@pytest.mark.parametrize("target", ["file", "folder"])
def test_an_output_path_that_cannot_be_one_is_a_clear_error(three_csvs, trained, tmp_path,
                                                            target, capsys):
    capsys.readouterr()
    if target == "file":  # --out DIR names an existing file
        path = tmp_path / "afile"
        path.write_text("x")
        assert simulate(three_csvs, path) == 2
        assert "is not a folder" in one_error_line(capsys)
    else:  # --out CSV names a folder
        assert predict(three_csvs, trained, tmp_path) == 2
        assert "is a folder" in one_error_line(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_output_folder_is_refused_before_training(three_csvs, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert simulate(three_csvs, locked / "run") == 2
    assert "permission denied" in one_error_line(capsys)


def test_two_runs_into_one_folder_never_overwrite_each_other(tmp_path):
    out = tmp_path / "out"

    def the_other_run_finishes_first() -> None:
        (out / "report.json").write_text("the other run's report\n")

    with pytest.raises(InputDataError, match="appeared while this run was working"):
        write_outputs(str(out), {"model.json": "mine\n", "report.json": "mine\n"}, [],
                      before_publish=the_other_run_finishes_first)
    assert (out / "report.json").read_text() == "the other run's report\n"
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]  # nothing of this run


def test_a_broken_audit_log_is_refused_before_training(three_csvs, tmp_path, capsys):
    keys = tmp_path / "keys"
    for name in ("A1", "A2", "B", "C"):
        main(["audit", "keygen", "--party", name, "--out", str(keys)])
    log = tmp_path / "audit.jsonl"
    assert simulate(three_csvs, tmp_path / "first", "--audit-log", str(log),
                    "--audit-keys", str(keys)) == 0
    log.write_text(log.read_text().replace('"metrics"', '"metrix"', 1))
    capsys.readouterr()
    out = tmp_path / "second"
    assert simulate(three_csvs, out, "--audit-log", str(log), "--audit-keys", str(keys)) == 2
    one_error_line(capsys)
    assert not out.exists()


def test_keys_the_log_does_not_pin_are_refused_before_training(three_csvs, tmp_path, capsys):
    keys, other = tmp_path / "keys", tmp_path / "other"
    for name in ("A1", "A2", "B", "C"):
        main(["audit", "keygen", "--party", name, "--out", str(keys)])
    main(["audit", "keygen", "--party", "B", "--out", str(other)])
    for name in ("A1", "A2", "C"):
        for suffix in (".key", ".pub"):
            (other / f"{name}{suffix}").write_bytes((keys / f"{name}{suffix}").read_bytes())
            os.chmod(other / f"{name}{suffix}", 0o600)
    log = tmp_path / "audit.jsonl"
    assert simulate(three_csvs, tmp_path / "first", "--audit-log", str(log),
                    "--audit-keys", str(keys)) == 0
    capsys.readouterr()
    out = tmp_path / "second"
    assert simulate(three_csvs, out, "--audit-log", str(log), "--audit-keys", str(other)) == 2
    assert "pins another public key for B" in one_error_line(capsys)
    assert not out.exists()


# --- clear errors -------------------------------------------------------------------------


@pytest.mark.parametrize("model, labels", [("linear", [3.0] * 6), ("logistic", [1, 1, 1, 1, 1, 1]),
                                           ("logistic", [0] * 6)])
def test_constant_labels_are_a_clear_error(coordinator, model, labels):
    rng = np.random.default_rng(0)
    ids = [str(i) for i in range(6)]
    a = FeatureHolder(pd.DataFrame({"id": ids, "x": rng.normal(size=6)}), id_column="id")
    b = LabelHolder(pd.DataFrame({"id": ids, "y": labels, "z": rng.normal(size=6)}),
                    id_column="id", label_column="y")
    config = TrainingConfig(model=model, epochs=1, min_batch_factor=1)
    with pytest.raises(InvalidLabelError, match=r"'y' .* in every aligned row"):
        Federation(coordinator, b, a, config=config).fit()


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_a_seed_must_be_a_non_negative_integer(frames, seed):
    with pytest.raises(ConfigError, match="seed must be a non-negative integer"):
        FeatureHolder(frames[0], id_column=ID, seed=seed)


def test_a_negative_seed_at_the_cli_is_one_line(three_csvs, tmp_path, capsys):
    capsys.readouterr()
    assert simulate(three_csvs, tmp_path / "x", "--seed", "-4") == 2
    assert "seed must be a non-negative integer" in one_error_line(capsys)


def test_batch_advice_fits_the_batch(coordinator):
    rng = np.random.default_rng(1)
    ids = [str(i) for i in range(12)]
    a = FeatureHolder(pd.DataFrame({"id": ids, **{f"x{k}": rng.normal(size=12)
                                                  for k in range(8)}}), id_column="id")
    b = LabelHolder(pd.DataFrame({"id": ids, "y": rng.normal(size=12)}), id_column="id",
                    label_column="y")
    with pytest.raises(ValueError, match="add rows or drop features") as full:
        Federation(coordinator, b, a, config=TrainingConfig(epochs=1)).fit()
    assert "raise the batch size" not in str(full.value)


# --- secrets and what is sent -----------------------------------------------------------------


def test_a_seed_warns_that_secrets_become_predictable(frames):
    with pytest.warns(InsecureSeedWarning, match="predictable"):
        FeatureHolder(frames[0], id_column=ID, seed=4)


def test_the_shipped_example_configurations_set_no_seed():
    for path in (ROOT / "examples" / "three-parties").glob("*.toml"):
        assert "\nseed" not in path.read_text() and not path.read_text().startswith("seed")


def test_unseeded_secrets_and_sent_seeds_come_from_separate_os_randomness(parties, coordinator,
                                                                          monkeypatch):
    import secrets
    import types

    from parties.vertical import data_party

    asked: list[int] = []

    def randbits(bits: int) -> int:
        asked.append(bits)
        return secrets.randbits(bits)

    # Only the parties' own module sees the counting stand-in.
    monkeypatch.setattr(data_party, "secrets", types.SimpleNamespace(randbits=randbits))
    a, b = parties
    a.seed = b.seed = None
    Federation(coordinator, b, a, config=TrainingConfig(epochs=2)).fit()
    # One 256-bit key per party's secrets; every seed B sent came from 63 fresh bits.
    assert asked.count(256) == 2
    assert asked.count(63) == 1 + 2  # the split seed and one batch seed per epoch


def test_seeded_sent_seeds_do_not_come_from_the_secrets_stream(parties, coordinator):
    a, b = parties
    Federation(coordinator, b, a, config=TrainingConfig(epochs=2)).fit()
    secrets_stream = np.random.default_rng(np.random.SeedSequence(b.seed).spawn(2)[0])
    drawn = set(secrets_stream.integers(0, 2**63 - 1, size=50).tolist())
    assert not drawn & {b.split_seed_, *b.batch_seeds_}


def test_a_feature_holder_hears_of_validation_progress_only_when_it_must(parties, coordinator):
    a, b = parties
    for stopping, told in (("loss", False), ("validation", True)):
        config = TrainingConfig(epochs=4, validation_fraction=0.2, early_stopping=stopping,
                                tol=1e-9)
        fed = Federation(coordinator, b, a, config=config, record=True).fit()
        ends = [e.body for e in fed.network_.received_by(a.name) if e.step == "EpochEnd"]
        assert ends and any(e.best for e in ends) is told


def test_parties_with_different_alignment_settings_say_so(frames, coordinator):
    a_frame, b_frame = frames
    from vfl.errors import ConfigMismatchError
    from vfl.protocol.channel import InProcessNetwork
    from vfl.psi import get_alignment
    from vfl.psi.federation import align_as_feature_holder, align_as_label_holder
    from vfl.runtime.inprocess import run_parties

    a = FeatureHolder(a_frame, id_column=ID, name="A1")
    b = LabelHolder(b_frame, id_column=ID, label_column=LABEL)
    network = InProcessNetwork(["A1", "B"], "mismatch", timeout=10)
    with pytest.raises(ConfigMismatchError, match="aligns with the 'hash' method, this party "
                                                  "with 'ecdh'"):
        run_parties(network, {
            "A1": lambda ep: align_as_feature_holder(a.table.ids, ep, "B",
                                                     get_alignment("hash")),
            "B": lambda ep: align_as_label_holder(b.table.ids, ep, ["A1"],
                                                  get_alignment("ecdh"))}, prefer="B")


@pytest.mark.parametrize("days", ["0", "-3", "100000000", "x"])
def test_certificate_lifetimes_out_of_range_are_one_line(tmp_path, days, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["certs", "--out", str(tmp_path / "c"), "--parties", "A1,B,C", "--days", days])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err and "--days" in err
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("bits", ["100", "2047", "65536"])
def test_key_sizes_outside_what_the_engines_support_are_one_line(three_csvs, tmp_path, bits,
                                                                 capsys):
    capsys.readouterr()
    code = main(["simulate", "--party-b", str(three_csvs["B"]), "--party-a",
                 str(three_csvs["A1"]), "--id-column", ID, "--label-column", LABEL,
                 "--out", str(tmp_path / "x"), "--key-bits", bits, "--insecure-key"])
    assert code == 2
    assert "key_bits must be an even number from 128 to 8192" in one_error_line(capsys)


@pytest.mark.parametrize("listen", ["127.0.0.1:99999", "127.0.0.1:http", "127.0.0.1:0",
                                    ":5000"])
def test_a_listen_address_with_an_invalid_port_is_refused(tmp_path, listen):
    from vfl.errors import ConfigFileError
    from vfl.party_config import load_party_config

    path = tmp_path / "C.toml"
    path.write_text(f'role = "coordinator"\nname = "C"\nrun_id = "r"\nlisten = "{listen}"\n'
                    'output = "out"\ninsecure_transport = true\n[federation]\n'
                    'feature_holders = ["A1"]\n[peers]\nA1 = "127.0.0.1:5001"\n'
                    'B = "127.0.0.1:5002"\n')
    with pytest.raises(ConfigFileError, match="listen must be host:port with a port from 1"):
        load_party_config(path)


def test_a_port_already_in_use_is_one_line(tmp_path, capsys):
    import socket

    from three_parties import write_configs, write_diabetes_csvs

    configs = write_configs(tmp_path, write_diabetes_csvs(tmp_path), None,
                            TrainingConfig(epochs=1), connect_timeout=1.0)
    text = configs["A1"].read_text()
    listen = next(line.split('"')[1] for line in text.splitlines()
                  if line.startswith("listen"))
    host, port = listen.rsplit(":", 1)
    with socket.socket() as busy:
        busy.bind((host, int(port)))
        busy.listen()
        capsys.readouterr()
        assert main(["party", "--config", str(configs["A1"]), "--quiet"]) == 2
    line = one_error_line(capsys)
    assert f"cannot listen on {listen}" in line and "party A1" in line


def test_a_party_never_overwrites_an_earlier_result_without_force(tmp_path, capsys):
    from three_parties import write_configs, write_diabetes_csvs

    configs = write_configs(tmp_path, write_diabetes_csvs(tmp_path), None,
                            TrainingConfig(epochs=1), connect_timeout=1.0)
    out = tmp_path / "output" / "A1"
    out.mkdir(parents=True)
    (out / "model_A1.json").write_text("an earlier run's model\n")
    capsys.readouterr()
    assert main(["party", "--config", str(configs["A1"]), "--quiet"]) == 2
    assert "already exists" in one_error_line(capsys)
    assert (out / "model_A1.json").read_text() == "an earlier run's model\n"
