"""A signed audit record of a run of three ``vfl party`` processes, one log copy each.

Every party signs the record after checking its own fingerprint and model
hash, and appends it to its own copy; the copies stay byte-identical and
each verifies on its own.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from three_parties import KEY_BITS, models, start, wait_all, write_configs, write_diabetes_csvs

from vfl.audit import AuditLog, model_part_hash, table_fingerprint
from vfl.cli import main
from vfl.data import PartyTable, read_party_csv
from vfl.errors import ConfigFileError
from vfl.net import create_federation_certificates
from vfl.party_config import load_party_config
from vfl.training import TrainingConfig

NAMES = ("C", "B", "A1")
CONFIG = TrainingConfig(epochs=2, learning_rate=0.1, batch_size=100,
                        validation_fraction=0.2)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Data, TLS certificates and one signing key per party."""
    folder = tmp_path_factory.mktemp("audit-net")
    create_federation_certificates(folder / "certs", NAMES)
    data = write_diabetes_csvs(folder)
    keys = folder / "keys"
    for name in NAMES:
        assert main(["audit", "keygen", "--party", name, "--out", str(keys)]) == 0
    return data, keys, folder / "certs"


ROOT_EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "three-parties"


def run(folder: Path, data: dict, certs: Path, audit: dict, *, attempt: int = 0,
        run_id: str = "test-run") -> dict:
    """Run the three parties; `audit` gives each party that audits its (log, key).

    A new run id starts afresh: the last run's outputs and checkpoints go.
    """
    if run_id != "test-run":
        shutil.rmtree(folder / "output", ignore_errors=True)
    configs = write_configs(folder, data, certs, CONFIG, timeout=20, connect_timeout=15,
                            audit=audit, run_id=run_id)
    running = start(configs, attempt=attempt)
    codes = wait_all(running, timeout=90)
    return {"codes": codes, "logs": {n: r.output() for n, r in running.items()}}


def audit_tables(folder: Path, keys: Path, names=NAMES) -> dict:
    return {n: (folder / "logs" / f"{n}.jsonl", keys / f"{n}.key") for n in names}


def aligned_table(path: Path, other: Path, party: str, *, label: bool) -> PartyTable:
    """The party's rows shared with `other`, in training order: the shared IDs sorted
    (vfl.psi.federation), recomputed here from the two CSV files."""
    frame = read_party_csv(path, party=party, id_column="patient_id")
    table = PartyTable.from_frame(frame, party=party, id_column="patient_id",
                                  label_column="progression", is_label_holder=label)
    shared = sorted(set(table.ids) & set(read_party_csv(
        other, party="other", id_column="patient_id")["patient_id"].astype(str)))
    position = {row_id: i for i, row_id in enumerate(table.ids)}
    return table.take(np.array([position[i] for i in shared]))


