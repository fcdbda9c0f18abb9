"""The signed audit record of horizontal and transfer runs, networked and in-process.

Each family's leader (the horizontal server, the transfer target) drafts the
record over the run's own connections; every party checks its own claims,
signs, and appends the same record to its own copy of the log. ``vfl
transfer --audit-log`` does the same in one process.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_horizontal_network import CLIENTS as H_CLIENTS
from test_horizontal_network import CONFIG as H_CONFIG
from test_horizontal_network import NAMES as H_NAMES
from test_horizontal_network import _frames as horizontal_frames
from test_horizontal_network import write_configs as write_horizontal
from test_transfer_processes import CONFIG as T_CONFIG
from test_transfer_processes import NAMES as T_NAMES
from test_transfer_processes import _frames as transfer_frames
from test_transfer_processes import write_configs as write_transfer
from three_parties import start, wait_all

from vfl.audit import AuditLog, dataset_fingerprint, table_fingerprint
from vfl.cli import main
from vfl.data import PartyTable
from vfl.net import create_federation_certificates
from vfl.party_config import load_party_config


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Certificates, data and a signing key for every party of both families."""
    folder = tmp_path_factory.mktemp("audit-families")
    create_federation_certificates(folder / "certs", sorted({*H_NAMES, *T_NAMES}))
    keys = folder / "keys"
    for name in sorted({*H_NAMES, *T_NAMES}):
        assert main(["audit", "keygen", "--party", name, "--out", str(keys)]) == 0
    data = {}
    for name, frame in zip(T_NAMES, transfer_frames()):
        data[name] = folder / f"transfer_{name}.csv"
        frame.to_csv(data[name], index=False, float_format="%.17g")
    for name, frame in zip(H_CLIENTS, horizontal_frames()):
        data[name] = folder / f"horizontal_{name}.csv"
        frame.to_csv(data[name], index=False, float_format="%.17g")
    return data, keys, folder / "certs"


def audit_tables(folder: Path, keys: Path, names) -> dict:
    return {n: (folder / "logs" / f"{n}.jsonl", keys / f"{n}.key") for n in names}


def run_all(configs: dict, names) -> dict:
    running = start(configs, names=names)
    codes = wait_all(running, timeout=120)
    return {"codes": codes, "logs": {n: r.output() for n, r in running.items()}}


def same_record_everywhere(folder: Path, names) -> dict:
    """Every copy holds one record, the same bytes; each verifies on its own."""
    texts = {n: (folder / "logs" / f"{n}.jsonl").read_bytes() for n in names}
    assert len(set(texts.values())) == 1, texts
    for name in names:
        assert main(["audit", "verify", str(folder / "logs" / f"{name}.jsonl")]) == 0
    (record,) = AuditLog(folder / "logs" / f"{names[0]}.jsonl").records()
    assert set(record.signatures) == set(names)
    assert set(record.keys) == set(names)
    return json.loads(texts[names[0]])


def overlap_table(path: Path, other: Path, party: str, *, label: bool) -> PartyTable:
    """The party's rows shared with `other`, in the agreed order (the shared IDs sorted)."""
    frame = pd.read_csv(path, dtype={"ID": str})
    table = PartyTable.from_frame(frame, party=party, id_column="ID",
                                  label_column="y" if label else None, is_label_holder=label)
    shared = sorted(set(table.ids) & set(pd.read_csv(other, dtype={"ID": str})["ID"]))
    position = {row_id: i for i, row_id in enumerate(table.ids)}
    return table.take(np.array([position[i] for i in shared]))


@pytest.mark.slow
def test_a_networked_transfer_run_appends_one_identical_record(tmp_path, setup):
    data, keys, certs = setup
    configs = write_transfer(tmp_path, data={"A": data["A"], "B": data["B"]}, certs=certs,
                             config=T_CONFIG, audit=audit_tables(tmp_path, keys, T_NAMES))
    result = run_all(configs, T_NAMES)
    assert set(result["codes"].values()) == {0}, result["logs"]
    record = same_record_everywhere(tmp_path, list(T_NAMES))
    out = tmp_path / "output"
    # Each party's model hash is the SHA-256 of the model file it wrote.
    assert record["model_hashes"] == {
        n: hashlib.sha256((out / n / f"model_{n}.json").read_bytes()).hexdigest()
        for n in T_NAMES}
    # Each fingerprint is over the party's overlap rows, in the agreed order.
    source = load_party_config(configs["A"])
    assert record["fingerprints"] == {
        "A": table_fingerprint(overlap_table(data["A"], data["B"], "A", label=True)),
        "B": table_fingerprint(overlap_table(data["B"], data["A"], "B", label=False)),
    }
    assert record["session"] == "transfer-test"
    assert record["config"] == {**T_CONFIG.to_dict(), "source": "A", "target": "B",
                                "alignment": source.alignment}
    assert record["metrics"]["epochs"] == T_CONFIG.epochs
    assert record["metrics"]["overlap_rows"] == 15
    assert all("audit record 0 appended" in text for text in result["logs"].values())


