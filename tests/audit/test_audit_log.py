"""Appending signed records, and verify() catching every kind of tampering at the right record."""

from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import sys
import threading

import pytest

from vfl.audit import (
    GENESIS_HASH,
    AuditLog,
    AuditRecord,
    PartySignature,
    generate_signing_key,
    load_signing_key,
    public_key_hex,
    save_signing_key,
    sign_record,
    verify,
)
from vfl.audit.canonical import canonical_json, sha256_hex
from vfl.errors import (
    AuditLogError,
    BrokenChainError,
    MalformedRecordError,
    RecordMismatchError,
    SignatureError,
    TamperedRecordError,
    UntrustedKeyError,
)


def read(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write(path, records: list[dict]) -> None:
    path.write_text("".join(canonical_json(r) + "\n" for r in records))


def rehash(record: dict) -> dict:
    """What a forger without the keys can do: recompute the hash after an edit."""
    body = {k: v for k, v in record.items() if k not in ("hash", "signatures")}
    return {**record, "hash": sha256_hex(canonical_json(body).encode())}


def resign(record: dict, keys: dict) -> dict:
    """Re-sign a (rehashed) record with the given party keys."""
    parsed = AuditRecord.from_dict(record)
    signatures = [sign_record(parsed, key, party=p) for p, key in keys.items()]
    return parsed.with_signatures(signatures).to_dict()


def assert_fails_at(path, line: int, error: type, keyring=None, **kwargs):
    report = verify(path, keyring, **kwargs)
    assert not report.ok, "tampering went unnoticed"
    assert type(report.failure) is error, report.failure
    assert report.failure.line == line, report.failure
    assert len(report.records) == line - 1
    assert f"line {line}" in str(report.failure)
    return report.failure


# --- the intact log ----------------------------------------------------------


def test_records_append_and_verify(log_path, fields, party_keys):
    report = verify(log_path)
    assert report.ok and report.summary() == "4 records, chain and signatures intact"
    records = report.records
    assert [r.index for r in records] == [0, 1, 2, 3]
    assert records[0].prev_hash == GENESIS_HASH
    assert all(r.prev_hash == p.hash for p, r in itertools.pairwise(records))
    assert report.head_hash == records[-1].hash
    assert AuditLog(log_path).records() == list(records)
    assert dict(records[2].metrics) == fields(2)["metrics"]
    assert dict(records[3].contributions) == fields(3)["contributions"]
    assert dict(records[1].keys) == {p: public_key_hex(k) for p, k in party_keys.items()}
    assert set(records[1].signatures) == {"A1", "B", "C"}
    # One line per record, and each line is exactly the record's canonical form.
    assert log_path.read_text().splitlines() == [r.to_json() for r in records]


def test_earlier_lines_are_never_rewritten(tmp_path, append_run):
    log = AuditLog(tmp_path / "log.jsonl")
    snapshots = []
    for k in range(3):
        append_run(log, k)
        snapshots.append(log.path.read_bytes())
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(snapshots))


def test_draft_travels_as_json_between_processes(tmp_path, party_keys, fields):
    log = AuditLog(tmp_path / "log.jsonl")
    draft = log.draft(**fields(0), keys={p: public_key_hex(k) for p, k in party_keys.items()})
    received = AuditRecord.from_json(draft.to_json())
    assert received == draft
    signatures = [sign_record(received, key, party=p) for p, key in party_keys.items()]
    log.append(draft, signatures)
    assert verify(log.path).ok


def test_first_record_must_pin_keys(tmp_path, fields):
    with pytest.raises(AuditLogError, match="pin every party's public key"):
        AuditLog(tmp_path / "log.jsonl").draft(**fields(0))


def test_records_hold_only_json_numbers(tmp_path, party_keys, fields):
    keys = {p: public_key_hex(k) for p, k in party_keys.items()}
    with pytest.raises(ValueError, match=r"metrics\.r2"):
        AuditLog(tmp_path / "l").draft(**{**fields(0), "metrics": {"r2": float("nan")}},
                                       keys=keys)
    with pytest.raises(TypeError, match=r"config\.x"):
        AuditLog(tmp_path / "l").draft(**{**fields(0), "config": {"x": object()}}, keys=keys)
    with pytest.raises(MalformedRecordError, match="fingerprints"):
        AuditLog(tmp_path / "l").draft(**{**fields(0), "fingerprints": {"A1": "abc"}}, keys=keys)