def test_three_processes_sign_and_keep_identical_copies(tmp_path, setup, capsys):
    data, keys, certs = setup
    audit = audit_tables(tmp_path, keys)
    first = run(tmp_path, data, certs, audit)
    assert first["codes"] == {"C": 0, "B": 0, "A1": 0}, \
        {n: text[-2000:] for n, text in first["logs"].items()}
    copies = {n: audit[n][0].read_bytes() for n in NAMES}
    assert copies["A1"] == copies["B"] == copies["C"] and copies["B"].count(b"\n") == 1
    for name in NAMES:
        assert "audit record 0 appended" in first["logs"][name]
        capsys.readouterr()
        assert main(["audit", "verify", str(audit[name][0]), "--keys", str(keys)]) == 0
        assert "1 record" in capsys.readouterr().out

    # What the record states, recomputed without the parties' help.
    record = json.loads(copies["B"])
    parts = models(tmp_path)
    assert record["model_hashes"] == {n: model_part_hash(p) for n, p in parts.items()}
    a_rows = aligned_table(data["A1"], data["B"], "A1", label=False)
    b_rows = aligned_table(data["B"], data["A1"], "B", label=True)
    assert record["fingerprints"] == {"A1": table_fingerprint(a_rows),
                                      "B": table_fingerprint(b_rows)}
    history = json.loads((tmp_path / "output" / "B" / "history_B.json").read_text())
    assert record["session"] == "test-run"
    assert record["metrics"]["aligned_rows"] == history["aligned_rows"] == len(a_rows)
    assert record["metrics"]["epochs"] == len(history["history"]) == CONFIG.epochs
    assert record["metrics"]["final_loss"] == history["history"][-1]["loss"]
    assert record["metrics"]["final_validation_loss"] == \
        history["history"][-1]["validation_loss"]
    assert record["config"]["learning_rate"] == CONFIG.learning_rate
    assert record["config"]["key_bits"] == KEY_BITS
    assert set(record["signatures"]) == set(record["keys"]) == set(NAMES)

    # A second run (a new training: another run id) appends record 1 to every copy.
    second = run(tmp_path, data, certs, audit, attempt=1, run_id="test-run-2")
    assert second["codes"] == {"C": 0, "B": 0, "A1": 0}, \
        {n: text[-2000:] for n, text in second["logs"].items()}
    copies = {n: audit[n][0].read_bytes() for n in NAMES}
    assert copies["A1"] == copies["B"] == copies["C"] and copies["B"].count(b"\n") == 2
    records = AuditLog(audit["A1"][0]).records()
    assert [r.index for r in records] == [0, 1]
    assert records[1].prev_hash == records[0].hash
    assert records[1].session == "test-run-2"

    # A1's copy loses its last record: the copies have diverged, every party
    # stops before anyone signs, and no copy changes.
    audit["A1"][0].write_bytes(copies["A1"].splitlines(keepends=True)[0])
    third = run(tmp_path, data, certs, audit, attempt=2, run_id="test-run-3")
    assert set(third["codes"].values()) == {2}, third
    assert "A1's copy of the audit log ends at hash" in third["logs"]["B"], third["logs"]["B"]
    assert "B stopped: BrokenChainError" in third["logs"]["C"]
    assert audit["B"][0].read_bytes() == audit["C"][0].read_bytes() == copies["B"]
    assert audit["A1"][0].read_bytes().count(b"\n") == 1


def test_a_party_without_audit_stops_every_party(tmp_path, setup):
    data, keys, certs = setup
    audit = audit_tables(tmp_path, keys, names=("C", "B"))
    result = run(tmp_path, data, certs, audit)
    assert set(result["codes"].values()) == {2}, result
    assert "auditing is configured at B, C but not at A1" in result["logs"]["B"], \
        result["logs"]["B"][-2000:]
    for name in ("A1", "C"):
        assert "B stopped: ConfigMismatchError" in result["logs"][name], \
            result["logs"][name][-2000:]
    assert not any(path.exists() for path, _ in audit.values())
    assert not (tmp_path / "output" / "B" / "model_B.json").exists()


def test_the_audit_table_is_checked(tmp_path):
    text = (ROOT_EXAMPLE / "B.toml").read_text()
    path = tmp_path / "B.toml"
    path.write_text(text + '\n[audit]\nlog = "audit.jsonl"\nkey = "B.key"\n')
    config = load_party_config(path)
    assert (config.audit_log, config.audit_key) == (tmp_path / "audit.jsonl",
                                                    tmp_path / "B.key")
    path.write_text(text + '\n[audit]\nlog = "audit.jsonl"\nkey = "B.key"\nkeys = "x"\n')
    with pytest.raises(ConfigFileError, match=r"B\.toml: audit\.keys is not a known setting"):
        load_party_config(path)
    path.write_text(text + '\n[audit]\nlog = "audit.jsonl"\n')
    with pytest.raises(ConfigFileError, match=r"audit\.key is missing"):
        load_party_config(path)
    assert load_party_config(ROOT_EXAMPLE / "B.toml").audit_log is None
