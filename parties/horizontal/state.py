"""The saved state of each horizontal role: exactly what its checkpoints hold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from vfl.runtime.state import GeneratorState, RoleState

__all__ = ["ClientState", "KeyHolderState", "RoundRecord", "ServerState"]


@dataclass
class RoundRecord:
    """One round as the server learns it.

    Attributes
    ----------
    round : int
    loss : float or None
        Mean loss of the global model before the round's update, over the rows
        of the clients whose updates arrived (None: the round was not decrypted).
    participants : list of str
        Clients whose updates are in the round's sum.
    dropped : list of str
        Clients sampled for the round whose updates did not arrive (late, or
        departed: sampling draws from every client).
    rows : int
        Rows behind the sum (the decrypted sum of the counts; 0 if not decrypted).
    """

    round: int
    loss: float | None
    participants: list[str]
    dropped: list[str]
    rows: int


@dataclass
class ServerState(RoleState):
    """The global model, the server optimiser and the sampling stream after a round.

    Attributes
    ----------
    weights : numpy.ndarray
        ``W`` flattened row by row, in standardised units.
    first, second : numpy.ndarray
        FedAdam's moments (zeros for plain averaging).
    rng : GeneratorState
        The client-sampling stream (seeded from the configuration).
    history : list of RoundRecord
    departed : list of str
        Clients whose process stopped (over the network): sent nothing and a
        dropout whenever sampled, until a new process of the client rejoins.
        (A client that merely missed a deadline stays present.)
    """

    LAYOUT: ClassVar[str] = "horizontal.server/1"

    weights: np.ndarray
    first: np.ndarray
    second: np.ndarray
    rng: GeneratorState
    history: list[RoundRecord]
    departed: list[str]


@dataclass
class ClientState(RoleState):
    """A client's place in the run (its batch orders derive from the seed and the round).

    Attributes
    ----------
    rounds_joined : list of int
        Rounds this client sent an update in (in time, as far as it knows).
    """

    LAYOUT: ClassVar[str] = "horizontal.client/1"

    rounds_joined: list[int]


@dataclass
class KeyHolderState(RoleState):
    """The key holder's count of decrypted ciphertexts (C learns nothing else)."""

    LAYOUT: ClassVar[str] = "horizontal.key_holder/1"

    decryptions: int
