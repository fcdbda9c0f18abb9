"""A party's heavy work on a Dask cluster: ``executor = "dask://HOST:PORT"``.

Built on ``distributed.Client(address).get_executor()``, Dask's own
``concurrent.futures`` executor, with two settings that matter:

* ``pure=False``: Dask otherwise names a task by a hash of its function and
  arguments and computes equal-looking tasks once. Two requests for 64
  fresh obfuscators are equal-looking; sharing one answer would reuse
  randomness across ciphertexts, which links them.
* no ``retries``: those re-run a task that *raised*, which for a kernel means
  the same error again. A task whose worker *dies* is rescheduled by the
  scheduler on another worker by itself, up to its ``allowed-failures``
  setting (3 by default); past that the task fails with ``KilledWorker``,
  reported as :class:`~vfl.errors.ClusterError`.

Workers should run one thread each (``dask worker --nthreads 1 --nworkers
N``): ``gmpy2`` holds the GIL, so threads of one worker process share one
core.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from typing import Any

from vfl.cluster.base import CONNECT_TIMEOUT_S, LOST_AFTER_S, ClusterExecutor, check_reachable
from vfl.cluster.setting import ExecutorSetting
from vfl.crypto.workers import drop_caches, kernel_version
from vfl.errors import ClusterError, ClusterUnreachableError, ConfigError

__all__ = ["DaskExecutor"]

#: Where Dask's client reports a lost scheduler: its own loggers, and tornado's and
#: asyncio's for its connections' failed reads (tracebacks, some when a task is
#: garbage-collected after the executor closed). Every logger under these names is
#: quieted, not just these: distributed's logging config gives some children their own
#: level and stderr handler (``tornado.application`` at ERROR, which prints tornado's
#: "Exception in callback" tracebacks), so a parent's level alone does not reach them.
_DASK_LOGGER_ROOTS = ("distributed", "tornado", "asyncio")


def _dask_loggers() -> list[logging.Logger]:
    """The loggers under :data:`_DASK_LOGGER_ROOTS` that exist now, the roots included."""
    names = set(_DASK_LOGGER_ROOTS)
    names.update(name for name in logging.root.manager.loggerDict
                 if name.split(".", 1)[0] in _DASK_LOGGER_ROOTS)
    return [logging.getLogger(name) for name in sorted(names)]


class DaskExecutor(ClusterExecutor):
    """The tasks of one run on a Dask cluster.

    Parameters
    ----------
    setting : ExecutorSetting
        A ``dask://HOST:PORT`` setting.
    connect_timeout : float
        Seconds to reach the scheduler and see a worker.
    lost_after : float
        Seconds without any worker, while tasks wait, before they fail.

    Raises
    ------
    ConfigError
        If ``distributed`` is not installed.
    ClusterUnreachableError
        If no scheduler answers, or it has no worker, within `connect_timeout`.
    ClusterError
        If a worker runs another release of vfl than this party.
    """

    def __init__(self, setting: ExecutorSetting, *, connect_timeout: float = CONNECT_TIMEOUT_S,
                 lost_after: float = LOST_AFTER_S) -> None:
        try:
            import distributed
        except ImportError:
            raise ConfigError(f"executor {setting} needs Dask: pip install 'vfl[dask]'") from None
        super().__init__(setting, lost_after=lost_after)
        self._distributed = distributed
        check_reachable(setting, connect_timeout)
        # Dask logs a lost scheduler as tracebacks on stderr; this party reports it as
        # one ClusterError line. Its loggers are quiet while this executor is open.
        self._log_levels = {logger: logger.level for logger in _dask_loggers()}
        for logger in self._log_levels:
            logger.setLevel(logging.CRITICAL)
        try:
            self._client = distributed.Client(setting.address, timeout=connect_timeout,
                                              set_as_default=False, name="vfl")
        except (OSError, TimeoutError) as exc:
            raise ClusterUnreachableError(f"executor {setting}: no Dask scheduler answers at "
                                          f"{setting.address} ({exc})") from None
        try:
            try:
                self._client.wait_for_workers(1, timeout=connect_timeout)
            except (OSError, TimeoutError):
                raise ClusterUnreachableError(
                    f"executor {setting}: the Dask scheduler has no worker after "
                    f"{connect_timeout:g} s; start some (dask worker {setting.address} "
                    "--nthreads 1 --nworkers N)") from None
            self._check_versions()
        except BaseException:
            self._client.close()
            self._restore_logging()
            raise
        self._inner = self._client.get_executor(pure=False)

    def _check_versions(self) -> None:
        ours = kernel_version()
        theirs = self._client.run(kernel_version, on_error="return")
        for worker, version in sorted(theirs.items()):
            if version != ours:
                found = (f"vfl {version}" if isinstance(version, str)
                         else f"no vfl ({type(version).__name__}: {version})")
                raise ClusterError(f"executor {self.setting}: worker {worker} has {found}; "
                                   f"this party runs vfl {ours}: install the same release on "
                                   "every worker")

    def _submit_task(self, fn: Callable[..., Any], args: tuple[Any, ...],
                     kwargs: dict[str, Any], worker: str | None) -> Future[Any]:
        self._check_connected()
        if worker is not None:
            # A placement wish, not a rule: a worker that left is replaced by any other.
            kwargs = {**kwargs, "workers": [worker], "allow_other_workers": True}
        future: Future[Any] = self._inner.submit(fn, *args, **kwargs)
        return future

    def submit_to_each(self, fn: Callable[..., Any], *args: Any) -> list[Future[Any]]:
        """``fn(*args)`` once on every worker (see :func:`vfl.crypto.executors.on_each_worker`)."""
        workers = sorted(self._client.nthreads())
        return [self._submit(fn, args, {}, worker) for worker in workers]

    def _count_workers(self) -> int:
        self._check_connected()
        return int(sum(self._client.nthreads().values()))

    def _check_connected(self) -> None:
        """Raise at once if the scheduler is gone, rather than wait for a reconnection.

        Dask cancels the pending tasks when its scheduler connection drops; a new
        request would wait for a reconnection for up to the connect timeout.
        """
        status = self._client.status
        if status != "running":
            raise ConnectionError(f"the Dask client is {status}: the scheduler went away")

    def _cluster_failure(self, exc: BaseException) -> str | None:
        distributed = self._distributed
        if isinstance(exc, distributed.KilledWorker):
            return ("a task's worker died on every try (the task may need more memory than a "
                    "worker has)")
        if isinstance(exc, CancelledError):
            return f"the cluster cancelled a task ({exc})"
        if isinstance(exc, distributed.comm.CommClosedError | OSError | TimeoutError):
            return f"lost the connection to the scheduler ({type(exc).__name__}: {exc})"
        return None

    def _close_cluster(self) -> None:
        # The workers stay up for other runs; the tables (hundreds of MB each) do not.
        # Without a scheduler there is no one to ask (and run() would wait for one).
        lost = self._client.status != "running"
        with contextlib.suppress(Exception):
            self._check_connected()
            self._client.run(drop_caches, on_error="ignore")
        try:
            self._inner.shutdown(wait=False)
            self._client.close(timeout=10)
        except Exception:  # noqa: BLE001 - closing a lost connection
            pass
        if not lost:
            # After a lost scheduler, the client's abandoned reads still report it as
            # tracebacks later on: the loggers stay quiet (ClusterError said it).
            self._restore_logging()

    def _restore_logging(self) -> None:
        for logger, level in self._log_levels.items():
            logger.setLevel(level)
