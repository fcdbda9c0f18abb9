"""A party's heavy work on a Ray cluster: ``executor = "ray://HOST:PORT"`` or ``"ray:auto"``.

Ray has no ``concurrent.futures`` executor of its own; this one runs each
task as a Ray task (``num_cpus=1``: one task per CPU, since ``gmpy2`` holds
the GIL) and hands back the ``concurrent.futures.Future`` of its object
reference. Ray keeps a job's worker processes for the job's length, so a
fixed-base table built by one task serves every later task on that
process. A task whose worker process or node dies is run again elsewhere
(``max_retries``); an exception the kernel raised is not retried, and
reaches the caller as itself, not wrapped.

``ray:auto`` joins the cluster this machine belongs to (``ray start``). If
this process is already connected to Ray (a notebook's own ``ray.init``),
that connection is used whatever the address, and left open at the end;
the workers are then asked to drop their tables (one call per CPU, each
holding its worker a moment so that the calls spread), rather than ended
with the job as they are when the run made the connection itself.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from vfl.cluster.base import CONNECT_TIMEOUT_S, LOST_AFTER_S, ClusterExecutor, check_reachable
from vfl.cluster.setting import ExecutorSetting
from vfl.crypto.workers import drop_caches, kernel_version
from vfl.errors import ClusterError, ClusterUnreachableError, ConfigError

__all__ = ["RETRIES", "RayExecutor"]

#: Times a task is run again after its worker process or node died.
RETRIES = 3

#: Seconds each end-of-run cache drop holds its worker (see ``_close_cluster``).
_DROP_HOLD_S = 0.3


def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The one Ray task: any kernel, by reference (workers import it)."""
    return fn(*args, **kwargs)


class RayExecutor(ClusterExecutor):
    """The tasks of one run on a Ray cluster.

    Parameters
    ----------
    setting : ExecutorSetting
        A ``ray://HOST:PORT`` or ``ray:auto`` setting.
    connect_timeout : float
        Seconds to reach the cluster and run a first task.
    lost_after : float
        Seconds without any CPU in the cluster, while tasks wait, before they fail.
    retries : int
        Times a task is run again after its worker died.

    Raises
    ------
    ConfigError
        If ``ray`` is not installed.
    ClusterUnreachableError
        If the cluster cannot be reached, or runs no task, within `connect_timeout`.
    ClusterError
        If its workers run another release of vfl than this party.
    """

    def __init__(self, setting: ExecutorSetting, *, connect_timeout: float = CONNECT_TIMEOUT_S,
                 lost_after: float = LOST_AFTER_S, retries: int = RETRIES) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError(f"executor {setting} needs Ray: pip install 'vfl[ray]'") from None
        super().__init__(setting, lost_after=lost_after)
        self._ray = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            self._connect(connect_timeout)
        try:
            self._remote = ray.remote(num_cpus=1, max_retries=retries,
                                      retry_exceptions=False)(_call)
            self._check_version(connect_timeout)
        except BaseException:
            if self._owns:
                ray.shutdown()
            raise

    def _connect(self, timeout: float) -> None:
        ray, setting = self._ray, self.setting
        if setting.host is not None:
            check_reachable(setting, timeout)
        try:
            with warnings.catch_warnings():
                # Ray's start-up tips are not this party's warnings.
                warnings.simplefilter("ignore")
                ray.init(address=setting.address, log_to_driver=False,
                         logging_level=logging.WARNING)
        except (ConnectionError, TimeoutError, OSError, RuntimeError) as exc:
            where = ("no Ray cluster runs on this machine (start one: ray start --head)"
                     if setting.host is None else f"cannot join the Ray cluster at "
                     f"{setting.address}")
            raise ClusterUnreachableError(f"executor {setting}: {where} "
                                          f"({type(exc).__name__}: {exc})".replace("\n", " ")
                                          ) from None

    def _check_version(self, timeout: float) -> None:
        ray, ours = self._ray, kernel_version()
        try:
            theirs = ray.get(self._remote.remote(kernel_version, (), {}), timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            raise ClusterUnreachableError(
                f"executor {self.setting}: the Ray cluster ran no task within {timeout:g} s "
                "(no free CPU?)") from None
        except ray.exceptions.RayTaskError as exc:
            raise ClusterError(f"executor {self.setting}: a Ray worker cannot run vfl's "
                               f"kernels ({exc.cause!r}); install vfl {ours} on every node"
                               ) from None
        if theirs != ours:
            raise ClusterError(f"executor {self.setting}: the Ray workers have vfl {theirs}; "
                               f"this party runs vfl {ours}: install the same release on "
                               "every node")

    def _submit_task(self, fn: Callable[..., Any], args: tuple[Any, ...],
                     kwargs: dict[str, Any], worker: str | None) -> Future[Any]:
        future: Future[Any] = self._remote.remote(fn, args, kwargs).future()
        return future

    def _count_workers(self) -> int:
        return int(self._ray.cluster_resources().get("CPU", 0))

    def _cluster_failure(self, exc: BaseException) -> str | None:
        exceptions = self._ray.exceptions
        if isinstance(exc, exceptions.RayTaskError):
            return None
        if isinstance(exc, exceptions.RayError):
            return (f"a task failed on every worker it was tried on ({type(exc).__name__}: "
                    f"{exc})").replace("\n", " ")
        if isinstance(exc, ConnectionError | OSError | TimeoutError):
            return f"lost the connection to the cluster ({type(exc).__name__}: {exc})"
        return None

    def _unwrap(self, exc: BaseException) -> BaseException:
        cause = getattr(exc, "cause", None)
        if isinstance(exc, self._ray.exceptions.RayTaskError) and isinstance(cause,
                                                                             BaseException):
            return cause
        return exc

    def _close_cluster(self) -> None:
        ray = self._ray
        if self._owns:
            # Ending the job ends its worker processes, and their tables with them.
            ray.shutdown()
            return
        # A connection the caller keeps (its workers outlive the run): one call per
        # CPU, each holding its worker a moment, so that every idle worker gets one.
        with contextlib.suppress(Exception):  # best effort on a cluster we do not own
            count = max(1, self._count_workers())
            ray.get([self._remote.remote(drop_caches, (_DROP_HOLD_S,), {})
                     for _ in range(count)], timeout=10)
