"""``vfl simulate``: train all three parties in-process on CSV files."""

from __future__ import annotations

import argparse
import os
import sys

from vfl.cli.common import (
    DefaultsHelpFormatter,
    add_data_options,
    add_force_option,
    check_outputs,
    dumps,
    feature_holder_names,
    party_inputs,
    write_outputs,
)
from vfl.cli.options import add_run_options, run_config_from_args

__all__ = ["POOR_FIT_R2", "register", "run", "woe_binning", "woe_frames"]

#: A linear model below this R^2 on its training rows is refused (see run()).
POOR_FIT_R2 = -1.0

#: The PNG files of --curves, in OUT.
CURVE_FILES = ("roc.png", "ks.png")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "simulate", help="train A, B and C in one process on CSV files",
        description="Align the parties' rows privately, train a linear, logistic or Poisson "
                    "regression with Paillier-encrypted messages between in-process parties "
                    "(one label holder B, one or more feature holders A1..Ak, a coordinator "
                    "C), and write OUT/report.json plus one model file per party.",
        formatter_class=DefaultsHelpFormatter)
    add_data_options(parser, label=True)
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder (created only when training succeeds)")
    add_force_option(parser, "report.json and model files")
    add_run_options(parser)
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of every party's random streams, for tests and "
                             "reproducible examples only: anyone who guesses it knows the "
                             "parties' secret initial weights (default: fresh randomness "
                             "from the OS)")
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
    parser.add_argument("--curves", action="store_true",
                        help="logistic models: also write OUT/roc.png and OUT/ks.png, the ROC "
                             "and KS curves on the training rows (needs matplotlib)")
    _add_row_options(parser)
    _add_woe_options(parser)
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    parser.set_defaults(run=run)


def _add_row_options(parser: argparse.ArgumentParser) -> None:
    """--weight-column, --class-weight and --exposure-column: B's own row data."""
    group = parser.add_argument_group("weights and exposure, known to B alone "
                                      "(docs/poisson.md)")
    group.add_argument("--weight-column", default=None, metavar="NAME",
                       help="column of non-negative sample weights in B's file (not a "
                            "feature): losses and gradients become weighted means")
    group.add_argument("--class-weight", default=None, choices=["balanced"],
                       help="--model logistic: weight each row by n / (2 n_c), n_c the "
                            "training rows of its class (times its sample weight, if any)")
    group.add_argument("--exposure-column", default=None, metavar="NAME",
                       help="--model poisson: column of positive exposures in B's file; "
                            "log(exposure) is the offset, the prediction exposure * exp(score)")


def _row_options(args: argparse.Namespace) -> dict:
    """The label holder's weight, class-weight and exposure keywords from the command line."""
    return {"weight_column": getattr(args, "weight_column", None),
            "class_weight": getattr(args, "class_weight", None),
            "exposure_column": getattr(args, "exposure_column", None)}


def _add_woe_options(parser: argparse.ArgumentParser) -> None:
    """--woe DIR, --woe-all-columns and the scorecard's options."""
    from vfl.risk.scorecard import DEFAULT_BASE_ODDS, DEFAULT_BASE_SCORE, DEFAULT_PDO

    group = parser.add_argument_group("WOE encoding and scorecard (docs/risk.md)")
    group.add_argument("--woe", default=None, metavar="DIR",
                       help="train on WOE-encoded columns: each party replaces each of its "
                            "columns by the WOE of the bin its value falls in, with only its "
                            "own DIR/binning_<party>.json of 'vfl binning' (only the columns "
                            "the binning run selected, if it selected any)")
    group.add_argument("--woe-all-columns", action="store_true",
                       help="with --woe: encode and train on every binned column, also those "
                            "the binning run's selection left out")
    group.add_argument("--scorecard", action="store_true",
                       help="with --woe and --model logistic: also write each party's points "
                            "per bin of its own columns, OUT/scorecard_<party>.json (B's "
                            "with the intercept's base points)")
    group.add_argument("--pdo", type=float, default=DEFAULT_PDO,
                       help="scorecard: points to double the odds (of a non-event)")
    group.add_argument("--base-odds", type=float, default=DEFAULT_BASE_ODDS,
                       help="scorecard: odds of a non-event to an event at --base-score "
                            "(50 means 50:1)")
    group.add_argument("--base-score", type=float, default=DEFAULT_BASE_SCORE,
                       help="scorecard: the score at --base-odds")


