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
from vfl.training import TrainingConfig

__all__ = [
    "AlignmentKey",
    "AlignmentTags",
    "DecryptedMaskedGradient",
    "EncryptedLoss",
    "EncryptedPartialScores",
    "EncryptedResidual",
    "EpochEnd",
    "EpochStart",
    "InterceptOffset",
    "MaskedGradient",
    "PartialScores",
    "PublicKeyMessage",
    "TrainingPlan",
    "ciphertext_fields",
]


# --- set-up ------------------------------------------------------------------


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


@dataclass(frozen=True)
class TrainingPlan:
    """B -> A, C: the configuration B will run and the aligned row count.

    A and C compare it with their own configuration and refuse to start on
    any difference.
    """

    config: TrainingConfig
    n_rows: int
    feature_holders: tuple[str, ...]


# --- alignment (A <-> B only; C takes no part) ---------------------------------


@dataclass(frozen=True)
class AlignmentKey:
    """A <-> B: an X25519 public key for agreeing the keyed-hash key."""

    public_key: bytes


@dataclass(frozen=True)
class AlignmentTags:
    """A <-> B: one tag per ID, concatenated (``width`` bytes each).

    Keyed-hash tags: HMAC-SHA256 under the agreed key, sorted by tag so the
    order says nothing about the sender's rows.
    """

    tags: bytes
    width: int


# --- training -----------------------------------------------------------------


@dataclass(frozen=True)
class EpochStart:
    """B -> A: the seed both sides derive this epoch's batch order from."""

    batch_seed: int


@dataclass(frozen=True)
class EncryptedPartialScores:
    """A -> B: [[u_A]] and [[L_A]], L_A = sum u_A^2 + m*lambda*||theta_A||^2."""

    scores: EncryptedVector
    loss_part: EncryptedVector


@dataclass(frozen=True)
class EncryptedResidual:
    """B -> A: [[d]] = [[u_A]] + (u_B - y), re-randomised for this recipient."""

    residual: EncryptedVector


@dataclass(frozen=True)
class EncryptedLoss:
    """B -> C: [[2 m L]] for a batch of `batch_rows` rows, re-randomised."""

    loss: EncryptedVector
    batch_rows: int


@dataclass(frozen=True)
class MaskedGradient:
    """A or B -> C: [[X^T d + R]] (B appends [[sum d + R_b]]), re-randomised."""

    values: EncryptedVector


@dataclass(frozen=True)
class DecryptedMaskedGradient:
    """C -> A or B: the decrypted masked gradient, residues in Z_n."""

    values: tuple[int, ...]


@dataclass(frozen=True)
class EpochEnd:
    """C -> A, B: whether to stop. Only B is told the loss."""

    stop: bool
    loss: float | None = None


# --- after training -------------------------------------------------------------


@dataclass(frozen=True)
class InterceptOffset:
    """A -> B: A's partial score of an all-zero raw row.

    A standardises its columns internally; its raw-unit model is
    ``X_raw @ w + offset``. Folding the offset into B's intercept makes each
    party's saved part a plain linear model. Reveals one scalar to B.
    """

    offset: float


@dataclass(frozen=True)
class PartialScores:
    """A -> B: u_A in the clear for rows to predict (PROTOCOL.md, prediction)."""

    scores: tuple[float, ...]


def ciphertext_fields(message: object) -> list[tuple[str, EncryptedVector]]:
    """The (name, vector) pairs of every ciphertext field in a message."""
    return [(f.name, getattr(message, f.name)) for f in fields(message)  # type: ignore[arg-type]
            if isinstance(getattr(message, f.name), EncryptedVector)]
