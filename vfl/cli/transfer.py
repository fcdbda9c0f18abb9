"""``vfl transfer``: federated transfer learning between a source and a target, in-process."""

from __future__ import annotations

import argparse
import os
import sys

from vfl.cli.common import (
    DefaultsHelpFormatter,
    add_force_option,
    check_outputs,
    write_outputs,
)

__all__ = ["register", "run"]

#: The files a run writes into --out (model files are named after the parties).
OUTPUTS = ("report.json", "predictions_B.csv", "model_A.json", "model_B.json")


def register(commands: argparse._SubParsersAction) -> None:
    from parties.transfer.config import MODES, TransferConfig
    from parties.transfer.network import ACTIVATIONS
    from vfl.cli.options import add_run_option
    from vfl.crypto import available_backends
    from vfl.psi import ALIGNMENT_METHODS, DEFAULT_ALIGNMENT

    defaults = TransferConfig()
    parser = commands.add_parser(
        "transfer", help="federated transfer learning: a labelled source helps a target",
        description="Align a labelled source A and a target B privately (their rows barely "
                    "overlap, their columns differ), train a small network at each party on "
                    "Paillier-encrypted terms (docs/transfer.md), and write OUT/report.json, "
                    "OUT/predictions_B.csv (every target row) and each party's model file.",
        formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--source", required=True, metavar="CSV",
                        help="source A's CSV file (ID, label and A's feature columns)")
    parser.add_argument("--target", required=True, metavar="CSV",
                        help="target B's CSV file (ID and B's feature columns, no label)")
    parser.add_argument("--id-column", required=True, metavar="NAME",
                        help="column holding the IDs in both files")
    parser.add_argument("--label-column", required=True, metavar="NAME",
                        help="label column (0/1 or -1/+1) in the source's file")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder (written only when training succeeds)")
    add_force_option(parser, "report.json, predictions_B.csv and model files")
    parser.add_argument("--hidden", default=",".join(map(str, defaults.hidden)),
                        metavar="SIZES", help="layer sizes of each party's network, e.g. 32 or "
                                              "64,32; the last is the representation size")
    parser.add_argument("--activation", default=defaults.activations[0], choices=ACTIVATIONS,
                        help="activation of every layer")
    parser.add_argument("--epochs", type=int, default=defaults.epochs,
                        help="exchanges of terms between the parties")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate,
                        metavar="LR", help="gradient-descent step")
    parser.add_argument("--alpha", type=float, default=defaults.alpha,
                        help="weight of the Taylor log-loss against the alignment term")
    parser.add_argument("--l2", type=float, default=defaults.l2, help="L2 penalty")
    parser.add_argument("--local-rounds", type=int, default=defaults.local_rounds, metavar="R",
                        help="gradient steps per exchange (more than 1: communication-"
                             "efficient mode)")
    parser.add_argument("--tol", type=float, default=defaults.tol,
                        help="stop when the loss changes by less than this, relatively (0: "
                             "never)")
    parser.add_argument("--mode", default=defaults.mode, choices=MODES,
                        help="encrypted (Paillier, each party its own key) or plain (no "
                             "encryption; needs --insecure-plain)")
    parser.add_argument("--insecure-plain", action="store_true",
                        help="allow --mode plain, which shows each party the other's terms "
                             "(debugging only)")
    parser.add_argument("--key-bits", type=int, default=defaults.key_bits, metavar="BITS",
                        help="each party's Paillier key size; below 2048 needs --insecure-key")
    parser.add_argument("--insecure-key", action="store_true",
                        help="allow keys below 2048 bits (factorable: tests only)")
    parser.add_argument("--backend", default=defaults.backend, choices=available_backends(),
                        help="Paillier engine")
    parser.add_argument("--alignment", default=DEFAULT_ALIGNMENT,
                        choices=sorted(ALIGNMENT_METHODS), help="private alignment method")
    add_run_option(parser, "executor")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of both parties' secret initial networks (default: fresh "
                             "randomness)")
    parser.add_argument("--audit-log", metavar="LOG", default=None,
                        help="append a record of this run, signed by both parties, to this "
                             "hash-chained log (see 'vfl audit')")
    parser.add_argument("--audit-keys", metavar="DIR", default=None,
                        help="folder with both parties' signing keys A.key and B.key ('vfl "
                             "audit keygen'); required with --audit-log")
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from parties.audit import check_audit_log, load_party_keys, record_transfer
    from parties.transfer import TransferConfig, TransferSource, TransferTarget, run_transfer
    from parties.transfer.network import parse_hidden
    from vfl.cluster import compute_on
    from vfl.errors import ConfigError

    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    if args.mode == "plain" and not args.insecure_plain:
        raise ConfigError("--mode plain sends every term unencrypted (the target would see "
                          "label-dependent values, the source the target's representations); "
                          "add --insecure-plain for debugging only")
    if args.key_bits < 2048 and not args.insecure_key and args.mode == "encrypted":
        raise ConfigError(f"--key-bits {args.key_bits}: a key that small can be factored; use "
                          "at least 2048, or add --insecure-key for tests only")
    if bool(args.audit_log) != bool(args.audit_keys):
        raise ConfigError("--audit-log and --audit-keys go together: the log records runs "
                          "signed with every party's key")
    inputs = {"A": args.source, "B": args.target}
    check_outputs(args.out, OUTPUTS, inputs, force=args.force)
    # Before any training: a missing key or a log pinning other keys stops here.
    keys = load_party_keys(args.audit_keys, ["A", "B"]) if args.audit_keys else None
    if keys is not None:
        check_audit_log(args.audit_log, keys)
    hidden = parse_hidden(args.hidden)
    config = TransferConfig(
        hidden=hidden, activations=(args.activation,) * len(hidden), epochs=args.epochs,
        learning_rate=args.learning_rate, alpha=args.alpha, l2=args.l2,
        local_rounds=args.local_rounds, tol=args.tol, mode=args.mode,
        insecure=bool(args.insecure_plain or args.insecure_key), key_bits=args.key_bits,
        backend=args.backend)
    seed = args.seed
    source = TransferSource.from_csv(args.source, id_column=args.id_column,
                                     label_column=args.label_column,
                                     seed=None if seed is None else seed + 1)
    target = TransferTarget.from_csv(args.target, id_column=args.id_column,
                                     label_column=args.label_column,
                                     seed=None if seed is None else seed + 2)
    say(f"transfer: {len(source.table)} rows at source A, {len(target.table)} at target B; "
        f"mode {config.mode}" + (f", {config.key_bits}-bit keys" if config.mode == "encrypted"
                                 else ""))
    if not args.quiet:
        source.on_epoch = lambda epoch, loss: say(f"epoch {epoch}: loss {loss:.6g}")
    with compute_on(args.executor):
        network = run_transfer(source, target, config, alignment=args.alignment)
    session = network.session
    predictions = target.predict_proba()
    report = _report(source, target, config, predictions)
    frame = predictions.rename("probability").reset_index()
    files = {"report.json": _dumps(report),
             "predictions_B.csv": frame.to_csv(index=False),
             f"model_{source.name}.json": source.model_json(),
             f"model_{target.name}.json": target.model_json()}

    def sign() -> None:
        # Between staging the outputs and showing them: no unaudited model is
        # left behind if the record cannot be appended.
        assert keys is not None
        record = record_transfer(source, target, config, args.audit_log, keys,
                                 session=session, alignment=args.alignment)
        say(f"audit record {record.index} appended to {args.audit_log} "
            f"(hash {record.hash[:16]}...)")

    write_outputs(args.out, files, inputs, force=args.force,
                  before_publish=sign if keys is not None else None)
    say(f"overlap: {report['overlap_rows']} rows; metrics on the overlap: "
        + ", ".join(f"{k} {v:.4g}" for k, v in report["overlap_metrics"].items()))
    say(f"wrote {os.path.join(args.out, 'report.json')}, predictions_B.csv and one model file "
        "per party")
    return 0


def _report(source, target, config, predictions) -> dict:
    """report.json: sizes, loss history, metrics on the overlap (simulation: both sides here)."""
    from vfl.metrics import classification_metrics

    overlap_ids = [target.table.ids[i] for i in target.overlap_]
    labels = source.y[source.overlap_]
    metrics = classification_metrics(labels, predictions.loc[overlap_ids].to_numpy())
    return {
        "overlap_rows": len(overlap_ids),
        "source_rows": len(source.table),
        "target_rows": len(target.table),
        "history": source.history_,
        "epochs_run": len(source.history_),
        "overlap_metrics": metrics,
        "config": config.to_dict(),
        "features": {source.name: list(source.table.feature_names),
                     target.name: list(target.table.feature_names)},
    }


def _dumps(data: object) -> str:
    from vfl.cli.common import dumps

    return dumps(data)
