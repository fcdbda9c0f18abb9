"""Where heavy work (Paillier, PSI) runs: the local process pool, or the run's cluster.

Engines and alignment methods take any ``concurrent.futures.Executor``; when
none is given they use :func:`compute_executor`: the executor a run
installed (:func:`use_executor`; a Dask or Ray cluster, :mod:`vfl.cluster`)
or else the pool of :mod:`vfl.crypto.executors`, shared so that three
in-process parties never start more worker processes than there are cores.
"""

from __future__ import annotations

from vfl.crypto.executors import (
           compute_executor,
           default_executor,
           shutdown_default_executor,
           use_executor,
)
from vfl.crypto.executors import cpu_count as worker_count

__all__ = ["compute_executor", "default_executor", "shutdown_default_executor",
           "use_executor", "worker_count"]
