"""Where the fast engine's heavy work runs: a shared process pool by default.

``gmpy2``'s modular multiplication holds the GIL, so threads cannot spread
Paillier arithmetic over cores; worker processes can. The engine sends
chunks of work (plain ints in, plain ints out) to a
``concurrent.futures.Executor``: by default one process pool shared by every
engine in the process (the in-process simulation runs A, B and C as threads
of one process, and one pool per party would oversubscribe the cores), or
any executor the caller passes in, e.g. a cluster executor with the same
interface. The kernels it runs live in :mod:`vfl.crypto.workers`.

The pool uses the ``forkserver`` start method: forking a process that runs
several threads (the parties) can copy a lock in its held state and
deadlock the child; a fork server is a clean single-threaded parent.

Foreground work is counted (:func:`foreground`) so that background
precomputation (the obfuscator pool) only occupies the workers while no
party is waiting for a result.

A run may send the heavy public work of this process elsewhere, a Dask or
Ray cluster (:mod:`vfl.cluster`): :func:`use_executor` installs that
executor for the length of the run, and :func:`compute_executor`, which
engines and alignments without an executor of their own ask at every call,
returns it. Decryption never follows it: a decryptor without an executor
uses the local pool (:func:`default_executor`), and refuses an executor
that is remote (:func:`is_remote`), so the private key stays in the
party's own processes.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing.context import BaseContext
from typing import Any, TypeVar, overload

from vfl.crypto.worker_processes import kernel_context
from vfl.crypto.workers import watch_owner
from vfl.errors import ConfigError

__all__ = [
    "compute_executor",
    "cpu_count",
    "default_executor",
    "executor_workers",
    "foreground",
    "is_remote",
    "on_each_worker",
    "run_chunks",
    "shutdown_default_executor",
    "split",
    "use_executor",
    "wait_until_idle",
]

T = TypeVar("T")

_lock = threading.Lock()
_default: ProcessPoolExecutor | None = None
_default_workers = 0

_busy = 0
_busy_cond = threading.Condition()

# The executor a run installed for this process's heavy public work (None: the
# local pool), and how many runs are using it.
_active: Executor | None = None
_active_users = 0


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_executor() -> ProcessPoolExecutor:
    """The process pool shared by all engines of this process, made on first use.

    One worker per core. Call :func:`shutdown_default_executor` to stop it
    early; otherwise ``concurrent.futures`` stops it at interpreter exit.
    """
    global _default, _default_workers
    with _lock:
        if _default is None:
            ctx: BaseContext
            try:
                # Not multiprocessing's own: its processes would import the user's
                # __main__ again, and a script without a main guard would train in each.
                ctx = kernel_context()
                # Workers import the kernels once, in the server, not per task.
                ctx.set_forkserver_preload(["vfl.crypto.workers"])
            except ValueError:  # pragma: no cover - platform without forkserver
                ctx = multiprocessing.get_context("spawn")
            _default_workers = cpu_count()
            # Workers leave when this process dies, even by SIGKILL: a pool's
            # workers otherwise wait forever on their task queue, each holding
            # hundreds of MB of encryption tables.
            _default = ProcessPoolExecutor(max_workers=_default_workers, mp_context=ctx,
                                           initializer=watch_owner, initargs=(os.getpid(),))
        return _default


def shutdown_default_executor(wait: bool = True) -> None:
    """Stop the shared pool (a later engine call starts a new one)."""
    global _default
    with _lock:
        pool, _default = _default, None
    if pool is not None:
        pool.shutdown(wait=wait, cancel_futures=True)


def compute_executor() -> Executor:
    """Where heavy public work runs now: the executor of :func:`use_executor`, or the local pool.

    Engines and alignments given no executor of their own call this at
    every operation, so an engine made during a cluster run goes back to
    the local pool once that run has ended.
    """
    active = _active
    return active if active is not None else default_executor()


@contextmanager
def use_executor(executor: Executor) -> Iterator[Executor]:
    """Send this process's heavy public work to `executor` inside the block.

    Process-wide: the parties of an in-process simulation are threads of one
    process and all use it. Several blocks may install the same executor
    (they nest); a second, different one while the first is in use is
    refused.

    Raises
    ------
    ConfigError
        If another executor is already installed.
    """
    global _active, _active_users
    with _lock:
        if _active is not None and _active is not executor:
            raise ConfigError(f"this process already sends its heavy work to {_active!r}: "
                              "one executor at a time; finish that run first")
        _active = executor
        _active_users += 1
    try:
        yield executor
    finally:
        with _lock:
            _active_users -= 1
            if _active_users == 0:
                _active = None


def is_remote(executor: Executor | None) -> bool:
    """Whether `executor` runs tasks outside this party's own processes (a cluster).

    An executor says so with a true ``remote`` attribute, as those of
    :mod:`vfl.cluster` do.
    """
    return bool(getattr(executor, "remote", False))


def executor_workers(executor: Executor | None) -> int:
    """How many tasks `executor` runs at once (best guess), 1 for inline.

    An executor with a ``worker_count()`` method (a cluster's, whose size
    may change) is asked each time.
    """
    if executor is None:
        return 1
    if executor is _default:
        return _default_workers
    count = getattr(executor, "worker_count", None)
    if callable(count):
        return max(1, int(count()))
    workers = getattr(executor, "_max_workers", None)
    return workers if isinstance(workers, int) and workers > 0 else cpu_count()


def on_each_worker(executor: Executor, fn: Callable[..., T], *args: Any) -> list[Future[T]]:
    """Start ``fn(*args)`` once on each worker of `executor`, if it can aim at workers.

    An executor with a ``submit_to_each`` method (a Dask cluster's) places
    one task on every worker; any other gets one task per worker and its
    own scheduler places them (concurrent tasks land on distinct workers of
    a process pool or of Ray).
    """
    each = getattr(executor, "submit_to_each", None)
    if callable(each):
        futures: list[Future[T]] = each(fn, *args)
        return futures
    return [executor.submit(fn, *args) for _ in range(executor_workers(executor))]


@overload
def split(items: range, parts: int) -> list[range]: ...
@overload
def split(items: Sequence[T], parts: int) -> list[Sequence[T]]: ...
def split(items: Sequence[T], parts: int) -> list[Sequence[T]] | list[range]:
    """Cut `items` into at most `parts` contiguous, nearly equal, non-empty chunks."""
    parts = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return out


@contextmanager
def foreground() -> Iterator[None]:
    """Mark a party as waiting on the executor (background work holds back)."""
    global _busy
    with _busy_cond:
        _busy += 1
    try:
        yield
    finally:
        with _busy_cond:
            _busy -= 1
            _busy_cond.notify_all()


def wait_until_idle(timeout: float | None = None) -> bool:
    """Block until no foreground work is running; False on timeout."""
    with _busy_cond:
        return _busy_cond.wait_for(lambda: _busy == 0, timeout=timeout)


def run_chunks(executor: Executor | None, fn: Callable[..., T],
               chunks: Sequence[Any], *args: Any) -> list[T]:
    """``[fn(*args, chunk) for chunk in chunks]``, on `executor` when given.

    Every chunk goes to the executor and the caller only waits: the
    caller's process holds the GIL for all parties of a simulation, so work
    kept there would serialise them.
    """
    if executor is None or len(chunks) == 0:
        return [fn(*args, chunk) for chunk in chunks]
    with foreground():
        futures: list[Future[T]] = [executor.submit(fn, *args, chunk) for chunk in chunks]
        try:
            return [f.result() for f in futures]
        finally:
            for f in futures:
                f.cancel()
