"""One audit log record: what it holds, its hash, and the parties' signatures over it.

A record is one line of the log, a JSON object with these fields:

=================  ===========================================================
``format``         ``"vfl-audit-record/1"``
``index``          0 for the first record, then 1, 2, ...
``time``           when it was drafted, UTC, ``2025-01-31T12:00:00.000Z``
``session``        the training run's session ID
``fingerprints``   party -> SHA-256 of its aligned data (:mod:`.fingerprint`)
``config``         the training configuration (any JSON object)
``metrics``        metric name -> number (final metrics of the run)
``model_hashes``   party -> SHA-256 of its model part
``contributions``  party -> number (may be empty)
``keys``           party -> Ed25519 public key (hex): the parties and keys that
                   must sign the *next* record; in the first record also this one's
``prev_hash``      ``hash`` of the record before (64 zeros for the first)
``hash``           SHA-256 of the canonical JSON of every field above
``signatures``     party -> {``public_key``, ``signature``}: Ed25519 over the hash
=================  ===========================================================

The hash covers everything but ``hash`` and ``signatures``. A signature signs
the bytes ``b"vfl-audit-record-signature/1\\x00"`` followed by the 32 bytes of
the hash, so a signature made for another purpose cannot pass for one here.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vfl.audit.canonical import canonical_json, jsonable, sha256_hex
from vfl.audit.keys import check_party_name, public_key_from_hex, public_key_hex
from vfl.errors import (
    MalformedRecordError,
    RecordMismatchError,
    SignatureError,
    TamperedRecordError,
)

__all__ = ["GENESIS_HASH", "RECORD_FORMAT", "AuditRecord", "PartySignature", "sign_record",
           "signature_is_valid"]

RECORD_FORMAT = "vfl-audit-record/1"
#: ``prev_hash`` of the first record.
GENESIS_HASH = "0" * 64

_SIGNING_CONTEXT = b"vfl-audit-record-signature/1\x00"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")
_BODY_FIELDS = ("format", "index", "time", "session", "fingerprints", "config", "metrics",
                "model_hashes", "contributions", "keys", "prev_hash")

#: Builds the error for one malformed field of the record being read.
_Bad = Callable[[str], MalformedRecordError]


@dataclass(frozen=True)
class PartySignature:
    """A party's Ed25519 signature over a record's hash.

    Attributes
    ----------
    party : str
    public_key : str
        The signer's public key, 64 hex characters.
    signature : str
        128 hex characters.
    """

    party: str
    public_key: str
    signature: str

    def to_dict(self) -> dict[str, str]:
        """The form stored in a record (the party is the key it is stored under)."""
        return {"public_key": self.public_key, "signature": self.signature}


@dataclass(frozen=True)
class AuditRecord:
    """One record of the audit log; a *draft* is a record with no signatures yet.

    Build drafts with :meth:`vfl.audit.AuditLog.draft`, which fills in the
    index, previous hash and keys; the fields are described in the module
    docstring. Mapping fields are read-only views.
    """

    index: int
    time: str
    session: str
    fingerprints: Mapping[str, str]
    config: Mapping[str, Any]
    metrics: Mapping[str, float]
    model_hashes: Mapping[str, str]
    contributions: Mapping[str, float]
    keys: Mapping[str, str]
    prev_hash: str
    hash: str
    signatures: Mapping[str, PartySignature] = field(default_factory=dict)

    # --- building ------------------------------------------------------------

    @classmethod
    def create(cls, *, index: int, session: str, fingerprints: Mapping[str, str],
               config: Mapping[str, Any], metrics: Mapping[str, float],
               model_hashes: Mapping[str, str], contributions: Mapping[str, float],
               keys: Mapping[str, str], prev_hash: str,
               time: datetime | None = None) -> AuditRecord:
        """A checked, hashed, unsigned record.

        Raises
        ------
        MalformedRecordError
            If a field has the wrong form (the message names it).
        TypeError, ValueError
            If a value cannot be written as JSON (NaN, an object).
        """
        moment = (time or datetime.now(timezone.utc)).astimezone(timezone.utc)
        body = {
            "format": RECORD_FORMAT,
            "index": index,
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "session": session,
            "fingerprints": jsonable(fingerprints, "fingerprints"),
            "config": jsonable(config, "config"),
            "metrics": jsonable(metrics, "metrics"),
            "model_hashes": jsonable(model_hashes, "model_hashes"),
            "contributions": jsonable(contributions, "contributions"),
            "keys": jsonable(keys, "keys"),
            "prev_hash": prev_hash,
        }
        body["hash"] = sha256_hex(canonical_json(body).encode("ascii"))
        body["signatures"] = {}
        return cls.from_dict(body)

    def with_signatures(self, signatures: Iterable[PartySignature] | Mapping[str, PartySignature]
                        ) -> AuditRecord:
        """This record carrying `signatures` (replacing any it had).

        Raises
        ------
        SignatureError
            If two signatures name the same party.
        """
        items = list(signatures.values() if isinstance(signatures, Mapping) else signatures)
        by_party: dict[str, PartySignature] = {}
        for signature in items:
            if not isinstance(signature, PartySignature):
                raise TypeError(f"expected PartySignature, got {type(signature).__name__}")
            if signature.party in by_party:
                raise SignatureError(f"two signatures for party {signature.party}",
                                     index=self.index)
            by_party[signature.party] = signature
        return replace(self, signatures=MappingProxyType(by_party))

    # --- hashing and encoding ----------------------------------------------

    def body(self) -> dict[str, Any]:
        """Every field the hash covers, as plain JSON values."""
        return {"format": RECORD_FORMAT, "index": self.index, "time": self.time,
                "session": self.session, "fingerprints": jsonable(self.fingerprints),
                "config": jsonable(self.config), "metrics": jsonable(self.metrics),
                "model_hashes": jsonable(self.model_hashes),
                "contributions": jsonable(self.contributions), "keys": jsonable(self.keys),
                "prev_hash": self.prev_hash}

    def compute_hash(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`body`, from the content as it is now."""
        return sha256_hex(canonical_json(self.body()).encode("ascii"))

    def to_dict(self) -> dict[str, Any]:
        """The whole record as plain JSON values."""
        return {**self.body(), "hash": self.hash,
                "signatures": {party: signature.to_dict()
                               for party, signature in self.signatures.items()}}

    def to_json(self) -> str:
        """The record as one line of canonical JSON (no newline), as the log stores it.

        Also the form in which to send a draft to another party's process.
        """
        return canonical_json(self.to_dict())

    @classmethod
    def from_json(cls, text: str, *, line: int | None = None) -> AuditRecord:
        """Parse one log line (or a draft sent by another process).

        Raises
        ------
        MalformedRecordError
            If `text` is not one JSON object with every field in its form, or
            repeats a key (which would let a reader and the hash see different
            values).
        """
        try:
            data = json.loads(text, object_pairs_hook=_no_duplicate_keys,
                              parse_constant=_no_constant, parse_float=_finite_float)
        except (json.JSONDecodeError, _DuplicateKey, ValueError) as exc:
            raise MalformedRecordError(f"not a valid JSON record: {exc}", line=line) from None
        return cls.from_dict(data, line=line)

    @classmethod
    def from_dict(cls, data: Any, *, line: int | None = None) -> AuditRecord:
        """Check the form of every field of a parsed record (not its hash or signatures).

        Raises
        ------
        MalformedRecordError
            Naming the first field that is missing, unknown or of the wrong form.
        """
        index = data.get("index") if isinstance(data, dict) else None
        index = index if isinstance(index, int) and not isinstance(index, bool) else None

        def bad(message: str) -> MalformedRecordError:
            return MalformedRecordError(message, index=index, line=line)

        if not isinstance(data, dict):
            raise bad("not a JSON object")
        expected = {*_BODY_FIELDS, "hash", "signatures"}
        missing, unknown = expected - data.keys(), data.keys() - expected
        if missing or unknown:
            problems = []
            if missing:
                problems.append(f"missing field(s) {', '.join(sorted(missing))}")
            if unknown:
                problems.append(f"unknown field(s) {', '.join(sorted(unknown))}")
            raise bad("; ".join(problems))
        if data["format"] != RECORD_FORMAT:
            raise bad(f"format is {data['format']!r}, expected {RECORD_FORMAT!r}")
        if index is None or index < 0:
            raise bad(f"index must be a non-negative integer, got {data['index']!r}")
        if not isinstance(data["time"], str) or not _TIME.fullmatch(data["time"]):
            raise bad(f"time {data['time']!r} is not a UTC time like 2025-01-31T12:00:00.000Z")
        try:
            datetime.fromisoformat(data["time"][:-1])
        except ValueError:
            raise bad(f"time {data['time']!r} is not a valid date and time") from None
        if not isinstance(data["session"], str) or not data["session"]:
            raise bad("session must be a non-empty string")
        for name in ("fingerprints", "model_hashes", "keys"):
            _check_party_map(data[name], name, _HEX64, "64 lower-case hex digits", bad)
        if not data["keys"]:
            raise bad("keys must name at least one party")
        for party, key in data["keys"].items():
            try:
                public_key_from_hex(key)
            except ValueError as exc:
                raise bad(f"keys[{party!r}]: {exc}") from None
        for name in ("metrics", "contributions"):
            _check_number_map(data[name], name, parties=name == "contributions", bad=bad)
        if not isinstance(data["config"], dict):
            raise bad("config must be a JSON object")
        for name in ("prev_hash", "hash"):
            if not isinstance(data[name], str) or not _HEX64.fullmatch(data[name]):
                raise bad(f"{name} must be 64 lower-case hex digits")
        signatures = data["signatures"]
        if not isinstance(signatures, dict):
            raise bad("signatures must be a JSON object party -> {public_key, signature}")
        parsed: dict[str, PartySignature] = {}
        for party, entry in signatures.items():
            if (not isinstance(entry, dict) or set(entry) != {"public_key", "signature"}
                    or not isinstance(entry["public_key"], str)
                    or not _HEX64.fullmatch(entry["public_key"])
                    or not isinstance(entry["signature"], str)
                    or not _HEX128.fullmatch(entry["signature"])):
                raise bad(f"signatures[{party!r}] must be {{public_key: 64 hex digits, "
                          "signature: 128 hex digits}")
            parsed[party] = PartySignature(party, entry["public_key"], entry["signature"])
        return cls(index=index, time=data["time"], session=data["session"],
                   fingerprints=MappingProxyType(dict(data["fingerprints"])),
                   config=MappingProxyType(dict(data["config"])),
                   metrics=MappingProxyType(dict(data["metrics"])),
                   model_hashes=MappingProxyType(dict(data["model_hashes"])),
                   contributions=MappingProxyType(dict(data["contributions"])),
                   keys=MappingProxyType(dict(data["keys"])),
                   prev_hash=data["prev_hash"], hash=data["hash"],
                   signatures=MappingProxyType(parsed))

    def parties(self) -> list[str]:
        """Every party the record names (keys, data, models, contributions), sorted."""
        return sorted({*self.keys, *self.fingerprints, *self.model_hashes, *self.contributions,
                       *self.signatures})


