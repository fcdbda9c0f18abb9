"""The one process pool that spreads heavy work (Paillier, PSI) over the cores.

Engines and alignment methods take any ``concurrent.futures.Executor``; when
none is given they share the pool of :mod:`vfl.crypto.executors`, so three
in-process parties never start more worker processes than there are cores.
"""

from __future__ import annotations

from vfl.crypto.executors import cpu_count as worker_count
from vfl.crypto.executors import default_executor, shutdown_default_executor

__all__ = ["default_executor", "shutdown_default_executor", "worker_count"]