def run(args: argparse.Namespace) -> int:
    from parties.audit import check_audit_log, load_party_keys, record_run
    from vfl.cluster import compute_on
    from vfl.errors import ConfigError, TrainingDivergedError

    run_config = run_config_from_args(args)
    config = run_config.training
    if args.contribution and config.validation_fraction <= 0:
        raise ConfigError("--contribution measures the validation-loss drop: add "
                          "--validation-fraction (e.g. 0.2)")
    if bool(args.audit_log) != bool(args.audit_keys):
        raise ConfigError("--audit-log and --audit-keys go together: the log records runs "
                          "signed with every party's key")
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    inputs = party_inputs(args.party_b, args.party_a)
    scale = _score_scale(args, config.model)
    binning = woe_binning(args.woe, list(inputs)) if args.woe else None
    federation = _federation(args, run_config, say, binning)
    names = [federation.coordinator.name, federation.label_holder.name,
             *(a.name for a in federation.feature_holders)]
    outputs = ["report.json", *(f"model_{name}.json" for name in names[1:])]
    if scale is not None:
        outputs += [f"scorecard_{name}.json" for name in names[1:]]
    if args.curves:
        _check_curves(config.model)
        outputs += list(CURVE_FILES)
    # Everything that could refuse the outputs is checked before any training.
    check_outputs(args.out, outputs, inputs, force=args.force)
    keys = load_party_keys(args.audit_keys, names) if args.audit_keys else None
    if keys is not None:
        check_audit_log(args.audit_log, keys)
    with compute_on(run_config.executor):  # the heavy work on a cluster, if one is named
        federation.fit()
        say(f"aligned rows: {federation.aligned_rows_}")
        contribution = None
        if args.contribution:
            say(f"measuring contributions ({args.contribution}) ...")
            contribution = federation.contributions(args.contribution)
    scored = _scored_rows(federation)
    report = _report(federation, run_config, scored)
    r2 = report["metrics"].get("r2")
    if r2 is not None and r2 < POOR_FIT_R2:
        # Worse than predicting the mean by far: not a model to save as if it were fine.
        raise TrainingDivergedError(
            f"the trained model has R^2 {r2:.3g} on its own training rows (predicting the "
            "mean gives 0): training did not converge; lower the learning rate or train "
            "more epochs; nothing was written")
    if contribution is not None:
        report["contribution"] = contribution.to_dict()
    parties = (federation.label_holder, *federation.feature_holders)
    if binning is not None:
        report["woe"] = {"binning": args.woe, "session": binning["B"].session,
                         "all_columns": args.woe_all_columns,
                         "columns": {p.name: p.model_.features for p in parties}}
    scorecards = {}
    if scale is not None:
        from parties.binning import party_scorecard

        assert binning is not None  # _score_scale refuses a scorecard without --woe
        report["scorecard"] = scale.to_json()
        # Each party's points from its own model part and its own binning file.
        scorecards = {f"scorecard_{p.name}.json": party_scorecard(
            p.model_, binning[p.name], scale).to_json() for p in parties}
    files = {"report.json": dumps(report),
             **{f"model_{p.name}.json": p.model_.to_json() for p in parties}, **scorecards}
    if args.curves:
        files.update(_curve_files(scored))

    def sign() -> None:
        # Between staging the outputs and showing them: no unaudited model is
        # left behind if the record cannot be appended.
        assert keys is not None
        record = record_run(federation, args.audit_log, keys, metrics=report["metrics"],
                            config=report["config"],
                            contributions=contribution.contributions if contribution else None)
        say(f"audit record {record.index} appended to {args.audit_log} "
            f"(hash {record.hash[:16]}...)")

    write_outputs(args.out, files, inputs, force=args.force,
                  before_publish=sign if keys is not None else None)
    for rows in ("training", "validation"):
        metrics = report.get("metrics" if rows == "training" else "validation_metrics")
        if metrics:
            say(f"metrics on the {rows} rows: "
                + ", ".join(f"{k} {v:.6g}" for k, v in metrics.items()))
    say(f"wrote {os.path.join(args.out, 'report.json')} and one model file per party")
    return 0


