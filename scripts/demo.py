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

By default A1, B and C run as three separate OS processes (``vfl party``)
talking gRPC with mutual TLS over loopback, with certificates and
configurations generated into a temporary folder; ``--in-process`` runs them
as threads of this process instead (as notebooks and tests do).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from parties import Coordinator, FeatureHolder, Federation, LabelHolder
from vfl.cli.options import add_run_option, add_training_options, config_from_args
from vfl.datasets import (
    DIABETES_FEATURE_HOLDER_COLUMNS,
    load_diabetes,
    split_vertically,
)
from vfl.metrics import regression_metrics
from vfl.model import ModelPart
from vfl.plot import plot_history
from vfl.reference import closed_form, train_centralized
from vfl.training import TrainingConfig

ROOT = Path(__file__).resolve().parents[1]
ID, LABEL = "patient_id", "progression"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_training_options(parser)
    parser.set_defaults(batch_size=64)
    parser.add_argument("--plot", default="demo-output/training.png", metavar="PNG",
                        help="loss curve written here if matplotlib is installed ('' to skip)")
    for setting in ("key_bits", "insecure_key", "backend"):
        add_run_option(parser, setting)
    parser.add_argument("--split-seed", type=int, default=0,
                        help="seed of the demo's vertical split of the bundled data")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed the parties' random streams too (reproducible runs; makes "
                             "their secrets predictable: for tests only)")
    parser.add_argument("--in-process", action="store_true",
                        help="run the three parties as threads of this process instead of "
                             "three OS processes talking gRPC with mutual TLS")
    parser.add_argument("--workdir", metavar="DIR", default=None,
                        help="keep certificates, configurations, logs, checkpoints and model "
                             "parts of the three processes here (default: a temporary folder)")
    args = parser.parse_args(argv)

    a_frame, b_frame = split_vertically(
        load_diabetes(), id_column=ID, label_column=LABEL,
        feature_holder_columns=DIABETES_FEATURE_HOLDER_COLUMNS, seed=args.split_seed)
    config = config_from_args(args)
    if config.model != "linear":
        parser.error("the demo trains a linear regression on the diabetes data; use "
                     "'vfl simulate --model logistic' for classification")
    # Checked party tables: the same ID normalisation and columns the parties use.
    seeds = {} if args.seed is None else {"A1": args.seed + 1, "B": args.seed + 2}
    a = FeatureHolder(a_frame, id_column=ID, name="A1", label_column=LABEL,
                      seed=seeds.get("A1"))
    b = LabelHolder(b_frame, id_column=ID, label_column=LABEL, seed=seeds.get("B"))
    print(f"A1 (clinic) holds {len(a.table)} patients x {a.table.feature_names}")
    print(f"B  (lab)    holds {len(b.table)} patients x {b.table.feature_names} + label")
    print(f"C  makes a {args.key_bits}-bit Paillier key ({args.backend} engine)")
    started = time.perf_counter()
    if args.in_process:
        result = _in_process(a, b, config, args)
    elif args.workdir:
        result = _three_processes(a_frame, b_frame, config, args, Path(args.workdir))
    else:
        with tempfile.TemporaryDirectory(prefix="vfl-demo-") as folder:
            result = _three_processes(a_frame, b_frame, config, args, Path(folder))
    if result is None:
        return 1
    elapsed = time.perf_counter() - started
    print(f"aligned rows (private alignment): {len(result['aligned_ids'])}")
    print(f"trained {len(result['history'])} epochs in {elapsed:.1f} s")
    _compare(a_frame, b_frame, a, b, config, result, args)
    return 0


def _in_process(a: FeatureHolder, b: LabelHolder, config: TrainingConfig, args) -> dict:
    """Train with the parties as threads of this process."""
    c = Coordinator(key_bits=args.key_bits, insecure_key=args.insecure_key,
                    backend=args.backend)
    Federation(c, b, a, config=config, progress=True).fit()
    return {"aligned_ids": b.aligned_ids_, "a_part": a.model_, "b_part": b.model_,
            "history": b.history_, "a_initial": a.initial_weights_,
            "b_initial": b.initial_weights_, "b_intercept": b.initial_intercept_,
            "batch_seeds": b.batch_seeds_, "split_seed": b.split_seed_}


