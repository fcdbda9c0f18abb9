"""Bundled example data and a helper to split a table between parties.

``diabetes.csv`` is the diabetes data of Efron, Hastie, Johnstone and
Tibshirani, "Least Angle Regression" (Annals of Statistics, 2004), in raw
units as scikit-learn ships it (BSD-3-Clause), with a ``patient_id`` column
added: 442 patients, 10 features, label ``progression`` (disease progression
one year after baseline).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

import numpy as np
import pandas as pd

__all__ = ["DIABETES_FEATURE_HOLDER_COLUMNS", "load_diabetes", "split_vertically"]

#: Columns the demo gives the feature holder (demographics and blood
#: pressure, as a clinic would hold); the label holder keeps the blood tests.
DIABETES_FEATURE_HOLDER_COLUMNS = ["age", "sex", "bmi", "bp"]


def load_diabetes() -> pd.DataFrame:
    """The bundled diabetes table (ID ``patient_id``, label ``progression``)."""
    with resources.files(__package__).joinpath("diabetes.csv").open("r") as handle:
        return pd.read_csv(handle, dtype={"patient_id": str})


def split_vertically(frame: pd.DataFrame, *, id_column: str, label_column: str,
                     feature_holder_columns: Sequence[str], drop_fraction: float = 0.1,
                     seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a table into a feature holder's and a label holder's, partly overlapping.

    Each side loses a different random `drop_fraction` of the rows and gets
    its rows in its own random order, as two real organisations would.

    Returns
    -------
    (feature_holder_frame, label_holder_frame)
    """
    rng = np.random.default_rng(seed)
    n = len(frame)
    drop = round(drop_fraction * n)
    keep_a = np.sort(rng.permutation(n)[drop:])
    keep_b = np.sort(rng.permutation(n)[drop:])
    a_cols = [id_column, *feature_holder_columns]
    b_cols = [c for c in frame.columns if c not in feature_holder_columns]
    if label_column not in b_cols:
        raise ValueError("the label cannot go to the feature holder")
    a = frame.iloc[rng.permutation(keep_a)][a_cols].reset_index(drop=True)
    b = frame.iloc[rng.permutation(keep_b)][b_cols].reset_index(drop=True)
    return a, b
