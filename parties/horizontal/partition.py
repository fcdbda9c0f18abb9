"""Split one table into K clients' tables, for non-IID simulations, from a seed.

- :func:`dirichlet_label_skew`: each class's rows are spread over the clients
  by proportions drawn from ``Dirichlet(alpha)`` (small alpha: each client
  holds mostly a few classes; Hsu et al., 2019).
- :func:`quantity_skew`: client sizes drawn from ``Dirichlet(alpha)``, rows at random.
- :func:`split_by_column`: one client per value of a column (a region, a hospital).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["dirichlet_label_skew", "quantity_skew", "split_by_column"]


def _check(frame: pd.DataFrame, clients: int, alpha: float) -> None:
    if clients < 2:
        raise ValueError(f"need two or more clients, got {clients}")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    if len(frame) < clients:
        raise ValueError(f"{len(frame)} rows cannot fill {clients} clients")


def _cut(rows: np.ndarray, shares: np.ndarray) -> list[np.ndarray]:
    bounds = np.round(np.cumsum(shares)[:-1] * len(rows)).astype(int)
    return np.split(rows, bounds)


def _fill_empty(parts: list[list[int]], rng: np.random.Generator) -> None:
    """Move one row into each empty client from the largest (every client holds a row)."""
    for k, part in enumerate(parts):
        if not part:
            donor = max(range(len(parts)), key=lambda j: len(parts[j]))
            part.append(parts[donor].pop(int(rng.integers(len(parts[donor])))))
            parts[k] = part


def dirichlet_label_skew(frame: pd.DataFrame, label_column: str, clients: int, *,
                         alpha: float = 0.5, seed: int = 0) -> list[pd.DataFrame]:
    """K tables whose label mixes differ, by Dirichlet(alpha) proportions per class."""
    _check(frame, clients, alpha)
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(clients)]
    labels = frame[label_column].to_numpy()
    for value in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == value))
        for k, chunk in enumerate(_cut(rows, rng.dirichlet([alpha] * clients))):
            parts[k].extend(int(i) for i in chunk)
    _fill_empty(parts, rng)
    return [frame.iloc[sorted(p)].reset_index(drop=True) for p in parts]


def quantity_skew(frame: pd.DataFrame, clients: int, *, alpha: float = 0.5,
                  seed: int = 0) -> list[pd.DataFrame]:
    """K tables of Dirichlet(alpha)-distributed sizes, rows drawn at random."""
    _check(frame, clients, alpha)
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(frame))
    parts = [[int(i) for i in chunk] for chunk in _cut(rows, rng.dirichlet([alpha] * clients))]
    _fill_empty(parts, rng)
    return [frame.iloc[sorted(p)].reset_index(drop=True) for p in parts]


def split_by_column(frame: pd.DataFrame, column: str, *,
                    drop: bool = True) -> dict[str, pd.DataFrame]:
    """One table per value of `column` (sorted by value), the column dropped unless `drop=False`."""
    if column not in frame.columns:
        raise KeyError(f"no column {column!r}")
    out = {}
    for value, part in frame.groupby(column, sort=True):
        table = part.drop(columns=[column]) if drop else part
        out[str(value)] = table.reset_index(drop=True)
    if len(out) < 2:
        raise ValueError(f"column {column!r} has fewer than two values")
    return out
