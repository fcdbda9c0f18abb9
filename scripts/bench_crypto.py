#!/usr/bin/env python3
"""Per-operation benchmark of the Paillier engines: phe, HEU's ZPaillier, ours ("fast").

One run, one machine, one table per key size (2048 and 3072 bits by
default): wall time and CPU time per operation (CPU includes the fast
engine's worker processes and HEU's threads), and wall-time ratios of phe
and HEU to the fast engine. HEU is measured through its own numpy API on
its own arrays (no conversion to Python ints), under the same key as the
others; it is skipped with a message when ``sf-heu`` is not installed
(``pip install 'vfl[bench]'``).

How each engine uses the cores (read the ratios with this in mind):

* **fast** runs its kernels on a process pool with one worker per core.
* **HEU** runs as shipped: its C++ thread pool sized by yacl
  (``YACL_NUM_THREADS``, default all cores; compare its wall and CPU
  columns).
* **phe** is single-threaded Python, as the library ships and as the
  ``phe`` backend runs in the protocol. Its column is therefore one core.
  So that no ratio flatters the fast engine, the encryption row is also
  measured with ``phe.raw_encrypt`` spread over the same process pool as
  the fast engine ("phe on all cores"); the other phe operations scale the
  same way (independent powmods), so dividing a phe/fast ratio by the
  number of cores gives the all-cores comparison.

The machine's load average is printed before and after each key size:
other processes on the cores slow the multi-process engines more than
single-threaded phe, so a loaded run understates the fast engine.

Usage::

    python scripts/bench_crypto.py            # full: 2048 and 3072 bits
    python scripts/bench_crypto.py --quick    # seconds: small key, small sizes
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vfl.crypto import executors
from vfl.crypto.ciphertext import EncryptedVector
from vfl.crypto.fast_engine import FastDecryptor, FastEngine
from vfl.crypto.keys import generate_keypair
from vfl.crypto.phe_engine import PheDecryptor, PheEngine, raw_encrypt_chunk
from vfl.crypto.workers import obfuscator_chunk

try:
    import numpy as np  # noqa: F401 - heu needs it
    from heu import numpy as hnp  # noqa: F401

    from vfl.crypto.heu_engine import heu_kit
except ImportError as exc:  # pragma: no cover - depends on the environment
    HEU_MISSING = f"HEU's ZPaillier skipped: sf-heu is not installed ({exc})"
else:
    HEU_MISSING = ""

TICKS = os.sysconf("SC_CLK_TCK")

#: Row of phe's encryption spread over the fast engine's process pool.
PHE_ALL_CORES = "encrypt (pool cold), phe on all cores"


def load() -> str:
    """The 1, 5 and 15-minute load averages, for the record."""
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def _worker_cpu() -> float:
    """CPU seconds used so far by the shared pool's worker processes."""
    pool = executors._default  # benchmark introspection
    total = 0.0
    for proc in list(getattr(pool, "_processes", {}) or {}):
        try:
            with open(f"/proc/{proc}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICKS
        except (OSError, IndexError, ValueError):
            pass
    return total


def measure(fn: Callable[[], object], ops: int, repeat: int = 1) -> tuple[float, float]:
    """(wall ms per op, CPU ms per op), best wall of `repeat` runs."""
    best = None
    for _ in range(repeat):
        w0, c0, k0 = time.perf_counter(), time.process_time(), _worker_cpu()
        fn()
        wall = time.perf_counter() - w0
        cpu = time.process_time() - c0 + _worker_cpu() - k0
        if best is None or wall < best[0]:
            best = (wall, cpu)
    return best[0] * 1e3 / ops, best[1] * 1e3 / ops


def signed_53(count: int, negative: bool) -> list[int]:
    return [(-1 if negative else 1) * random.getrandbits(53) for _ in range(count)]


def matrix(rows: int, cols: int, mixed: bool) -> list[list[int]]:
    # Encoded features: ~42-bit magnitudes (|x| < 4 at 2^40 fixed point).
    def entry() -> int:
        v = random.getrandbits(42)
        return -v if mixed and random.random() < 0.5 else v
    return [[entry() for _ in range(cols)] for _ in range(rows)]


def bench_key(bits: int, sizes: dict[str, int], insecure: bool) -> list[tuple]:
    print(f"\n# {bits}-bit key: generating ... ({load()})", flush=True)
    pub, priv = generate_keypair(bits, insecure=insecure)
    params = FastEngine.public_params_for(priv)
    n = pub.n
    enc_n, dec_n, add_n, mul_n = sizes["enc"], sizes["dec"], sizes["add"], sizes["mul"]
    rows, cols, phe_rows = sizes["rows"], sizes["cols"], sizes["phe_rows"]
    values = [random.getrandbits(42) - (1 << 41) for _ in range(max(enc_n, rows, add_n))]

    cold = FastEngine(pub, params, pool_capacity=0)  # no background precomputation
    fdec = FastDecryptor(priv)
    pe, pdec = PheEngine(pub), PheDecryptor(priv)
    # Warm the worker processes (fork, fixed-base table) outside the timings.
    cold.encrypt(values[:8])
    executors.run_chunks(executors.default_executor(), obfuscator_chunk,
                         [1] * executors.cpu_count() * 2, cold.spec)

    results: dict[str, dict[str, tuple[float, float] | None]] = {}

    def put(op: str, engine: str, value: tuple[float, float] | None) -> None:
        results.setdefault(op, {})[engine] = value
        if value:
            print(f"  {op:<34} {engine:<5} {value[0]:10.4f} ms/op wall {value[1]:10.4f} ms CPU",
                  flush=True)

    # Each operation is timed for every engine back to back (fast, phe, HEU),
    # so that a change in the machine's load between operations does not
    # skew a ratio.
    jobs: list[tuple] = []

    def job(op: str, engine: str, fn: Callable[[], object], ops: int, repeat: int = 1,
            setup: Callable[[], object] | None = None) -> None:
        jobs.append((op, engine, fn, ops, repeat, setup))

    # --- fast ------------------------------------------------------------------
    ct = cold.encrypt(values[:enc_n])
    job("encrypt (pool cold)", "fast", lambda: cold.encrypt(values[:enc_n]), enc_n)
    warm = FastEngine(pub, params, pool_capacity=0)
    job("encrypt (pool warm)", "fast", lambda: warm.encrypt(values[:enc_n]), enc_n,
        setup=lambda: warm.warm_up(enc_n))
    job("decrypt", "fast", lambda: fdec.decrypt(ct[:dec_n]), dec_n)
    big = EncryptedVector.concat([ct] * (-(-add_n // len(ct))))[:add_n]
    job("ct + ct", "fast", lambda: cold.add(big, big), add_n, repeat=3)
    pos, neg = signed_53(mul_n, False), signed_53(mul_n, True)
    job("ct x scalar (53-bit, positive)", "fast", lambda: cold.mul_plain(ct[:mul_n], pos), mul_n)
    job("ct x scalar (53-bit, negative)", "fast", lambda: cold.mul_plain(ct[:mul_n], neg), mul_n)
    job("re-randomise (pool cold)", "fast", lambda: cold.rerandomize(ct[:enc_n]), enc_n)
    job("re-randomise (pool warm)", "fast", lambda: warm.rerandomize(ct[:enc_n]), enc_n,
        setup=lambda: warm.warm_up(enc_n))
    d = EncryptedVector.concat([ct] * (-(-rows // len(ct))))[:rows]
    xm, xp = matrix(rows, cols, True), matrix(rows, cols, False)
    mv = f"X^T[[d]] {rows}x{cols}"
    job(f"{mv} mixed-sign (per product)", "fast", lambda: cold.matvec_t(xm, d), rows * cols)
    job(f"{mv} positive (per product)", "fast", lambda: cold.matvec_t(xp, d), rows * cols)

    # --- phe (single-threaded, as shipped; one row on all cores) -----------------
    pct = pe.encrypt(values[:enc_n])
    job("encrypt (pool cold)", "phe", lambda: pe.encrypt(values[:enc_n]), enc_n)
    pool = executors.default_executor()
    parts = executors.split(values[:enc_n], executors.cpu_count())
    job(PHE_ALL_CORES, "phe", lambda: executors.run_chunks(pool, raw_encrypt_chunk, parts, n),
        enc_n)
    job("decrypt", "phe", lambda: pdec.decrypt(pct[:dec_n]), dec_n)
    job("ct + ct", "phe", lambda: pe.add(big, big), add_n)
    job("ct x scalar (53-bit, positive)", "phe", lambda: pe.mul_plain(pct[:mul_n], pos), mul_n)
    job("ct x scalar (53-bit, negative)", "phe", lambda: pe.mul_plain(pct[:mul_n], neg), mul_n)
    job("re-randomise (pool cold)", "phe", lambda: pe.rerandomize(pct[:enc_n]), enc_n)
    # phe costs one powmod per product whatever the size: time phe_rows rows.
    job(f"{mv} mixed-sign (per product)", "phe",
        lambda: pe.matvec_t(xm[:phe_rows], d[:phe_rows]), phe_rows * cols)
    job(f"{mv} positive (per product)", "phe",
        lambda: pe.matvec_t(xp[:phe_rows], d[:phe_rows]), phe_rows * cols)

    # --- HEU, natively --------------------------------------------------------------
    if not HEU_MISSING:
        kit = heu_kit(pub, params["h_s"], priv)
        enc, ev, dec = kit.encryptor, kit.evaluator, kit.decryptor
        pt = kit.plain(values[:enc_n])
        hct = enc.encrypt(pt)
        job("encrypt (pool cold)", "heu", lambda: enc.encrypt(pt), enc_n)
        hdec = kit.to_heu(ct[:dec_n].ciphertexts)
        job("decrypt", "heu", lambda: dec.decrypt(hdec), dec_n)
        hbig = kit.to_heu(big.ciphertexts)
        job("ct + ct", "heu", lambda: ev.add(hbig, hbig), add_n, repeat=3)
        hmul = kit.to_heu(ct[:mul_n].ciphertexts)
        ppos, pneg = kit.plain(pos), kit.plain(neg)
        job("ct x scalar (53-bit, positive)", "heu", lambda: ev.mul(hmul, ppos), mul_n)
        job("ct x scalar (53-bit, negative)", "heu", lambda: ev.mul(hmul, pneg), mul_n)
        zeros = kit.plain([0] * enc_n)
        job("re-randomise (pool cold)", "heu", lambda: ev.add(hct, enc.encrypt(zeros)), enc_n)
        hd = kit.to_heu(d.ciphertexts)
        xmt = kit.plain([r[j] for j in range(cols) for r in xm], shape=(cols, rows))
        xpt = kit.plain([r[j] for j in range(cols) for r in xp], shape=(cols, rows))
        job(f"{mv} mixed-sign (per product)", "heu", lambda: ev.matmul(xmt, hd), rows * cols)
        job(f"{mv} positive (per product)", "heu", lambda: ev.matmul(xpt, hd), rows * cols)

    order = {op: i for i, op in reversed(list(enumerate(j[0] for j in jobs)))}
    order[PHE_ALL_CORES] = order["encrypt (pool cold)"]  # next to the other encryptions
    for op, engine, fn, ops, repeat, setup in sorted(jobs, key=lambda j: order[j[0]]):
        if setup is not None:
            setup()
        put(op, engine, measure(fn, ops, repeat))
    cold.close()
    warm.close()
    print(f"# {bits}-bit key done ({load()})", flush=True)
    return list(results.items())


def print_table(bits: int, rows: list[tuple], note: str) -> None:
    engines = ["phe", "heu", "fast"]
    head = (f"| {bits}-bit key | " + " | ".join(f"{e} wall ms | {e} CPU ms" for e in engines)
            + " | phe/fast | heu/fast |")
    print("\n" + head)
    print("|" + "---|" * (head.count("|") - 1))
    for op, per in rows:
        cells = []
        for e in engines:
            v = per.get(e)
            cells += [f"{v[0]:.4f}", f"{v[1]:.4f}"] if v else ["-", "-"]
        ratios = []
        # A warm pool is this engine's own trick: compare with the peers' only way.
        peer = dict(rows).get(op.replace("(pool warm)", "(pool cold)"), per)
        fast = per.get("fast") or dict(rows).get("encrypt (pool cold)", {}).get("fast")
        for e in ("phe", "heu"):
            v, f = peer.get(e), fast
            ratios.append(f"{v[0] / f[0]:.1f}x" if v and f else "-")
        print(f"| {op} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    print(note)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small insecure key and sizes: a smoke run of a few seconds")
    parser.add_argument("--key-bits", "--bits", dest="bits", type=int, nargs="*",
                        help="key sizes (default 2048 3072; --bits is the old spelling)")
    parser.add_argument("--rows", type=int, default=10_000, help="rows of X (default 10000)")
    parser.add_argument("--phe-rows", type=int, default=500,
                        help="rows timed for phe's X^T[[d]] (its cost per product is constant)")
    args = parser.parse_args(argv)
    random.seed(1)
    if args.quick:
        bits = args.bits or [1024]
        sizes = {"enc": 16, "dec": 8, "add": 64, "mul": 8, "rows": 60, "cols": 3, "phe_rows": 20}
    else:
        bits = args.bits or [2048, 3072]
        sizes = {"enc": 600, "dec": 100, "add": 4000, "mul": 100, "rows": args.rows, "cols": 10,
                 "phe_rows": min(args.phe_rows, args.rows)}
    print(f"cores: {executors.cpu_count()}; fast engine workers: {executors.cpu_count()} processes;"
          f" {load()}")
    if HEU_MISSING:
        print(HEU_MISSING)
    tables = [(b, bench_key(b, sizes, insecure=args.quick)) for b in bits]
    note = (f"X^T[[d]] columns are per product; phe timed on {sizes['phe_rows']} rows "
            "(one powmod per product, independent of the row count). phe is single-threaded "
            f"except in the row '{PHE_ALL_CORES}'; fast uses {executors.cpu_count()} worker "
            "processes; HEU its own thread pool.")
    for b, rows in tables:
        print_table(b, rows, note)
    executors.shutdown_default_executor()
    return 0


if __name__ == "__main__":
    sys.exit(main())
