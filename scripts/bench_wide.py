#!/usr/bin/env python3
"""The wide party: one full-batch epoch at FATE's benchmark shape, in multiplications.

FATE's vertical logistic-regression benchmark has a host (feature holder)
with 300 features and a guest (label holder) with 30. This script builds
that shape synthetically (standard normal features, a linear label), runs
one full-batch epoch of the real three-party protocol in-process
(:class:`parties.Federation`, 2048-bit key by default) and reports:

* **core-seconds**: CPU time of the whole process tree (this process, the
  worker processes alive, and those already ended), read from
  ``getrusage`` and ``/proc``: for the epoch alone (from the feature
  holder's encryption of its scores to the coordinator's last decryption),
  for the [[X^T d]] calls within it, and for the whole run (key generation,
  alignment and tables included);
* **products**: ciphertext x scalar products of the epoch's gradients,
  ``rows x (host + guest features)``;
* **t_mul**: one 4096-bit modular multiplication ``a * b % n^2`` timed in
  Python in the same run (before and after the epoch; the mean is used);
* **ratio**: core-seconds / (products x t_mul), multiplication-equivalents
  per product, all the epoch's CPU included;
* **kernel alone**: the host's [[X^T d]] (rows x host features, on the
  worker pool) timed by itself on the same kind of data, in the same units.

``--breakdown`` also says where the epoch's CPU went: every engine and
decryptor call of every party is labelled (``A1:matvec_t(3000x300)``), the
calling thread's CPU is counted, and every task of the worker pool runs
through :func:`wide_probe.timed` (beside this script), which records the
kernel's CPU under the label of the call that sent it; each line is given
in multiplication-equivalents per product of the whole epoch. The
obfuscator pools are filled in the background, before the epoch as well as
during it, so how many of its encryptions and re-randomisations cost
nothing inside the epoch's window depends on timing (the machine's load
included); the breakdown therefore also gives the ratio with every
obfuscation the epoch used at its cost and no refill made for later
epochs, which does not.

``--kernel both`` runs the epoch twice in one process, first with the
previous kernel and encoding (per-column bucket method, data encoded at
40 fractional bits: ``--kernel columns --data-frac-bits 40``), then with
the current ones (column groups, the codec's data scale), on the same data.

The machine's other load slows both; the load average is printed.

Usage::

    python scripts/bench_wide.py                       # 3,000 rows, current kernel
    python scripts/bench_wide.py --rows 20000
    python scripts/bench_wide.py --kernel both         # before / after side by side
    python scripts/bench_wide.py --breakdown           # where the epoch's CPU goes
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gmpy2
import numpy as np
import pandas as pd
import wide_probe  # beside this script; the workers import it too (--breakdown)

from parties import Coordinator, FeatureHolder, Federation, LabelHolder
from vfl.crypto import backends, column_groups, executors
from vfl.crypto.encoding import DATA_FRAC_BITS, FixedPointCodec
from vfl.crypto.fast_engine import FastEngine
from vfl.crypto.keys import generate_keypair
from vfl.training import TrainingConfig

_TICKS = os.sysconf("SC_CLK_TCK")


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def tree_cpu() -> float:
    """CPU seconds (user + system) of this process and all its descendants, ended or alive."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    for pid in _descendants(os.getpid()):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile: counted in RUSAGE_CHILDREN once reaped
        # utime, stime: fields 14 and 15 of stat, 12 and 13 after "(comm)".
        total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid]
        found.extend(children)
        frontier.extend(children)
    return found


