"""A pool of precomputed encryptions of zero, refilled in the background.

An encryption of zero ``o = h_s^r mod n^2`` (an obfuscator) is the whole
cost of a DJN encryption or re-randomisation; with one at hand, encrypting
m is ``o + n (m o mod n) mod n^2`` and re-randomising c is ``c o mod n^2``:
one modular multiplication. Obfuscators do not depend on the plaintext, so
they can be computed ahead, while the party waits on the network.

A daemon thread keeps a bounded deque topped up by submitting small batches
to the engine's executor, only while no foreground work is running there
(:func:`vfl.crypto.executors.wait_until_idle`), so it never delays a party
by more than one small batch. The thread itself only waits on futures; the
powmods run in the worker processes, not under this process's GIL. The
capacity adapts: it grows to twice the largest request seen (up to a cap),
so that a party that encrypts m values per round finds m ready next round.

Each obfuscator is handed out once and forgotten (reusing one would link
two ciphertexts).

On a cluster (:mod:`vfl.cluster`) the refill works the same way, with
bigger batches (a task's round trip costs milliseconds there, not tens of
microseconds) and at most one task per worker in flight, so it never queues
more than one batch per worker ahead of a party's own work; the
obfuscators come back to this process (about 512 bytes each at 2048 bits).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor

import gmpy2

from vfl.crypto import executors, workers

__all__ = ["ObfuscatorPool"]

#: Smallest batch per background task on a remote executor: a task's round trip
#: there (~1-10 ms) would otherwise cost as much as its 16 obfuscators.
_REMOTE_BATCH = 64


class ObfuscatorPool:
    """Bounded store of fresh ``h_s^r mod n^2`` values.

    Parameters
    ----------
    source : ObfuscatorSource or callable
        Where the workers take the powers from
        (:data:`vfl.crypto.workers.ObfuscatorSource`), or a function giving it
        for an executor at each batch (the engine's: the table in use may
        grow during a run).
    executor : concurrent.futures.Executor, callable or None
        Where to compute, or a function returning it at each batch (the
        engine's: the executor of the run in progress); None computes
        nothing in the background (the pool then only holds what
        :meth:`fill` put there).
    capacity : int
        Initial target size; 0 disables background refilling. Refilling
        starts at the first :meth:`take`.
    max_capacity : int
        Upper bound of the adaptive target (about 600 bytes per obfuscator
        at 2048 bits).
    batch : int
        Obfuscators per background task: small, so that a party's request
        waits at most one batch.
    """

    def __init__(self, source: workers.ObfuscatorSource
                 | Callable[[Executor | None], workers.ObfuscatorSource],
                 executor: Executor | Callable[[], Executor | None] | None, *,
                 capacity: int = 256, max_capacity: int = 1 << 16, batch: int = 16) -> None:
        self.source = source
        self.executor = executor
        self.capacity = max(0, min(capacity, max_capacity))
        self.max_capacity = max_capacity
        self.batch = max(1, batch)
        self._items: deque[gmpy2.mpz] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        # The refill thread starts on the first take(): an engine that never
        # encrypts (the key owner's) costs nothing.

    def __len__(self) -> int:
        return len(self._items)

    def _source_for(self, executor: Executor | None) -> workers.ObfuscatorSource:
        return self.source(executor) if callable(self.source) else self.source

    def _current(self) -> Executor | None:
        """The executor to use now."""
        executor = self.executor
        if executor is None or isinstance(executor, Executor):
            return executor
        return executor()

    def _start(self) -> None:
        if self._thread is None and not self._closed and self.executor is not None:
            self._thread = threading.Thread(target=self._run, name="vfl-obfuscator-pool",
                                            daemon=True)
            self._thread.start()

    def take(self, count: int) -> list[gmpy2.mpz]:
        """Up to `count` obfuscators, without waiting (maybe none).

        Also raises the refill target to twice `count` (within the cap) and
        wakes the refill thread.
        """
        out: list[gmpy2.mpz] = []
        with self._cond:
            items = self._items
            while items and len(out) < count:
                out.append(items.popleft())
            if self.capacity and 2 * count > self.capacity:
                self.capacity = min(2 * count, self.max_capacity)
            self._cond.notify_all()
        if self.capacity:
            self._start()
        return out

    def reserve(self, count: int) -> None:
        """Raise the refill target to `count` (within the cap) and start refilling."""
        if self.executor is None or self._closed:
            return
        with self._cond:
            self.capacity = max(self.capacity, min(count, self.max_capacity))
            self._cond.notify_all()
        self._start()

    def fill(self, count: int) -> None:
        """Compute until at least `count` obfuscators are in the pool (blocking).

        Uses all workers; for warm-up before a timed section, or for a party
        that knows it is about to wait.
        """
        missing = count - len(self._items)
        if missing <= 0:
            return
        executor = self._current()
        parts = executors.executor_workers(executor) * 4
        sizes = [len(c) for c in executors.split(range(missing), parts)]
        results = executors.run_chunks(executor, workers.obfuscator_chunk, sizes,
                                       self._source_for(executor))
        with self._cond:
            for chunk in results:
                self._items.extend(gmpy2.mpz(o) for o in chunk)
            if self.capacity and len(self._items) > self.capacity:
                self.capacity = min(len(self._items), self.max_capacity)
            self._cond.notify_all()

    def close(self) -> None:
        """Stop refilling and drop the stored obfuscators; idempotent."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._closed or len(self._items) < self.capacity)
                if self._closed:
                    return
                missing = self.capacity - len(self._items)
            # Leave the workers to any party that is waiting for a result.
            while not executors.wait_until_idle(timeout=0.5):
                if self._closed:
                    return
            executor = self._current()
            if executor is None:
                return
            batch = max(self.batch, _REMOTE_BATCH) if executors.is_remote(executor) \
                else self.batch
            tasks = min(executors.executor_workers(executor), -(-missing // batch))
            try:
                source = self._source_for(executor)
                futures = [executor.submit(workers.obfuscator_chunk, source, batch)
                           for _ in range(tasks)]
                results = [f.result() for f in futures]
            except Exception:  # noqa: BLE001 - executor shut down (interpreter exit, close)
                if self._current() is executor:
                    return
                continue  # the run's cluster has ended: go on with the local pool
            with self._cond:
                if self._closed:
                    return
                for chunk in results:
                    self._items.extend(gmpy2.mpz(o) for o in chunk)
