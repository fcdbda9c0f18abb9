"""Alignment of one label holder with one or several feature holders.

B runs the pairwise method with each feature holder A_k in turn, keeps the
rows it shares with all of them, and tells each A_k which of its pairwise
shared rows survive and in which order. Every party ends with its rows of the
common intersection in the same order: sorted by normalised ID. Each A_k
learns, beyond its pairwise result, the size of the common intersection; the
coordinator takes no part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vfl.errors import ConfigMismatchError, EmptyIntersectionError, MalformedMessageError
from vfl.protocol.channel import Endpoint
from vfl.protocol.wire import wire_message
from vfl.psi.base import AlignmentMethod

__all__ = [
    "AlignmentHello",
    "AlignmentSelection",
    "align_as_feature_holder",
    "align_as_label_holder",
]


@wire_message
@dataclass(frozen=True)
class AlignmentHello:
    """A_k <-> B, first: the alignment method each side was configured with.

    So that parties configured differently stop with both settings named,
    instead of at the first message one method does not expect.
    """

    method: str


@wire_message
@dataclass(frozen=True)
class AlignmentSelection:
    """B -> A_k: indices into A_k's pairwise result, in the common order."""

    indices: tuple[int, ...]


def align_as_label_holder(ids: Sequence[str], endpoint: Endpoint,
                          feature_holders: Sequence[str],
                          method: AlignmentMethod) -> np.ndarray:
    """B's side: positions of B's rows shared by every feature holder.

    Raises
    ------
    EmptyIntersectionError
        If no ID is shared by all parties (B still tells every feature holder,
        who then raise too).
    """
    for a in feature_holders:
        _agree_method(endpoint, a, method)
    pairwise = [method.run(ids, endpoint, a, leader=True) for a in feature_holders]
    common = set(pairwise[0].positions.tolist())
    for result in pairwise[1:]:
        common &= set(result.positions.tolist())
    # The common order sorts the shared IDs: every party already knows them,
    # so the order reveals nothing (B's row order might), and the same data
    # always give the same order, hence reproducible batches.
    order = sorted(common, key=lambda row: ids[row])
    for name, result in zip(feature_holders, pairwise):
        where = {row: k for k, row in enumerate(result.positions.tolist())}
        endpoint.send(name, AlignmentSelection(tuple(where[row] for row in order)))
    if not order:
        sizes = ", ".join(f"{a}: {len(r)}" for a, r in zip(feature_holders, pairwise))
        raise EmptyIntersectionError(
            f"no ID is shared by all parties (rows shared with each feature holder: {sizes}); "
            "check that every party's ID column holds the same kind of identifier",
            party=endpoint.name)
    return np.array(order, dtype=np.int64)


def align_as_feature_holder(ids: Sequence[str], endpoint: Endpoint, label_holder: str,
                            method: AlignmentMethod) -> np.ndarray:
    """A_k's side: positions of A_k's rows in the common order."""
    _agree_method(endpoint, label_holder, method)
    result = method.run(ids, endpoint, label_holder, leader=False)
    selection = endpoint.receive(label_holder, AlignmentSelection)
    indices = np.asarray(selection.indices, dtype=np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= len(result)
                         or len(set(selection.indices)) != indices.size):
        raise MalformedMessageError(f"{label_holder} sent an invalid alignment selection",
                                    party=endpoint.name)
    if not indices.size:
        raise EmptyIntersectionError(
            f"no ID is shared by all parties ({len(result)} shared with {label_holder}); "
            "check that every party's ID column holds the same kind of identifier",
            party=endpoint.name)
    return result.positions[indices]


def _agree_method(endpoint: Endpoint, peer: str, method: AlignmentMethod) -> None:
    """Swap method names with `peer`; refuse to go on if they differ.

    Raises
    ------
    ConfigMismatchError
        Naming both methods and what to change.
    """
    endpoint.send(peer, AlignmentHello(method.name))
    theirs = endpoint.receive(peer, AlignmentHello).method
    if theirs != method.name:
        raise ConfigMismatchError(
            f"{peer} aligns with the {theirs!r} method, this party with {method.name!r}; set "
            "the same alignment method at every party", party=endpoint.name)
