"""``vfl predict``: federated prediction from saved model parts."""

from __future__ import annotations

import argparse
import os
import sys

from vfl.cli.common import (
    DefaultsHelpFormatter,
    add_data_options,
    add_force_option,
    check_outputs,
    feature_holder_names,
    party_inputs,
    write_outputs,
)
from vfl.cli.options import add_run_option
from vfl.errors import InputDataError

__all__ = ["register", "run"]


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "predict", help="predict new rows with the model parts a training run saved",
        description="Each party loads its own saved part from MODEL_DIR (model_B.json, "
                    "model_A1.json, model_A2.json, ...), the parties align the new rows "
                    "privately, and the predictions (P(class 1) for a logistic model, the "
                    "expected count for a Poisson one) are "
                    "delivered to B (the feature holders send B their partial scores) or to "
                    "C (every party sends C masked shares; C learns the predictions, no "
                    "party's share and no ID).",
        formatter_class=DefaultsHelpFormatter)
    add_data_options(parser, label=False)
    parser.add_argument("--model", required=True, metavar="MODEL_DIR",
                        help="folder a 'vfl simulate' run wrote")
    parser.add_argument("--out", required=True, metavar="CSV",
                        help="predictions file (ID and prediction), written only on success")
    add_force_option(parser, "an existing predictions file")
    parser.add_argument("--deliver-to", default="B", choices=["B", "C"],
                        help="who receives the predictions")
    add_run_option(parser, "alignment")
    parser.add_argument("--exposure-column", default=None, metavar="NAME",
                        help="Poisson models: column of positive exposures in B's file; the "
                             "prediction is exposure * exp(score) (without it, the count per "
                             "unit of exposure)")
    group = parser.add_argument_group("WOE encoding and scorecard (docs/risk.md)")
    group.add_argument("--woe", default=None, metavar="DIR",
                       help="the model was trained with --woe DIR: each party encodes its "
                            "new rows with its own DIR/binning_<party>.json, as in training "
                            "(values beyond the training range in the end bins, missing "
                            "values in the missing bin)")
    group.add_argument("--scorecard", action="store_true",
                       help="with --woe: also write each row's score (MODEL_DIR's "
                            "scorecard_B.json scale: offset - factor * log-odds), computed "
                            "by B from the prediction it receives")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import pandas as pd

    from parties import Coordinator, FeatureHolder, Federation, LabelHolder
    from vfl.model import ModelPart, sigmoid

    inputs = party_inputs(args.party_b, args.party_a)
    names = list(inputs)
    out_dir, out_name = os.path.split(os.path.abspath(args.out))
    model_files = {os.path.realpath(os.path.join(args.model, f)) for f in _part_files(args.model)}
    if os.path.realpath(args.out) in model_files:
        raise InputDataError(f"--out {args.out} is a model file of {args.model}; choose "
                             "another predictions file")
    check_outputs(out_dir, [out_name], inputs, force=args.force)
    parts = {name: ModelPart.load(os.path.join(args.model, f"model_{name}.json"), party=name)
             for name in names}
    _check_all_parts_given(args.model, parts)
    card = _scorecard(args, parts["B"])
    scale = None if card is None else card.scale
    frames = _frames(args, names, parts, None if card is None else card.binning_session)
    label = "prediction"
    # The label holder's label is not needed here.
    frame_b = frames["B"].assign(**{label: 0.0})
    if scale is not None:
        # B asks for the summed log-odds (the parts' linear score; the protocol is the
        # same, only B's last step differs) and turns it into probability and score.
        parts = {name: replace(part, model="linear") for name, part in parts.items()}
    exposure = getattr(args, "exposure_column", None)
    if exposure is not None and parts["B"].model != "poisson":
        from vfl.errors import ConfigError

        raise ConfigError(f"--exposure-column is the offset of a Poisson model; the model in "
                          f"{args.model} is {parts['B'].model}: leave it out")
    b = LabelHolder(frame_b, id_column=args.id_column, label_column=label,
                    feature_columns=parts["B"].features, model=parts["B"], source=args.party_b,
                    exposure_column=exposure)
    holders = [FeatureHolder(frames[name], id_column=args.id_column, name=name,
                             feature_columns=parts[name].features, model=parts[name],
                             source=path)
               for name, path in zip(feature_holder_names(len(args.party_a)), args.party_a)]
    predictions = Federation(Coordinator(), b, holders, alignment=args.alignment).predict(
        deliver_to=args.deliver_to)
    if scale is not None:
        logit = predictions.to_numpy()
        columns = {"probability": sigmoid(logit), "score": scale.score(logit)}
    else:
        columns = {"probability" if parts["B"].model == "logistic" else label:
                   predictions.to_numpy()}
    text = pd.DataFrame({args.id_column: predictions.index, **columns}).to_csv(index=False)
    write_outputs(out_dir, {out_name: text}, inputs, force=args.force)
    print(f"wrote {len(predictions)} predictions to {args.out}", file=sys.stderr)
    return 0


