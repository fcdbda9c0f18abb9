"""Federated transfer learning on scikit-learn's bundled data (nothing is downloaded).

The rows of the digits data (label: digit >= 5) or the breast-cancer data
(label: malignant) are shuffled and the columns split in two: the source A
holds the first half (the top of each 8x8 image) and the label on its rows,
the target B the other half on its rows, and only ~10% of all rows are
shared (the rest is split evenly). The script
trains the transfer protocol (docs/transfer.md) and compares, on B's rows A
never saw, the AUC of

- the federated transfer model (B's network and Φ), and
- a logistic regression B trains on the shared rows alone, as if it had
  been given their labels (the best B could do without the federation).

    python scripts/transfer_demo.py --seeds 0 1 2 3 4            # digits, plain mode (fast)
    python scripts/transfer_demo.py --mode encrypted --seeds 0   # the real protocol (slow)
    python scripts/transfer_demo.py --data breast_cancer --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from parties.transfer import (
    FederatedTransferLearning,
    TransferSource,
    TransferTarget,
)
from vfl.metrics import classification_metrics


def load(name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(features, 0/1 label, column names) of a dataset bundled with scikit-learn."""
    from sklearn.datasets import load_breast_cancer, load_digits

    if name == "digits":  # the top half of the 8x8 image at A, the bottom half at B
        digits = load_digits()
        return digits.data, (digits.target >= 5).astype(int), \
            [f"pixel_{i}" for i in range(64)]
    data = load_breast_cancer()
    return data.data, 1 - data.target, [c.replace(" ", "_") for c in data.feature_names]


def split(name: str, seed: int, overlap_fraction: float
          ) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """(A's frame, B's frame, every label by ID): disjoint columns, a small row overlap."""
    x, y, columns = load(name)
    half = x.shape[1] // 2
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    ids = np.array([f"p{i:04d}" for i in range(len(order))])
    shared = round(overlap_fraction * len(order))
    only_a = (len(order) - shared) // 2
    rows_a, rows_b = order[:only_a + shared], order[only_a:]

    def frame(rows: np.ndarray, cols: slice) -> pd.DataFrame:
        table = pd.DataFrame(x[rows, cols], columns=columns[cols])
        table = table.loc[:, table.std() > 0]  # a pixel blank on every row says nothing
        table.insert(0, "ID", ids[rows])
        return table

    frame_a = frame(rows_a, slice(0, half))
    frame_a["label"] = y[rows_a]
    frame_b = frame(rows_b, slice(half, None))
    return frame_a, frame_b, pd.Series(y, index=ids)


def overlap_only_auc(frame_b: pd.DataFrame, labels: pd.Series, shared: list[str],
                     others: list[str]) -> float:
    """B alone, given the labels of the shared rows: logistic regression on its columns."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = frame_b.set_index("ID")
    scaler = StandardScaler().fit(x.to_numpy())
    model = LogisticRegression(max_iter=1000).fit(scaler.transform(x.loc[shared].to_numpy()),
                                                  labels.loc[shared].to_numpy())
    probability = model.predict_proba(scaler.transform(x.loc[others].to_numpy()))[:, 1]
    return classification_metrics(labels.loc[others].to_numpy(), probability)["auc"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=["breast_cancer", "digits"], default="digits",
                        help="breast cancer (label: malignant) or digits (label: digit >= 5)")
    parser.add_argument("--mode", choices=["encrypted", "plain"], default="plain",
                        help="plain (no encryption, fast) gives the encrypted mode's numbers "
                             "to 1e-6 (tests/transfer); encrypted runs the real protocol")
    parser.add_argument("--key-bits", type=int, default=2048)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=0.02)
    parser.add_argument("--alpha", type=float, default=10.0)
    parser.add_argument("--local-rounds", type=int, default=1)
    parser.add_argument("--overlap", type=float, default=0.10,
                        help="fraction of all rows both parties hold")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args(argv)

    print(f"{args.data}, {args.overlap:.0%} of rows shared; mode {args.mode}"
          + (f", {args.key_bits}-bit keys" if args.mode == "encrypted" else "")
          + f"; Dense({args.hidden}, sigmoid), {args.epochs} epochs x {args.local_rounds} "
            f"local round(s), lr {args.learning_rate}, alpha {args.alpha}")
    print(f"{'seed':>4} {'A rows':>6} {'B rows':>6} {'shared':>6} {'B-only':>6} "
          f"{'AUC transfer':>12} {'AUC overlap-only':>16} {'seconds':>8}")
    results = []
    for seed in args.seeds:
        frame_a, frame_b, labels = split(args.data, seed, args.overlap)
        model = FederatedTransferLearning(
            hidden=(args.hidden,), epochs=args.epochs, learning_rate=args.learning_rate,
            alpha=args.alpha, local_rounds=args.local_rounds, mode=args.mode,
            key_bits=args.key_bits, insecure=args.mode == "plain" or args.key_bits < 2048)
        source = TransferSource(frame_a, id_column="ID", label_column="label",
                                seed=seed + 1)
        target = TransferTarget(frame_b, id_column="ID", seed=seed + 2)
        start = time.perf_counter()
        model.fit(source, target)
        seconds = time.perf_counter() - start
        shared = set(frame_a["ID"]) & set(frame_b["ID"])
        others = [i for i in frame_b["ID"] if i not in shared]
        probability = model.predict_proba().loc[others].to_numpy()
        transfer_auc = classification_metrics(labels.loc[others].to_numpy(), probability)["auc"]
        baseline = overlap_only_auc(frame_b, labels, sorted(shared), others)
        results.append((transfer_auc, baseline))
        print(f"{seed:>4} {len(frame_a):>6} {len(frame_b):>6} {len(shared):>6} {len(others):>6} "
              f"{transfer_auc:>12.4f} {baseline:>16.4f} {seconds:>8.1f}")
    if len(results) > 1:
        mean = np.mean(results, axis=0)
        print(f"{'mean':>4} {'':>6} {'':>6} {'':>6} {'':>6} {mean[0]:>12.4f} {mean[1]:>16.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
