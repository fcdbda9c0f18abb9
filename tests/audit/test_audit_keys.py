"""Party signing keys: files, permissions, refusal to overwrite, keyrings."""

from __future__ import annotations

import json
import os
import stat

import pytest

from vfl.audit import (
    generate_signing_key,
    load_keyring,
    load_public_key,
    load_signing_key,
    public_key_fingerprint,
    public_key_from_hex,
    public_key_hex,
    save_signing_key,
)
from vfl.errors import AuditKeyError


def test_saved_key_pair_loads_back_and_signs(tmp_path):
    key = generate_signing_key()
    private_path, public_path = save_signing_key(key, tmp_path / "keys", "A1")
    assert (private_path.name, public_path.name) == ("A1.key", "A1.pub")
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    loaded = load_signing_key(private_path)
    assert public_key_hex(loaded) == public_key_hex(key)
    assert public_key_hex(load_public_key(public_path)) == public_key_hex(key)
    load_public_key(public_path).verify(loaded.sign(b"m"), b"m")  # raises if not the pair
    assert b"PRIVATE KEY" in private_path.read_bytes()
    assert b"PRIVATE" not in public_path.read_bytes()


def test_existing_key_files_are_never_overwritten(tmp_path):
    save_signing_key(generate_signing_key(), tmp_path, "B")
    before = (tmp_path / "B.key").read_bytes()
    with pytest.raises(AuditKeyError, match="already exists"):
        save_signing_key(generate_signing_key(), tmp_path, "B")
    assert (tmp_path / "B.key").read_bytes() == before
    (tmp_path / "C.pub").write_text("someone else's\n")
    with pytest.raises(AuditKeyError, match=r"C\.pub already exists"):
        save_signing_key(generate_signing_key(), tmp_path, "C")
    assert not (tmp_path / "C.key").exists()


def test_private_key_readable_by_others_is_refused(tmp_path):
    private_path, _ = save_signing_key(generate_signing_key(), tmp_path, "A1")
    os.chmod(private_path, 0o644)
    with pytest.raises(AuditKeyError, match="chmod 600"):
        load_signing_key(private_path)


def test_password_protected_key(tmp_path):
    private_path, _ = save_signing_key(generate_signing_key(), tmp_path, "A1", password=b"pw")
    assert load_signing_key(private_path, password=b"pw") is not None
    with pytest.raises(AuditKeyError, match="cannot read"):
        load_signing_key(private_path, password=b"wrong")
    with pytest.raises(AuditKeyError, match="does not exist"):
        load_signing_key(tmp_path / "nope.key")


def test_bad_party_names_are_refused(tmp_path):
    for name in ("", "../x", "a/b", ".hidden"):
        with pytest.raises(ValueError, match="party name"):
            save_signing_key(generate_signing_key(), tmp_path, name)


def test_fingerprint_and_hex_form():
    key = generate_signing_key()
    text = public_key_hex(key)
    assert len(text) == 64 and public_key_hex(public_key_from_hex(text)) == text
    assert public_key_fingerprint(key) == public_key_fingerprint(text)
    assert public_key_fingerprint(key) != public_key_fingerprint(generate_signing_key())
    with pytest.raises(ValueError):
        public_key_from_hex(text.upper())


def test_keyring_from_folder_and_from_json(tmp_path):
    keys = {name: generate_signing_key() for name in ("A1", "B")}
    for name, key in keys.items():
        save_signing_key(key, tmp_path / "ring", name)
    old = generate_signing_key()
    (tmp_path / "ring" / "B.2023.pub").write_text(public_key_hex(old) + "\n")
    ring = load_keyring(tmp_path / "ring")
    assert ring == {"A1": {public_key_hex(keys["A1"])},
                    "B": {public_key_hex(keys["B"]), public_key_hex(old)}}
    as_json = tmp_path / "ring.json"
    as_json.write_text(json.dumps({"A1": public_key_hex(keys["A1"]),
                                   "B": [public_key_hex(keys["B"]), public_key_hex(old)]}))
    assert load_keyring(as_json) == ring
    as_json.write_text(json.dumps({"A1": "not a key"}))
    with pytest.raises(AuditKeyError, match="not an Ed25519 public key"):
        load_keyring(as_json)
    with pytest.raises(AuditKeyError, match="does not exist"):
        load_keyring(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AuditKeyError, match="no public key"):
        load_keyring(tmp_path / "empty")
