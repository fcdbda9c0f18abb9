"""Training configuration and the batch schedule every party derives alike."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["TrainingConfig", "batch_plan", "smallest_batch"]


@dataclass(frozen=True)
class TrainingConfig:
    """Hyper-parameters of federated linear regression, identical at every party.

    Parameters
    ----------
    epochs : int
        Maximum number of passes over the aligned rows.
    learning_rate : float
        Step size of gradient descent.
    batch_size : int or None
        Rows per mini-batch; None means full batch. A trailing remainder
        smaller than half a batch is merged into the batch before it, so no
        batch is much smaller than asked.
    l2 : float
        L2 penalty lambda on the weights (not on the intercept).
    tol : float
        The coordinator stops after the first epoch whose loss differs from
        the previous epoch's by at most `tol` (absolute). 0 disables it.
    min_batch_factor : float
        A party with d features refuses batches of m <= factor * d rows: with
        fewer rows than features its gradient reveals the residuals. Must be
        at least 1.
    standardize : bool
        Each party centres and scales its own columns internally (weights are
        reported back in raw units).
    """

    epochs: int = 20
    learning_rate: float = 0.1
    batch_size: int | None = None
    l2: float = 0.0
    tol: float = 1e-6
    min_batch_factor: float = 2.0
    standardize: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int)
                                            or self.batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None (full batch), "
                             f"got {self.batch_size!r}")
        if not (math.isfinite(self.l2) and self.l2 >= 0):
            raise ValueError(f"l2 must be >= 0, got {self.l2!r}")
        if not (math.isfinite(self.tol) and self.tol >= 0):
            raise ValueError(f"tol must be >= 0, got {self.tol!r}")
        if not (math.isfinite(self.min_batch_factor) and self.min_batch_factor >= 1):
            raise ValueError(f"min_batch_factor must be >= 1, got {self.min_batch_factor!r}")

    def to_dict(self) -> dict[str, object]:
        """Plain-dict form for reports."""
        return asdict(self)


def batch_plan(n_rows: int, batch_size: int | None, seed: int) -> list[np.ndarray]:
    """Row indices of each batch of one epoch.

    Full batch: all rows in order. Mini-batches: a permutation drawn from
    `seed` (PCG64) cut into `batch_size` pieces; a trailing piece smaller than
    half a batch joins the one before. A and B call this with the seed B
    sends, so they slice identical rows in identical order.
    """
    if n_rows < 1:
        raise ValueError("no rows to train on")
    if batch_size is None or batch_size >= n_rows:
        return [np.arange(n_rows)]
    order = np.random.Generator(np.random.PCG64(seed)).permutation(n_rows)
    cuts = list(range(batch_size, n_rows, batch_size))
    if n_rows - cuts[-1] < batch_size / 2:
        cuts.pop()
    return np.split(order, cuts)


def smallest_batch(n_rows: int, batch_size: int | None) -> int:
    """Size of the smallest batch :func:`batch_plan` produces (any seed)."""
    return min(len(b) for b in batch_plan(n_rows, batch_size, 0))
