"""Central computations tests compare the federation with."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from parties import FeatureHolder, LabelHolder
from vfl.reference import CentralizedResult, train_centralized
from vfl.training import TrainingConfig

__all__ = ["federated_params", "joined", "reference_run"]


def joined(a: FeatureHolder | Sequence[FeatureHolder], b: LabelHolder,
           a_frame: pd.DataFrame | Sequence[pd.DataFrame], b_frame: pd.DataFrame
           ) -> tuple[np.ndarray, np.ndarray]:
    """Joined (X, y) in the federation's aligned order, built centrally for checks.

    Columns: each feature holder's in turn, then the label holder's.
    """
    holders = [a] if isinstance(a, FeatureHolder) else list(a)
    frames = [a_frame] if isinstance(a_frame, pd.DataFrame) else list(a_frame)
    for holder in holders:
        assert holder.aligned_ids_ == b.aligned_ids_, "every party must hold the same rows"
    blocks = [f.set_index(h.id_column).loc[h.aligned_ids_, h.table.feature_names].to_numpy()
              for h, f in zip(holders, frames)]
    bf = b_frame.set_index(b.id_column).loc[b.aligned_ids_]
    return (np.column_stack([*blocks, bf[b.table.feature_names].to_numpy()]),
            bf[b.label_column].to_numpy(dtype=float))


def reference_run(holders: Sequence[FeatureHolder], b: LabelHolder, frames: Sequence[pd.DataFrame],
                  b_frame: pd.DataFrame, config: TrainingConfig
                  ) -> tuple[CentralizedResult, np.ndarray, np.ndarray]:
    """Centralized training with the federation's secrets; returns (result, X, y)."""
    x, y = joined(holders, b, frames, b_frame)
    result = train_centralized(
        x, y, config,
        initial_weights=np.concatenate([*(a.initial_weights_ for a in holders),
                                        b.initial_weights_]),
        initial_intercept=b.initial_intercept_, batch_seeds=b.batch_seeds_,
        split_seed=b.split_seed_,
        blocks=[len(a.table.feature_names) for a in holders] + [len(b.table.feature_names)])
    return result, x, y


def federated_params(holders: Sequence[FeatureHolder], b: LabelHolder) -> np.ndarray:
    """Every weight in joined order, then the intercept."""
    return np.r_[np.concatenate([a.coef_.to_numpy() for a in holders]), b.coef_.to_numpy(),
                 b.intercept_]
