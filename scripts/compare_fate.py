#!/usr/bin/env python3
"""Train on FATE's example data and print our results next to FATE's and scikit-learn's.

Reads ``../shared/datasets/fate/`` (or the folder given with --data); guest =
label holder B, host(s) = feature holder(s).

- motor (regression): FATE's benchmark configuration (learning rate 0.13,
  batch 100, L2 0.01, 10 epochs) with one host, the same with the host's
  columns split over two feature holders (``motor_hetero_host_1/2``), and a
  longer Adam run, next to FATE's published R² 0.9031 and the closed form.
- breast (classification): logistic regression by the Taylor loss next to
  scikit-learn's ``LogisticRegression`` on the same joined rows (AUC,
  accuracy; train = test, as in FATE's benchmarks).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from parties import Coordinator, FeatureHolder, Federation, LabelHolder  # noqa: E402
from vfl.errors import InsecureSeedWarning  # noqa: E402
from vfl.metrics import classification_metrics, regression_metrics  # noqa: E402
from vfl.reference import closed_form  # noqa: E402
from vfl.training import TrainingConfig  # noqa: E402

FATE_R2 = 0.9031
#: Logistic regression on breast: 30 epochs of Adam, batches of 320 rows.
BREAST = TrainingConfig(model="logistic", epochs=30, learning_rate=0.15, batch_size=320,
                        optimizer="adam", penalty="l2", alpha=0.01, early_stopping="none")


def _fit_pair(data: Path, dataset: str, id_column: str, label: str, config: TrainingConfig,
              key_bits: int, insecure: bool, seed: int
              ) -> tuple[Federation, np.ndarray, np.ndarray]:
    """Train guest (B) and host (A1) of a FATE dataset; return (federation, X, y).

    X and y are the joined rows in the alignment order, built centrally for
    the baselines: possible only because this script holds both files.
    """
    a = FeatureHolder.from_csv(data / f"{dataset}_hetero_host.csv", id_column=id_column,
                               label_column=label, seed=seed + 1)
    b = LabelHolder.from_csv(data / f"{dataset}_hetero_guest.csv", id_column=id_column,
                             label_column=label, seed=seed + 2)
    fed = Federation(Coordinator(key_bits=key_bits, insecure_key=insecure), b, a,
                     config=config).fit()
    ids = b.aligned_ids_
    x = np.column_stack([a.table.take([a.table.ids.index(i) for i in ids]).features,
                         b.table.take([b.table.ids.index(i) for i in ids]).features])
    return fed, x, b.table.take([b.table.ids.index(i) for i in ids]).label


def train_motor(data: Path, config: TrainingConfig, key_bits: int, insecure: bool,
                seed: int = 0) -> tuple[float, float, Federation]:
    """Federated R² on all 800 rows and the closed-form R² on the same rows."""
    fed, x, y = _fit_pair(data, "motor", "idx", "motor_speed", config, key_bits, insecure,
                          seed)
    best = regression_metrics(y, closed_form(x, y).predict(x))["r2"]
    return fed.evaluate()["r2"], best, fed


def train_motor_two_hosts(data: Path, config: TrainingConfig, key_bits: int, insecure: bool,
                          seed: int = 0) -> tuple[float, Federation]:
    """Federated R² with the host's columns split over feature holders A1 and A2."""
    holders = [FeatureHolder.from_csv(data / f"motor_hetero_host_{k}.csv", id_column="idx",
                                      name=f"A{k}", label_column="motor_speed",
                                      seed=seed + 10 + k) for k in (1, 2)]
    b = LabelHolder.from_csv(data / "motor_hetero_guest.csv", id_column="idx",
                             label_column="motor_speed", seed=seed + 2)
    fed = Federation(Coordinator(key_bits=key_bits, insecure_key=insecure), b, holders,
                     config=config).fit()
    return fed.evaluate()["r2"], fed


def train_breast(data: Path, config: TrainingConfig, key_bits: int, insecure: bool,
                 seed: int = 0) -> tuple[dict[str, float], dict[str, float], Federation]:
    """Federated logistic regression and scikit-learn's on the joined breast data."""
    from sklearn.linear_model import LogisticRegression

    fed, x, y = _fit_pair(data, "breast", "id", "y", config, key_bits, insecure, seed)
    central = LogisticRegression(max_iter=1000).fit(x, y)
    sklearn = classification_metrics(y, central.predict_proba(x)[:, 1])
    return fed.evaluate(), sklearn, fed


def main() -> int:
    # Seeded parties on purpose: the comparison must repeat exactly.
    warnings.filterwarnings("ignore", category=InsecureSeedWarning)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/fate")
    parser.add_argument("--key-bits", type=int, default=2048)
    parser.add_argument("--insecure-key", action="store_true")
    parser.add_argument("--long-epochs", type=int, default=40)
    args = parser.parse_args()
    fate = TrainingConfig(epochs=10, learning_rate=0.13, batch_size=100, penalty="l2",
                          alpha=0.01, early_stopping="none")
    longer = TrainingConfig(epochs=args.long_epochs, learning_rate=0.05, batch_size=100,
                            optimizer="adam", early_stopping="none")
    print(f"motor (regression), {args.key_bits}-bit key")
    print(f"{'run':<50}{'R2':>8}{'seconds':>10}")
    print(f"{'FATE hetero linear regression (published)':<50}{FATE_R2:>8.4f}{'':>10}")
    for label, config in [("ours, FATE's config (10 epochs, L2 0.01)", fate),
                          (f"ours, {args.long_epochs} epochs, Adam", longer)]:
        started = time.perf_counter()
        r2, best, _ = train_motor(args.data, config, args.key_bits, args.insecure_key)
        print(f"{label:<50}{r2:>8.4f}{time.perf_counter() - started:>10.1f}")
    started = time.perf_counter()
    r2, _ = train_motor_two_hosts(args.data, fate, args.key_bits, args.insecure_key)
    print(f"{'ours, FATE config, host split over A1 and A2':<50}{r2:>8.4f}"
          f"{time.perf_counter() - started:>10.1f}")
    print(f"{'closed-form least squares (centralized)':<50}{best:>8.4f}")

    print(f"\nbreast (classification), {args.key_bits}-bit key, train = test")
    started = time.perf_counter()
    ours, sklearn, fed = train_breast(args.data, BREAST, args.key_bits, args.insecure_key)
    seconds = time.perf_counter() - started
    print(f"{'run':<50}{'AUC':>8}{'accuracy':>10}{'seconds':>10}")
    print(f"{'ours, logistic (Taylor loss), ' + str(len(fed.history_)) + ' epochs':<50}"
          f"{ours['auc']:>8.4f}{ours['accuracy']:>10.4f}{seconds:>10.1f}")
    print(f"{'scikit-learn LogisticRegression (centralized)':<50}{sklearn['auc']:>8.4f}"
          f"{sklearn['accuracy']:>10.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
