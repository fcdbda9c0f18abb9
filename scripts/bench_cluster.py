#!/usr/bin/env python3
"""Cluster benchmark: one party's heavy work on the local pool, a Dask cluster and Ray.

The same training run (the real three-party protocol, in-process: 10,000
rows, 10 features at A and 10 at B, full batch, a 2048-bit key, 2 epochs)
and the same ecdh alignment (1M x 1M IDs by default, half shared) run with
the ``executor`` setting at

* ``local``: the shared process pool, one worker per core;
* ``dask``: a scheduler process and one worker process per core (``dask
  scheduler`` and ``dask worker --nworkers N --nthreads 1``), started here;
* ``ray``: a local Ray instance with N CPUs (``ray.init(num_cpus=N)``),

all on this machine's N cores, so the ratio to the local pool is the
overhead of the cluster machinery (scheduling, serialisation, the network
stack on loopback). Decryption stays on the local pool in every case. The
clusters are started once; the executors then take turns, several rounds
(a shared machine's load drifts; medians are reported).

Every task is counted on its way to the workers: the bytes of its pickled
function and arguments (sent; the feature rows of ``X^T [[d]]`` apart) and
of its pickled result (returned), per epoch. From the measured epoch
(wall time x cores, split between ``X^T [[d]]`` and the rest in the ratio
of their step times) the script projects a 100,000 x 300-feature epoch
(150 + 150) on 64 cores: ``X^T [[d]]`` and the feature rows grow with
rows x features (x150), the rest (encryptions, ciphertexts) with the rows
(x10).

Usage::

    python scripts/bench_cluster.py                          # 10,000 rows, 1M IDs
    python scripts/bench_cluster.py --align-rows 200000      # a smaller alignment
    python scripts/bench_cluster.py --rows 2000 --key-bits 1024 --align-rows 20000  # quick
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import defaultdict
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_protocol import ENGINE_OPS, Recorder, load, make_data

from parties import Coordinator, FeatureHolder, Federation, LabelHolder
from vfl.cluster import compute_on, open_executor
from vfl.crypto import backends, executors
from vfl.errors import InsecureSeedWarning
from vfl.protocol.channel import InProcessNetwork
from vfl.psi import EcdhAlignment
from vfl.runtime.inprocess import run_parties
from vfl.training import TrainingConfig


class Counting(Executor):
    """Passes tasks to `inner`, adding up the pickled bytes each way, with times."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.remote = executors.is_remote(inner)
        # (time, sent, returned, sent of which feature rows: they grow with rows x features)
        self.events: list[tuple[float, int, int, int]] = []
        self._lock = threading.Lock()

    def worker_count(self) -> int:
        return executors.executor_workers(self.inner)

    def _count(self, fn: Any, args: tuple, future: Future) -> Future:
        sent = len(pickle.dumps((fn, args), protocol=5))
        # X^T[[d]]'s block is (ciphertexts, rows of features).
        rows = (len(pickle.dumps(args[-1][1], protocol=5))
                if fn.__name__ == "matvec_chunk" else 0)
        now = time.perf_counter()

        def returned(done: Future) -> None:
            size = 0 if done.cancelled() or done.exception() else len(
                pickle.dumps(done.result(), protocol=5))
            with self._lock:
                self.events.append((now, sent, size, rows))

        future.add_done_callback(returned)
        return future

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        return self._count(fn, args, self.inner.submit(fn, *args, **kwargs))

    def submit_to_each(self, fn: Any, *args: Any) -> list[Future]:
        futures = executors.on_each_worker(self.inner, fn, *args)
        return [self._count(fn, args, f) for f in futures]

    def between(self, lo: float, hi: float) -> tuple[int, int, int, int]:
        """(tasks, bytes sent, returned, sent as feature rows) of tasks submitted in [lo, hi)."""
        with self._lock:
            inside = [e for e in self.events if lo <= e[0] < hi]
        return (len(inside), sum(e[1] for e in inside), sum(e[2] for e in inside),
                sum(e[3] for e in inside))


