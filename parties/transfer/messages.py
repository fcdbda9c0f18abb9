"""Typed messages of the transfer protocol (``docs/transfer.md``), one dataclass per step.

Arrows give sender -> recipient; A is the source, B the target. Tensor
fields are :data:`~parties.transfer.ops.Wire` values: ciphertexts in the
encrypted mode, floats in plain mode. ``[[x]]_A`` is under A's key. Nothing
here carries a raw ID, feature, label, representation or parameter in the
clear, except the final Φ (B's model) and, in plain mode, everything.
"""

from __future__ import annotations

from dataclasses import dataclass

from parties.transfer.config import TransferConfig
from parties.transfer.ops import Wire
from vfl.protocol.messages import PublicKeyMessage
from vfl.protocol.wire import wire_message

__all__ = [
    "DecryptedForSource",
    "DecryptedForTarget",
    "FinalPhi",
    "SourceMaskedGradient",
    "SourceTerms",
    "TargetAccept",
    "TargetMaskedGradient",
    "TargetTerms",
    "TransferEpochEnd",
    "TransferOpen",
    "TransferPlan",
]


@wire_message
@dataclass(frozen=True)
class TransferOpen:
    """A <-> B: the mode and, encrypted, this party's public key (step 0)."""

    mode: str
    key: PublicKeyMessage | None = None


@wire_message
@dataclass(frozen=True)
class TransferPlan:
    """A -> B: the configuration, the overlap size and A's input columns."""

    config: TransferConfig
    overlap_rows: int
    source_inputs: int


@wire_message
@dataclass(frozen=True)
class TargetAccept:
    """B -> A: B runs the plan; its input columns (for the overlap floor)."""

    target_inputs: int


@wire_message
@dataclass(frozen=True)
class SourceTerms:
    """A -> B: [[h]]_A (overlap rows x d, scale 2) and [[M_A]]_A (d x d, scale 1)."""

    h: Wire
    m: Wire


@wire_message
@dataclass(frozen=True)
class TargetTerms:
    """B -> A: [[u_B]]_B (overlap rows x d, scale 1) and [[M_B]]_B (d x d, scale 1)."""

    u: Wire
    m: Wire


@wire_message
@dataclass(frozen=True)
class TargetMaskedGradient:
    """B -> A: [[Σ J_Bᵀ g + R_B]]_A, re-randomised; A decrypts it for B."""

    values: Wire


@wire_message
@dataclass(frozen=True)
class SourceMaskedGradient:
    """A -> B: [[∂L/∂θ_A - λθ_A + R_A]]_B and, in an epoch's first round, [[L' + rho]]_B."""

    values: Wire
    loss: Wire | None = None


@wire_message
@dataclass(frozen=True)
class DecryptedForTarget:
    """A -> B: B's masked gradient decrypted (residues in Z_{n_A})."""

    values: tuple[int | float, ...]


@wire_message
@dataclass(frozen=True)
class DecryptedForSource:
    """B -> A: A's masked gradient decrypted, and the masked loss plus B's penalty."""

    values: tuple[int | float, ...]
    loss: int | float | None = None


@wire_message
@dataclass(frozen=True)
class TransferEpochEnd:
    """A -> B: whether the stopping rule ended the run (A alone learns the loss)."""

    stop: bool


@wire_message
@dataclass(frozen=True)
class FinalPhi:
    """A -> B: Φ of A's final network, B's model for scoring all of its rows."""

    phi: tuple[float, ...]
