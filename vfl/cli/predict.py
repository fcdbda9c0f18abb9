"""``vfl predict``: federated prediction from saved model parts."""

from __future__ import annotations

import argparse
import os
import sys

from vfl.cli.common import add_data_options, feature_holder_names, write_outputs
from vfl.cli.options import add_run_option

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
    parser.add_argument("--deliver-to", default="B", choices=["B", "C"],
                        help="who receives the predictions")
    add_run_option(parser, "alignment")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from parties import Coordinator, FeatureHolder, Federation, LabelHolder
    from vfl.data import read_party_csv
    from vfl.model import ModelPart

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
    predictions = Federation(Coordinator(), b, holders, alignment=args.alignment).predict(
        deliver_to=args.deliver_to)
    column = "probability" if parts["B"].model == "logistic" else label
    text = pd.DataFrame({args.id_column: predictions.index,
                         column: predictions.to_numpy()}).to_csv(index=False)
    out_dir, name = os.path.split(os.path.abspath(args.out))
    write_outputs(out_dir, {name: text}, [args.party_b, *args.party_a])
    print(f"wrote {len(predictions)} predictions to {args.out}", file=sys.stderr)
    return 0
