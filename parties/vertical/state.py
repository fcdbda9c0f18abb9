"""The saved state of each vertical role: exactly what its checkpoints hold.

One dataclass per role (see :class:`vfl.runtime.state.RoleState`). Weights
are in standardised units, as the protocol updates them; the model files
hold raw units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from vfl.lbfgs import LbfgsBlock, LbfgsState
from vfl.optim import OptimizerState
from vfl.runtime.state import GeneratorState, RoleState
from vfl.training import StoppingState

__all__ = ["CoordinatorState", "EpochRecord", "FeatureHolderState", "LabelHolderState"]


@dataclass
class EpochRecord:
    """One epoch as the label holder learns it from C.

    Attributes
    ----------
    epoch : int
    loss : float
        Mean training loss of the epoch, penalty included.
    validation_loss : float or None
        Mean loss on the held-out rows (None without a validation split).
    """

    epoch: int
    loss: float
    validation_loss: float | None = None

    def as_dict(self) -> dict[str, float]:
        """The report's form: ``validation_loss`` only where there is one."""
        record: dict[str, float] = {"epoch": self.epoch, "loss": self.loss}
        if self.validation_loss is not None:
            record["validation_loss"] = self.validation_loss
        return record


@dataclass
class FeatureHolderState(RoleState):
    """A feature holder's weights and optimiser after an epoch.

    Attributes
    ----------
    theta : numpy.ndarray
        Its own weights.
    best : numpy.ndarray
        Its weights after the epoch C last marked best on validation.
    initial_weights : numpy.ndarray
        Its secret random start.
    optimizer : OptimizerState
    search : LbfgsBlock or None
        Its block of the L-BFGS vectors (``optimizer="lbfgs"`` only).
    """

    #: /2: the L-BFGS block joined the layout.
    LAYOUT: ClassVar[str] = "vertical.feature_holder/2"

    theta: np.ndarray
    best: np.ndarray
    initial_weights: np.ndarray
    optimizer: OptimizerState
    search: LbfgsBlock | None = None


@dataclass
class LabelHolderState(RoleState):
    """The label holder's weights, intercept, secrets and history after an epoch.

    Attributes
    ----------
    theta, bias : numpy.ndarray, float
        Its own weights and the intercept.
    best_theta, best_bias : numpy.ndarray, float
        The same after the epoch C last marked best on validation.
    initial_weights, initial_intercept : numpy.ndarray, float
        Its secret random start.
    split_seed : int
        Seed of the validation split (sent to every party in the plan).
    batch_seeds : list of int
        The seed B drew for each epoch so far (sent to the feature holders).
    history : list of EpochRecord
    optimizer : OptimizerState
    rng : GeneratorState or None
        The stream of the seeds B sends, after this epoch, when B was given a
        seed (tests): a resumed run draws the same batch seeds as an
        uninterrupted one. None otherwise: sent seeds then come from the OS
        CSPRNG. Never the secrets' stream.
    search : LbfgsBlock or None
        Its block of the L-BFGS vectors, the intercept last
        (``optimizer="lbfgs"`` only).
    """

    #: /2: the L-BFGS block joined the layout.
    LAYOUT: ClassVar[str] = "vertical.label_holder/2"

    theta: np.ndarray
    bias: float
    best_theta: np.ndarray
    best_bias: float
    initial_weights: np.ndarray
    initial_intercept: float
    split_seed: int
    batch_seeds: list[int]
    history: list[EpochRecord]
    optimizer: OptimizerState
    rng: GeneratorState | None
    search: LbfgsBlock | None = None


@dataclass
class CoordinatorState(RoleState):
    """The coordinator's losses and stopping rule after an epoch.

    Attributes
    ----------
    n_rows, split_seed : int
        The plan it served (a resumed run must serve the same).
    losses, validation_losses : list of float
        Every epoch's mean training and validation loss.
    stopping : StoppingState
    search : LbfgsState or None
        The L-BFGS memory's Gram matrix, the current loss and direction's slope
        (``optimizer="lbfgs"`` only).
    """

    #: /2: the L-BFGS state joined the layout.
    LAYOUT: ClassVar[str] = "vertical.coordinator/2"

    n_rows: int
    split_seed: int
    losses: list[float]
    validation_losses: list[float]
    stopping: StoppingState
    search: LbfgsState | None = None
