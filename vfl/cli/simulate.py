"""``vfl simulate``: train all three parties in-process on CSV files."""

from __future__ import annotations

import argparse
import os
import sys

from vfl.cli.common import add_data_options, dumps, feature_holder_names, write_outputs
from vfl.cli.options import add_training_options, config_from_args
from vfl.crypto import DEFAULT_BACKEND, DEFAULT_KEY_BITS, available_backends
from vfl.psi import ALIGNMENT_METHODS, DEFAULT_ALIGNMENT

__all__ = ["register", "run"]


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "simulate", help="train A, B and C in one process on CSV files",
        description="Align the parties' rows privately, train a linear or logistic "
                    "regression with Paillier-encrypted messages between in-process parties "
                    "(one label holder B, one or more feature holders A1..Ak, a coordinator "
                    "C), and write OUT/report.json plus one model file per party.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_options(parser, label=True)
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder (created only when training succeeds)")
    add_training_options(parser)
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
    parser.add_argument("--contribution", nargs="?", const="leave-one-out", default=None,
                        choices=["leave-one-out", "shapley"],
                        help="also measure each party's contribution (validation-loss drop, "
                             "by federated training of coalitions; needs "
                             "--validation-fraction); the bare flag means leave-one-out")
    parser.add_argument("--audit-log", metavar="LOG", default=None,
                        help="append a record of this run, signed by every party, to this "
                             "hash-chained log (see 'vfl audit')")
    parser.add_argument("--audit-keys", metavar="DIR", default=None,
                        help="folder with every party's signing key NAME.key ('vfl audit "
                             "keygen'); required with --audit-log")
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from parties import Coordinator, FeatureHolder, Federation, LabelHolder
    from parties.audit import load_party_keys, record_run
    from vfl.errors import ConfigError
    from vfl.metrics import model_metrics

    config = config_from_args(args)
    if args.contribution and config.validation_fraction <= 0:
        raise ConfigError("--contribution measures the validation-loss drop: add "
                          "--validation-fraction (e.g. 0.2)")
    if bool(args.audit_log) != bool(args.audit_keys):
        raise ConfigError("--audit-log and --audit-keys go together: the log records runs "
                          "signed with every party's key")
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
    keys = (load_party_keys(args.audit_keys, [coordinator.name, label_holder.name,
                                              *names]) if args.audit_keys else None)
    federation.fit()
    say(f"aligned rows: {federation.aligned_rows_}")
    contribution = None
    if args.contribution:
        say(f"measuring contributions ({args.contribution}) ...")
        contribution = federation.contributions(args.contribution)

    predictions = federation.predict()
    truth = pd.Series(label_holder.table.label, index=label_holder.table.ids)
    held_out = {label_holder.aligned_ids_[i] for i in label_holder.validation_rows_}
    is_validation = np.array([i in held_out for i in predictions.index])

    def score(mask: np.ndarray) -> dict[str, float]:
        return model_metrics(config.model, truth.loc[predictions.index[mask]].to_numpy(),
                             predictions.to_numpy()[mask])

    metrics = score(~is_validation)
    report = {
        "model": config.model,
        "aligned_rows": federation.aligned_rows_,
        "training_rows": int((~is_validation).sum()),
        "validation_rows": int(is_validation.sum()),
        "parties": {
            label_holder.name: {"features": label_holder.model_.features,
                                "weights": label_holder.model_.weights,
                                "intercept": label_holder.intercept_},
            **{a.name: {"features": a.model_.features, "weights": a.model_.weights}
               for a in holders},
        },
        "history": label_holder.history_,
        "epochs_run": len(label_holder.history_),
        "metrics": metrics,
        **({"validation_metrics": score(is_validation)} if is_validation.any() else {}),
        "config": {**config.to_dict(), "key_bits": args.key_bits, "backend": args.backend,
                   "alignment": args.alignment},
        "session": federation.session_,
    }
    if contribution is not None:
        report["contribution"] = contribution.to_dict()
    files = {"report.json": dumps(report),
             **{f"model_{p.name}.json": p.model_.to_json() for p in (label_holder, *holders)}}
    write_outputs(args.out, files, [args.party_b, *args.party_a])
    if keys is not None:
        record = record_run(federation, args.audit_log, keys, metrics=metrics,
                            config=report["config"],
                            contributions=contribution.contributions if contribution else None)
        say(f"audit record {record.index} appended to {args.audit_log} "
            f"(hash {record.hash[:16]}...)")
    say("metrics on the training rows: " + ", ".join(f"{k} {v:.6g}" for k, v in metrics.items()))
    if "validation_metrics" in report:
        say("metrics on the validation rows: " + ", ".join(
            f"{k} {v:.6g}" for k, v in report["validation_metrics"].items()))
    say(f"wrote {os.path.join(args.out, 'report.json')} and one model file per party")
    return 0
