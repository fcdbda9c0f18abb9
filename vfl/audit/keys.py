"""Each party's Ed25519 signing key, its files, and a verifier's trusted keyring.

A party's key pair lives in two files in a folder of its choice:
``NAME.key`` (the private key, PKCS#8 PEM, mode 0600, optionally encrypted
with a password) and ``NAME.pub`` (the public key, SubjectPublicKeyInfo PEM),
which the party gives to everyone who should verify the log. Neither file is
ever overwritten.

In log records a public key is written as the 64 hex characters of its raw
32 bytes. Its fingerprint (:func:`public_key_fingerprint`) is the SHA-256 of
those bytes, for comparing keys by eye or over the phone.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vfl.audit.canonical import sha256_hex
from vfl.errors import AuditKeyError

__all__ = [
    "Keyring",
    "generate_signing_key",
    "load_keyring",
    "load_public_key",
    "load_signing_key",
    "public_key_fingerprint",
    "public_key_from_hex",
    "public_key_hex",
    "save_signing_key",
]

#: Trusted public keys (hex) of each party, as a verifier holds them.
Keyring = dict[str, frozenset[str]]

_PARTY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_HEX_KEY = re.compile(r"[0-9a-f]{64}")


def check_party_name(party: str) -> str:
    """`party` if it is a usable party name (letters, digits, ``_``, ``-``), else ValueError."""
    if not isinstance(party, str) or not _PARTY_NAME.fullmatch(party):
        raise ValueError(f"party name {party!r} is not usable: use 1 to 64 letters, digits, "
                         "'_' or '-', starting with a letter or digit")
    return party


def generate_signing_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def public_key_hex(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The 64-hex-character form of a public key (or of a private key's public key)."""
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise TypeError(f"expected an Ed25519 key, got {type(key).__name__}")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def public_key_from_hex(text: str) -> Ed25519PublicKey:
    """The public key written as 64 lower-case hex characters.

    Raises
    ------
    ValueError
        If `text` is not such a string.
    """
    if not isinstance(text, str) or not _HEX_KEY.fullmatch(text):
        raise ValueError(f"{text!r} is not an Ed25519 public key (64 lower-case hex digits)")
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))


def public_key_fingerprint(key: Ed25519PrivateKey | Ed25519PublicKey | str) -> str:
    """SHA-256 hex digest of a public key's raw bytes (key object or hex form)."""
    text = key if isinstance(key, str) else public_key_hex(key)
    public_key_from_hex(text)  # refuse anything that is not a key
    return sha256_hex(bytes.fromhex(text))


def save_signing_key(key: Ed25519PrivateKey, folder: str | os.PathLike[str], party: str, *,
                     password: bytes | None = None) -> tuple[Path, Path]:
    """Write ``folder/PARTY.key`` (mode 0600) and ``folder/PARTY.pub``; never overwrite.

    Parameters
    ----------
    key : Ed25519PrivateKey
    folder : path-like
        Created if missing.
    party : str
        The owner's name ("A1", "B", "C"), used as the file stem.
    password : bytes, optional
        Encrypts the private key file; without it the file is protected by its
        permissions only.

    Returns
    -------
    (Path, Path)
        The private and the public key file.

    Raises
    ------
    AuditKeyError
        If either file already exists.
    """
    check_party_name(party)
    folder = Path(folder)
    private_path, public_path = folder / f"{party}.key", folder / f"{party}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise AuditKeyError(f"{path} already exists; a signing key is never overwritten. "
                                "Move it away or choose another --out folder", party=party)
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    private_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8, encryption)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    folder.mkdir(parents=True, exist_ok=True)
    _write_new(private_path, private_pem, 0o600, party)
    _write_new(public_path, public_pem, 0o644, party)
    return private_path, public_path


def load_signing_key(path: str | os.PathLike[str], *, password: bytes | None = None,
                     party: str | None = None) -> Ed25519PrivateKey:
    """Read a private key written by :func:`save_signing_key`.

    Raises
    ------
    AuditKeyError
        If the file is missing, readable by others than its owner, not an
        Ed25519 private key, or the password is wrong.
    """
    path = Path(path)
    data = _read(path, party)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise AuditKeyError(f"private key {path} is readable by other users (mode "
                            f"{mode:04o}); run 'chmod 600 {path}'", party=party)
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise AuditKeyError(f"cannot read private key {path}: {exc}", party=party) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditKeyError(f"{path} holds a {type(key).__name__}, not an Ed25519 key",
                            party=party)
    return key


def load_public_key(path: str | os.PathLike[str], *, party: str | None = None
                    ) -> Ed25519PublicKey:
    """Read a public key file (PEM, or the 64-hex-character form on one line).

    Raises
    ------
    AuditKeyError
        If the file is missing or holds no Ed25519 public key.
    """
    path = Path(path)
    data = _read(path, party)
    text = data.decode("ascii", errors="replace").strip()
    try:
        if _HEX_KEY.fullmatch(text):
            return public_key_from_hex(text)
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise AuditKeyError(f"cannot read public key {path}: {exc}", party=party) from None
    if not isinstance(key, Ed25519PublicKey):
        raise AuditKeyError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key",
                            party=party)
    return key


def load_keyring(path: str | os.PathLike[str]) -> Keyring:
    """The public keys a verifier trusts, by party.

    Parameters
    ----------
    path : path-like
        Either a folder of public key files, where ``A1.pub`` and
        ``A1.2024.pub`` are both keys of party ``A1`` (the name up to the
        first dot), or a JSON file ``{"A1": "<hex>", "B": ["<hex>", ...]}``.

    Raises
    ------
    AuditKeyError
        If the path is missing, holds no key, or a key cannot be read.
    """
    path = Path(path)
    keyring: dict[str, set[str]] = {}
    if path.is_dir():
        for file in sorted(path.glob("*.pub")):
            party = file.name.split(".", 1)[0]
            keyring.setdefault(party, set()).add(public_key_hex(load_public_key(file)))
    elif path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AuditKeyError(f"keyring {path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise AuditKeyError(f"keyring {path} must be a JSON object party -> key(s)")
        for party, keys in data.items():
            for key in [keys] if isinstance(keys, str) else keys:
                try:
                    public_key_from_hex(key)
                except ValueError as exc:
                    raise AuditKeyError(f"keyring {path}: {exc}", party=party) from None
                keyring.setdefault(party, set()).add(key)
    else:
        raise AuditKeyError(f"keyring {path} does not exist; pass a folder of .pub files or "
                            "a JSON file")
    if not keyring:
        raise AuditKeyError(f"keyring {path} holds no public key")
    return {party: frozenset(keys) for party, keys in keyring.items()}


def _write_new(path: Path, data: bytes, mode: int, party: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise AuditKeyError(f"{path} already exists; a signing key is never overwritten",
                            party=party) from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, mode)  # the umask may have removed bits we asked for, never added


def _read(path: Path, party: str | None) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise AuditKeyError(f"key file {path} does not exist", party=party) from None
    except IsADirectoryError:
        raise AuditKeyError(f"{path} is a folder, not a key file", party=party) from None