def sign_record(draft: AuditRecord, private_key: Ed25519PrivateKey, *, party: str,
                fingerprint: str | None = None, model_hash: str | None = None
                ) -> PartySignature:
    """A party's signature over a draft, after it checked what it signs.

    The party recomputes the draft's hash from its content (it never signs a
    hash it was merely told), and, when given, compares the fingerprint and
    model hash the draft holds for it with the ones it computed itself.

    Parameters
    ----------
    draft : AuditRecord
        From :meth:`AuditLog.draft`, possibly received as :meth:`AuditRecord.to_json`.
    private_key : Ed25519PrivateKey
        The party's own signing key (the one the log pins for it).
    party : str
        The signer's name.
    fingerprint, model_hash : str, optional
        What the party computed over its own aligned data and model part.

    Raises
    ------
    TamperedRecordError
        If the draft's content does not match its hash.
    RecordMismatchError
        If the draft holds another fingerprint or model hash for `party`.
    """
    check_party_name(party)
    if draft.compute_hash() != draft.hash:
        raise TamperedRecordError("the draft's content does not match its hash; it was changed "
                                  "after drafting, so it is not signed", index=draft.index,
                                  party=party)
    for name, mine, recorded in (("dataset fingerprint", fingerprint,
                                  draft.fingerprints.get(party)),
                                 ("model hash", model_hash, draft.model_hashes.get(party))):
        if mine is not None and mine != recorded:
            raise RecordMismatchError(
                f"the draft holds {name} {recorded!r} for this party but it computed "
                f"{mine!r}; it does not sign a record of data or a model it does not hold",
                index=draft.index, party=party)
    signature = private_key.sign(_SIGNING_CONTEXT + bytes.fromhex(draft.hash))
    return PartySignature(party, public_key_hex(private_key), signature.hex())