def run_epochs(executor: Executor, rows: int, epochs: int, key_bits: int) -> dict:
    """The training run on `executor`: per-epoch wall, steps and bytes (as bench_protocol)."""
    counting = Counting(executor)
    recorder = Recorder()
    engine_cls, decryptor_cls = backends.get_backend("fast")
    saved = backends._BACKENDS["fast"]  # benchmark instrumentation
    backends._BACKENDS["fast"] = (recorder.wrap(engine_cls, ENGINE_OPS),
                                  recorder.wrap(decryptor_cls, ("decrypt",)))
    try:
        a_frame, b_frame = make_data(rows, 10, 10)
        a = FeatureHolder(a_frame, id_column="id", name="A1", seed=1)
        b = LabelHolder(b_frame, id_column="id", label_column="y", seed=2)
        c = Coordinator(key_bits=key_bits, insecure_key=key_bits < 2048)
        config = TrainingConfig(epochs=epochs, batch_size=None, tol=1e-300, learning_rate=0.1)
        t0 = time.perf_counter()
        with compute_on(counting):
            Federation(c, b, a, config=config, timeout=3600).fit()
        total = time.perf_counter() - t0
    finally:
        backends._BACKENDS["fast"] = saved
    events = sorted(recorder.events, key=lambda e: e[3])
    starts = [e[3] for e in events if e[0] == "A1" and e[1] == "encrypt" and e[2] == rows]
    end = max(e[4] for e in events if e[1] == "decrypt")
    bounds = [*starts, end]
    out = []
    for k in range(len(starts)):
        lo, hi = bounds[k], bounds[k + 1]
        steps: dict[str, float] = defaultdict(float)
        for _party, op, _size, s, f in events:
            if lo <= s < hi:
                steps[op] += f - s
        tasks, sent, back, rows_sent = counting.between(lo, hi)
        out.append({"wall": hi - lo, "steps": dict(steps), "tasks": tasks, "sent": sent,
                    "returned": back, "rows_sent": rows_sent})
    weights = [*a.model_.weights, *b.model_.weights, b.intercept_]
    return {"total": total, "epochs": out, "weights": weights}


def run_alignment(executor: Executor, n: int) -> dict:
    """An ecdh alignment of two n-ID sets sharing half, on `executor`."""
    counting = Counting(executor)
    shared = n // 2
    a_ids = [f"{i:012d}" for i in range(n)]
    b_ids = [f"{i:012d}" for i in range(n - shared, 2 * n - shared)]
    method = EcdhAlignment(progress=False)
    t0 = time.perf_counter()
    with compute_on(counting):
        out = run_parties(InProcessNetwork(["A", "B"], "bench-cluster"), {
            "A": lambda ep: method.run(a_ids, ep, "B", leader=False),
            "B": lambda ep: method.run(b_ids, ep, "A", leader=True)})
    wall = time.perf_counter() - t0
    found = len(out["A"].positions)
    assert found == shared, f"intersection of {found}, expected {shared}"
    tasks, sent, back, _ = counting.between(0, float("inf"))
    return {"wall": wall, "tasks": tasks, "sent": sent, "returned": back, "shared": found}


def start_dask(cores: int, folder: str) -> tuple[list[subprocess.Popen], str]:
    """A scheduler and `cores` single-threaded worker processes; (processes, setting)."""
    file = os.path.join(folder, "scheduler.json")
    dask = shutil.which("dask", path=os.path.dirname(sys.executable)) or "dask"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                  "--dashboard-address", ":0", "--scheduler-file", file],
                                 **quiet)
    deadline = time.monotonic() + 60
    while not os.path.exists(file) and time.monotonic() < deadline:
        time.sleep(0.1)
    address = json.loads(Path(file).read_text())["address"]
    workers = subprocess.Popen([dask, "worker", address, "--nworkers", str(cores),
                                "--nthreads", "1", "--no-dashboard"], **quiet)
    return [workers, scheduler], address.replace("tcp://", "dask://")


def project(epoch: dict, cores: int, rows: int, d: int) -> dict:
    """The measured epoch's core-seconds, scaled to 100k x 300 and spread over 64 cores.

    The epoch keeps every core busy (full batch, the pool refilled in the
    gaps): wall x cores core-seconds, split between ``X^T [[d]]`` (which
    grows with rows x features) and the rest (with the rows) in the ratio
    of their step times. Perfect scaling over 64 cores is assumed.
    """
    steps = epoch["steps"]
    share = steps.get("matvec_t", 0.0) / max(1e-9, sum(steps.values()))
    row_factor, cell_factor = 100_000 / rows, (100_000 * 300) / (rows * d)
    core_seconds = epoch["wall"] * cores * (share * cell_factor + (1 - share) * row_factor)
    # Feature rows grow with rows x features, ciphertexts and the rest with the rows.
    sent = (epoch["rows_sent"] * cell_factor
            + (epoch["sent"] - epoch["rows_sent"] + epoch["returned"]) * row_factor)
    return {"core_seconds": core_seconds, "seconds_64": core_seconds / 64, "sent": sent}


