"""Benchmark: our ECDH alignment against OpenMined's C++ PSI on identical sets.

Usage::

    python3 scripts/bench_psi.py                       # 100k x 100k both, then 1M x 1M ours
    python3 scripts/bench_psi.py --sizes 100000 --skip-openmined

Each of our parties runs in its own process with its own worker pool, and
talks to the other over a pipe through a real :class:`~vfl.protocol.channel.Endpoint`
(pickled envelopes; a writer thread buffers like a socket would), so the
reported bytes are what went over the wire and the memory is each party's own:
the peak resident set of its process plus the peaks of its workers. OpenMined
PSI (``pip install openmined-psi``) runs client and server in one process, as
its Python API does: its memory is both sides together, its bytes the
serialised setup, request and response. Worker pools are started before the
clock starts for us; OpenMined has none to start.

The sets: A holds IDs 0 .. n-1, B holds n*(1-overlap) .. that plus n-1 (so
the overlap is ``overlap * n``), written as 12-digit strings, in shuffled
order.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import pickle
import queue
import random
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vfl.errors import PeerAbortedError
from vfl.executors import worker_count
from vfl.protocol.channel import Endpoint, Envelope, _Abort


def make_ids(party: str, n: int, overlap: float, seed: int) -> list[str]:
    start = 0 if party == "A" else round(n * (1 - overlap))
    ids = [f"{i:012d}" for i in range(start, start + n)]
    random.Random(f"{seed}-{party}").shuffle(ids)
    return ids


class PipeEndpoint(Endpoint):
    """An endpoint over a multiprocessing pipe to one peer, counting bytes sent."""

    def __init__(self, name: str, session: str, conn) -> None:
        super().__init__(name, session)
        self.conn = conn
        self.bytes_sent = 0
        self._out: queue.Queue[bytes | None] = queue.Queue()
        self._writer = threading.Thread(target=self._write, daemon=True)
        self._writer.start()

    def _write(self) -> None:
        while (data := self._out.get()) is not None:
            self.conn.send_bytes(data)

    def close(self) -> None:
        self._out.put(None)
        self._writer.join()

    def _transmit(self, envelope: Envelope) -> None:
        data = pickle.dumps(envelope, protocol=pickle.HIGHEST_PROTOCOL)
        self.bytes_sent += len(data)
        self._out.put(data)

    def _next_envelope(self, sender: str) -> Envelope:
        item = pickle.loads(self.conn.recv_bytes())
        if isinstance(item, _Abort):
            raise PeerAbortedError(f"{item.party} stopped: {item.reason}", party=self.name)
        return item

    def _broadcast_abort(self, abort: _Abort) -> None:
        self._out.put(pickle.dumps(abort))


def peak_rss_mib(pid: int | str = "self") -> float:
    """Peak resident set (VmHWM) of a process, MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK"), idle / os.sysconf("SC_CLK_TCK")


def warm(_: int) -> int:
    import vfl.psi.x25519_ops  # noqa: F401  (import cost paid before the clock)
    return os.getpid()


def party_main(name: str, conn, n: int, overlap: float, seed: int, workers: int,
               chunk_size: int, barrier, results) -> None:
    from vfl.psi.ecdh import EcdhAlignment

    peer = "B" if name == "A" else "A"
    ids = make_ids(name, n, overlap, seed)
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
    list(pool.map(warm, range(workers * 4)))
    endpoint = PipeEndpoint(name, "bench", conn)
    method = EcdhAlignment(executor=pool, chunk_size=chunk_size, progress=True)
    workers_pids = list(pool._processes)
    barrier.wait()
    cpu0 = cpu_seconds() + sum(cpu_seconds(pid) for pid in workers_pids)
    busy0, idle0 = machine_cpu()
    start = time.perf_counter()
    result = method.run(ids, endpoint, peer, leader=(name == "B"))
    seconds = time.perf_counter() - start
    busy1, idle1 = machine_cpu()
    cpu = cpu_seconds() + sum(cpu_seconds(pid) for pid in workers_pids) - cpu0
    endpoint.close()
    worker_peaks = [peak_rss_mib(pid) for pid in workers_pids]
    shared = [ids[i] for i in result.positions[:5]]
    results.put({"party": name, "seconds": seconds, "shared": len(result),
                 "first": shared, "bytes_sent": endpoint.bytes_sent,
                 "rss_mib": peak_rss_mib(), "workers_mib": worker_peaks, "cpu": cpu,
                 "machine_busy": busy1 - busy0, "machine_idle": idle1 - idle0})
    pool.shutdown()


def bench_ours(n: int, overlap: float, seed: int, workers: int, chunk_size: int) -> dict:
    ctx = mp.get_context("spawn")
    end_a, end_b = ctx.Pipe()
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=party_main, args=(p, end, n, overlap, seed, workers,
                                                  chunk_size, barrier, results))
             for p, end in (("A", end_a), ("B", end_b))]
    for p in procs:
        p.start()
    out = {r["party"]: r for r in (results.get() for _ in procs)}
    for p in procs:
        p.join()
    assert out["A"]["first"] == out["B"]["first"], "parties disagree on the order"
    return out


