"""``vfl audit verify``, ``show`` and ``keygen`` as a user runs them."""

from __future__ import annotations

import json
import stat

from vfl.audit import public_key_hex, verify
from vfl.audit.canonical import canonical_json
from vfl.cli import main


def tamper(path, position: int) -> None:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[position]["metrics"]["r2"] = 0.99
    path.write_text("".join(canonical_json(r) + "\n" for r in records))


def test_verify_intact_log(log_path, capsys):
    assert main(["audit", "verify", str(log_path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "4 records, chain and signatures intact"
    assert f"head hash: {verify(log_path).head_hash}" in out


def test_verify_names_the_first_failing_record(log_path, capsys):
    tamper(log_path, 2)
    tamper(log_path, 3)
    assert main(["audit", "verify", str(log_path)]) == 2
    captured = capsys.readouterr()
    assert "intact" not in captured.out
    assert "TamperedRecordError: record 2 (line 3)" in captured.err
    assert "record 3" not in captured.err


def test_verify_with_keyring_folder_and_expected_hash(log_path, party_keys, tmp_path, capsys):
    ring = tmp_path / "ring"
    ring.mkdir()
    for party, key in party_keys.items():
        (ring / f"{party}.pub").write_text(public_key_hex(key) + "\n")
    head = verify(log_path).head_hash
    assert main(["audit", "verify", str(log_path), "--keys", str(ring),
                 "--expect-hash", head]) == 0
    (ring / "B.pub").write_text(public_key_hex(party_keys["A1"]) + "\n")
    assert main(["audit", "verify", str(log_path), "--keys", str(ring)]) == 2
    assert "UntrustedKeyError: record 0 (line 1)" in capsys.readouterr().err
    assert main(["audit", "verify", str(log_path), "--expect-hash", "ab" * 32]) == 2
    assert "no record has the expected hash" in capsys.readouterr().err


def test_verify_missing_file_is_an_error(tmp_path, capsys):
    assert main(["audit", "verify", str(tmp_path / "nope.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_show_prints_one_row_per_record(log_path, capsys):
    assert main(["audit", "show", str(log_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["#", "time", "(UTC)"]
    rows = lines[2:]
    records = verify(log_path).records
    assert len(rows) == len(records)
    for row, record in zip(rows, records):
        assert row.startswith(str(record.index))
        assert record.session[:12] in row
        assert "A1,B,C" in row
        assert f"r2={record.metrics['r2']:.4g}" in row
        assert f"A1:{record.model_hashes['A1'][:8]}" in row
        for party, value in record.contributions.items():
            assert f"{party}={value:.4g}" in row
    assert rows[0].split()[-3] == "-"  # run 0 has no contributions


def test_show_stops_at_the_first_failing_record(log_path, capsys):
    tamper(log_path, 1)
    assert main(["audit", "show", str(log_path)]) == 2
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 3  # header, rule, record 0
    assert "record 1 (line 2)" in captured.err


def test_keygen_writes_a_key_pair_once(tmp_path, capsys):
    out = tmp_path / "keys"
    assert main(["audit", "keygen", "--party", "A1", "--out", str(out)]) == 0
    assert stat.S_IMODE((out / "A1.key").stat().st_mode) == 0o600
    assert "public key fingerprint:" in capsys.readouterr().out
    before = (out / "A1.key").read_bytes()
    assert main(["audit", "keygen", "--party", "A1", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "A1.key").read_bytes() == before
    assert main(["audit", "keygen", "--party", "../A1", "--out", str(out)]) == 2
    assert "party name" in capsys.readouterr().err
