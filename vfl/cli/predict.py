"""``vfl predict``: federated prediction from saved model parts."""

from __future__ import annotations

import argparse
import os
import sys

from vfl.cli.common import add_data_options, feature_holder_names, write_outputs
from vfl.errors import InputDataError
from vfl.psi import ALIGNMENT_METHODS, DEFAULT_ALIGNMENT

__all__ = ["register", "run"]


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "predict", help="predict new rows with the model parts a training run saved",
        description="Each party loads its own saved part from MODEL_DIR (model_B.json, "
                    "model_A1.json), the parties align the new rows privately, A sends its "
                    "partial scores to B, and B writes the predictions.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_options(parser, label=False)
    parser.add_argument("--model", required=True, metavar="MODEL_DIR",
                        help="folder a 'vfl simulate' run wrote")
    parser.add_argument("--out", required=True, metavar="CSV",
                        help="predictions file (ID and prediction), written only on success")
    parser.add_argument("--alignment", default=DEFAULT_ALIGNMENT,
                        choices=sorted(ALIGNMENT_METHODS), help="private alignment method")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from parties import Coordinator, FeatureHolder, Federation, LabelHolder
    from vfl.data import read_party_csv
    from vfl.model import ModelPart

    if len(args.party_a) > 1:
        raise InputDataError("this version predicts with exactly one feature holder")
    parts = {name: ModelPart.load(os.path.join(args.model, f"model_{name}.json"), party=name)
             for name in ["B", *feature_holder_names(len(args.party_a))]}
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
    predictions = Federation(Coordinator(), b, holders, alignment=args.alignment).predict()
    text = pd.DataFrame({args.id_column: predictions.index,
                         label: predictions.to_numpy()}).to_csv(index=False)
    out_dir, name = os.path.split(os.path.abspath(args.out))
    write_outputs(out_dir, {name: text}, [args.party_b, *args.party_a])
    print(f"wrote {len(predictions)} predictions to {args.out}", file=sys.stderr)
    return 0
