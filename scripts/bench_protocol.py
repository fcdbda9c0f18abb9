#!/usr/bin/env python3
"""Training-epoch benchmark: the real three-party protocol on each Paillier engine.

Runs :class:`parties.Federation` in-process (A, B and C as threads of this
process) on synthetic data: 10,000 aligned rows, 10 features at A and 10 at
B, full batch (one round per epoch, loss included), a 2048-bit key, for the
fast engine, phe and HEU's ZPaillier (when ``sf-heu`` is installed) in the
same run. Every engine call is timed, per party and per operation; an
epoch's wall time runs from A's first encryption of the epoch to the
start of the next epoch (or the last decryption).

The first epoch starts with empty obfuscator pools (the fast engine learns
each party's demand there); later epochs show the steady state, where the
pools were refilled while the parties waited for each other.

Cores: the three parties share this machine's cores. The fast engine runs
its kernels on one process pool (one worker per core) shared by all three
parties; HEU uses its own thread pool; the ``phe`` engine is
single-threaded, as the library ships (its epoch uses one core). Because
A, B and C run in one process, a party's "waiting on the network" is
another party's computing: the obfuscator pool is refilled only in the
short gaps when no party has work on the pool, so the steady state here is
close to the total work divided by the cores. On separate machines each
party's idle time would go to its own pool. The load average is printed
with the results: other processes on the cores slow the multi-process fast
engine more than single-threaded phe.

Usage::

    python scripts/bench_protocol.py                      # 10,000 rows, 2 epochs, all engines
    python scripts/bench_protocol.py --rows 2000 --backends fast heu
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from parties import Coordinator, FeatureHolder, Federation, LabelHolder
from vfl.crypto import backends, executors
from vfl.training import TrainingConfig

ENGINE_OPS = ("encrypt", "rerandomize", "add", "add_plain", "mul_plain", "sum", "dot",
              "matvec_t", "validate")


def load() -> str:
    """The 1, 5 and 15-minute load averages, for the record."""
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


class Recorder:
    """(party, operation, start, end) of every engine call."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, int, float, float]] = []
        self.lock = threading.Lock()
        self.depth = threading.local()  # only outermost calls count (dot calls sum...)

    def record(self, name: str, args: tuple, t0: float) -> None:
        size = len(args[-1]) if args and hasattr(args[-1], "__len__") else 0
        party = threading.current_thread().name.removeprefix("party-")
        with self.lock:
            self.events.append((party, name, size, t0, time.perf_counter()))

    def wrap(self, cls: type, ops: tuple[str, ...]) -> type:
        recorder = self

        def timed(name: str):
            original = getattr(cls, name)

            def method(self, *args, **kwargs):
                depth = getattr(recorder.depth, "value", 0)
                recorder.depth.value = depth + 1
                t0 = time.perf_counter()
                try:
                    return original(self, *args, **kwargs)
                finally:
                    recorder.depth.value = depth
                    if not depth:  # a nested call is timed by its caller
                        recorder.record(name, args, t0)
            return method

        return type(f"Timed{cls.__name__}", (cls,), {op: timed(op) for op in ops})


