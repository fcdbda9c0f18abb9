"""``vfl simulate``: train all three parties in-process on CSV files."""

from __future__ import annotations

import argparse
import os
import sys

from vfl.cli.common import add_data_options, dumps, feature_holder_names, write_outputs
from vfl.crypto import DEFAULT_BACKEND, DEFAULT_KEY_BITS, available_backends
from vfl.errors import InputDataError
from vfl.metrics import regression_metrics
from vfl.psi import ALIGNMENT_METHODS, DEFAULT_ALIGNMENT
from vfl.training import TrainingConfig

__all__ = ["register", "run"]


def _batch_size(text: str) -> int | None:
    if text == "full":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'full', got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"batch size must be positive, got {value}")
    return value


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "simulate", help="train A, B and C in one process on CSV files",
        description="Align the parties' rows privately, train a linear regression with "
                    "Paillier-encrypted messages between in-process parties, and write "
                    "OUT/report.json plus one model file per party.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_options(parser, label=True)
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder (created only when training succeeds)")
    parser.add_argument("--epochs", type=int, default=20, help="maximum number of epochs")
    parser.add_argument("--learning-rate", type=float, default=0.1, help="gradient step size")
    parser.add_argument("--batch-size", type=_batch_size, default=None, metavar="N|full",
                        help="rows per mini-batch, or 'full' (default: full batch)")
    parser.add_argument("--l2", type=float, default=0.0, help="L2 penalty on the weights")
    parser.add_argument("--tol", type=float, default=1e-6,
                        help="stop when the epoch loss changes by at most this (0: never)")
    parser.add_argument("--min-batch-factor", type=float, default=2.0,
                        help="a party with d features refuses batches of <= factor*d rows")
    parser.add_argument("--no-standardize", dest="standardize", action="store_false",
                        help="train on raw columns instead of each party standardising its own")
    parser.add_argument("--key-bits", type=int, default=DEFAULT_KEY_BITS,
                        help="Paillier key size; below 2048 needs --insecure-key")
    parser.add_argument("--insecure-key", action="store_true",
                        help="allow keys below 2048 bits (factorable: tests only)")
    parser.add_argument("--backend", default=DEFAULT_BACKEND, choices=available_backends(),
                        help="Paillier engine")
    parser.add_argument("--alignment", default=DEFAULT_ALIGNMENT,
                        choices=sorted(ALIGNMENT_METHODS), help="private alignment method")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of B's and A's secret initial weights and of the batch order "
                             "(default: fresh randomness)")
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from parties import Coordinator, FeatureHolder, Federation, LabelHolder

    if len(args.party_a) > 1:
        raise InputDataError(
            f"{len(args.party_a)} --party-a files given, but this version trains with exactly "
            "one feature holder; merge their columns into one file or give one --party-a")
    config = TrainingConfig(epochs=args.epochs, learning_rate=args.learning_rate,
                            batch_size=args.batch_size, l2=args.l2, tol=args.tol,
                            min_batch_factor=args.min_batch_factor,
                            standardize=args.standardize)
    names = feature_holder_names(len(args.party_a))
    seed = args.seed
    holders = [FeatureHolder.from_csv(path, id_column=args.id_column, name=name,
                                      label_column=args.label_column,
                                      seed=None if seed is None else seed + k + 1)
               for k, (name, path) in enumerate(zip(names, args.party_a))]
    label_holder = LabelHolder.from_csv(args.party_b, id_column=args.id_column,
                                        label_column=args.label_column, seed=seed)
    coordinator = Coordinator(key_bits=args.key_bits, insecure_key=args.insecure_key,
                              backend=args.backend)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    say(f"training: {len(label_holder.table)} rows at B, "
        + ", ".join(f"{len(a.table)} at {a.name}" for a in holders)
        + f"; {args.key_bits}-bit key, {args.backend} engine, {args.alignment} alignment")
    federation = Federation(coordinator, label_holder, holders, config=config,
                            alignment=args.alignment, progress=not args.quiet)
    federation.fit()
    say(f"aligned rows: {federation.aligned_rows_}")

    predictions = federation.predict()
    truth = label_holder.table.take(
        [label_holder.table.ids.index(i) for i in predictions.index]).label
    metrics = regression_metrics(truth, predictions.to_numpy())
    report = {
        "aligned_rows": federation.aligned_rows_,
        "parties": {
            label_holder.name: {"features": label_holder.model_.features,
                                "weights": label_holder.model_.weights,
                                "intercept": label_holder.intercept_},
            **{a.name: {"features": a.model_.features, "weights": a.model_.weights}
               for a in holders},
        },
        "history": [{"epoch": int(e), "loss": float(v)} for e, v in label_holder.history_],
        "metrics": metrics,
        "config": {**config.to_dict(), "key_bits": args.key_bits, "backend": args.backend,
                   "alignment": args.alignment},
        "session": federation.session_,
    }
    files = {"report.json": dumps(report),
             **{f"model_{p.name}.json": p.model_.to_json() for p in (label_holder, *holders)}}
    write_outputs(args.out, files, [args.party_b, *args.party_a])
    say("metrics on the aligned training rows: "
        + ", ".join(f"{k} {v:.6g}" for k, v in metrics.items()))
    say(f"wrote {os.path.join(args.out, 'report.json')} and one model file per party")
    return 0