def _federation(args: argparse.Namespace, run_config, say, binning=None):
    """The parties of the command line's files, in one in-process federation (with
    `binning`, each party's columns WOE-encoded with its own binning result)."""
    from parties import Coordinator, FeatureHolder, Federation, LabelHolder

    seed = args.seed
    if binning is None:
        holders = [FeatureHolder.from_csv(path, id_column=args.id_column, name=name,
                                          label_column=args.label_column,
                                          seed=None if seed is None else seed + k + 1)
                   for k, (name, path) in enumerate(zip(
                       feature_holder_names(len(args.party_a)), args.party_a))]
        label_holder = LabelHolder.from_csv(args.party_b, id_column=args.id_column,
                                            label_column=args.label_column, seed=seed,
                                            **_row_options(args))
    else:
        frames = woe_frames(args, binning, all_columns=args.woe_all_columns)
        holders = [FeatureHolder(frames[name], id_column=args.id_column, name=name,
                                 label_column=args.label_column, source=path,
                                 seed=None if seed is None else seed + k + 1)
                   for k, (name, path) in enumerate(zip(
                       feature_holder_names(len(args.party_a)), args.party_a))]
        label_holder = LabelHolder(frames["B"], id_column=args.id_column,
                                   label_column=args.label_column, seed=seed,
                                   source=args.party_b, **_row_options(args))
    coordinator = Coordinator(key_bits=run_config.key_bits,
                              insecure_key=run_config.insecure_key, backend=run_config.backend,
                              insecure_plaintext=run_config.insecure_plaintext)
    say(f"training: {len(label_holder.table)} rows at B, "
        + ", ".join(f"{len(a.table)} at {a.name}" for a in holders)
        + f"; {run_config.key_bits}-bit key, {run_config.backend} engine, "
        f"{run_config.alignment} alignment")
    return Federation(coordinator, label_holder, holders, config=run_config.training,
                      alignment=run_config.alignment, timeout=run_config.timeout,
                      progress=not args.quiet)


def woe_binning(folder: str, parties: list[str]) -> dict:
    """Every party's binning result in `folder`, checked to be of one run with these parties.

    Raises
    ------
    BinningFileError
        One line naming the party and the file that is missing, damaged or of
        another run.
    """
    from parties.binning import BinningResult, check_binning_files

    results = {name: BinningResult.load(os.path.join(folder, f"binning_{name}.json"),
                                        party=name) for name in parties}
    check_binning_files(results, label_holder="B")
    return results


def woe_frames(args: argparse.Namespace, binning: dict, *, all_columns: bool = False,
               columns: dict | None = None) -> dict:
    """Each party's rows, its columns WOE-encoded with its own binning result (by name)."""
    from parties.binning import woe_encode
    from vfl.data import read_party_csv

    paths = dict(zip(["B", *feature_holder_names(len(args.party_a))],
                     [args.party_b, *args.party_a]))
    label = getattr(args, "label_column", None)
    return {name: woe_encode(read_party_csv(path, party=name, id_column=args.id_column),
                             binning[name], id_column=args.id_column,
                             label_column=label if name == "B" else None,
                             columns=None if columns is None else columns[name],
                             all_columns=all_columns, source=path)
            for name, path in paths.items()}


def _score_scale(args: argparse.Namespace, model: str):
    """The scorecard's scale (None without --scorecard); refused before any work."""
    from vfl.errors import ConfigError
    from vfl.risk.scorecard import ScoreScale

    if args.woe_all_columns and not args.woe:
        raise ConfigError("--woe-all-columns goes with --woe DIR (the binning files)")
    if not args.scorecard:
        return None
    if not args.woe:
        raise ConfigError("--scorecard gives points per bin of WOE-encoded columns: add --woe "
                          "DIR (the folder of 'vfl binning')")
    if model != "logistic":
        raise ConfigError("--scorecard rescales a logistic model's log-odds: use --model "
                          "logistic")
    try:
        return ScoreScale(args.pdo, args.base_odds, args.base_score)
    except ValueError as exc:
        raise ConfigError(f"scorecard: {exc}") from None