def time_mulmod(bits: int = 4096, count: int = 20_000, repeats: int = 5) -> float:
    """Seconds per ``a * b % N`` on `bits`-bit values, timed in a Python loop (best of
    `repeats`)."""
    rng = np.random.default_rng(1)
    modulus = gmpy2.mpz(int.from_bytes(rng.bytes(bits // 8), "big") | (1 << (bits - 1)) | 1)
    values = [gmpy2.mpz(int.from_bytes(rng.bytes(bits // 8), "big")) % modulus
              for _ in range(count)]
    best = float("inf")
    for _ in range(repeats):
        acc = values[0]
        start = time.perf_counter()
        for v in values:
            acc = acc * v % modulus
        best = min(best, time.perf_counter() - start)
    return best / count


def make_data(rows: int, host: int, guest: int, seed: int = 0
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = [f"id{i:07d}" for i in range(rows)]
    xa, xb = rng.normal(size=(rows, host)), rng.normal(size=(rows, guest))
    score = (xa @ rng.normal(size=host) + xb @ rng.normal(size=guest)) / np.sqrt(host + guest)
    y = (score + 0.5 * rng.normal(size=rows) > 0).astype(float)
    a = pd.DataFrame(xa, columns=[f"h{j}" for j in range(host)])
    a.insert(0, "id", ids)
    b = pd.DataFrame(xb, columns=[f"g{j}" for j in range(guest)])
    b.insert(0, "id", ids)
    b["y"] = y
    return a, b


_ENGINE_CALLS = ("encrypt", "rerandomize", "add", "add_plain", "mul_plain", "sum", "dot",
                 "matvec_t", "validate")


class Probe:
    """Process-tree CPU at the epoch's edges and around each [[X^T d]] call.

    With ``records`` (a folder), every engine and decryptor call of every
    party is also labelled (``party:call``), its CPU in the calling thread
    is counted, and the worker pool's tasks carry that label to
    :func:`wide_probe.timed`, which records their CPU (:func:`breakdown`).
    """

    def __init__(self, rows: int, records: str | None = None) -> None:
        self.rows = rows
        self.records = records
        self.lock = threading.Lock()
        self.epoch_start: float | None = None
        self.epoch_start_wall = 0.0
        self.epoch_start_unix = 0.0
        self.last_decrypt = 0.0
        self.last_decrypt_wall = 0.0
        self.last_decrypt_unix = 0.0
        self.matvec_wall: list[tuple[float, float]] = []
        # (label, thread CPU, unix start, unix end) of each outermost engine call.
        self.calls: list[tuple[str, float, float, float]] = []
        # (label, values, end) of each encryption and re-randomisation.
        self.obfuscated: list[tuple[str, int, float]] = []
        self.local = threading.local()
        self.main_cpu = (0.0, 0.0)
        self.workers_cpu: dict[int, tuple[float, float]] = {}

    def label(self) -> str:
        return getattr(self.local, "label", None) or threading.current_thread().name

    def _labelled(self, name: str, method):
        probe = self

        def call(self, *args, **kwargs):
            if getattr(probe.local, "label", None) is not None:
                return method(self, *args, **kwargs)
            label = f"{threading.current_thread().name.removeprefix('party-')}:{name}"
            if name == "matvec_t":
                label = f"{label}({len(args[0])}x{len(args[0][0])})"
            elif name in ("encrypt", "rerandomize", "dot", "sum", "mul_plain"):
                label = f"{label}({len(args[0]) if name != 'dot' else len(args[1])})"
            probe.local.label = label
            cpu0, wall0 = time.thread_time(), time.time()
            try:
                return method(self, *args, **kwargs)
            finally:
                probe.local.label = None
                with probe.lock:
                    probe.calls.append((label, time.thread_time() - cpu0, wall0, time.time()))
                    if name in ("encrypt", "rerandomize"):
                        probe.obfuscated.append((label, len(args[0]), time.time()))

        return call

    def wrap_engine(self, cls: Any) -> type:
        probe = self

        def encrypt(self, plaintexts):
            if (threading.current_thread().name == "party-A1" and len(plaintexts) == probe.rows
                    and probe.epoch_start is None):
                probe.mark_start()
            return cls.encrypt(self, plaintexts)

        def matvec_t(self, matrix, a):
            start = time.perf_counter()
            try:
                return cls.matvec_t(self, matrix, a)
            finally:
                with probe.lock:
                    probe.matvec_wall.append((start, time.perf_counter()))

        methods = {"encrypt": encrypt, "matvec_t": matvec_t}
        if self.records:
            for name in _ENGINE_CALLS:
                methods[name] = self._labelled(name, methods.get(name, getattr(cls, name)))
        return type(f"Probed{cls.__name__}", (cls,), methods)

    def wrap_decryptor(self, cls: Any) -> type:
        probe = self

        def decrypt(self, vector):
            try:
                return cls.decrypt(self, vector)
            finally:
                probe.mark_end()

        methods = {"decrypt": decrypt}
        if self.records:
            methods["decrypt"] = self._labelled("decrypt", decrypt)
        return type(f"Probed{cls.__name__}", (cls,), methods)

    def mark_start(self) -> None:
        self.epoch_start, self.epoch_start_wall = tree_cpu(), time.perf_counter()
        self.epoch_start_unix = time.time()
        if self.records:
            self.main_cpu = (_self_cpu(), 0.0)
            self.workers_cpu = {pid: (cpu, 0.0) for pid, cpu in _worker_cpu().items()}

    def mark_end(self) -> None:
        self.last_decrypt, self.last_decrypt_wall = tree_cpu(), time.perf_counter()
        self.last_decrypt_unix = time.time()
        if self.records:
            self.main_cpu = (self.main_cpu[0], _self_cpu())
            for pid, cpu in _worker_cpu().items():
                self.workers_cpu[pid] = (self.workers_cpu.get(pid, (0.0, 0.0))[0], cpu)

    def patch_pool(self) -> None:
        """Send every task of the worker pool through :func:`wide_probe.timed`."""
        pool = executors.default_executor()
        submit = pool.submit
        probe = self

        def labelled_submit(fn, /, *args, **kwargs):
            assert probe.records is not None
            return submit(wide_probe.timed, probe.records, probe.label(), fn, *args, **kwargs)

        pool.submit = labelled_submit  # type: ignore[method-assign]  # instrumentation


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _worker_cpu() -> dict[int, float]:
    """CPU seconds of each live descendant process (the pool's workers)."""
    out = {}
    for pid in _descendants(os.getpid()):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / _TICKS
    return out


@dataclass
class Part:
    """One line of the epoch's breakdown: where some of its CPU went."""

    where: str   # "party:call(size)" or a background thread, "(main)" / "(workers)" rest
    kernel: str  # the worker kernel, or "inline" (the calling thread)
    tasks: int
    items: int   # values the kernel returned (obfuscators, ciphertexts, products)
    cpu: float   # core-seconds inside the epoch


@dataclass
class Obfuscations:
    """The epoch's encryptions of zero, wherever and whenever they were made.

    The obfuscator pools are filled in the background, before the epoch
    (while the parties align) as well as during it, so how many of the
    epoch's encryptions and re-randomisations cost nothing inside its
    window depends on timing. Counted here at their cost instead: the
    values taken ready from a pool at the mean cost of an obfuscator in
    this run, and none of the pool refills made in the window.
    """

    values: int           # encryptions and re-randomisations of the epoch
    from_pool: int        # ... of which taken ready from a pool
    per_item: float       # core-seconds per obfuscator made on the workers (whole run)
    refill_cpu: float     # core-seconds of pool refills inside the window

    def adjusted(self, epoch_cpu: float) -> float:
        """The epoch's core-seconds with every obfuscation it used at its cost."""
        return epoch_cpu - self.refill_cpu + self.from_pool * self.per_item


_OBFUSCATOR_KERNELS = ("obfuscator_chunk", "encrypt_chunk", "rerandomize_chunk")


def breakdown(probe: Probe) -> tuple[list[Part], Obfuscations]:
    """The epoch's CPU by engine call and kernel, from the probe's records.

    A task or call that straddles the epoch's edges counts in proportion to
    its wall time inside. What no record covers: "(main) other" (this
    process outside the engine calls: messages, the queue's feeder and
    manager threads, the parties' own numpy) and "(workers) other" (the
    workers outside the kernels: unpickling arguments, pickling results).
    """
    assert probe.records is not None
    lo, hi = probe.epoch_start_unix, probe.last_decrypt_unix

    def inside(start: float, end: float) -> float:
        if end <= start:
            return 1.0 if lo <= start <= hi else 0.0
        return max(0.0, min(end, hi) - max(start, lo)) / (end - start)

    sums: dict[tuple[str, str], list[float]] = {}
    made, made_cpu, refill = 0, 0.0, 0.0
    for name in os.listdir(probe.records):
        with open(os.path.join(probe.records, name)) as f:
            for line in f:
                label, kernel, *fields = line.rstrip("\n").split("\t")
                start, end, task_cpu = map(float, fields[:3])
                count = int(fields[3])
                share = inside(start, end)
                if kernel in _OBFUSCATOR_KERNELS:
                    made, made_cpu = made + count, made_cpu + task_cpu
                    if kernel == "obfuscator_chunk":
                        refill += share * task_cpu
                if share:
                    acc = sums.setdefault((label, kernel), [0, 0, 0.0])
                    acc[0] += 1
                    acc[1] += count
                    acc[2] += share * task_cpu
    for where, call_cpu, call_start, call_end in probe.calls:
        share = inside(call_start, call_end)
        if share:
            acc = sums.setdefault((where, "inline"), [0, 0, 0.0])
            acc[0] += 1
            acc[2] += share * call_cpu
    parts = [Part(where, kernel, int(t), int(n), c) for (where, kernel), (t, n, c) in sums.items()]
    inline = sum(p.cpu for p in parts if p.kernel == "inline")
    tasks = sum(p.cpu for p in parts if p.kernel != "inline")
    main_cpu = probe.main_cpu[1] - probe.main_cpu[0]
    worker_cpu = sum(end - start for start, end in probe.workers_cpu.values())
    parts.append(Part("(main) other", "-", 0, 0, main_cpu - inline))
    parts.append(Part("(workers) other", "-", 0, 0, worker_cpu - tasks))
    values = from_pool = 0
    for where, asked, finished in probe.obfuscated:
        if lo <= finished <= hi:
            values += asked
            on_workers = sum(p.items for p in parts
                             if p.where == where and p.kernel in _OBFUSCATOR_KERNELS)
            from_pool += max(0, asked - on_workers)
    obfuscations = Obfuscations(values, from_pool, made_cpu / made if made else 0.0, refill)
    return sorted(parts, key=lambda p: -p.cpu), obfuscations


@dataclass
class Result:
    label: str
    whole_cpu: float
    whole_wall: float
    epoch_cpu: float
    epoch_wall: float
    matvec_wall: float
    products: int
    t_mul: float
    kernel_ratio: float
    parts: list[Part] | None = None
    obfuscations: Obfuscations | None = None

    @property
    def ratio(self) -> float:
        return self.epoch_cpu / (self.products * self.t_mul)


def kernel_alone(rows: int, cols: int, key_bits: int, kernel: str, data_frac_bits: int,
                 t_mul: float) -> float:
    """Multiplication-equivalents per product of one [[X^T d]] call on the pool."""
    public, private = generate_keypair(key_bits, insecure=key_bits < 2048)
    rng = np.random.default_rng(3)
    codec = FixedPointCodec(data_frac_bits=data_frac_bits)
    matrix = codec.encode_data(codec.quantize_data(rng.normal(size=(rows, cols))))
    with FastEngine(public, FastEngine.public_params_for(private), pool_capacity=0) as engine:
        residual = engine.encrypt(codec.encode(rng.normal(size=rows)))
        column_groups.use_method(kernel)
        try:
            start = tree_cpu()
            engine.matvec_t(matrix, residual)
            spent = tree_cpu() - start
        finally:
            column_groups.use_method("auto")
    return spent / (rows * cols * t_mul)


def run(rows: int, host: int, guest: int, key_bits: int, kernel: str,
        data_frac_bits: int, records: str | None = None) -> Result:
    a_frame, b_frame = make_data(rows, host, guest)
    t_before = time_mulmod()
    probe = Probe(rows, records)
    if records:
        probe.patch_pool()
    engine_cls, decryptor_cls = backends.get_backend("fast")
    saved = backends._BACKENDS["fast"]  # benchmark instrumentation
    backends._BACKENDS["fast"] = (probe.wrap_engine(engine_cls),
                                  probe.wrap_decryptor(decryptor_cls))
    column_groups.use_method(kernel)
    try:
        a = FeatureHolder(a_frame, id_column="id", name="A1", seed=1)
        b = LabelHolder(b_frame, id_column="id", label_column="y", seed=2)
        c = Coordinator(key_bits=key_bits, insecure_key=key_bits < 2048,
                        codec=FixedPointCodec(data_frac_bits=data_frac_bits))
        config = TrainingConfig(model="logistic", epochs=1, batch_size=None, tol=1e-300,
                                learning_rate=0.1)
        cpu0, wall0 = tree_cpu(), time.perf_counter()
        Federation(c, b, a, config=config, timeout=3600).fit()
        whole_cpu, whole_wall = tree_cpu() - cpu0, time.perf_counter() - wall0
    finally:
        backends._BACKENDS["fast"] = saved
        column_groups.use_method("auto")
    t_mul = (t_before + time_mulmod()) / 2
    assert probe.epoch_start is not None, "the epoch's first encryption was not seen"
    matvec = sum(end - start for start, end in probe.matvec_wall)
    label = f"{kernel} kernel, data at {data_frac_bits} bits"
    alone = kernel_alone(rows, host, key_bits, kernel, data_frac_bits, t_mul)
    parts, obfuscations = breakdown(probe) if records else (None, None)
    return Result(label, whole_cpu, whole_wall, probe.last_decrypt - probe.epoch_start,
                  probe.last_decrypt_wall - probe.epoch_start_wall, matvec,
                  rows * (host + guest), t_mul, alone, parts, obfuscations)


def print_breakdown(res: Result) -> None:
    """The epoch's CPU by engine call and kernel, in multiplication-equivalents."""
    unit = res.products * res.t_mul
    print("\n  | where (party:call(size)) | kernel | tasks | items | core-s "
          "| mult-eq / product | mults / item |")
    print("  |---|---|---|---|---|---|---|")
    for p in res.parts or []:
        per_item = f"{p.cpu / (p.items * res.t_mul):.1f}" if p.items else ""
        print(f"  | {p.where} | {p.kernel} | {p.tasks} | {p.items} | {p.cpu:.2f} "
              f"| {p.cpu / unit:.3f} | {per_item} |")
    total = sum(p.cpu for p in res.parts or [])
    print(f"  | total | | | | {total:.2f} | {total / unit:.3f} | |", flush=True)
    ob = res.obfuscations
    if ob is not None:
        print(f"\n  obfuscations: the epoch encrypted or re-randomised {ob.values:,} values, "
              f"{ob.from_pool:,} of them taken ready from a pool; an obfuscator costs "
              f"{ob.per_item / res.t_mul:.0f} multiplications on the workers; pool refills "
              f"inside the window {ob.refill_cpu:.2f} core-s.\n"
              f"  ratio with every obfuscation the epoch used at its cost (and no refill for "
              f"later): {ob.adjusted(res.epoch_cpu) / unit:.2f} multiplication-equivalents "
              f"per product", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000)
    parser.add_argument("--host-features", type=int, default=300)
    parser.add_argument("--guest-features", type=int, default=30)
    parser.add_argument("--key-bits", type=int, default=2048)
    parser.add_argument("--kernel", choices=("auto", "columns", "both"), default="auto",
                        help="auto: the current kernel; columns: the per-column bucket "
                             "method it replaced; both: previous then current, one process")
    parser.add_argument("--data-frac-bits", type=int, default=None,
                        help=f"the data's fixed-point scale (default {DATA_FRAC_BITS}; with "
                             "--kernel both it applies to the current run, the previous "
                             "one uses 40)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also break the epoch's CPU down by engine call and kernel "
                             "(every worker task timed; see scripts/wide_probe.py)")
    args = parser.parse_args(argv)
    current = args.data_frac_bits or DATA_FRAC_BITS
    if args.kernel == "both":
        runs = [("columns", 40), ("auto", current)]
    else:
        runs = [(args.kernel, current)]
    print(f"{args.rows} rows, host {args.host_features} + guest {args.guest_features} "
          f"features, full batch, one epoch, {args.key_bits}-bit key, "
          f"{executors.cpu_count()} cores; {load()}", flush=True)
    results = []
    for kernel, bits in runs:
        with tempfile.TemporaryDirectory(prefix="bench-wide-") as records:
            res = run(args.rows, args.host_features, args.guest_features, args.key_bits,
                      kernel, bits, records if args.breakdown else None)
        results.append(res)
        print(f"\n# {res.label}\n"
              f"  epoch: {res.epoch_cpu:.1f} core-s ({res.epoch_wall:.1f} s wall, of which "
              f"[[X^T d]] calls {res.matvec_wall:.1f} s wall)\n"
              f"  whole run (key, alignment, tables, epoch): {res.whole_cpu:.1f} core-s, "
              f"{res.whole_wall:.1f} s wall\n"
              f"  products {res.products:,}; t_mul {res.t_mul * 1e6:.2f} us (4096-bit, Python)\n"
              f"  ratio: {res.ratio:.2f} multiplication-equivalents per product "
              f"(epoch); {res.whole_cpu / (res.products * res.t_mul):.2f} (whole run); "
              f"{res.epoch_cpu / args.rows * 100_000:.0f} core-s per 100,000 rows\n"
              f"  host's [[X^T d]] alone: {res.kernel_ratio:.2f} multiplication-equivalents "
              f"per product; {load()}", flush=True)
        if res.parts:
            print_breakdown(res)
    print("\n| kernel | epoch core-s | products | t_mul us | mult-eq / product (epoch) "
          "| host X^T d alone | whole-run core-s |")
    print("|---|---|---|---|---|---|---|")
    for res in results:
        print(f"| {res.label} | {res.epoch_cpu:.1f} | {res.products:,} | "
              f"{res.t_mul * 1e6:.2f} | {res.ratio:.2f} | {res.kernel_ratio:.2f} | "
              f"{res.whole_cpu:.1f} |")
    print(f"\n{load()}")
    executors.shutdown_default_executor()
    return 0


if __name__ == "__main__":
    sys.exit(main())
