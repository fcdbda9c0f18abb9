"""Typed messages of the horizontal protocol (``docs/horizontal.md``), one dataclass per step.

Arrows give sender -> recipient. S is the server, C the key holder, and
``Ck`` a client. Ciphertext fields are :class:`~vfl.crypto.EncryptedVector`s,
validated on receipt (:meth:`vfl.runtime.role.Role.receive`). No message
from a client carries anything in the clear but its place in the protocol;
the only plaintext values S sends are the global model and the federated
column statistics, which every client may see.
"""

from __future__ import annotations

from dataclasses import dataclass

from parties.horizontal.config import HorizontalConfig
from vfl.crypto.ciphertext import EncryptedVector
from vfl.protocol.wire import wire_message

__all__ = [
    "Admission",
    "ColumnMeans",
    "DecryptedAggregate",
    "EncryptedStatistics",
    "EncryptedUpdate",
    "FinalModel",
    "HorizontalPlan",
    "Join",
    "MaskedAggregate",
    "RoundStart",
    "Standardisation",
]


@wire_message
@dataclass(frozen=True)
class Join:
    """Ck -> S, the first message of every client process: it is here, at the start of
    a run or back after a restart (it carries nothing)."""


@wire_message
@dataclass(frozen=True)
class Admission:
    """S -> Ck: how the client enters the run."""

    #: False: the run starts (or resumes): the key from C, the federated
    #: standardisation, the plan. True: the run is under way and the client
    #: rejoins it: the key from C, the federation's standardisation and the plan
    #: from S, and it takes part from the plan's ``first_round``.
    rejoin: bool


@wire_message
@dataclass(frozen=True)
class HorizontalPlan:
    """S -> Ck, C: the run: configuration, clients, columns and classes."""

    config: HorizontalConfig
    clients: tuple[str, ...]
    features: tuple[str, ...]
    #: Class labels of a softmax model, in column order (empty otherwise).
    classes: tuple[float, ...] = ()
    #: The first round the recipient takes part in: 1 in a new run, the round after
    #: S's checkpoint in a resumed one, a later round for a client that rejoins.
    first_round: int = 1


# --- federated standardisation (the "align" step; epoch 0, batch 1 and 2) -----------


@wire_message
@dataclass(frozen=True)
class EncryptedStatistics:
    """Ck -> S: packed [[sum_i x_ij, ..., n_k]] (batch 1) or [[sum_i (x_ij - mean_j)^2]]
    (batch 2)."""

    values: EncryptedVector


@wire_message
@dataclass(frozen=True)
class ColumnMeans:
    """S -> Ck: the federation's column means, from the unmasked sums."""

    means: tuple[float, ...]


@wire_message
@dataclass(frozen=True)
class Standardisation:
    """S -> Ck: the federation's column means and standard deviations (population)."""

    means: tuple[float, ...]
    scales: tuple[float, ...]


# --- a round (epoch = round, batch 1) --------------------------------------------------


@wire_message
@dataclass(frozen=True)
class RoundStart:
    """S -> every present client: whether it takes part, and the global model if so."""

    selected: bool
    #: ``W`` flattened row by row (empty when not selected).
    weights: tuple[float, ...]


@wire_message
@dataclass(frozen=True)
class EncryptedUpdate:
    """Ck -> S: packed [[n_k (W_k - W), n_k L_k(W), n_k]], fresh randomness."""

    values: EncryptedVector


@wire_message
@dataclass(frozen=True)
class MaskedAggregate:
    """S -> C: [[sum_k update_k + R]], R uniform in Z_n per ciphertext, re-randomised.

    Empty when fewer than ``min_clients`` updates arrived: nothing is decrypted.
    """

    values: EncryptedVector
    #: Clients that rejoin the run: C sends each of them its public key after
    #: this decryption (they take part from the next round).
    joining: tuple[str, ...] = ()


@wire_message
@dataclass(frozen=True)
class DecryptedAggregate:
    """C -> S: the decryptions, each uniform in Z_n to C."""

    values: tuple[int, ...]


@wire_message
@dataclass(frozen=True)
class FinalModel:
    """S -> present clients, after the last round: the global model (standardised units)."""

    weights: tuple[float, ...]
