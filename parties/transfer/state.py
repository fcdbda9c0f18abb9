"""The saved state of each transfer role: exactly what its checkpoints hold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from vfl.runtime.state import RoleState

__all__ = ["SourceState", "TargetState"]


@dataclass
class SourceState(RoleState):
    """The source's network and loss history after an epoch.

    Attributes
    ----------
    params : numpy.ndarray
        Its network's parameters (flat).
    initial_params : numpy.ndarray
        Its secret random start.
    history : list of float
        The loss L of every epoch (in its first local round).
    """

    LAYOUT: ClassVar[str] = "transfer.source/1"

    params: np.ndarray
    initial_params: np.ndarray
    history: list[float]


@dataclass
class TargetState(RoleState):
    """The target's network after an epoch."""

    LAYOUT: ClassVar[str] = "transfer.target/1"

    params: np.ndarray
    initial_params: np.ndarray
