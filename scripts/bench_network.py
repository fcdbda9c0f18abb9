#!/usr/bin/env python3
"""One epoch in-process vs three ``vfl party`` processes over loopback gRPC with mutual TLS.

Synthetic data: ROWS rows shared by A1 (D_A features) and B (D_B features and
a label), full batch, a 2048-bit key by default. Each mode trains two epochs
and times the second (the first includes key generation and alignment).
Reported per mode: epoch seconds; for the processes, each party's transport
time in the epoch (encoding, streaming through gRPC and TLS until the peer
holds the message, and reassembling and decoding what it receives, as
counted by GrpcEndpoint) as a share of the epoch, and the frame bytes each
party sent next to the theoretical minimum (ciphertexts x ciphertext size,
plus C's decrypted values x |n|).

Usage: python scripts/bench_network.py [--rows 10000] [--features 10 10] [--key-bits 2048]
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

ROOT = Path(__file__).resolve().parents[1]


def make_data(rows: int, d_a: int, d_b: int, folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    ids = [f"id{i:07d}" for i in range(rows)]
    x = rng.normal(size=(rows, d_a + d_b))
    y = x @ rng.normal(size=d_a + d_b) + rng.normal(scale=0.1, size=rows)
    a = pd.DataFrame(x[:, :d_a], columns=[f"a{j}" for j in range(d_a)]).assign(id=ids)
    b = pd.DataFrame(x[:, d_a:], columns=[f"b{j}" for j in range(d_b)]).assign(id=ids, y=y)
    paths = {"A1": folder / "A1.csv", "B": folder / "B.csv"}
    a.to_csv(paths["A1"], index=False)
    b.to_csv(paths["B"], index=False)
    return paths


def in_process(paths, config, key_bits: int, insecure: bool) -> float:
    from parties import Coordinator, FeatureHolder, Federation, LabelHolder

    a = FeatureHolder.from_csv(paths["A1"], id_column="id", name="A1", seed=1)
    b = LabelHolder.from_csv(paths["B"], id_column="id", label_column="y", seed=2)
    ends: list[float] = []
    b.on_epoch = lambda epoch, loss: ends.append(time.perf_counter())
    Federation(Coordinator(key_bits=key_bits, insecure_key=insecure), b, a,
               config=config).fit()
    return ends[1] - ends[0]


def three_processes(paths, config, key_bits: int, insecure: bool, folder: Path):
    from vfl.net import create_federation_certificates
    from vfl.runtime.loopback import free_loopback_ports, write_loopback_configs

    certs = folder / "certs"
    create_federation_certificates(certs, ["A1", "B", "C"])
    configs = write_loopback_configs(
        folder, run_id=f"bench-{time.time_ns()}", ports=free_loopback_ports(["A1", "B", "C"]),
        label_holder=("B", paths["B"]), feature_holders=[("A1", paths["A1"])], id_column="id",
        label_column="y", training=config, certs=certs, key_bits=key_bits,
        insecure_key=insecure, seeds={"A1": 1, "B": 2}, timeout=1800, connect_timeout=120)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = {}
    for name in ("C", "B", "A1"):
        with open(folder / f"{name}.log", "wb") as log:
            processes[name] = subprocess.Popen(
                [sys.executable, "-m", "vfl", "party", "--config", str(configs[name])],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    codes = {name: p.wait() for name, p in processes.items()}
    if any(codes.values()):
        for name in processes:
            print((folder / f"{name}.log").read_text()[-2000:], file=sys.stderr)
        raise SystemExit(f"a party failed: {codes}")
    traffic = {name: json.loads((folder / "output" / name / f"traffic_{name}.json")
                                .read_text())["epochs"] for name in processes}
    # Epoch 2's time at B: between its checkpoints after epochs 1 and 2.
    by_epoch = {e["epoch"]: e for e in traffic["B"]}
    seconds = by_epoch[2]["seconds"] - by_epoch[1]["seconds"]
    sent, transport = {}, {}
    for name, epochs in traffic.items():
        at = {e["epoch"]: e for e in epochs}
        sent[name] = sum(at[2]["bytes_sent"].values()) - sum(at[1]["bytes_sent"].values())
        transport[name] = at[2]["transport_seconds"] - at[1]["transport_seconds"]
    return seconds, sent, transport


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--features", type=int, nargs=2, default=[10, 10],
                        metavar=("D_A", "D_B"))
    parser.add_argument("--key-bits", type=int, default=2048)
    args = parser.parse_args()
    from vfl.training import TrainingConfig

    insecure = args.key_bits < 2048
    d_a, d_b = args.features
    config = TrainingConfig(epochs=2, learning_rate=0.1, early_stopping="none")
    with tempfile.TemporaryDirectory(prefix="vfl-bench-net-") as tmp:
        folder = Path(tmp)
        paths = make_data(args.rows, d_a, d_b, folder)
        print(f"{args.rows} rows x {d_a} + {d_b} features, full batch, {args.key_bits}-bit key, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
        t_local = in_process(paths, config, args.key_bits, insecure)
        print(f"in-process epoch: {t_local:.2f} s", flush=True)
        t_net, sent, transport = three_processes(paths, config, args.key_bits, insecure,
                                                 folder / "net")
    print(f"three processes, loopback gRPC + mTLS, epoch: {t_net:.2f} s "
          f"({t_net / t_local:.2f}x the in-process epoch)")
    print("transport share of the epoch, per party (seconds it spent encoding, sending and "
          "decoding messages / epoch seconds):")
    for name in ("A1", "B", "C"):
        print(f"  {name:<6}{transport[name]:>8.2f} s  {transport[name] / t_net:>7.1%}")
    ct = 2 * args.key_bits // 8   # a ciphertext mod n^2
    pt = args.key_bits // 8       # a decrypted value mod n
    n = args.rows
    minimum = {"A1": (n + 1 + d_a) * ct,          # [[u_A]], [[L_A]]; masked gradient
               "B": (n + d_b + 1 + 1) * ct,       # [[d]] to A; masked gradient, [[S]] to C
               "C": (d_a + d_b + 1) * pt}         # decrypted masked gradients
    print(f"\n  {'party':<6}{'bytes sent':>14}{'minimum':>14}{'ratio':>9}")
    for name in ("A1", "B", "C"):
        print(f"  {name:<6}{sent[name]:>14,}{minimum[name]:>14,}"
              f"{sent[name] / minimum[name]:>9.4f}")
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
