"""The process pool that spreads heavy work (encryption, PSI) over the cores.

Engines and alignment methods take any ``concurrent.futures.Executor``; when
none is given they share this one, created lazily and sized to the machine,
so that three in-process parties do not start three pools. A cluster
executor with the same interface can replace it.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
from concurrent.futures import Executor, ProcessPoolExecutor

__all__ = ["default_executor", "shutdown_default_executor", "worker_count"]

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None


def worker_count() -> int:
    """Cores this process may use (respects CPU affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_executor() -> Executor:
    """The shared process pool, started on first use."""
    global _pool
    with _lock:
        if _pool is None:
            # "spawn" avoids forking a process that runs party threads.
            _pool = ProcessPoolExecutor(max_workers=worker_count(),
                                        mp_context=multiprocessing.get_context("spawn"))
        return _pool


def shutdown_default_executor() -> None:
    """Stop the shared pool (a later call to :func:`default_executor` starts a new one)."""
    global _pool
    with _lock:
        if _pool is not None:
            _pool.shutdown(wait=True, cancel_futures=True)
            _pool = None


atexit.register(shutdown_default_executor)