def test_concurrent_appenders_keep_the_chain(tmp_path, append_run):
    log = AuditLog(tmp_path / "log.jsonl")
    append_run(log, 0)
    errors = []

    def worker(k):
        for _ in range(50):  # retry when another appender got in first
            try:
                append_run(AuditLog(log.path), k)
                return
            except BrokenChainError:
                continue
        errors.append(k)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(1, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = verify(log.path)
    assert not errors and report.ok and len(report.records) == 7
    assert len({r.session for r in report.records}) == 7  # every run is in


# --- append refuses bad drafts and leaves the file as it was -----------------


@pytest.mark.parametrize("case", ["wrong key", "missing party", "extra party", "bad bytes",
                                  "edited draft", "stale draft", "duplicate party"])
def test_append_refuses_and_leaves_the_file_unchanged(log_path, party_keys, fields, case):
    log = AuditLog(log_path)
    before = log_path.read_bytes()
    draft = log.draft(**fields(9))
    signatures = {p: sign_record(draft, k, party=p) for p, k in party_keys.items()}
    expected: type = SignatureError
    if case == "wrong key":
        signatures["B"] = sign_record(draft, generate_signing_key(), party="B")
    elif case == "missing party":
        del signatures["C"]
    elif case == "extra party":
        signatures["A2"] = sign_record(draft, generate_signing_key(), party="A2")
    elif case == "bad bytes":
        s = signatures["A1"]
        flipped = format(int(s.signature[:2], 16) ^ 1, "02x") + s.signature[2:]
        signatures["A1"] = dataclasses.replace(s, signature=flipped)
    elif case == "edited draft":
        draft = dataclasses.replace(draft, metrics={"r2": 0.99})
        expected = TamperedRecordError
    elif case == "stale draft":
        other = log.draft(**fields(8))
        log.append(other, [sign_record(other, k, party=p) for p, k in party_keys.items()])
        before = log_path.read_bytes()
        expected = BrokenChainError
    elif case == "duplicate party":
        signatures = [*signatures.values(), signatures["B"]]
    with pytest.raises(expected):
        log.append(draft, signatures)
    assert log_path.read_bytes() == before
    assert verify(log_path).ok


def test_append_refuses_to_extend_a_broken_log(log_path, party_keys, fields):
    log = AuditLog(log_path)
    draft = log.draft(**fields(9))
    signatures = [sign_record(draft, k, party=p) for p, k in party_keys.items()]
    records = read(log_path)
    records[1]["metrics"]["r2"] = 0.9
    write(log_path, records)
    before = log_path.read_bytes()
    with pytest.raises(TamperedRecordError, match="line 2"):
        log.append(draft, signatures)
    with pytest.raises(TamperedRecordError):
        log.draft(**fields(9))
    assert log_path.read_bytes() == before


def test_a_party_signs_only_its_own_fingerprint_and_model(log_path, party_keys, fields):
    draft = AuditLog(log_path).draft(**fields(9))
    own = fields(9)
    sign_record(draft, party_keys["A1"], party="A1", fingerprint=own["fingerprints"]["A1"],
                model_hash=own["model_hashes"]["A1"])
    with pytest.raises(RecordMismatchError, match="dataset fingerprint"):
        sign_record(draft, party_keys["A1"], party="A1", fingerprint=own["fingerprints"]["B"])
    with pytest.raises(RecordMismatchError, match="model hash"):
        sign_record(draft, party_keys["B"], party="B", model_hash="0" * 64)
    with pytest.raises(TamperedRecordError):
        sign_record(dataclasses.replace(draft, session="other"), party_keys["C"], party="C")


# --- verify finds the first tampered record ----------------------------------

EDITS = {
    "index": lambda r: {**r, "index": r["index"] + 1},
    "time": lambda r: {**r, "time": r["time"].replace(r["time"][:4], "1999")},
    "session": lambda r: {**r, "session": r["session"] + "x"},
    "fingerprints": lambda r: {**r, "fingerprints": {**r["fingerprints"], "B": "f" * 64}},
    "config": lambda r: {**r, "config": {**r["config"], "l2": 0.02}},
    "metrics": lambda r: {**r, "metrics": {**r["metrics"], "r2": r["metrics"]["r2"] + 1e-12}},
    "model_hashes": lambda r: {**r, "model_hashes": {**r["model_hashes"], "A1": "e" * 64}},
    "contributions": lambda r: {**r, "contributions": {**r["contributions"], "A1": 0.5}},
    "keys": lambda r: {**r, "keys": {**r["keys"],
                                     "B": public_key_hex(generate_signing_key())}},
    "prev_hash": lambda r: {**r, "prev_hash": "1" * 64},
    "hash": lambda r: {**r, "hash": "2" * 64},
}


@pytest.mark.parametrize("position", range(4))
@pytest.mark.parametrize("field", sorted(EDITS))
def test_editing_any_field_of_any_record_is_detected(log_path, field, position):
    records = read(log_path)
    records[position] = EDITS[field](records[position])
    write(log_path, records)
    assert_fails_at(log_path, position + 1, TamperedRecordError)


@pytest.mark.parametrize("position", range(4))
@pytest.mark.parametrize("field", sorted(set(EDITS) - {"hash"}))
def test_edit_with_recomputed_hash_fails_on_signatures(log_path, field, position):
    records = read(log_path)
    records[position] = rehash(EDITS[field](records[position]))
    write(log_path, records)
    # The hash now matches; index or chain break first where those were edited,
    # otherwise the parties' signatures no longer fit.
    error = BrokenChainError if field in ("index", "prev_hash") else SignatureError
    assert_fails_at(log_path, position + 1, error)


def test_editing_format_or_signatures_is_detected(log_path):
    records = read(log_path)
    records[2]["format"] = "vfl-audit-record/2"
    write(log_path, records)
    assert_fails_at(log_path, 3, MalformedRecordError)
    records = read(log_path)
    records[2]["format"] = "vfl-audit-record/1"
    records[1]["signatures"]["C"] = records[2]["signatures"]["C"]  # a valid signature, elsewhere
    write(log_path, records)
    assert_fails_at(log_path, 2, SignatureError)


@pytest.mark.parametrize("position", range(3))
def test_deleting_a_record_is_detected(log_path, position):
    records = read(log_path)
    del records[position]
    write(log_path, records)
    error = assert_fails_at(log_path, position + 1, BrokenChainError)
    assert f"record {position} was expected" in str(error)


def test_deleting_the_last_record_needs_the_noted_head_hash(log_path):
    head = verify(log_path).head_hash
    write(log_path, read(log_path)[:-1])
    assert verify(log_path).ok  # a shorter log is a valid log
    report = verify(log_path, expect_hash=head)
    assert isinstance(report.failure, BrokenChainError)
    assert "removed from the end" in str(report.failure)
    assert verify(log_path, expect_hash=verify(log_path).records[1].hash).ok


@pytest.mark.parametrize("position", range(3))
def test_reordering_records_is_detected(log_path, position):
    records = read(log_path)
    records[position], records[position + 1] = records[position + 1], records[position]
    write(log_path, records)
    assert_fails_at(log_path, position + 1, BrokenChainError)


@pytest.mark.parametrize("cut", ["half the line", "the newline", "all but one byte"])
def test_truncating_the_last_line_is_detected(log_path, cut):
    data = log_path.read_bytes()
    last = data.rstrip(b"\n").rsplit(b"\n", 1)[1] + b"\n"
    keep = {"half the line": len(last) // 2, "the newline": len(last) - 1,
            "all but one byte": 1}[cut]
    log_path.write_bytes(data[:len(data) - len(last) + keep])
    error = assert_fails_at(log_path, 4, MalformedRecordError)
    assert "truncated" in str(error)


def test_blank_or_garbage_lines_are_detected(log_path):
    lines = log_path.read_text().splitlines(keepends=True)
    log_path.write_text("".join([*lines[:2], "\n", *lines[2:]]))
    assert_fails_at(log_path, 3, MalformedRecordError)
    text = lines[1].replace('"session":', '"session":"dup","session":', 1)
    log_path.write_text("".join([*lines[:1], text, *lines[2:]]))
    error = assert_fails_at(log_path, 2, MalformedRecordError)
    assert "appears twice" in str(error)


def test_signature_by_the_wrong_key_is_detected(log_path):
    records = read(log_path)
    intruder = generate_signing_key()
    parsed = AuditRecord.from_dict(records[2])
    records[2]["signatures"]["B"] = sign_record(parsed, intruder, party="B").to_dict()
    write(log_path, records)
    error = assert_fails_at(log_path, 3, SignatureError)
    assert "party B signed with key" in str(error) and "pinned key" in str(error)


def test_missing_party_signature_is_detected(log_path):
    records = read(log_path)
    del records[1]["signatures"]["C"]
    write(log_path, records)
    error = assert_fails_at(log_path, 2, SignatureError)
    assert "party C did not sign" in str(error)


def test_replacing_a_pinned_key_is_detected(log_path, party_keys):
    intruder = generate_signing_key()
    pristine = read(log_path)
    # In the first record: the forger can sign as the new B, not as A1 and C.
    records = [dict(r) for r in pristine]
    records[0] = {**records[0], "keys": {**records[0]["keys"], "B": public_key_hex(intruder)}}
    records[0] = resign(rehash(records[0]), {"A1": intruder, "B": intruder, "C": intruder})
    write(log_path, records)
    assert_fails_at(log_path, 1, SignatureError)
    # In a later record: a key change must be signed by the keys in force before it.
    records = [dict(r) for r in pristine]
    records[2] = {**records[2], "keys": {**records[2]["keys"], "B": public_key_hex(intruder)}}
    records[2] = resign(rehash(records[2]), {**party_keys, "B": intruder})
    write(log_path, records)
    error = assert_fails_at(log_path, 3, SignatureError)
    assert "party B signed with key" in str(error)


def test_forged_whole_log_needs_a_keyring(tmp_path, log_path, party_keys):
    # Anyone can write a fresh, self-consistent log under keys of their own.
    forged = AuditLog(tmp_path / "forged.jsonl")
    intruders = {p: generate_signing_key() for p in party_keys}
    for k, original in enumerate(read(log_path)[:2]):
        draft = forged.draft(**_fields_of(original),
                             keys={p: public_key_hex(x) for p, x in intruders.items()}
                             if k == 0 else None)
        forged.append(draft, [sign_record(draft, x, party=p) for p, x in intruders.items()])
    assert verify(forged.path).ok  # alone, a replaced log looks intact
    keyring = {p: frozenset({public_key_hex(k)}) for p, k in party_keys.items()}
    assert verify(log_path, keyring).ok
    error = assert_fails_at(forged.path, 1, UntrustedKeyError, keyring=keyring)
    assert "party A1" in str(error)
    with pytest.raises(UntrustedKeyError):
        AuditLog(forged.path, keyring=keyring).draft(**_fields_of(read(log_path)[0]))


def _fields_of(record: dict) -> dict:
    return {k: record[k] for k in ("session", "fingerprints", "config", "metrics",
                                   "model_hashes", "contributions")}


def test_key_change_signed_by_the_old_keys(tmp_path, party_keys, append_run, fields):
    log = AuditLog(tmp_path / "log.jsonl")
    append_run(log, 0)
    new_b = generate_signing_key()
    public = {p: public_key_hex(k) for p, k in party_keys.items()}
    rotation = log.draft(**fields(1), keys={**public, "B": public_key_hex(new_b)})
    # The change is signed by the keys in force, the old B key included ...
    with pytest.raises(SignatureError):
        log.append(rotation, [sign_record(rotation, k, party=p)
                              for p, k in {**party_keys, "B": new_b}.items()])
    log.append(rotation, [sign_record(rotation, k, party=p) for p, k in party_keys.items()])
    # ... and from the next record on only the new B key is accepted.
    with pytest.raises(SignatureError):
        append_run(log, 2)
    append_run(log, 2, signers={**party_keys, "B": new_b})
    assert verify(log.path).ok
    old_only = {p: frozenset({k}) for p, k in public.items()}
    assert_fails_at(log.path, 2, UntrustedKeyError, keyring=old_only)
    both = {**old_only, "B": frozenset({public["B"], public_key_hex(new_b)})}
    assert verify(log.path, both).ok


def test_a_record_describing_a_party_without_key_is_refused(tmp_path, party_keys, fields):
    log = AuditLog(tmp_path / "log.jsonl")
    keys = {p: public_key_hex(k) for p, k in party_keys.items() if p != "A1"}
    draft = log.draft(**fields(0), keys=keys)
    with pytest.raises(SignatureError, match="describes party A1"):
        log.append(draft, [sign_record(draft, party_keys[p], party=p) for p in keys])
    assert not log.path.exists() or log.path.read_bytes() == b""


def test_missing_log_file(tmp_path):
    with pytest.raises(AuditLogError, match="does not exist"):
        verify(tmp_path / "none.jsonl")
    assert AuditLog(tmp_path / "none.jsonl").verify().ok  # an absent log is an empty log


def test_signature_object_is_plain_data(log_path):
    record = verify(log_path).records[0]
    signature = record.signatures["A1"]
    assert isinstance(signature, PartySignature)
    assert signature.public_key == record.keys["A1"] and len(signature.signature) == 128


SIGNER = """
import json, sys
from vfl.audit import AuditRecord, load_signing_key, sign_record
draft = AuditRecord.from_json(sys.stdin.read())
party = sys.argv[2]
signature = sign_record(draft, load_signing_key(sys.argv[1]), party=party,
                        fingerprint=draft.fingerprints.get(party))
print(json.dumps({"party": signature.party, **signature.to_dict()}))
"""


def test_parties_sign_in_their_own_processes(tmp_path, fields):
    folders = {p: tmp_path / f"party_{p}" for p in ("A1", "B", "C")}
    for party, folder in folders.items():
        save_signing_key(generate_signing_key(), folder, party)
    keys = {p: public_key_hex(load_signing_key(f / f"{p}.key")) for p, f in folders.items()}
    log = AuditLog(tmp_path / "log.jsonl")
    draft = log.draft(**fields(0), keys=keys)
    signatures = []
    for party, folder in folders.items():
        done = subprocess.run([sys.executable, "-c", SIGNER, str(folder / f"{party}.key"), party],
                              input=draft.to_json(), capture_output=True, text=True, check=True)
        signatures.append(PartySignature(**json.loads(done.stdout)))
    log.append(draft, signatures)
    assert verify(log.path, {p: frozenset({k}) for p, k in keys.items()}).ok
