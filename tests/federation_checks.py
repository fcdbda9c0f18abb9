"""Central computations tests compare the federation with."""

from __future__ import annotations

import numpy as np
import pandas as pd

from parties import FeatureHolder, LabelHolder

__all__ = ["joined"]


def joined(a: FeatureHolder, b: LabelHolder, a_frame: pd.DataFrame, b_frame: pd.DataFrame
           ) -> tuple[np.ndarray, np.ndarray]:
    """Joined (X, y) in the federation's aligned order, built centrally for checks."""
    assert a.aligned_ids_ == b.aligned_ids_, "A and B must hold the same rows in the same order"
    xa = a_frame.set_index(a.id_column).loc[a.aligned_ids_, a.table.feature_names].to_numpy()
    bf = b_frame.set_index(b.id_column).loc[b.aligned_ids_]
    return (np.column_stack([xa, bf[b.table.feature_names].to_numpy()]),
            bf[b.label_column].to_numpy(dtype=float))