def signature_is_valid(record_hash: str, signature: PartySignature) -> bool:
    """Whether `signature` is a valid Ed25519 signature by its key over `record_hash`."""
    try:
        public_key_from_hex(signature.public_key).verify(
            bytes.fromhex(signature.signature), _SIGNING_CONTEXT + bytes.fromhex(record_hash))
    except (InvalidSignature, ValueError):
        return False
    return True


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(f"key {key!r} appears twice")
        out[key] = value
    return out


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"number {text} is out of the float range")
    return number


def _check_party_map(value: Any, name: str, pattern: re.Pattern[str], form: str,
                     bad: _Bad) -> None:
    if not isinstance(value, dict):
        raise bad(f"{name} must be a JSON object party -> {form}")
    for party, item in value.items():
        _check_party(party, name, bad)
        if not isinstance(item, str) or not pattern.fullmatch(item):
            raise bad(f"{name}[{party!r}] must be {form}, got {item!r}")


def _check_number_map(value: Any, name: str, *, parties: bool, bad: _Bad) -> None:
    if not isinstance(value, dict):
        raise bad(f"{name} must be a JSON object name -> number")
    for key, item in value.items():
        if parties:
            _check_party(key, name, bad)
        if (isinstance(item, bool) or not isinstance(item, (int, float))
                or not math.isfinite(item)):
            raise bad(f"{name}[{key!r}] must be a finite number, got {item!r}")


def _check_party(party: str, name: str, bad: _Bad) -> None:
    try:
        check_party_name(party)
    except ValueError as exc:
        raise bad(f"{name}: {exc}") from None
