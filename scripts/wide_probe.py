"""Per-task CPU records for ``scripts/bench_wide.py --breakdown`` (stdlib only).

The benchmark wraps its worker pool's ``submit`` so that every task runs
through :func:`timed`, which runs the kernel and appends one line to a file
of its own process: the label the submitting thread carried (which party's
which engine call), the kernel's name, its start and end (wall clock,
comparable between the processes of one machine), the CPU seconds it took
and, for obfuscator kernels, how many powers it made. The kernel's result
is returned as it is, so nothing else changes. Kept free of heavy imports:
a worker imports it at its first task.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any


def timed(folder: str, label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, recording its CPU and wall time under `label` in `folder`."""
    wall0, cpu0 = time.time(), time.process_time()
    result = fn(*args, **kwargs)
    cpu, wall1 = time.process_time() - cpu0, time.time()
    count = len(result) if isinstance(result, list) else 0
    with open(os.path.join(folder, f"{os.getpid()}.tsv"), "a") as f:
        f.write(f"{label}\t{fn.__name__}\t{wall0:.6f}\t{wall1:.6f}\t{cpu:.6f}\t{count}\n")
    return result