def make_data(rows: int, d_a: int, d_b: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = [f"id{i:06d}" for i in range(rows)]
    xa, xb = rng.normal(size=(rows, d_a)), rng.normal(size=(rows, d_b))
    y = xa @ rng.normal(size=d_a) + xb @ rng.normal(size=d_b) + 0.1 * rng.normal(size=rows)
    a = pd.DataFrame(xa, columns=[f"a{j}" for j in range(d_a)])
    a.insert(0, "id", ids)
    b = pd.DataFrame(xb, columns=[f"b{j}" for j in range(d_b)])
    b.insert(0, "id", ids)
    b["y"] = y
    return a, b


def run(backend: str, rows: int, epochs: int, key_bits: int) -> dict:
    engine_cls, decryptor_cls = backends.get_backend(backend)
    recorder = Recorder()
    saved = backends._BACKENDS[backend]  # benchmark instrumentation
    backends._BACKENDS[backend] = (recorder.wrap(engine_cls, ENGINE_OPS),
                                   recorder.wrap(decryptor_cls, ("decrypt",)))
    try:
        a_frame, b_frame = make_data(rows, 10, 10)
        a = FeatureHolder(a_frame, id_column="id", name="A1", seed=1)
        b = LabelHolder(b_frame, id_column="id", label_column="y", seed=2)
        c = Coordinator(key_bits=key_bits, insecure_key=key_bits < 2048, backend=backend)
        config = TrainingConfig(epochs=epochs, batch_size=None, tol=1e-300, learning_rate=0.1)
        t0 = time.perf_counter()
        fed = Federation(c, b, a, config=config, timeout=3600).fit()
        total = time.perf_counter() - t0
    finally:
        backends._BACKENDS[backend] = saved
    events = sorted(recorder.events, key=lambda e: e[3])
    # Epoch k starts at A's k-th encryption of its m partial scores.
    starts = [e[3] for e in events if e[0] == "A1" and e[1] == "encrypt" and e[2] == rows]
    end = max(e[4] for e in events if e[1] == "decrypt")
    bounds = [*starts, end]
    per_epoch = []
    for k in range(len(starts)):
        lo, hi = bounds[k], bounds[k + 1]
        steps: dict[str, float] = defaultdict(float)
        for party, op, _size, s, f in events:
            if lo <= s < hi:
                steps[f"{party}.{op}"] += f - s
        per_epoch.append({"wall": hi - lo, "steps": dict(steps)})
    return {"total": total, "epochs": per_epoch, "loss": list(fed.history_.iloc[:, -1])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--phe-epochs", type=int, default=1,
                        help="epochs for phe, which takes minutes per epoch (default 1)")
    parser.add_argument("--key-bits", type=int, default=2048)
    parser.add_argument("--backends", nargs="*", default=None,
                        help="engines to run (default: fast, heu if installed, phe)")
    args = parser.parse_args(argv)
    names = args.backends or [b for b in ("fast", "heu", "phe")
                              if b in backends.available_backends()]
    if "heu" not in backends.available_backends():
        print("HEU's ZPaillier skipped: sf-heu is not installed (pip install 'vfl[bench]')")
    print(f"{args.rows} aligned rows, 10 + 10 features, full batch, {args.key_bits}-bit key, "
          f"{args.epochs} epochs, {executors.cpu_count()} cores; {load()}")
    results = {}
    for name in names:
        print(f"\n# {name} ...", flush=True)
        epochs = args.phe_epochs if name == "phe" else args.epochs
        results[name] = res = run(name, args.rows, epochs, args.key_bits)
        for k, ep in enumerate(res["epochs"], start=1):
            print(f"  epoch {k}: {ep['wall']:.2f} s wall")
            for step, secs in sorted(ep["steps"].items(), key=lambda kv: -kv[1]):
                if secs >= 0.005:
                    print(f"    {step:<22} {secs:9.3f} s")
        print(f"  whole run (key generation, alignment, {epochs} epochs): {res['total']:.1f} s;"
              f" losses {[f'{v:.6g}' for v in res['loss']]}; {load()}")

    print(f"\nphe: single-threaded; fast: {executors.cpu_count()} worker processes; "
          f"heu: its own thread pool; {load()}")
    print("\n| epoch | " + " | ".join(f"{n} s" for n in names)
          + "".join(f" | {n}/fast" for n in names if n != "fast") + " |")
    print("|---" * (1 + len(names) + sum(n != "fast" for n in names)) + "|")
    for k in range(args.epochs):
        walls = {n: results[n]["epochs"][k]["wall"] for n in names
                 if k < len(results[n]["epochs"])}
        ratios = [f"{walls[n] / walls['fast']:.1f}x" if n in walls and "fast" in walls else "-"
                  for n in names if n != "fast"]
        print(f"| {k + 1} | " + " | ".join(f"{walls.get(n, float('nan')):.2f}" for n in names)
              + "".join(f" | {r}" for r in ratios) + " |")
    executors.shutdown_default_executor()
    return 0


if __name__ == "__main__":
    sys.exit(main())
