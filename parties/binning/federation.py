"""Run a binning federation as threads of this process (notebooks, tests, ``vfl binning``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from parties.binning.config import BinningConfig
from parties.binning.coordinator import BinningCoordinator
from parties.binning.feature_holder import BinningFeatureHolder
from parties.binning.label_holder import BinningLabelHolder
from parties.binning.party import BinningState
from vfl.protocol.channel import DEFAULT_TIMEOUT_S, Endpoint, InProcessNetwork
from vfl.psi import DEFAULT_ALIGNMENT
from vfl.runtime.inprocess import run_parties
from vfl.runtime.role import Role
from vfl.runtime.session import Session

__all__ = ["run_binning"]


def run_binning(label_holder: BinningLabelHolder,
                feature_holders: BinningFeatureHolder | Sequence[BinningFeatureHolder],
                coordinator: BinningCoordinator, config: BinningConfig | None = None, *,
                alignment: str = DEFAULT_ALIGNMENT, timeout: float = DEFAULT_TIMEOUT_S,
                record: bool = False) -> InProcessNetwork:
    """Align, bin every party's columns and compute their WOE and IV.

    Afterwards every data party holds ``result_`` (its view of the columns)
    and ``bins_`` (its own columns' bins); see ``docs/binning.md`` for who
    learns what.

    Parameters
    ----------
    config : BinningConfig, optional
        The settings every party runs with (default: 10 quantile bins).
    record : bool
        Keep every message in the returned network's ``transcript``.

    Returns
    -------
    InProcessNetwork
        The network the run used (its transcript when `record`).
    """
    config = config or BinningConfig()
    holders = ([feature_holders] if isinstance(feature_holders, BinningFeatureHolder)
               else list(feature_holders))
    names = [a.name for a in holders]
    every = [label_holder.name, *names, coordinator.name]
    if len(set(every)) != len(every):
        raise ValueError(f"party names must differ, got {every}")
    label_holder.begin_run(config, feature_holders=names, alignment=alignment,
                           coordinator=coordinator.name)
    for holder in holders:
        holder.begin_run(config, alignment=alignment, label_holder=label_holder.name,
                         coordinator=coordinator.name)
    coordinator.begin_run(config, label_holder=label_holder.name, feature_holders=names)
    network = InProcessNetwork(every, uuid.uuid4().hex, timeout=timeout, record=record)

    def task(role: Role[BinningState]) -> Callable[[Endpoint], None]:
        return lambda endpoint: Session(role, endpoint).run()

    run_parties(network, {role.name: task(role) for role in (label_holder, *holders,
                                                              coordinator)},
                prefer=label_holder.name)
    return network
