"""Checking a whole audit log, and each record against the one before it.

The rules (the trust model of ``docs/audit.md``):

1. every line is one complete record in the form of :mod:`.record`;
2. its ``hash`` is the SHA-256 of its content as it is now;
3. its ``index`` is one more than the previous record's (0 for the first),
   and its ``prev_hash`` is the previous record's ``hash`` (64 zeros first);
4. it carries a valid signature from every party of the *signing key set*,
   made with exactly the key that set pins, and from no one else. The first
   record's signing set is its own ``keys``; every later record's is the
   ``keys`` of the record before. So the first record pins the keys, and a
   change of keys takes a record signed by all the old keys;
5. every party whose data, model or contribution a record describes is in
   its signing set;
6. with a keyring, every key any record pins must be one the verifier
   trusts for that party.

Verification stops at the first record that breaks a rule: later records
hang on a chain that can no longer be trusted.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Mapping
from dataclasses import dataclass

from vfl.audit.keys import Keyring, public_key_fingerprint
from vfl.audit.record import GENESIS_HASH, AuditRecord, signature_is_valid
from vfl.errors import (
    AuditLogError,
    BrokenChainError,
    MalformedRecordError,
    SignatureError,
    TamperedRecordError,
    UntrustedKeyError,
)

__all__ = ["VerificationReport", "check_record", "verify", "verify_bytes"]


@dataclass(frozen=True)
class VerificationReport:
    """Outcome of :func:`verify`.

    Attributes
    ----------
    path : str
        The log checked.
    records : tuple of AuditRecord
        The records that passed every check, in order (all of them when
        `failure` is None, else those before the first failing one).
    failure : AuditLogError or None
        Why the first failing record failed; its ``index`` and ``line`` name it.
    """

    path: str
    records: tuple[AuditRecord, ...]
    failure: AuditLogError | None

    @property
    def ok(self) -> bool:
        """True when every record passed."""
        return self.failure is None

    @property
    def head_hash(self) -> str:
        """Hash of the last intact record (64 zeros for an empty log); note it elsewhere
        to detect later truncation or replacement of the log."""
        return self.records[-1].hash if self.records else GENESIS_HASH

    def summary(self) -> str:
        """One line for people: the count and state, or the first failure."""
        count = len(self.records)
        if self.failure is None:
            return f"{count} record{'' if count == 1 else 's'}, chain and signatures intact"
        before = "1 record before it is" if count == 1 else f"{count} records before it are"
        return f"{type(self.failure).__name__}: {self.failure} ({before} intact)"

    def raise_if_failed(self) -> None:
        """Raise :attr:`failure`, if any."""
        if self.failure is not None:
            raise self.failure


def check_record(record: AuditRecord, previous: AuditRecord | None, *,
                 line: int | None = None, keyring: Keyring | None = None) -> None:
    """Check one record against the record before it (rules 2 to 6 of the module docstring).

    Parameters
    ----------
    record : AuditRecord
    previous : AuditRecord or None
        The record before it; None for the first record.
    line : int, optional
        Its line in the log, for messages.
    keyring : dict, optional
        Party -> trusted public keys (hex).

    Raises
    ------
    TamperedRecordError, BrokenChainError, SignatureError, UntrustedKeyError
    """
    index = record.index
    if record.compute_hash() != record.hash:
        raise TamperedRecordError("its content does not match its stored hash: the record was "
                                  "edited after it was signed", index=index, line=line)
    expected_index = 0 if previous is None else previous.index + 1
    if index != expected_index:
        raise BrokenChainError(f"record {expected_index} was expected here: a record is "
                               "missing, duplicated or out of order", index=index, line=line)
    expected_prev = GENESIS_HASH if previous is None else previous.hash
    if record.prev_hash != expected_prev:
        raise BrokenChainError(
            f"prev_hash {record.prev_hash[:16]}... does not match the previous record's hash "
            f"{expected_prev[:16]}...: the record does not belong after the one before it",
            index=index, line=line)
    signers: Mapping[str, str] = record.keys if previous is None else previous.keys
    _check_signatures(record, signers, line)
    if keyring is not None and (previous is None or dict(record.keys) != dict(previous.keys)):
        _check_keyring(record, keyring, line)


def verify_bytes(data: bytes, *, keyring: Keyring | None = None,
                 expect_hash: str | None = None, path: str = "<bytes>") -> VerificationReport:
    """:func:`verify` on the content of a log file."""
    records: list[AuditRecord] = []
    lines = data.split(b"\n")
    complete = lines[:-1]  # after the last newline: b"" for an intact file
    try:
        for number, raw in enumerate(complete, start=1):
            record = _parse(raw, number)
            check_record(record, records[-1] if records else None, line=number,
                         keyring=keyring)
            records.append(record)
        if lines[-1]:
            raise MalformedRecordError(
                "the last line is incomplete (no newline at its end): the file was truncated "
                "or an append was interrupted", line=len(lines))
        if expect_hash is not None and expect_hash not in {r.hash for r in records}:
            raise BrokenChainError(
                f"no record has the expected hash {expect_hash}: records were removed from "
                "the end of the log, or the log was replaced")
    except AuditLogError as exc:
        return VerificationReport(path, tuple(records), exc)
    return VerificationReport(path, tuple(records), None)


def verify(path: str | os.PathLike[str], keyring: Keyring | None = None, *,
           expect_hash: str | None = None) -> VerificationReport:
    """Check every record of an audit log; report the first that fails and why.

    Parameters
    ----------
    path : path-like
        The log file.
    keyring : dict, optional
        Party -> trusted public keys (hex), from :func:`vfl.audit.load_keyring`.
        Without it, the log is checked against the keys its first record pins,
        which a forger who replaces the whole log would choose.
    expect_hash : str, optional
        A record hash noted earlier (e.g. the head hash printed after the last
        append); the log must still contain that record.

    Returns
    -------
    VerificationReport

    Raises
    ------
    AuditLogError
        If the file cannot be read at all (a failing record is reported, not raised).
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            # A shared lock: an append in progress finishes before we read.
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
            data = handle.read()
    except FileNotFoundError:
        raise AuditLogError(f"audit log {path} does not exist") from None
    except IsADirectoryError:
        raise AuditLogError(f"{path} is a folder, not an audit log") from None
    return verify_bytes(data, keyring=keyring, expect_hash=expect_hash, path=path)


