"""Non-IID splits: every row exactly once, reproducible from the seed, skewed as asked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from parties.horizontal import dirichlet_label_skew, quantity_skew, split_by_column


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"row": np.arange(600), "x": rng.normal(size=600),
                         "y": rng.integers(0, 3, size=600), "site": rng.integers(0, 4, 600)})


def _rows(parts) -> list[int]:
    return sorted(int(r) for p in parts for r in p["row"])


def test_dirichlet_label_skew(table) -> None:
    parts = dirichlet_label_skew(table, "y", 5, alpha=0.2, seed=3)
    assert len(parts) == 5 and _rows(parts) == list(range(600))
    again = dirichlet_label_skew(table, "y", 5, alpha=0.2, seed=3)
    assert all(a.equals(b) for a, b in zip(parts, again))
    other = dirichlet_label_skew(table, "y", 5, alpha=0.2, seed=4)
    assert not all(a.equals(b) for a, b in zip(parts, other))
    # Small alpha: clients' class mixes differ far more than IID sampling would make them.
    mixes = np.array([[np.mean(p["y"] == c) for c in range(3)] for p in parts])
    iid = dirichlet_label_skew(table, "y", 5, alpha=1000.0, seed=3)
    iid_mixes = np.array([[np.mean(p["y"] == c) for c in range(3)] for p in iid])
    assert np.abs(iid_mixes - 1 / 3).max() < 0.15 < np.abs(mixes - 1 / 3).max()


def test_quantity_skew(table) -> None:
    parts = quantity_skew(table, 4, alpha=0.3, seed=1)
    assert _rows(parts) == list(range(600)) and all(len(p) >= 1 for p in parts)
    sizes = sorted(len(p) for p in parts)
    assert sizes[-1] > 3 * sizes[0]
    even = quantity_skew(table, 4, alpha=1000.0, seed=1)
    assert max(len(p) for p in even) - min(len(p) for p in even) < 60


def test_split_by_column(table) -> None:
    parts = split_by_column(table, "site")
    assert list(parts) == ["0", "1", "2", "3"]
    assert _rows(parts.values()) == list(range(600))
    assert all("site" not in p.columns for p in parts.values())
    assert all((table.loc[p["row"], "site"] == int(k)).all() for k, p in parts.items())


def test_bad_requests_raise(table) -> None:
    with pytest.raises(ValueError, match="two or more clients"):
        quantity_skew(table, 1)
    with pytest.raises(ValueError, match="alpha"):
        dirichlet_label_skew(table, "y", 3, alpha=0)
    with pytest.raises(ValueError, match="fewer than two values"):
        split_by_column(table.assign(site=1), "site")
