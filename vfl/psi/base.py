"""The seam every alignment method plugs into.

An alignment method runs between the label holder B and one feature holder A
over their :class:`~vfl.protocol.channel.Endpoint` s; the coordinator takes no
part and sees nothing. Both sides call :meth:`AlignmentMethod.run` with their
normalised IDs and get back the positions of their shared rows in one order
that both derive identically.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from vfl.protocol.channel import Endpoint

__all__ = ["AlignmentMethod", "AlignmentResult"]


@dataclass(frozen=True)
class AlignmentResult:
    """What one side learns from an alignment.

    Attributes
    ----------
    positions : numpy.ndarray of int
        Indices into this party's rows, one per shared ID, in the order both
        sides agree on. Row ``positions[i]`` here and row ``positions[i]`` of
        the peer's own result belong to the same person.
    peer_size : int
        Number of IDs the peer holds (the protocol reveals it).
    """

    positions: np.ndarray
    peer_size: int

    def __len__(self) -> int:
        return len(self.positions)


class AlignmentMethod(ABC):
    """One private set intersection protocol between two parties."""

    #: Name used by ``method=`` and ``--method``.
    name: ClassVar[str]

    @abstractmethod
    def run(self, ids: Sequence[str], endpoint: Endpoint, peer: str, *,
            leader: bool) -> AlignmentResult:
        """Align `ids` (already normalised) with `peer`.

        Parameters
        ----------
        ids : sequence of str
            This party's normalised IDs, in row order, without duplicates.
        endpoint : Endpoint
            This party's connection.
        peer : str
            Name of the other party.
        leader : bool
            True on the label holder's side; methods that are not symmetric
            use it to decide who speaks first.
        """
