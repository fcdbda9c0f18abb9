"""``vfl predict``: federated prediction from saved model parts."""

from __future__ import annotations

import argparse
import os
import sys

from vfl.cli.common import (
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
                    "privately, and the predictions (P(class 1) for a logistic model) are "
                    "delivered to B (the feature holders send B their partial scores) or to "
                    "C (every party sends C masked shares; C learns the predictions, no "
                    "party's share and no ID).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_options(parser, label=False)
    parser.add_argument("--model", required=True, metavar="MODEL_DIR",
                        help="folder a 'vfl simulate' run wrote")
    parser.add_argument("--out", required=True, metavar="CSV",
                        help="predictions file (ID and prediction), written only on success")
    add_force_option(parser, "an existing predictions file")
    parser.add_argument("--deliver-to", default="B", choices=["B", "C"],
                        help="who receives the predictions")
    add_run_option(parser, "alignment")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from parties import Coordinator, FeatureHolder, Federation, LabelHolder
    from vfl.data import read_party_csv
    from vfl.model import ModelPart

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
    frame_b = read_party_csv(args.party_b, party="B", id_column=args.id_column)
    label = "prediction"
    frame_b = frame_b.assign(**{label: 0.0})  # the label holder's label is not needed here
    b = LabelHolder(frame_b, id_column=args.id_column, label_column=label,
                    feature_columns=parts["B"].features, model=parts["B"], source=args.party_b)
    holders = [FeatureHolder(read_party_csv(path, party=name, id_column=args.id_column),
                             id_column=args.id_column, name=name,
                             feature_columns=parts[name].features, model=parts[name],
                             source=path)
               for name, path in zip(feature_holder_names(len(args.party_a)), args.party_a)]
    predictions = Federation(Coordinator(), b, holders, alignment=args.alignment).predict(
        deliver_to=args.deliver_to)
    column = "probability" if parts["B"].model == "logistic" else label
    text = pd.DataFrame({args.id_column: predictions.index,
                         column: predictions.to_numpy()}).to_csv(index=False)
    write_outputs(out_dir, {out_name: text}, inputs, force=args.force)
    print(f"wrote {len(predictions)} predictions to {args.out}", file=sys.stderr)
    return 0


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
