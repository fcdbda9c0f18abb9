"""A scikit-learn-style estimator over an in-process source and target, for notebooks.

>>> model = FederatedTransferLearning(hidden=(32,), epochs=20, alpha=1.0)
>>> model.fit(source, target)                 # doctest: +SKIP
>>> model.predict_proba()                     # every row of the target  # doctest: +SKIP

In a notebook one person plays both roles; in a deployment each organisation
runs only its own party.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from parties.params import ConfigEstimator
from parties.transfer.config import TransferConfig
from parties.transfer.federation import run_transfer
from parties.transfer.source import TransferSource
from parties.transfer.target import TransferTarget
from vfl.protocol.channel import DEFAULT_TIMEOUT_S
from vfl.psi import DEFAULT_ALIGNMENT

__all__ = ["FederatedTransferLearning"]

_RUNTIME = {"alignment": DEFAULT_ALIGNMENT, "timeout": DEFAULT_TIMEOUT_S, "parallel": True}


class FederatedTransferLearning(ConfigEstimator):
    """Train a target's network with a labelled source's help (``docs/transfer.md``).

    Parameters
    ----------
    **params
        Any :class:`~parties.transfer.TransferConfig` field (``hidden``,
        ``activations``, ``epochs``, ``learning_rate``, ``alpha``, ``l2``,
        ``local_rounds``, ``tol``, ``mode``, ``insecure``, ``key_bits``,
        ``backend``, ``min_overlap_factor``), and ``alignment``, ``timeout``,
        ``parallel``.

    Attributes
    ----------
    history_ : pandas.DataFrame
        ``epoch`` and ``loss`` (as the source learns it).
    overlap_rows_ : int
        Rows the parties share.
    source_, target_ : the parties of the last fit
    """

    _config_type = TransferConfig
    _runtime = _RUNTIME

    alignment: str
    timeout: float
    parallel: bool

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.source_: TransferSource | None = None
        self.target_: TransferTarget | None = None

    @property
    def config(self) -> TransferConfig:
        config: TransferConfig = super().config
        return config

    def fit(self, source: TransferSource, target: TransferTarget) -> FederatedTransferLearning:
        """Align the rows privately and train both networks; returns self."""
        if not isinstance(source, TransferSource) or not isinstance(target, TransferTarget):
            raise TypeError("fit(source, target) takes a TransferSource and a TransferTarget, "
                            f"got {type(source).__name__} and {type(target).__name__}")
        run_transfer(source, target, self.config, alignment=self.alignment,
                     timeout=self.timeout, parallel=self.parallel)
        self.source_, self.target_ = source, target
        return self

    def _fitted(self) -> tuple[TransferSource, TransferTarget]:
        if self.source_ is None or self.target_ is None:
            raise AttributeError("FederatedTransferLearning is not fitted yet: call fit()")
        return self.source_, self.target_

    @property
    def history_(self) -> pd.DataFrame:
        source, _ = self._fitted()
        frame = pd.DataFrame(source.history_)
        return frame if len(frame) else pd.DataFrame(columns=["epoch", "loss"])

    @property
    def overlap_rows_(self) -> int:
        source, _ = self._fitted()
        assert source.overlap_ is not None
        return len(source.overlap_)

    def predict_proba(self, data: pd.DataFrame | None = None) -> pd.Series:
        """P(class 1) for every row of the target (or of `data`, in the target's columns)."""
        _, target = self._fitted()
        return target.predict_proba(data)
