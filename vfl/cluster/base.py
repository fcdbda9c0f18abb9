"""What the Dask and Ray executors share: futures that end, one way or another.

A cluster executor is a ``concurrent.futures.Executor`` whose tasks run in
another machine's processes. Three things differ from a local pool, and
are handled here once:

* **failures of the cluster are not failures of the task**: a lost scheduler,
  a task that killed every worker it was tried on, an object that cannot be
  recovered. They reach the caller as :class:`~vfl.errors.ClusterError`
  naming the address, while an exception a kernel raised on purpose (a
  malformed point in an alignment, say) reaches it unchanged;
* **a cluster can be left without workers**, where its scheduler would wait
  for one forever: a watchdog fails every pending task once no worker has
  been seen for `lost_after` seconds;
* **its workers outlive the run**: :meth:`ClusterExecutor.close` makes each
  of them drop the fixed-base tables it built
  (:func:`vfl.crypto.workers.drop_caches`).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Executor, Future, InvalidStateError
from typing import Any, TypeVar

from vfl.cluster.setting import ExecutorSetting
from vfl.errors import ClusterError, ClusterUnreachableError

__all__ = ["CONNECT_TIMEOUT_S", "LOST_AFTER_S", "ClusterExecutor", "check_reachable"]

T = TypeVar("T")

#: Seconds to reach a cluster and see a worker in it before giving up.
CONNECT_TIMEOUT_S = 30.0

#: Seconds a cluster may have no worker, with tasks waiting, before they fail.
LOST_AFTER_S = 60.0

#: Seconds between the watchdog's looks at the cluster while tasks are pending.
_POLL_S = 1.0

#: Seconds a worker count stays valid (the engine asks at every operation).
_COUNT_TTL_S = 2.0


def check_reachable(setting: ExecutorSetting, timeout: float) -> None:
    """Open and close a TCP connection to the setting's host and port.

    The engines' own clients retry an unreachable address for a long time,
    or forever; this answers in at most `timeout` seconds.

    Raises
    ------
    ClusterUnreachableError
        Naming the setting and the reason (refused, unknown host, no answer).
    """
    assert setting.host is not None and setting.port is not None
    try:
        with socket.create_connection((setting.host, setting.port), timeout=timeout):
            pass
    except TimeoutError:
        raise ClusterUnreachableError(
            f"executor {setting}: no answer from {setting.host}:{setting.port} within "
            f"{timeout:g} s; check the address and that the {setting.engine} "
            f"{'scheduler' if setting.engine == 'dask' else 'head node'} is running "
            "and reachable from here") from None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ClusterUnreachableError(
            f"executor {setting}: cannot connect to {setting.host}:{setting.port} "
            f"({reason.lower()}); check the address and that the {setting.engine} "
            f"{'scheduler' if setting.engine == 'dask' else 'head node'} is running") from None


class ClusterExecutor(Executor):
    """Base of the cluster executors: error mapping, watchdog, worker count, close.

    Subclasses implement :meth:`_submit_task` (start one task, return a
    ``concurrent.futures.Future``), :meth:`_count_workers` (ask the cluster,
    raising if it cannot be asked), :meth:`_cluster_failure` (which
    exceptions are the cluster's) and :meth:`_close_cluster`.

    Parameters
    ----------
    setting : ExecutorSetting
    lost_after : float
        Seconds without any worker, while tasks wait, before those tasks
        fail with :class:`~vfl.errors.ClusterError`.
    """

    #: Tasks leave this party's processes: never give it a private key
    #: (:func:`vfl.crypto.executors.is_remote`).
    remote = True

    def __init__(self, setting: ExecutorSetting, *, lost_after: float = LOST_AFTER_S) -> None:
        self.setting = setting
        self.lost_after = lost_after
        self._lock = threading.Lock()
        self._pending: set[Future[Any]] = set()
        self._closed = False
        self._count = 0
        self._counted_at = -float("inf")
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.setting}>"

    # --- for subclasses ---------------------------------------------------------

    def _submit_task(self, fn: Callable[..., Any], args: tuple[Any, ...],
                     kwargs: dict[str, Any], worker: str | None) -> Future[Any]:
        """Start ``fn(*args, **kwargs)`` (on `worker` if given); its future."""
        raise NotImplementedError

    def _count_workers(self) -> int:
        """Tasks the cluster runs at once now; raises if the cluster cannot be asked."""
        raise NotImplementedError

    def _cluster_failure(self, exc: BaseException) -> str | None:
        """Why `exc` is the cluster's failure rather than the task's, or None."""
        raise NotImplementedError

    def _unwrap(self, exc: BaseException) -> BaseException:
        """The exception the kernel raised, from the engine's wrapper of it."""
        return exc

    def _close_cluster(self) -> None:
        """Drop the workers' caches and disconnect."""

    # --- the Executor interface --------------------------------------------------

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` on some worker of the cluster."""
        return self._submit(fn, args, kwargs, None)

    def _submit(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any],
                worker: str | None) -> Future[T]:
        if self._closed:
            raise RuntimeError(f"executor {self.setting} is closed")
        outer: Future[T] = Future()
        with self._lock:
            self._pending.add(outer)
        self._start_watchdog()
        try:
            inner = self._submit_task(fn, args, kwargs, worker)
        except BaseException as exc:
            with self._lock:
                self._pending.discard(outer)
            reason = self._cluster_failure(exc)
            if reason is None:
                raise
            raise ClusterError(f"executor {self.setting}: {reason}") from None

        def settle(done: Future[Any]) -> None:
            with self._lock:
                self._pending.discard(outer)
            if outer.done():  # cancelled by the caller, or failed by the watchdog
                return
            try:
                if done.cancelled():
                    raise CancelledError
                error = done.exception()
            except CancelledError:
                # Not by the caller (outer would be cancelled): by the cluster.
                self._fail(outer, "the cluster cancelled a task (its scheduler lost or "
                                  "restarted)")
                return
            if error is None:
                self._set(outer, done.result())
                return
            reason = self._cluster_failure(error)
            if reason is not None:
                self._fail(outer, reason)
            else:
                self._set_exception(outer, self._unwrap(error))

        def cancel_inner(done: Future[Any]) -> None:
            if done.cancelled():
                inner.cancel()

        outer.add_done_callback(cancel_inner)
        inner.add_done_callback(settle)
        return outer

    def worker_count(self) -> int:
        """Tasks the cluster runs at once (its worker threads or CPUs), at least 1.

        Sizes the engines' chunks; asked again after a couple of seconds, so
        that a cluster that grows or shrinks is followed.
        """
        now = time.monotonic()
        if now - self._counted_at > _COUNT_TTL_S:
            # A cluster that cannot be asked keeps its last count: the watchdog reports it.
            with contextlib.suppress(Exception):
                self._count = self._count_workers()
            self._counted_at = now
        return max(1, self._count)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Same as :meth:`close` (the ``concurrent.futures`` spelling)."""
        self.close()

    def close(self) -> None:
        """Fail what is still pending, drop the workers' tables, disconnect; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pending = list(self._pending)
        self._stop.set()
        for future in pending:
            future.cancel()
        self._close_cluster()

    # --- the watchdog -------------------------------------------------------------

    def _start_watchdog(self) -> None:
        if self._watchdog is None:
            with self._lock:
                if self._watchdog is None and not self._closed:
                    self._watchdog = threading.Thread(target=self._watch, daemon=True,
                                                      name=f"vfl-cluster-watch {self.setting}")
                    self._watchdog.start()

    def _watch(self) -> None:
        lost_since: float | None = None
        reason = ""
        while not self._stop.wait(_POLL_S):
            with self._lock:
                waiting = bool(self._pending)
            if not waiting:
                lost_since = None
                continue
            try:
                workers = self._count_workers()
                reason = "the cluster has no worker"
            except Exception as exc:  # noqa: BLE001 - any failure to ask counts as lost
                workers = 0
                reason = f"the cluster does not answer ({type(exc).__name__}: {exc})"
            if workers > 0:
                lost_since = None
                continue
            now = time.monotonic()
            lost_since = now if lost_since is None else lost_since
            if now - lost_since >= self.lost_after:
                with self._lock:
                    pending = list(self._pending)
                    self._pending.clear()
                for future in pending:
                    self._fail(future, f"{reason} for {self.lost_after:g} s")
                lost_since = None

    # --- settling futures once ----------------------------------------------------

    def _fail(self, future: Future[Any], reason: str) -> None:
        self._set_exception(future, ClusterError(
            f"executor {self.setting}: {reason}; the step was not completed and no partial "
            "result was used (a networked party restarted later resumes from its last "
            "checkpoint)"))

    @staticmethod
    def _set(future: Future[Any], value: Any) -> None:
        with contextlib.suppress(InvalidStateError):  # settled meanwhile (cancelled, watchdog)
            future.set_result(value)

    @staticmethod
    def _set_exception(future: Future[Any], exc: BaseException) -> None:
        with contextlib.suppress(InvalidStateError):
            future.set_exception(exc)
