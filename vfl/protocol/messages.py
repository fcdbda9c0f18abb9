"""The messages every protocol's run shares: the key, resuming, the signed audit record.

Arrows give sender -> recipient. Each protocol family keeps its own messages
next to its roles (the vertical ones in :mod:`parties.vertical.messages`); a
message is one ``@wire_message`` dataclass per step. Ciphertext fields are
:class:`~vfl.crypto.EncryptedVector`; the receiving party validates every one
of them (see :meth:`vfl.runtime.role.Role.receive`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from vfl.crypto.ciphertext import EncryptedVector
from vfl.crypto.encoding import DATA_FRAC_BITS
from vfl.protocol.wire import wire_message

__all__ = [
    "AuditClaim",
    "AuditDraft",
    "AuditPlan",
    "AuditRecordFinal",
    "AuditSignature",
    "PublicKeyMessage",
    "ResumeDecision",
    "ResumeState",
    "ciphertext_fields",
]


# --- set-up ------------------------------------------------------------------


@wire_message
@dataclass(frozen=True)
class PublicKeyMessage:
    """C -> A, B: the Paillier public key and the encoding everyone uses.

    Attributes
    ----------
    n : int
        Public modulus (g = n + 1).
    backend : str
        Engine the parties must use, so that `params` mean the same to all.
    params : dict
        Engine's public parameters (e.g. ``h_s`` for DJN-style encryption).
    frac_bits, value_bits, data_frac_bits : int
        Fixed-point encoding (see :class:`~vfl.crypto.FixedPointCodec`).
    """

    n: int
    backend: str
    params: dict[str, int] = field(default_factory=dict)
    frac_bits: int = 40
    value_bits: int = 64
    data_frac_bits: int = DATA_FRAC_BITS


def ciphertext_fields(message: object) -> list[tuple[str, EncryptedVector]]:
    """The (name, vector) pairs of every ciphertext field in a message."""
    return [(f.name, getattr(message, f.name)) for f in fields(message)  # type: ignore[arg-type]
            if isinstance(getattr(message, f.name), EncryptedVector)]


# --- resuming from checkpoints (only when every party keeps checkpoints) ----------


@wire_message
@dataclass(frozen=True)
class ResumeState:
    """A or C -> B: the epochs this party holds a usable checkpoint of.

    At most the last two (parties may stop one epoch apart); epoch 0 is the
    state right before the first epoch. Empty: no checkpoint, a fresh start.
    """

    epochs: tuple[int, ...]


@wire_message
@dataclass(frozen=True)
class ResumeDecision:
    """B -> A, C: the epoch every party resumes after (None: start afresh).

    B picks the latest epoch every party holds a checkpoint of, its own
    included (:func:`vfl.runtime.checkpoint.agree_resume_epoch`).
    """

    epoch: int | None


# --- the signed audit record of a networked run (parties/audit_exchange.py) ----------


@wire_message
@dataclass(frozen=True)
class AuditPlan:
    """Before training: whether the sender's configuration has an ``[audit]`` table.

    A and C -> B first; B checks that every party audits, or none, and only
    then answers each with its own setting (B -> A, C), so a mismatch stops
    every party before any training.
    """

    enabled: bool


@wire_message
@dataclass(frozen=True)
class AuditClaim:
    """A or C -> B, after training: what this party states for the run's audit record.

    Attributes
    ----------
    public_key : str
        The party's Ed25519 public key, 64 hex digits.
    fingerprint, model_hash : str or None
        A: :func:`~vfl.audit.table_fingerprint` of its aligned rows (training
        order) and :func:`~vfl.audit.model_part_hash` of its model part.
        C holds neither: None.
    head_hash : str or None
        Hash of the last record of the party's own copy of the log (None:
        empty), so B can tell diverged copies apart before anyone signs.
    settings : dict
        Configuration entries only this party knows (C: ``key_bits``,
        ``backend``), stated in the record's ``config``.
    """

    public_key: str
    fingerprint: str | None
    model_hash: str | None
    head_hash: str | None
    settings: dict[str, object] = field(default_factory=dict)


@wire_message
@dataclass(frozen=True)
class AuditDraft:
    """B -> A, C: the unsigned record, :meth:`~vfl.audit.AuditRecord.to_json` form."""

    record: str


@wire_message
@dataclass(frozen=True)
class AuditSignature:
    """A or C -> B: the party's :class:`~vfl.audit.PartySignature` over the draft."""

    party: str
    public_key: str
    signature: str


@wire_message
@dataclass(frozen=True)
class AuditRecordFinal:
    """B -> A, C: the record as B appended it, every signature included.

    Each party appends it to its own copy, so every party holds the same log.
    """

    record: str
