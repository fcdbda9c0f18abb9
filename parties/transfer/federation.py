"""Run a source and a target as threads of this process (notebooks, tests, ``vfl transfer``)."""

from __future__ import annotations

import uuid
from typing import Any

from parties.transfer.config import TransferConfig
from parties.transfer.source import TransferSource
from parties.transfer.state import SourceState, TargetState
from parties.transfer.target import TransferTarget
from vfl.protocol.channel import DEFAULT_TIMEOUT_S, Endpoint, InProcessNetwork
from vfl.psi import DEFAULT_ALIGNMENT
from vfl.runtime.checkpoint import CheckpointStore
from vfl.runtime.inprocess import run_parties
from vfl.runtime.session import Session

__all__ = ["run_transfer"]


def run_transfer(source: TransferSource, target: TransferTarget, config: TransferConfig, *,
                 alignment: str = DEFAULT_ALIGNMENT, timeout: float = DEFAULT_TIMEOUT_S,
                 parallel: bool = True, record: bool = False,
                 checkpoints: tuple[CheckpointStore[SourceState],
                                    CheckpointStore[TargetState]] | None = None
                 ) -> InProcessNetwork:
    """Align, train and hand B its model; each party runs its own :class:`Session`.

    Parameters
    ----------
    parallel : bool
        Let the Paillier engines use the shared process pool.
    record : bool
        Keep every message in the returned network's ``transcript``.
    checkpoints : (source store, target store), optional
        Save each party's state after every epoch and resume from the latest
        epoch both hold.

    Returns
    -------
    InProcessNetwork
        The network the run used (its transcript when `record`).
    """
    if source.name == target.name:
        raise ValueError(f"source and target are both named {source.name!r}")
    source.begin_run(config, peer=target.name, alignment=alignment, parallel=parallel)
    target.begin_run(config, peer=source.name, alignment=alignment, parallel=parallel)
    network = InProcessNetwork([source.name, target.name], uuid.uuid4().hex, timeout=timeout,
                               record=record)
    stores: tuple[Any, Any] = checkpoints or (None, None)

    def run_source(endpoint: Endpoint) -> None:
        Session(source, endpoint, checkpoints=stores[0]).run()

    def run_target(endpoint: Endpoint) -> None:
        Session(target, endpoint, checkpoints=stores[1]).run()

    run_parties(network, {source.name: run_source, target.name: run_target},
                prefer=source.name)
    return network
