#!/usr/bin/env python3
"""Is the engine sized to the work? Whole commands, side by side, with their memory.

Three measurements (issue 13), each in this run:

1. ``vfl simulate`` on 1,000 rows x (10 + 10) features, one epoch, 2048-bit
   key, as a user types it: the default engine and ``--backend phe``, wall
   time of the whole command (start-up, key, alignment, training, report)
   and the peak memory of all its processes together.
2. The same data in-process (``bench_protocol.run``): a warm epoch of each
   engine (the steady state, no start-up).
3. ``make demo`` (``scripts/demo.py``: three processes over mutual TLS): the
   preparation, the first epoch against the median later one, and peak
   memory.

The commands run with Python's compiled-module cache on, as in a user's
installation (the library is compiled once before, untimed).

Memory is sampled every 50 ms over the command's whole process tree (the
worker processes included) from ``/proc``: the sum of PSS (proportional set
size, shared pages such as the shared-memory table split between the
processes that map them) and, for comparison, the sum of RSS (which counts
a shared page once per process). Linux only.

Usage::

    python scripts/bench_engine.py                # all three
    python scripts/bench_engine.py --skip-demo --rows 1000
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]
VFL = [sys.executable, "-m", "vfl"]


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def _tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    out, stack = [], [pid]
    while stack:
        current = stack.pop()
        out.append(current)
        stack.extend(children.get(current, []))
    return out


def _memory(pids: list[int]) -> tuple[int, int]:
    pss = rss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                    elif line.startswith("Rss:"):
                        rss += int(line.split()[1])
        except OSError:
            continue
    return pss * 1024, rss * 1024


def user_environment() -> dict[str, str]:
    """This environment as a user's shell has it: Python caches compiled modules.

    Some sandboxes set PYTHONDONTWRITEBYTECODE, which makes every command
    compile the library again (~0.15 s of each start-up); a user's
    installation keeps the compiled files.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def measured(command: list[str], **kwargs) -> dict:
    """Run `command` as a user would (:func:`user_environment`); wall seconds, peak
    PSS and RSS sums of its tree, output."""
    kwargs.setdefault("env", user_environment())
    if kwargs["env"] is not os.environ:
        # Compile once, untimed: the first run after an installation writes the cache.
        subprocess.run([sys.executable, "-m", "compileall", "-q", "vfl", "parties"],
                       env=kwargs["env"], cwd=ROOT, stdout=subprocess.DEVNULL, check=False)
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, **kwargs)
    peak_pss = peak_rss = 0
    output: list[str] = []
    import threading

    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    while process.poll() is None:
        pss, rss = _memory(_tree(process.pid))
        peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
        time.sleep(0.05)
    reader.join(timeout=5)
    return {"seconds": time.perf_counter() - start, "pss": peak_pss, "rss": peak_rss,
            "rc": process.returncode, "output": "".join(output)}


def simulate_commands(rows: int, folder: Path) -> None:
    from bench_protocol import make_data

    a, b = make_data(rows, 10, 10)
    a.to_csv(folder / "A.csv", index=False)
    b.to_csv(folder / "B.csv", index=False)
    results = {}
    for backend in ("fast", "phe"):
        command = [*VFL, "simulate", "--party-a", str(folder / "A.csv"),
                   "--party-b", str(folder / "B.csv"), "--id-column", "id",
                   "--label-column", "y", "--epochs", "1", "--learning-rate", "0.5",
                   "--out", str(folder / f"out_{backend}"), "--force", "--quiet",
                   "--backend", backend]
        results[backend] = r = measured(command, cwd=ROOT)
        print(f"  vfl simulate --backend {backend:<5} {r['seconds']:7.2f} s   peak PSS "
              f"{r['pss'] / 2**20:6.0f} MB (RSS sum {r['rss'] / 2**20:.0f} MB)   exit "
              f"{r['rc']}; {load()}")
    fast, phe = results["fast"], results["phe"]
    print(f"  whole command: phe / fast = {phe['seconds'] / fast['seconds']:.1f}x "
          "(target >= 20x); fast peak PSS "
          f"{fast['pss'] / 2**20:.0f} MB (target <= 400 MB)")


def steady_state(rows: int) -> None:
    from bench_protocol import run

    fast = run("fast", rows, 3, 2048)
    phe = run("phe", rows, 2, 2048)
    warm_fast = statistics.median(e["wall"] for e in fast["epochs"][1:])
    warm_phe = phe["epochs"][-1]["wall"]
    print(f"  warm epoch in-process: fast {warm_fast:.2f} s, phe {warm_phe:.2f} s: "
          f"{warm_phe / warm_fast:.1f}x; {load()}")


def demo() -> None:
    with tempfile.TemporaryDirectory() as folder:
        r = measured([sys.executable, str(ROOT / "scripts" / "demo.py"), "--plot",
                      str(Path(folder) / "training.png"), "--workdir", folder], cwd=ROOT)
    if r["rc"] != 0:
        print(f"  demo failed (exit {r['rc']}):\n{r['output'][-2000:]}")
        return
    ready = re.search(r"ready to train after ([\d.]+) s", r["output"])
    epochs = [float(s) for s in re.findall(r"epoch +\d+/\d+ +loss \S+ +\(([\d.]+) s\)",
                                           r["output"])]
    later = statistics.median(epochs[1:])
    print(f"  make demo: {r['seconds']:.1f} s in all; preparation "
          f"{float(ready.group(1)) if ready else float('nan'):.1f} s; first epoch "
          f"{epochs[0]:.1f} s, later epochs {later:.2f} s (median): "
          f"{epochs[0] / later:.1f}x (target <= 2x); peak PSS {r['pss'] / 2**20:.0f} MB "
          f"(RSS sum {r['rss'] / 2**20:.0f} MB; target <= 1.2 GB); {load()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--skip-steady", action="store_true",
                        help="skip the in-process warm epochs (phe's takes minutes)")
    args = parser.parse_args(argv)
    if not Path("/proc/self/smaps_rollup").exists():
        print("this benchmark reads /proc (Linux only)")
        return 2
    print(f"{os.cpu_count()} CPUs; {load()}")
    print(f"# 1. vfl simulate, {args.rows} rows x (10 + 10), one epoch, 2048-bit key")
    with tempfile.TemporaryDirectory() as folder:
        simulate_commands(args.rows, Path(folder))
    if not args.skip_steady:
        print("# 2. the same data in-process, warm epochs")
        steady_state(args.rows)
    if not args.skip_demo:
        print("# 3. make demo (three processes, mutual TLS, 2048-bit key)")
        demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
