"""Typed messages of the protocol, one dataclass per step.

Arrows give sender -> recipient. Ciphertext fields are
:class:`~vfl.crypto.EncryptedVector`; the receiving party validates every one
of them (see :meth:`parties.base.Party.receive`). Nothing here carries a raw
ID, feature, label or weight; the only plaintext reals are the loss (to B),
the batch size and, for prediction and the final intercept fold, the values
documented in the README's leakage list.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from vfl.crypto.ciphertext import EncryptedVector
from vfl.protocol.wire import wire_message
from vfl.training import TrainingConfig

__all__ = [
    "AlignmentKey",
    "AlignmentTags",
    "AuditClaim",
    "AuditDraft",
    "AuditPlan",
    "AuditRecordFinal",
    "AuditSignature",
    "ConvergenceVote",
    "CrossTerm",
    "CrossTermRequest",
    "DecryptedMaskedGradient",
    "EncryptedLoss",
    "EncryptedPartialScores",
    "EncryptedResidual",
    "EncryptedValidationLoss",
    "EncryptedValidationScores",
    "EpochEnd",
    "EpochStart",
    "InterceptOffset",
    "MaskedGradient",
    "MaskedPartialScores",
    "PartialScores",
    "PredictionMaskSeed",
    "PublicKeyMessage",
    "ResumeDecision",
    "ResumeState",
    "TrainingPlan",
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
    frac_bits, value_bits : int
        Fixed-point encoding (see :class:`~vfl.crypto.FixedPointCodec`).
    """

    n: int
    backend: str
    params: dict[str, int] = field(default_factory=dict)
    frac_bits: int = 40
    value_bits: int = 64


@wire_message
@dataclass(frozen=True)
class TrainingPlan:
    """B -> A, C: the configuration B will run and the aligned row count.

    A and C compare it with their own configuration and refuse to start on
    any difference.
    """

    config: TrainingConfig
    n_rows: int
    feature_holders: tuple[str, ...]
    #: Seed of the validation split (see :func:`vfl.training.validation_split`).
    split_seed: int = 0


# --- alignment (A <-> B only; C takes no part) ---------------------------------


@wire_message
@dataclass(frozen=True)
class AlignmentKey:
    """A <-> B: an X25519 public key for agreeing the keyed-hash key."""

    public_key: bytes


@wire_message
@dataclass(frozen=True)
class AlignmentTags:
    """A <-> B: one tag per ID, concatenated (``width`` bytes each).

    Keyed-hash tags: HMAC-SHA256 under the agreed key, sorted by tag so the
    order says nothing about the sender's rows.
    """

    tags: bytes
    width: int


# --- training -----------------------------------------------------------------


@wire_message
@dataclass(frozen=True)
class EpochStart:
    """B -> A: the seed both sides derive this epoch's batch order from."""

    batch_seed: int


@wire_message
@dataclass(frozen=True)
class EncryptedPartialScores:
    """A -> B: [[u_A]] and [[L_A]], L_A = sum u_A^2 + m*lambda*||theta_A||^2."""

    scores: EncryptedVector
    loss_part: EncryptedVector


@wire_message
@dataclass(frozen=True)
class EncryptedResidual:
    """B -> A: [[k d]] = [[sum_j u_Aj]] + v, re-randomised for this recipient.

    v = u_B - y (linear, k = 1) or u_B - 2y with y in {-1, +1} (logistic
    Taylor loss, k = 4); see :attr:`vfl.training.TrainingConfig.residual_factor`.
    """

    residual: EncryptedVector


@wire_message
@dataclass(frozen=True)
class CrossTermRequest:
    """B -> A_j: [[U]] = [[sum_{k>j} u_Ak]], re-randomised, for the loss's cross terms.

    With several feature holders the loss needs sum_i u_Aj,i * u_Ak,i for
    j < k. A_j multiplies [[U]] by its own scores in the clear (batch 0: the
    validation rows).
    """

    values: EncryptedVector


@wire_message
@dataclass(frozen=True)
class CrossTerm:
    """A_j -> B: [[2 sum_i u_Aj,i U_i]], one ciphertext, re-randomised."""

    value: EncryptedVector


@wire_message
@dataclass(frozen=True)
class EncryptedValidationScores:
    """A -> B: [[u_A]] and [[sum u_A^2]] on the validation rows (batch 0)."""

    scores: EncryptedVector
    loss_part: EncryptedVector


@wire_message
@dataclass(frozen=True)
class EncryptedLoss:
    """B -> C: [[S]] for a batch of `batch_rows` rows, re-randomised.

    S = sum_i (k d_i)^2 + 2 m k * penalty, from which C recovers the loss
    L = S / (2 m k) + (log 2 - 1/2 for the logistic Taylor loss).
    """

    loss: EncryptedVector
    batch_rows: int


@wire_message
@dataclass(frozen=True)
class EncryptedValidationLoss:
    """B -> C: [[S]] of the validation rows (no penalty), after each epoch."""

    loss: EncryptedVector
    rows: int


@wire_message
@dataclass(frozen=True)
class ConvergenceVote:
    """A or B -> C: whether this party's own weights moved by at most tol this epoch.

    Only the yes/no leaves the party, never the weights or their change.
    """

    converged: bool


@wire_message
@dataclass(frozen=True)
class MaskedGradient:
    """A or B -> C: [[X^T d + R]] (B appends [[sum d + R_b]]), re-randomised."""

    values: EncryptedVector


@wire_message
@dataclass(frozen=True)
class DecryptedMaskedGradient:
    """C -> A or B: the decrypted masked gradient, residues in Z_n."""

    values: tuple[int, ...]


@wire_message
@dataclass(frozen=True)
class EpochEnd:
    """C -> A, B: whether to stop. Only B is told the losses.

    Attributes
    ----------
    stop : bool
    loss : float or None
        Mean training loss of the epoch (to B only).
    validation_loss : float or None
        Loss on the validation split (to B only; None without a split).
    best : bool
        This epoch's weights are the best so far on the validation split;
        each party keeps a copy, restored at the end under validation early
        stopping.
    """

    stop: bool
    loss: float | None = None
    validation_loss: float | None = None
    best: bool = False


# --- after training -------------------------------------------------------------


@wire_message
@dataclass(frozen=True)
class InterceptOffset:
    """A -> B: A's partial score of an all-zero raw row.

    A standardises its columns internally; its raw-unit model is
    ``X_raw @ w + offset``. Folding the offset into B's intercept makes each
    party's saved part a plain linear model. Reveals one scalar to B.
    """

    offset: float


@wire_message
@dataclass(frozen=True)
class PartialScores:
    """A -> B: u_A in the clear for rows to predict (PROTOCOL.md, prediction)."""

    scores: tuple[float, ...]


@wire_message
@dataclass(frozen=True)
class PredictionMaskSeed:
    """B -> A: a 32-byte seed of the masks that hide A's scores from C.

    Used when the prediction goes to C: A sends C its encoded scores plus
    masks expanded from this seed, B sends its own minus the masks of every
    A, so C can add them up but sees no single party's partial score.
    """

    seed: bytes


@wire_message
@dataclass(frozen=True)
class MaskedPartialScores:
    """A or B -> C: fixed-point partial scores plus masks, mod 2**256.

    B's message also names the model kind, so C knows whether the summed
    score is the prediction or the log-odds of class 1.
    """

    values: tuple[int, ...]
    model: str | None = None


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