def _parse(raw: bytes, line: int) -> AuditRecord:
    if not raw.strip():
        raise MalformedRecordError("empty line: a record was removed or the file was edited",
                                   line=line)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedRecordError(f"not UTF-8 text: {exc}", line=line) from None
    return AuditRecord.from_json(text, line=line)


def _check_signatures(record: AuditRecord, signers: Mapping[str, str], line: int | None) -> None:
    index = record.index
    described = {*record.fingerprints, *record.model_hashes, *record.contributions}
    outsiders = sorted(described - signers.keys())
    if outsiders:
        raise SignatureError(f"it describes party {', '.join(outsiders)}, which holds no pinned "
                             "key, so that party cannot have signed it", index=index, line=line)
    missing = sorted(signers.keys() - record.signatures.keys())
    if missing:
        raise SignatureError(f"party {', '.join(missing)} did not sign it (every party with a "
                             "pinned key must)", index=index, line=line)
    extra = sorted(record.signatures.keys() - signers.keys())
    if extra:
        raise SignatureError(f"signed by {', '.join(extra)}, which holds no pinned key",
                             index=index, line=line)
    for party in sorted(signers):
        signature = record.signatures[party]
        if signature.public_key != signers[party]:
            raise SignatureError(
                f"party {party} signed with key {public_key_fingerprint(signature.public_key)[:16]}"
                f" but the pinned key is {public_key_fingerprint(signers[party])[:16]} "
                "(fingerprints)", index=index, line=line)
        if not signature_is_valid(record.hash, signature):
            raise SignatureError(f"party {party}'s signature is not valid for this record",
                                 index=index, line=line)


def _check_keyring(record: AuditRecord, keyring: Keyring, line: int | None) -> None:
    for party in sorted(record.keys):
        key = record.keys[party]
        if party not in keyring:
            raise UntrustedKeyError(f"it pins a key for party {party}, which the keyring does "
                                    "not hold", index=record.index, line=line)
        if key not in keyring[party]:
            raise UntrustedKeyError(
                f"it pins key {public_key_fingerprint(key)[:16]} (fingerprint) for party "
                f"{party}, which is not among the keyring's keys for it: the log may have "
                "been replaced by someone holding other keys", index=record.index, line=line)