def open_all(names: list[str], cores: int, folder: str
             ) -> tuple[dict[str, Executor], list[subprocess.Popen]]:
    """Every executor of the comparison, started once: (executors by name, processes)."""
    opened: dict[str, Executor] = {}
    processes: list[subprocess.Popen] = []
    for name in names:
        if name == "local":
            opened[name] = executors.default_executor()
        elif name == "dask":
            started, setting = start_dask(cores, folder)
            processes += started
            cluster = open_executor(setting, connect_timeout=60)
            assert cluster is not None
            deadline = time.monotonic() + 60
            while cluster.worker_count() < cores and time.monotonic() < deadline:
                time.sleep(0.2)
            opened[name] = cluster
        else:
            import ray

            ray.init(address="local", num_cpus=cores, include_dashboard=False,
                     log_to_driver=False, logging_level="warning")
            cluster = open_executor("ray:auto")
            assert cluster is not None
            opened[name] = cluster
    return opened, processes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="training rows")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per training run")
    parser.add_argument("--rounds", type=int, default=2,
                        help="times each executor runs, in turns (a shared machine's load "
                             "varies; medians are reported)")
    parser.add_argument("--key-bits", type=int, default=2048)
    parser.add_argument("--align-rows", type=int, default=1_000_000,
                        help="IDs at each side of the alignment (0: no alignment)")
    parser.add_argument("--engines", nargs="*", default=["local", "dask", "ray"],
                        choices=["local", "dask", "ray"])
    args = parser.parse_args(argv)
    # Seeded parties (comparable weights) and Ray's start-up tips: not news here.
    warnings.simplefilter("ignore", InsecureSeedWarning)
    warnings.simplefilter("ignore", FutureWarning)
    cores = executors.cpu_count()
    print(f"{cores} cores; training: {args.rows} rows, 10 + 10 features, full batch, "
          f"{args.key_bits}-bit key, {args.epochs} epochs per run; alignment: "
          f"{args.align_rows:,} x {args.align_rows:,} IDs (ecdh); {args.rounds} rounds of "
          f"{', '.join(args.engines)} in turn; {load()}", flush=True)
    runs: dict[str, list[dict]] = defaultdict(list)
    aligns: dict[str, list[dict]] = defaultdict(list)
    folder = tempfile.mkdtemp(prefix="vfl-bench-cluster-")
    opened: dict[str, Executor] = {}
    processes: list[subprocess.Popen] = []
    try:
        opened, processes = open_all(args.engines, cores, folder)
        for round_ in range(1, args.rounds + 1):
            for name, executor in opened.items():
                print(f"\n# round {round_}: {name} ({executors.executor_workers(executor)} "
                      f"workers) ...", flush=True)
                res = run_epochs(executor, args.rows, args.epochs, args.key_bits)
                runs[name].append(res)
                for k, ep in enumerate(res["epochs"], start=1):
                    print(f"  epoch {k}: {ep['wall']:.2f} s; {ep['tasks']} tasks, "
                          f"{ep['sent'] / 1e6:.1f} MB sent to workers, "
                          f"{ep['returned'] / 1e6:.1f} MB back; "
                          + ", ".join(f"{op} {s:.2f} s" for op, s in sorted(
                              ep["steps"].items(), key=lambda kv: -kv[1]) if s >= 0.01)
                          + f"; {load()}", flush=True)
                if args.align_rows:
                    al = run_alignment(executor, args.align_rows)
                    aligns[name].append(al)
                    print(f"  alignment: {al['wall']:.1f} s, {al['shared']:,} shared; "
                          f"{al['tasks']} tasks, {al['sent'] / 1e6:.0f} MB sent, "
                          f"{al['returned'] / 1e6:.0f} MB back; {load()}", flush=True)
    finally:
        for name, executor in opened.items():
            if name != "local":
                executor.shutdown()
        if "ray" in opened:
            import ray

            ray.shutdown()
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)

    def median(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    first = {n: median([r["epochs"][0]["wall"] for r in rs]) for n, rs in runs.items()}
    later = {n: median([e["wall"] for r in rs for e in r["epochs"][1:]]) for n, rs in
             runs.items()}
    align_s = {n: median([a["wall"] for a in al]) for n, al in aligns.items()}
    base = "local" if "local" in runs else None
    print(f"\n{load()} (the machine is shared: other processes slow every column)")
    print("\n| executor | first epoch s | later epochs s | ratio | MB to workers / epoch "
          "(of which feature rows) | alignment s | ratio |")
    print("|---" * 7 + "|")
    for name, rs in runs.items():
        last = rs[-1]["epochs"][-1]
        ratio = f"{later[name] / later[base]:.2f}x" if base else "-"
        al = (f"{align_s[name]:.1f} | "
              + (f"{align_s[name] / align_s[base]:.2f}x" if base else "-")
              if name in align_s else "- | -")
        print(f"| {name} | {first[name]:.2f} | {later[name]:.2f} | {ratio} | "
              f"{last['sent'] / 1e6:.1f} ({last['rows_sent'] / 1e6:.1f}) | {al} |")
    print("(medians over the rounds; 'later' is every epoch after the first of each run)")
    if base:
        reference = runs[base][0]["weights"]
        for name, rs in runs.items():
            same = max(abs(x - y) for r in rs for x, y in zip(r["weights"], reference))
            print(f"{name}: largest weight difference to the local pool {same:.1e}")
    for name, rs in runs.items():
        epochs = [e for r in rs for e in r["epochs"][1:]] or [rs[-1]["epochs"][-1]]
        typical = min(epochs, key=lambda e: abs(e["wall"] - later[name]))
        p = project(typical, cores, args.rows, 20)
        print(f"projection from {name}'s median later epoch: a 100,000 x 300 epoch is "
              f"{p['core_seconds']:,.0f} core-seconds, {p['seconds_64']:,.0f} s on 64 cores "
              f"(perfect scaling), ~{p['sent'] / 1e9:.1f} GB to and from the workers")
    executors.shutdown_default_executor()
    return 0


if __name__ == "__main__":
    sys.exit(main())