def _scored_rows(federation):
    """(predictions, their labels, validation mask) of the aligned rows: one federated
    prediction serves the metrics, the evaluation tables and the curves."""
    import numpy as np
    import pandas as pd

    label_holder = federation.label_holder
    predictions = federation.predict()
    truth = pd.Series(label_holder.table.label, index=label_holder.table.ids)
    held_out = {label_holder.aligned_ids_[i] for i in label_holder.validation_rows_}
    is_validation = np.array([i in held_out for i in predictions.index])
    return predictions, truth, is_validation


def _report(federation, run_config, scored) -> dict:
    """report.json: weights, history and metrics on the training and validation rows."""
    import numpy as np

    from vfl.metrics import model_metrics

    config, label_holder = run_config.training, federation.label_holder
    predictions, truth, is_validation = scored

    def score(mask: np.ndarray) -> dict[str, float]:
        return model_metrics(config.model, truth.loc[predictions.index[mask]].to_numpy(),
                             predictions.to_numpy()[mask])

    return {
        "model": config.model,
        "aligned_rows": federation.aligned_rows_,
        "training_rows": int((~is_validation).sum()),
        "validation_rows": int(is_validation.sum()),
        "parties": {
            label_holder.name: {"features": label_holder.model_.features,
                                "weights": label_holder.model_.weights,
                                "intercept": label_holder.intercept_},
            **{a.name: {"features": a.model_.features, "weights": a.model_.weights}
               for a in federation.feature_holders},
        },
        "history": label_holder.history_,
        "epochs_run": len(label_holder.history_),
        "metrics": score(~is_validation),
        **({"validation_metrics": score(is_validation)} if is_validation.any() else {}),
        **_evaluation(config.model, truth.loc[predictions.index].to_numpy(),
                      predictions.to_numpy(), is_validation),
        "config": {**config.to_dict(), "key_bits": run_config.key_bits,
                   "backend": run_config.backend, "alignment": run_config.alignment},
        "session": federation.session_,
    }


def _evaluation(model: str, labels, probabilities, is_validation) -> dict:
    """report.json's ``evaluation`` (and ``validation_evaluation``) of a logistic model:
    KS, lift and gain by decile, confusion matrix at 0.5 (vfl.risk.evaluation_report)."""
    from vfl.risk.report import evaluation_report

    if model != "logistic":
        return {}
    result = {"evaluation": evaluation_report(labels[~is_validation],
                                              probabilities[~is_validation])}
    if is_validation.any():
        result["validation_evaluation"] = evaluation_report(labels[is_validation],
                                                            probabilities[is_validation])
    return result


def _check_curves(model: str) -> None:
    """--curves needs a logistic model and matplotlib: refused before any training."""
    import importlib.util

    from vfl.errors import ConfigError

    if model != "logistic":
        raise ConfigError("--curves draws ROC and KS curves of a classifier: use it with "
                          "--model logistic")
    if importlib.util.find_spec("matplotlib") is None:
        raise ConfigError("--curves needs matplotlib: pip install 'vfl[plot]'")


def _curve_files(scored) -> dict[str, bytes]:
    """The ROC and KS PNGs of the training rows."""
    import tempfile

    from vfl.plot import plot_roc_ks
    from vfl.risk import roc_ks_points

    predictions, truth, is_validation = scored
    train = predictions.index[~is_validation]
    points = roc_ks_points(truth.loc[train].to_numpy(), predictions.loc[train].to_numpy())
    with tempfile.TemporaryDirectory() as folder:
        paths = [os.path.join(folder, name) for name in CURVE_FILES]
        plot_roc_ks(points, *paths, title="training rows")
        images = {}
        for name, path in zip(CURVE_FILES, paths):
            with open(path, "rb") as handle:
                images[name] = handle.read()
    return images