@pytest.mark.slow
def test_a_networked_horizontal_run_names_each_rounds_participants(tmp_path, setup):
    data, keys, certs = setup
    configs = write_horizontal(tmp_path, {n: data[n] for n in H_CLIENTS}, certs, H_CONFIG,
                               audit=audit_tables(tmp_path, keys, H_NAMES))
    result = run_all(configs, H_NAMES)
    assert set(result["codes"].values()) == {0}, result["logs"]
    record = same_record_everywhere(tmp_path, list(H_NAMES))
    assert record["config"]["participation"] == [
        {"round": r, "participants": list(H_CLIENTS), "dropped": []}
        for r in range(1, H_CONFIG.rounds + 1)]
    assert record["config"]["clients"] == list(H_CLIENTS)
    assert record["config"]["key_bits"] == 512
    history = json.loads((tmp_path / "output" / "S" / "history_S.json").read_text())
    assert record["metrics"]["rounds"] == H_CONFIG.rounds
    assert record["metrics"]["final_loss"] == history["history"][-1]["loss"]
    # Every client states its own rows; the server and every client the same global model.
    for name, frame in zip(H_CLIENTS, horizontal_frames()):
        assert record["fingerprints"][name] == dataset_fingerprint(
            [str(i) for i in range(len(frame))], ["a", "b"], frame[["a", "b"]].to_numpy(),
            frame["y"].to_numpy())
    assert set(record["fingerprints"]) == set(H_CLIENTS)
    assert set(record["model_hashes"]) == {"S", *H_CLIENTS}
    assert len(set(record["model_hashes"].values())) == 1


@pytest.mark.slow
def test_a_transfer_party_without_audit_stops_both_before_training(tmp_path, setup):
    data, keys, certs = setup
    configs = write_transfer(tmp_path, data={"A": data["A"], "B": data["B"]}, certs=certs,
                             config=T_CONFIG, audit=audit_tables(tmp_path, keys, ["A"]))
    result = run_all(configs, T_NAMES)
    assert 0 not in result["codes"].values(), result["logs"]
    for text in result["logs"].values():
        assert "auditing is configured at A but not at B" in text, text
    assert not (tmp_path / "output" / "A" / "model_A.json").exists()
    assert not (tmp_path / "output" / "B" / "checkpoints").exists() or not any(
        (tmp_path / "output" / "B" / "checkpoints").rglob("*epoch*"))
    assert not (tmp_path / "logs" / "A.jsonl").exists()


def test_the_transfer_cli_appends_a_record_signed_by_both(tmp_path, setup, capsys):
    data, keys, _ = setup
    log = tmp_path / "audit.jsonl"
    args = ["transfer", "--source", str(data["A"]), "--target", str(data["B"]),
            "--id-column", "ID", "--label-column", "y", "--hidden", "3", "--epochs", "2",
            "--key-bits", "512", "--insecure-key", "--seed", "3", "--audit-log", str(log),
            "--audit-keys", str(keys)]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    assert main(["audit", "verify", str(log)]) == 0
    (record,) = AuditLog(log).records()
    assert set(record.signatures) == set(record.keys) == {"A", "B"}
    out = tmp_path / "out"
    assert dict(record.model_hashes) == {
        n: hashlib.sha256((out / f"model_{n}.json").read_bytes()).hexdigest() for n in "AB"}
    assert dict(record.fingerprints) == {
        "A": table_fingerprint(overlap_table(data["A"], data["B"], "A", label=True)),
        "B": table_fingerprint(overlap_table(data["B"], data["A"], "B", label=False))}
    report = json.loads((out / "report.json").read_text())
    assert record.metrics["overlap_rows"] == report["overlap_rows"]
    assert record.metrics["final_loss"] == report["history"][-1]["loss"]
    assert record.config["source"] == "A" and record.config["target"] == "B"
    # A second run extends the chain.
    assert main([*args, "--out", str(tmp_path / "out2")]) == 0
    assert len(AuditLog(log).records()) == 2
    # A log whose pinned keys are not these parties' is refused before training.
    other = tmp_path / "other-keys"
    for name in "AB":
        assert main(["audit", "keygen", "--party", name, "--out", str(other)]) == 0
    capsys.readouterr()
    assert main([*args[:-1], str(other), "--out", str(tmp_path / "out3")]) == 2
    assert "pins another public key" in capsys.readouterr().err
    assert not (tmp_path / "out3").exists()
    assert main(["transfer", *args[1:-2], "--audit-log", str(log),
                 "--out", str(tmp_path / "out4")]) == 2


def test_the_horizontal_cli_appends_a_record_naming_each_rounds_participants(tmp_path, setup):
    data, keys, _ = setup
    log = tmp_path / "audit.jsonl"
    args = ["horizontal", *(a for n in H_CLIENTS for a in ("--client", str(data[n]))),
            "--label-column", "y", "--drop-column", "id", "--model", "logistic",
            "--rounds", "2", "--fraction", "0.67", "--min-clients", "2", "--seed", "4",
            "--key-bits", "512", "--insecure-key", "--audit-log", str(log),
            "--audit-keys", str(keys), "--out", str(tmp_path / "out")]
    assert main(args) == 0
    assert main(["audit", "verify", str(log)]) == 0
    (record,) = AuditLog(log).records()
    assert set(record.signatures) == set(record.keys) == set(H_NAMES)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    # The record names each round's participants, as the report does.
    assert record.config["participation"] == [
        {"round": h["round"], "participants": h["participants"], "dropped": h["dropped"]}
        for h in report["history"]]
    assert [r["round"] for r in record.config["participation"]] == [1, 2]
    assert all(len(r["participants"]) >= 2 and set(r["participants"]) <= set(H_CLIENTS)
               for r in record.config["participation"])
    for name, frame in zip(H_CLIENTS, horizontal_frames()):
        assert record.fingerprints[name] == dataset_fingerprint(
            [str(i) for i in range(len(frame))], ["a", "b"], frame[["a", "b"]].to_numpy(),
            frame["y"].to_numpy())
    assert set(record.model_hashes) == {"S", *H_CLIENTS}
    assert len(set(record.model_hashes.values())) == 1
    assert record.metrics["rounds"] == 2
