"""Test data and the reference run for weighted and Poisson training (docs/poisson.md)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from federation_checks import joined

from parties import Coordinator, FeatureHolder, Federation, LabelHolder
from vfl.reference import CentralizedResult, train_centralized
from vfl.training import TrainingConfig

__all__ = ["COEFFICIENTS", "KEY_BITS", "count_frames", "fit", "reference", "split_a"]

KEY_BITS = 512
#: The true coefficients of :func:`count_frames`: a0, a1, a2 (A), b0, b1 (B), intercept.
COEFFICIENTS = np.array([0.4, -0.3, 0.2, 0.25, -0.15, 0.2])


def count_frames(n: int = 240, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(A's frame, B's frame): Poisson counts y ~ Poisson(exposure exp(0.2 + x beta)).

    A holds a0..a2; B holds b0, b1, an ``exposure`` column, a ``w`` column of
    sample weights in [0, 2), the count ``claims`` and a 0/1 label ``event``
    (claims > 1). Rows are in different orders at A and B, and B holds ten
    rows A does not.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    exposure = rng.uniform(0.5, 2.0, n)
    y = rng.poisson(exposure * np.exp(COEFFICIENTS[-1] + x @ COEFFICIENTS[:-1]))
    ids = [f"r{i}" for i in range(n)]
    a = pd.DataFrame({"id": ids, **{f"a{j}": x[:, j] for j in range(3)}})
    b = pd.DataFrame({"id": ids, "b0": x[:, 3], "b1": x[:, 4], "exposure": exposure,
                      "w": rng.uniform(0.0, 2.0, n), "claims": y,
                      "event": (y > 1).astype(int)})
    a = a.iloc[10:].sample(frac=1.0, random_state=1).reset_index(drop=True)
    return a, b.sample(frac=1.0, random_state=2).reset_index(drop=True)


def split_a(a_frame: pd.DataFrame, holders: int) -> list[pd.DataFrame]:
    """A's columns over one or two feature holders."""
    if holders == 1:
        return [a_frame]
    return [a_frame[["id", "a0"]], a_frame[["id", "a1", "a2"]]]


def fit(a_frames: Sequence[pd.DataFrame], b_frame: pd.DataFrame, config: TrainingConfig, *,
        label: str, seed: int = 0, record: bool = False, **row_options
        ) -> tuple[Federation, list[FeatureHolder], LabelHolder]:
    """A federation of these frames, fitted; B's frame without the other label column
    and without the weight and exposure columns `row_options` does not name."""
    named = {row_options.get("weight_column"), row_options.get("exposure_column")}
    unused = [c for c in ("event" if label == "claims" else "claims", "w", "exposure")
              if c not in named]
    holders = [FeatureHolder(f, id_column="id", name=f"A{k + 1}", seed=seed + k + 1)
               for k, f in enumerate(a_frames)]
    b = LabelHolder(b_frame.drop(columns=unused), id_column="id", label_column=label,
                    seed=seed + 9, **row_options)
    federation = Federation(Coordinator(key_bits=KEY_BITS, insecure_key=True), b, holders,
                            config=config, record=record).fit()
    return federation, holders, b


def reference(holders: Sequence[FeatureHolder], b: LabelHolder,
              a_frames: Sequence[pd.DataFrame], b_frame: pd.DataFrame,
              config: TrainingConfig, **row_options) -> CentralizedResult:
    """Centralized training of the same rule with the federation's secrets and B's
    weights and exposures (taken from B's frame here, in the aligned order)."""
    x, y = joined(list(holders), b, list(a_frames), b_frame)
    rows = b_frame.set_index("id").loc[b.aligned_ids_]
    weight, exposure = row_options.get("weight_column"), row_options.get("exposure_column")
    return train_centralized(
        x, y, config,
        initial_weights=np.concatenate([*(a.initial_weights_ for a in holders),
                                        b.initial_weights_]),
        initial_intercept=b.initial_intercept_, batch_seeds=b.batch_seeds_,
        split_seed=b.split_seed_,
        blocks=[len(a.table.feature_names) for a in holders] + [len(b.table.feature_names)],
        sample_weight=None if weight is None else rows[weight].to_numpy(),
        class_weight=row_options.get("class_weight"),
        exposure=None if exposure is None else rows[exposure].to_numpy())
