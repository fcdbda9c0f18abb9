#!/usr/bin/env python3
"""Three-party demo on the bundled diabetes data.

The diabetes table is split vertically: a clinic (feature holder A1) holds
age, sex, BMI and blood pressure; a lab (label holder B) holds six blood
serum measurements and the disease-progression label. Each side loses a
different 10 % of the patients, so only part of the IDs overlap. The
coordinator C makes a real 2048-bit Paillier key. The parties align their
common patients privately, train a linear regression on encrypted messages,
and the result is compared with the same training rule and with ordinary
least squares on the joined data, which no real party could compute.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from parties import Coordinator, FeatureHolder, Federation, LabelHolder  # noqa: E402
from vfl.crypto import DEFAULT_BACKEND, DEFAULT_KEY_BITS, available_backends  # noqa: E402
from vfl.datasets import (  # noqa: E402
    DIABETES_FEATURE_HOLDER_COLUMNS,
    load_diabetes,
    split_vertically,
)
from vfl.metrics import regression_metrics  # noqa: E402
from vfl.plot import plot_history  # noqa: E402
from vfl.reference import closed_form, train_centralized  # noqa: E402
from vfl.cli.options import add_training_options, config_from_args  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_training_options(parser)
    parser.set_defaults(batch_size=64)
    parser.add_argument("--plot", default="demo-output/training.png", metavar="PNG",
                        help="loss curve written here if matplotlib is installed ('' to skip)")
    parser.add_argument("--key-bits", type=int, default=DEFAULT_KEY_BITS)
    parser.add_argument("--insecure-key", action="store_true",
                        help="allow keys below 2048 bits (tests only)")
    parser.add_argument("--backend", default=DEFAULT_BACKEND, choices=available_backends())
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the parties")
    args = parser.parse_args(argv)

    a_frame, b_frame = split_vertically(
        load_diabetes(), id_column="patient_id", label_column="progression",
        feature_holder_columns=DIABETES_FEATURE_HOLDER_COLUMNS, seed=args.seed)
    a = FeatureHolder(a_frame, id_column="patient_id", name="A1", label_column="progression",
                      seed=args.seed + 1)
    b = LabelHolder(b_frame, id_column="patient_id", label_column="progression",
                    seed=args.seed + 2)
    c = Coordinator(key_bits=args.key_bits, insecure_key=args.insecure_key,
                    backend=args.backend)
    config = config_from_args(args)
    if config.model != "linear":
        parser.error("the demo trains a linear regression on the diabetes data; use "
                     "'vfl simulate --model logistic' for classification")
    print(f"A1 (clinic) holds {len(a.table)} patients x {a.table.feature_names}")
    print(f"B  (lab)    holds {len(b.table)} patients x {b.table.feature_names} + label")
    print(f"C  makes a {args.key_bits}-bit Paillier key ({args.backend} engine)")
    started = time.perf_counter()
    federation = Federation(c, b, a, config=config, progress=True).fit()
    elapsed = time.perf_counter() - started
    print(f"aligned rows ({federation.alignment} private alignment): {federation.aligned_rows_}")
    print(f"trained {len(federation.history_)} epochs in {elapsed:.1f} s")

    # Baselines on the joined data: possible here only because the demo
    # holds everyone's data; no party of a real federation could do this.
    a_rows = a_frame.set_index("patient_id").loc[a.aligned_ids_, a.table.feature_names]
    b_rows = b_frame.set_index("patient_id").loc[b.aligned_ids_]
    x = np.column_stack([a_rows.to_numpy(), b_rows[b.table.feature_names].to_numpy()])
    y = b_rows["progression"].to_numpy(dtype=float)
    same_rule = train_centralized(
        x, y, config, initial_weights=np.r_[a.initial_weights_, b.initial_weights_],
        initial_intercept=b.initial_intercept_, batch_seeds=b.batch_seeds_,
        split_seed=b.split_seed_, blocks=[len(a.table.feature_names), len(b.table.feature_names)])
    ols = closed_form(x, y)
    predictions = federation.predict()
    truth = b_rows.loc[predictions.index, "progression"].to_numpy(dtype=float)
    order = [b.aligned_ids_.index(i) for i in predictions.index]
    rows = {
        "federated (encrypted)": regression_metrics(truth, predictions.to_numpy()),
        "centralized, same rule": regression_metrics(y[order], same_rule.predict(x[order])),
        "centralized, closed form": regression_metrics(y, ols.predict(x)),
    }
    print(f"\nmetrics on the {len(y)} aligned training rows:")
    print(f"  {'model':<26}{'mse':>12}{'rmse':>10}{'mae':>10}{'r2':>9}")
    for name, m in rows.items():
        print(f"  {name:<26}{m['mse']:>12.4f}{m['rmse']:>10.4f}{m['mae']:>10.4f}{m['r2']:>9.4f}")
    federated = np.r_[a.coef_.to_numpy(), b.coef_.to_numpy(), b.intercept_]
    central = np.r_[same_rule.weights, same_rule.intercept]
    gap = np.max(np.abs(federated - central) / np.maximum(np.abs(central), 1e-300))
    print(f"\nlargest relative gap between federated and same-rule weights: {gap:.2e}")
    if args.plot:
        try:
            plot_history(federation.history_, args.plot,
                         title=f"diabetes, {config.optimizer}, {args.key_bits}-bit key")
            print(f"loss curve: {args.plot}")
        except ImportError as exc:
            print(f"no loss curve: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
