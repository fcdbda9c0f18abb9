#!/usr/bin/env python3
"""Train on FATE's motor data and print R² next to FATE's published result.

Reads ``../shared/datasets/fate/motor_hetero_{guest,host}.csv`` (or the folder
given with --data): guest = label holder B, host = feature holder A1. Runs
FATE's benchmark configuration (learning rate 0.13, batch 100, L2 0.01,
10 epochs) and a longer run, and prints both next to FATE's 0.9031 and the
closed-form least-squares optimum.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from parties import Coordinator, FeatureHolder, Federation, LabelHolder  # noqa: E402
from vfl.metrics import regression_metrics  # noqa: E402
from vfl.reference import closed_form  # noqa: E402
from vfl.training import TrainingConfig  # noqa: E402

FATE_R2 = 0.9031


def train_motor(data: Path, config: TrainingConfig, key_bits: int, insecure: bool,
                seed: int = 0) -> tuple[float, float, Federation]:
    """Federated R² on all 800 rows and the closed-form R² on the same rows."""
    a = FeatureHolder.from_csv(data / "motor_hetero_host.csv", id_column="idx",
                               label_column="motor_speed", seed=seed + 1)
    b = LabelHolder.from_csv(data / "motor_hetero_guest.csv", id_column="idx",
                             label_column="motor_speed", seed=seed + 2)
    fed = Federation(Coordinator(key_bits=key_bits, insecure_key=insecure), b, a,
                     config=config).fit()
    pred = fed.predict()
    y = b.table.take([b.table.ids.index(i) for i in pred.index]).label
    ids = list(pred.index)
    xa = a.table.take([a.table.ids.index(i) for i in ids]).features
    xb = b.table.take([b.table.ids.index(i) for i in ids]).features
    x = np.column_stack([xa, xb])
    best = regression_metrics(y, closed_form(x, y).predict(x))["r2"]
    return regression_metrics(y, pred.to_numpy())["r2"], best, fed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/fate")
    parser.add_argument("--key-bits", type=int, default=2048)
    parser.add_argument("--insecure-key", action="store_true")
    parser.add_argument("--long-epochs", type=int, default=40)
    args = parser.parse_args()
    fate = TrainingConfig(epochs=10, learning_rate=0.13, batch_size=100, penalty="l2", alpha=0.01, early_stopping="none")
    longer = TrainingConfig(epochs=args.long_epochs, learning_rate=0.13, batch_size=100, early_stopping="none")
    print(f"{'run':<44}{'R2':>8}{'seconds':>10}")
    print(f"{'FATE hetero linear regression (published)':<44}{FATE_R2:>8.4f}{'':>10}")
    for label, config in [("ours, FATE's config (10 epochs, L2 0.01)", fate),
                          (f"ours, {args.long_epochs} epochs, no penalty", longer)]:
        started = time.perf_counter()
        r2, best, _ = train_motor(args.data, config, args.key_bits, args.insecure_key)
        print(f"{label:<44}{r2:>8.4f}{time.perf_counter() - started:>10.1f}")
    print(f"{'closed-form least squares (centralized)':<44}{best:>8.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
