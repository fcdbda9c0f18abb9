"""The append-only audit log file: drafting a record and appending it once every party signed.

The log is a JSON Lines file, one record per line (:mod:`.record`). Records
are only ever appended: the file is opened in append mode, one ``write`` adds
one whole line, and ``fsync`` makes it durable before :meth:`AuditLog.append`
returns. An exclusive ``fcntl.flock`` on the file serialises appenders (on
one machine; lock semantics over network file systems vary).

Flow when the parties are separate processes::

    log = AuditLog("audit.jsonl")                       # wherever the log lives
    draft = log.draft(session=..., fingerprints=..., config=..., metrics=...,
                      model_hashes=..., contributions=...)
    # send draft.to_json() to every party; each checks and signs:
    sig = sign_record(AuditRecord.from_json(text), my_key, party="A1",
                      fingerprint=my_fingerprint, model_hash=my_model_hash)
    # collect the signatures back, then:
    log.append(draft, [sig_a1, sig_b, sig_c])
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from vfl.audit.keys import Keyring
from vfl.audit.record import GENESIS_HASH, AuditRecord, PartySignature
from vfl.audit.verify import VerificationReport, check_record, verify, verify_bytes
from vfl.errors import AuditLogError, BrokenChainError, TamperedRecordError

__all__ = ["AuditLog"]


class AuditLog:
    """An audit log file; nothing is read or written until a method is called.

    Parameters
    ----------
    path : path-like
        The JSON Lines file; created by the first :meth:`append`.
    keyring : dict, optional
        Party -> trusted public keys (hex). When given, :meth:`draft` and
        :meth:`append` refuse a log or a draft pinning any other key.
    """

    def __init__(self, path: str | os.PathLike[str], *, keyring: Keyring | None = None) -> None:
        self.path = Path(path)
        self.keyring = keyring

    def verify(self, *, expect_hash: str | None = None) -> VerificationReport:
        """:func:`vfl.audit.verify` of this log (an absent file is an empty log)."""
        if not self.path.exists():
            return verify_bytes(b"", keyring=self.keyring, expect_hash=expect_hash,
                                path=str(self.path))
        return verify(self.path, self.keyring, expect_hash=expect_hash)

    def records(self) -> list[AuditRecord]:
        """Every record, after checking the whole log.

        Raises
        ------
        AuditLogError
            The first failure, if any record fails.
        """
        report = self.verify()
        report.raise_if_failed()
        return list(report.records)

    def draft(self, *, session: str, fingerprints: Mapping[str, str],
              config: Mapping[str, Any], metrics: Mapping[str, float],
              model_hashes: Mapping[str, str], contributions: Mapping[str, float] | None = None,
              keys: Mapping[str, str] | None = None, time: datetime | None = None
              ) -> AuditRecord:
        """An unsigned record that would follow the current last record.

        Parameters
        ----------
        session : str
            The training run's session ID.
        fingerprints : dict
            Party -> :func:`~vfl.audit.table_fingerprint` of its aligned data.
        config : dict or dataclass
            The training configuration (e.g. ``TrainingConfig``).
        metrics : dict
            Final metrics, name -> number.
        model_hashes : dict
            Party -> :func:`~vfl.audit.model_part_hash` of its model part.
        contributions : dict, optional
            Party -> contribution; empty when not computed.
        keys : dict, optional
            Party -> public key (hex, :func:`~vfl.audit.public_key_hex`) of every
            party that signs, coordinator included. Required for the first
            record, which pins them; later, leave it out to keep the pinned
            keys, or pass new keys to change them (the record is then still
            signed by the old keys, and the new ones sign from the next record).
        time : datetime, optional
            Default now.

        Raises
        ------
        AuditLogError
            If the log does not verify (nothing is built on a broken log), or
            the first record has no keys.
        MalformedRecordError, TypeError, ValueError
            If a field has the wrong form.
        """
        head = self._head(self.verify())
        if keys is None:
            if head is None:
                raise AuditLogError(f"{self.path} is empty: the first record must pin every "
                                    "party's public key; pass keys={party: public_key_hex(key)}")
            keys = head.keys
        return AuditRecord.create(
            index=0 if head is None else head.index + 1, session=session,
            fingerprints=fingerprints, config=config, metrics=metrics,
            model_hashes=model_hashes, contributions=contributions or {},
            keys=keys,
            prev_hash=GENESIS_HASH if head is None else head.hash, time=time)

    def append(self, draft: AuditRecord,
               signatures: Iterable[PartySignature] | Mapping[str, PartySignature]
               ) -> AuditRecord:
        """Check `draft` with its signatures against the log's last record, then append it.

        Under an exclusive lock the whole log is verified, the signed record
        is checked exactly as :func:`vfl.audit.verify` will check it (hash,
        index, previous hash, a valid signature by every pinned key), and only
        then written as one line and synced to disk. On any failure the file is
        left as it was.

        Returns
        -------
        AuditRecord
            The record as stored, signatures included.

        Raises
        ------
        TamperedRecordError
            If the draft was changed after drafting.
        BrokenChainError
            If another record was appended since the draft was made: draft again.
        SignatureError, UntrustedKeyError
            If a signature is missing, invalid or by a key other than the pinned one.
        AuditLogError
            If the log itself does not verify.
        """
        record = draft.with_signatures(signatures)
        if record.compute_hash() != record.hash:
            raise TamperedRecordError("the draft's content does not match its hash; it was "
                                      "changed after drafting", index=record.index)
        line = record.to_json().encode("ascii") + b"\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            report = verify_bytes(os.pread(fd, size, 0), keyring=self.keyring,
                                  path=str(self.path))
            head = self._head(report)
            if (record.index, record.prev_hash) != ((head.index + 1, head.hash) if head
                                                     else (0, GENESIS_HASH)):
                ends = f"ends at record {head.index}" if head else "is empty"
                raise BrokenChainError(f"the log now {ends}, which this draft does not follow "
                                       "(another record was appended after it was drafted?); "
                                       "draft and sign again", index=record.index)
            check_record(record, head, line=len(report.records) + 1, keyring=self.keyring)
            _write_all(fd, line, size)
        finally:
            os.close(fd)  # also releases the lock
        if created:
            _fsync_folder(self.path.parent)
        return record

    @staticmethod
    def _head(report: VerificationReport) -> AuditRecord | None:
        report.raise_if_failed()
        return report.records[-1] if report.records else None


def _write_all(fd: int, data: bytes, size_before: int) -> None:
    """Append `data` and sync it; on failure cut the file back to `size_before`."""
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        # Only our own partial line is removed; earlier lines are never touched.
        os.ftruncate(fd, size_before)
        os.fsync(fd)
        raise


def _fsync_folder(folder: Path) -> None:
    # Makes the new file's directory entry durable too.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
