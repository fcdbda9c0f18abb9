"""Small synthetic source and target tables with a 15-row overlap (shared by the tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Small keys keep the tests fast; they are factorable, hence insecure=True.
KEY_BITS = 512


def make_frames(seed: int = 0, n_a: int = 40, n_b: int = 30, first_b: int = 25
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids_a = [f"id{i}" for i in range(n_a)]
    ids_b = [f"id{i}" for i in range(first_b, first_b + n_b)]
    frame_a = pd.DataFrame(rng.normal(size=(n_a, 3)), columns=["a1", "a2", "a3"])
    frame_a.insert(0, "ID", ids_a)
    frame_a["y"] = rng.integers(0, 2, n_a)
    frame_b = pd.DataFrame(rng.normal(size=(n_b, 2)), columns=["b1", "b2"])
    frame_b.insert(0, "ID", ids_b)
    return frame_a, frame_b