def _three_processes(a_frame: pd.DataFrame, b_frame: pd.DataFrame, config: TrainingConfig,
                     args, folder: Path) -> dict | None:
    """Train with A1, B and C as three ``vfl party`` processes over loopback mTLS."""
    from vfl.net import create_federation_certificates
    from vfl.runtime.loopback import free_loopback_ports, write_loopback_configs

    folder.mkdir(parents=True, exist_ok=True)
    files = {"A1": folder / "A1.csv", "B": folder / "B.csv"}
    a_frame.to_csv(files["A1"], index=False)
    b_frame.to_csv(files["B"], index=False)
    certs = folder / "certs"
    if not (certs / "ca.crt").exists():
        create_federation_certificates(certs, ["A1", "B", "C"])
    run_id = f"demo-{os.getpid()}-{time.time_ns()}"
    configs = write_loopback_configs(
        folder, run_id=run_id, ports=free_loopback_ports(["A1", "B", "C"]),
        label_holder=("B", files["B"]), feature_holders=[("A1", files["A1"])], id_column=ID,
        label_column=LABEL, training=config, certs=certs, key_bits=args.key_bits,
        insecure_key=args.insecure_key,
        backend=args.backend,
        seeds={} if args.seed is None else {"A1": args.seed + 1, "B": args.seed + 2},
        timeout=600, connect_timeout=120)
    print(f"starting A1, B and C as three processes (mutual TLS on 127.0.0.1; "
          f"configurations in {folder})")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    processes, logs = {}, {}
    for name in ("C", "A1", "B"):
        logs[name] = folder / f"{name}.log"
        command = [sys.executable, "-m", "vfl", "party", "--config", str(configs[name])]
        if name == "B":  # B's progress goes to this terminal; A1's and C's to their logs.
            processes[name] = subprocess.Popen(command, cwd=ROOT, env=env)
            continue
        with open(logs[name], "wb") as log:
            processes[name] = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log,
                                               stderr=subprocess.STDOUT)
    codes = {name: process.wait() for name, process in processes.items()}
    if any(codes.values()):
        for name in ("A1", "C"):
            print(f"--- {name} ({logs[name]}) ---\n" + logs[name].read_text()[-3000:])
        print(f"a party failed: exit codes {codes}", file=sys.stderr)
        return None
    out = folder / "output"
    history = json.loads((out / "B" / "history_B.json").read_text())
    # DEMO ONLY: the same-rule baseline needs every party's secret initial
    # weights and B's batch seeds. The demo owns all three parties, so it reads
    # them from their own checkpoints; in a real federation nobody can.
    a_state = _last_checkpoint(out / "A1" / "checkpoints", "A1")
    b_state = _last_checkpoint(out / "B" / "checkpoints", "B")
    a_ids = set(FeatureHolder(a_frame, id_column=ID, name="A1").table.ids)
    return {"aligned_ids": sorted(i for i in LabelHolder(
                b_frame, id_column=ID, label_column=LABEL).table.ids if i in a_ids),
            "a_part": ModelPart.load(out / "A1" / "model_A1.json", party="A1"),
            "b_part": ModelPart.load(out / "B" / "model_B.json", party="B"),
            "history": history["history"], "a_initial": np.array(a_state["initial_weights"]),
            "b_initial": np.array(b_state["initial_weights"]),
            "b_intercept": b_state["initial_intercept"], "batch_seeds": b_state["batch_seeds"],
            "split_seed": b_state["split_seed"]}


def _last_checkpoint(folder: Path, party: str) -> dict:
    latest = max(folder.glob(f"{party}-epoch-*.json"))
    return json.loads(latest.read_text())["state"]


def _compare(a_frame, b_frame, a, b, config: TrainingConfig, result: dict, args) -> None:
    """The comparison table, the weight gap and the loss plot."""
    # Baselines on the joined data: possible here only because the demo
    # holds everyone's data; no party of a real federation could do this.
    ids = result["aligned_ids"]
    a_cols, b_cols = a.table.feature_names, b.table.feature_names
    a_rows = a_frame.set_index(ID).loc[ids, a_cols]
    b_rows = b_frame.set_index(ID).loc[ids]
    x = np.column_stack([a_rows.to_numpy(), b_rows[b_cols].to_numpy()])
    y = b_rows[LABEL].to_numpy(dtype=float)
    same_rule = train_centralized(
        x, y, config, initial_weights=np.r_[result["a_initial"], result["b_initial"]],
        initial_intercept=result["b_intercept"], batch_seeds=result["batch_seeds"],
        split_seed=result["split_seed"], blocks=[len(a_cols), len(b_cols)])
    ols = closed_form(x, y)
    a_part, b_part = result["a_part"], result["b_part"]
    # The sum of both parts' scores: what a federated prediction delivered to B
    # computes (here from the demo's copy of both tables).
    federated_prediction = (a_part.score(a_rows.to_numpy(dtype=float))
                            + b_part.score(b_rows[b_cols].to_numpy(dtype=float)))
    rows = {
        "federated (encrypted)": regression_metrics(y, federated_prediction),
        "centralized, same rule": regression_metrics(y, same_rule.predict(x)),
        "centralized, closed form": regression_metrics(y, ols.predict(x)),
    }
    print(f"\nmetrics on the {len(y)} aligned training rows:")
    print(f"  {'model':<26}{'mse':>12}{'rmse':>10}{'mae':>10}{'r2':>9}")
    for name, m in rows.items():
        print(f"  {name:<26}{m['mse']:>12.4f}{m['rmse']:>10.4f}{m['mae']:>10.4f}{m['r2']:>9.4f}")
    federated = np.r_[a_part.weights, b_part.weights, b_part.intercept]
    central = np.r_[same_rule.weights, same_rule.intercept]
    gap = np.max(np.abs(federated - central) / np.maximum(np.abs(central), 1e-300))
    print(f"\nlargest relative gap between federated and same-rule weights: {gap:.2e}")
    if args.plot:
        try:
            plot_history(pd.DataFrame(result["history"]), args.plot,
                         title=f"diabetes, {config.optimizer}, {args.key_bits}-bit key")
            print(f"loss curve: {args.plot}")
        except ImportError as exc:
            print(f"no loss curve: {exc}")


if __name__ == "__main__":
    sys.exit(main())
