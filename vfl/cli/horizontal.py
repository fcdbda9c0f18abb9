"""``vfl horizontal``: train clients with the same columns in-process on CSV files.

A server S and a key holder C run with the clients C1..CK (one per ``--client``
file, in order) as threads of this process; every update crosses the
in-process network encrypted and packed (see ``docs/horizontal.md``).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from vfl.cli.common import (
    DefaultsHelpFormatter,
    add_force_option,
    check_outputs,
    write_outputs,
)
from vfl.cli.options import add_run_option, batch_size

__all__ = ["ALGORITHMS", "DEFAULTS", "MODELS", "MODEL_FORMAT", "SERVER_OPTIMIZERS",
           "model_document", "register", "run"]

#: Format tag of the model file.
MODEL_FORMAT = "vfl-horizontal-model/1"

REPORT_FILE = "report.json"
MODEL_FILE = "model.json"


#: Choices and defaults of the training options, written out so that building the ``vfl``
#: parser imports no party code; tests/horizontal/test_horizontal_cli.py checks them against
#: :class:`parties.horizontal.config.HorizontalConfig`.
MODELS = ("linear", "logistic", "softmax", "mlp")
ALGORITHMS = ("fedsgd", "fedavg", "fedprox")
SERVER_OPTIMIZERS = ("sgd", "adam")
DEFAULTS: dict[str, Any] = {
    "model": "linear", "algorithm": "fedavg", "rounds": 10, "local_epochs": 1,
    "batch_size": None, "learning_rate": 0.1, "mu": 0.01, "server_optimizer": "sgd",
    "server_learning_rate": 1.0, "fraction": 1.0, "min_clients": 2, "seed": 0,
    "standardize": True, "hidden_units": 16, "frac_bits": 32, "value_bits": 32,
}


def register(commands: argparse._SubParsersAction) -> None:
    defaults = argparse.Namespace(**DEFAULTS)
    parser = commands.add_parser(
        "horizontal", help="train clients that hold the same columns (horizontal FL)",
        description="Train one linear, logistic, softmax or MLP model on several clients' CSV "
                    "files with the same columns (FedSGD, FedAvg or FedProx). Each client's "
                    "update, loss and row count reach the server only encrypted and packed "
                    "under a key holder's Paillier key; the server adds them, masks the sum, "
                    "and the key holder decrypts only the masked sum. Writes OUT/report.json "
                    "and OUT/model.json.",
        formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--client", action="append", required=True, metavar="CSV",
                        help="a client's CSV file (header row, numeric columns); repeat it "
                             "once per client (C1, C2, ... in the order given; at least two)")
    parser.add_argument("--label-column", required=True, metavar="NAME",
                        help="label column, in every client's file")
    parser.add_argument("--drop-column", action="append", default=[], metavar="NAME",
                        help="a column to ignore (an ID, say); repeatable")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder (written only when training succeeds)")
    add_force_option(parser, "report.json and model.json")
    group = parser.add_argument_group("training (identical at every party)")
    group.add_argument("--model", choices=MODELS, default=defaults.model,
                       help="mlp: one hidden layer of --hidden-units tanh units, softmax "
                            "output over the label's classes")
    group.add_argument("--hidden-units", type=int, default=defaults.hidden_units,
                       help="the MLP's hidden units (--model mlp)")
    group.add_argument("--frac-bits", type=int, default=defaults.frac_bits,
                       help="fixed-point precision of a packed update value: multiples of "
                            "2^-FRAC_BITS (fewer bits: more values per ciphertext, fewer bytes)")
    group.add_argument("--value-bits", type=int, default=defaults.value_bits,
                       help="integer bits of a packed update value: each client's row-weighted "
                            "update must stay below 2^VALUE_BITS (else the run stops before "
                            "packing, naming the client); its loss and row count travel in "
                            "wider slots of their own")
    group.add_argument("--algorithm", choices=ALGORITHMS, default=defaults.algorithm,
                       help="fedsgd: one full-batch gradient step per round; fedavg: "
                            "--local-epochs of local steps; fedprox: fedavg with a proximal "
                            "term (--mu)")
    group.add_argument("--rounds", type=int, default=defaults.rounds,
                       help="rounds of global model, local training and encrypted sum")
    group.add_argument("--local-epochs", type=int, default=defaults.local_epochs,
                       help="local passes over a client's rows per round (E)")
    group.add_argument("--batch-size", type=batch_size, default=defaults.batch_size,
                       metavar="B|full", help="rows per local step (B), or 'full'")
    group.add_argument("--learning-rate", type=float, default=defaults.learning_rate,
                       help="the clients' local step size")
    group.add_argument("--mu", type=float, default=defaults.mu,
                       help="FedProx's proximal weight (--algorithm fedprox)")
    group.add_argument("--server-optimizer", choices=SERVER_OPTIMIZERS,
                       default=defaults.server_optimizer,
                       help="sgd: plain averaging; adam: FedAdam")
    group.add_argument("--server-learning-rate", type=float,
                       default=defaults.server_learning_rate,
                       help="the server's step along the mean update (1 with sgd: FedAvg)")
    group.add_argument("--fraction", type=float, default=defaults.fraction,
                       help="share of the clients sampled each round")
    group.add_argument("--min-clients", type=int, default=defaults.min_clients,
                       help="fewest updates a round's sum may hold (>= 2)")
    group.add_argument("--seed", type=int, default=defaults.seed,
                       help="seed of the client sampling and the local batch orders")
    group.add_argument("--standardize", action=argparse.BooleanOptionalAction,
                       default=defaults.standardize,
                       help="standardise columns with federated means and variances")
    keys = parser.add_argument_group("encryption")
    for setting in ("key_bits", "insecure_key", "backend"):
        add_run_option(keys, setting)
    add_run_option(parser, "executor")
    parser.add_argument("--audit-log", metavar="LOG", default=None,
                        help="append a record of this run (each round's participants "
                             "included), signed by every party, to this hash-chained log "
                             "(see 'vfl audit')")
    parser.add_argument("--audit-keys", metavar="DIR", default=None,
                        help="folder with every party's signing key NAME.key (S, C and the "
                             "clients C1, C2, ...; 'vfl audit keygen'); required with "
                             "--audit-log")
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from parties.audit import check_audit_log, load_party_keys, record_horizontal
    from parties.horizontal import FederatedAveraging, HorizontalClient
    from parties.horizontal.config import HorizontalConfig
    from vfl.cli.common import dumps
    from vfl.cluster import compute_on
    from vfl.errors import ConfigError

    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    targets = [os.path.join(args.out, name) for name in (REPORT_FILE, MODEL_FILE)]
    inputs = {f"C{k}": path for k, path in enumerate(args.client, start=1)}
    check_outputs(args.out, (REPORT_FILE, MODEL_FILE), inputs, force=args.force)
    if len(args.client) < 2:
        raise ConfigError("a horizontal federation needs two or more --client files")
    if bool(args.audit_log) != bool(args.audit_keys):
        raise ConfigError("--audit-log and --audit-keys go together: the log records runs "
                          "signed with every party's key")
    # Before any training: a missing key or a log pinning other keys stops here.
    keys = (load_party_keys(args.audit_keys, ["S", "C", *inputs]) if args.audit_keys
            else None)
    if keys is not None:
        check_audit_log(args.audit_log, keys)
    config = HorizontalConfig(
        model=args.model, algorithm=args.algorithm, rounds=args.rounds,
        local_epochs=args.local_epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, mu=args.mu,
        server_optimizer=args.server_optimizer,
        server_learning_rate=args.server_learning_rate, fraction=args.fraction,
        min_clients=args.min_clients, seed=args.seed, standardize=args.standardize,
        hidden_units=args.hidden_units, frac_bits=args.frac_bits, value_bits=args.value_bits)
    clients = [HorizontalClient.from_csv(path, label_column=args.label_column, name=f"C{k}",
                                         drop_columns=args.drop_column)
               for k, path in enumerate(args.client, start=1)]
    say(f"training {config.model} ({config.algorithm}, {config.rounds} rounds) on "
        + ", ".join(f"{len(c)} rows at {c.name}" for c in clients)
        + f"; {args.key_bits}-bit key, {args.backend} engine")
    model = FederatedAveraging(**config.to_dict(), key_bits=args.key_bits,
                               insecure_key=args.insecure_key, backend=args.backend)
    with compute_on(args.executor):
        model.fit(clients)
    report = _report(model, clients, args)
    files = {REPORT_FILE: dumps(report), MODEL_FILE: dumps(_model_file(model))}

    def sign() -> None:
        # Between staging the outputs and showing them (as 'vfl simulate').
        assert keys is not None
        record = record_horizontal(model.federation_, args.audit_log, keys)
        say(f"audit record {record.index} appended to {args.audit_log} "
            f"(hash {record.hash[:16]}...)")

    write_outputs(args.out, files, inputs, force=args.force,
                  before_publish=sign if keys is not None else None)
    for record in report["history"]:
        if record["loss"] is not None and not args.quiet:
            say(f"round {record['round']}: loss {record['loss']:.6g}")
    say("metrics on the clients' rows: "
        + ", ".join(f"{k} {v:.6g}" for k, v in report["metrics"].items()))
    say(f"wrote {targets[0]} and {targets[1]}")
    return 0


def _listed(values: Any) -> Any:
    import numpy as np

    return np.asarray(values, dtype=float).tolist()


def _model_file(model: Any) -> dict[str, Any]:
    return model_document(model.model, model.feature_names_in_, model.classes_,
                          model.layers_)


def model_document(model: str, features: Any, classes: Any, layers: Any) -> dict[str, Any]:
    """The model file's contents (also written by a networked server, ``vfl party``).

    Parameters
    ----------
    model : {"linear", "logistic", "softmax", "mlp"}
    features : list of str
    classes : array-like
        Classes of a softmax or MLP model (ignored for the others).
    layers : list of array-like
        Raw-unit layers, each ``(inputs + 1, outputs)`` with the intercept row
        last: one for the linear models, two for the MLP.

    The linear models are written as ``weights`` and ``intercept`` (softmax:
    one weight list per class); the MLP as ``layers``, each a list of units
    with their ``weights`` (one per input) and ``intercept``.
    """
    import numpy as np

    matrices = [np.asarray(layer, dtype=float) for layer in layers]
    document: dict[str, Any] = {
        "format": MODEL_FORMAT, "model": model, "features": list(features),
        "classes": _listed(classes) if model in ("softmax", "mlp") else None}
    if model == "mlp":
        document["layers"] = [[{"weights": _listed(unit[:-1]), "intercept": float(unit[-1])}
                               for unit in layer.T] for layer in matrices]
    elif model == "softmax":
        document["weights"] = _listed(matrices[0][:-1].T)
        document["intercept"] = _listed(matrices[0][-1])
    else:
        document["weights"] = _listed(matrices[0][:-1, 0])
        document["intercept"] = float(matrices[0][-1, 0])
    return document


def _metrics(model: Any, clients: list[Any]) -> dict[str, float]:
    import numpy as np

    from vfl.metrics import classification_metrics, regression_metrics

    features = np.vstack([c.features[:, [c.feature_names.index(f)
                                         for f in model.feature_names_in_]] for c in clients])
    labels = np.concatenate([c.labels for c in clients])
    if model.model == "linear":
        return regression_metrics(labels, model.predict(features))
    if model.model == "logistic":
        return classification_metrics(labels, model.predict_proba(features)[:, 1])
    proba = model.predict_proba(features)
    index = np.searchsorted(model.classes_, labels)
    return {"accuracy": float(np.mean(model.classes_[proba.argmax(axis=1)] == labels)),
            "log_loss": float(-np.mean(np.log(np.clip(proba[np.arange(len(labels)), index],
                                                      1e-15, 1.0))))}


def _report(model: Any, clients: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    weights = _model_file(model)
    return {
        "model": model.model,
        "algorithm": model.algorithm,
        "clients": {c.name: {"rows": len(c), "file": c.source} for c in clients},
        "features": model.feature_names_in_,
        **({"classes": weights["classes"]} if model.model in ("softmax", "mlp") else {}),
        **{key: weights[key] for key in ("weights", "intercept", "layers") if key in weights},
        "history": [{"round": h["round"], "loss": h["loss"],
                     "participants": h["participants"], "dropped": h["dropped"]}
                    for h in model.history_],
        "metrics": _metrics(model, clients),
        "config": {**model.config.to_dict(), "key_bits": args.key_bits,
                   "backend": args.backend},
    }