def openmined_main(n: int, overlap: float, seed: int, results) -> None:
    import private_set_intersection.python as psi

    a, b = make_ids("A", n, overlap, seed), make_ids("B", n, overlap, seed)
    start, cpu0, busy0 = time.perf_counter(), time.process_time(), machine_cpu()[0]
    client = psi.client.CreateWithNewKey(True)   # reveal_intersection
    server = psi.server.CreateWithNewKey(True)
    setup = server.CreateSetupMessage(0.0, len(a), b, psi.DataStructure.RAW)
    request = client.CreateRequest(a)
    response = server.ProcessRequest(request)
    shared = client.GetIntersection(setup, response)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    others = machine_cpu()[0] - busy0 - cpu
    size = sum(len(m.SerializeToString()) for m in (setup, request, response))
    results.put({"seconds": seconds, "cpu": cpu, "others": others, "shared": len(shared),
                 "bytes": size,
                 "rss_mib": peak_rss_mib(), "version": psi.__version__})


def bench_openmined(n: int, overlap: float, seed: int) -> dict:
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=openmined_main, args=(n, overlap, seed, results))
    proc.start()
    out = results.get()
    proc.join()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="IDs per party; OpenMined runs only at sizes <= --openmined-max")
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=worker_count(),
                        help="worker processes per party (default: this machine's cores)")
    parser.add_argument("--chunk-size", type=int, default=4096)
    parser.add_argument("--openmined-max", type=int, default=100_000)
    parser.add_argument("--skip-openmined", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before "
          "starting (other processes compete for the cores when it is above 0); "
          f"{args.workers} workers per party, chunks of {args.chunk_size}", flush=True)
    for n in args.sizes:
        expected = round(n * args.overlap)
        theirs = None
        if not args.skip_openmined and n <= args.openmined_max:
            theirs = bench_openmined(n, args.overlap, args.seed)
            assert theirs["shared"] == expected, theirs
            print(f"[{n:,} x {n:,}] openmined-psi {theirs['version']} (P-256, 1 process, both "
                  f"sides): {theirs['seconds']:.1f} s ({theirs['cpu']:.1f} CPU-s), peak memory "
                  f"{theirs['rss_mib']:.0f} MiB (both sides), "
                  f"{theirs['bytes'] / 1e6:.1f} MB exchanged; other processes used about "
                  f"{max(0.0, theirs['others']):.0f} CPU-s meanwhile", flush=True)
        ours = bench_ours(n, args.overlap, args.seed, args.workers, args.chunk_size)
        seconds = max(r["seconds"] for r in ours.values())
        for name, r in sorted(ours.items()):
            assert r["shared"] == expected, r
            total = r["rss_mib"] + sum(r["workers_mib"])
            print(f"[{n:,} x {n:,}] ours, party {name}: {r['seconds']:.1f} s "
                  f"({r['cpu']:.1f} CPU-s with its workers), peak memory "
                  f"{total:.0f} MiB (process {r['rss_mib']:.0f} + workers "
                  f"{' + '.join(f'{w:.0f}' for w in r['workers_mib'])}), sent "
                  f"{r['bytes_sent'] / 1e6:.1f} MB", flush=True)
        exchanged = sum(r["bytes_sent"] for r in ours.values())
        cpu = sum(r["cpu"] for r in ours.values())
        line = (f"[{n:,} x {n:,}] ours: {seconds:.1f} s ({cpu:.1f} CPU-s, both sides), "
                f"{exchanged / 1e6:.1f} MB exchanged, {expected:,} shared")
        if theirs:
            line += (f"; {theirs['seconds'] / seconds:.1f}x faster than openmined-psi "
                     f"(CPU-s ratio {theirs['cpu'] / cpu:.2f})")
        print(line, flush=True)
        busy, idle = ours["A"]["machine_busy"], ours["A"]["machine_idle"]
        print(f"[{n:,} x {n:,}] machine during our run: busy {busy:.0f} CPU-s, idle "
              f"{idle:.0f} CPU-s; other processes used about {max(0.0, busy - cpu):.0f} "
              "CPU-s", flush=True)
        # On a shared machine the wall-clock times above depend on what else runs;
        # CPU seconds hardly do. Estimate: ours spread over every core, OpenMined
        # on the one core its single thread can use.
        cores = min(os.cpu_count() or 1, 2 * args.workers)
        line = (f"[{n:,} x {n:,}] estimate with the machine to ourselves: ours about "
                f"{cpu / cores:.1f} s ({cpu:.1f} CPU-s over {cores} cores)")
        if theirs:
            line += (f", openmined-psi about {theirs['cpu']:.1f} s (one thread): "
                     f"{theirs['cpu'] / (cpu / cores):.1f}x")
        print(line, flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