def _frames(args: argparse.Namespace, names: list[str], parts: dict,
            scorecard_session: str | None = None) -> dict:
    """Each party's new rows, as the model was trained on them (with --woe: each party's
    model columns WOE-encoded with its own binning file)."""
    from vfl.cli.simulate import woe_binning, woe_frames
    from vfl.data import read_party_csv

    trained = _trained_on(args.model)
    if args.woe is None:
        if trained:
            raise InputDataError(f"the model in {args.model} was trained on WOE-encoded "
                                 f"columns (binning {trained['binning']}): pass --woe DIR, "
                                 "the folder of the same 'vfl binning' run")
        paths = dict(zip(names, [args.party_b, *args.party_a]))
        return {name: read_party_csv(path, party=name, id_column=args.id_column)
                for name, path in paths.items()}
    if trained == {}:
        raise InputDataError(f"the model in {args.model} was trained on the raw columns, not "
                             "WOE-encoded ones: leave out --woe")
    binning = woe_binning(args.woe, names)
    session = binning["B"].session
    expected = [s for s in ((trained or {}).get("session"), scorecard_session) if s]
    if session and any(s != session for s in expected):
        from vfl.errors import BinningFileError

        raise BinningFileError(f"{args.woe}/binning_B.json is of another binning run than "
                               f"the one the model in {args.model} was trained on; use that "
                               "run's folder", party="B")
    return woe_frames(args, binning, columns={name: part.features
                                              for name, part in parts.items()})


def _trained_on(folder: str) -> dict | None:
    """What MODEL_DIR/report.json says of WOE encoding: its ``woe`` entry, ``{}`` (raw
    columns), or None (no report: a party's own folder, or an older run)."""
    import json

    try:
        with open(os.path.join(folder, "report.json"), encoding="utf-8") as handle:
            report = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict):
        return None
    woe = report.get("woe")
    return woe if isinstance(woe, dict) and woe else {}


def _scorecard(args: argparse.Namespace, part):
    """B's part of the scorecard (scorecard_B.json in MODEL_DIR: the scale), or None
    without --scorecard."""
    from vfl.errors import ConfigError

    if not args.scorecard:
        return None
    if args.woe is None:
        raise ConfigError("--scorecard scores WOE-encoded rows: add --woe DIR (the binning "
                          "folder the model was trained with)")
    if args.deliver_to != "B":
        raise ConfigError("--scorecard: B computes the scores from the prediction it "
                          "receives; use --deliver-to B")
    if part.model != "logistic":
        raise ConfigError(f"--scorecard rescales log-odds: the model in {args.model} is "
                          f"{part.model}, not logistic")
    from parties.binning import load_scorecard

    return load_scorecard(os.path.join(args.model, "scorecard_B.json"), party="B")


def _part_files(folder: str) -> list[str]:
    """The model part files (model_NAME.json) in a model folder."""
    try:
        return sorted(f for f in os.listdir(folder)
                      if f.startswith("model_") and f.endswith(".json"))
    except OSError as exc:
        raise InputDataError(f"cannot read the model folder {folder}: {exc.strerror}") from None


def _check_all_parts_given(folder: str, parts: dict) -> None:
    """Every part the folder holds has its party's data on the command line.

    (:func:`vfl.model.check_model_set` checks the parts' own record of the run;
    this also covers parts saved by 0.1, which have none.)
    """
    unused = [f for f in _part_files(folder) if f[len("model_"):-len(".json")] not in parts]
    if unused:
        raise InputDataError(
            f"{folder} holds {', '.join(unused)}, but only {len(parts) - 1} --party-a "
            f"file(s) were given: a prediction needs every party of the model; add its "
            "--party-a (in the training order) or use the folder of the run you mean")
