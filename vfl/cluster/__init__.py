"""A party's heavy work on its own Dask or Ray cluster: the ``executor`` setting.

One setting says where a party's heavy public work runs: Paillier
encryption and re-randomisation, ``X^T [[d]]`` and the other ciphertext
arithmetic of the fast engine, the hashing and blinding of an ``ecdh``
alignment. ``"local"`` (the default) is the party's own process pool;
``"dask://HOST:PORT"``, ``"ray://HOST:PORT"`` and ``"ray:auto"`` a cluster the
party operates (see ``docs/cluster.md``). Decryption never leaves the key
holder's own processes.

>>> with compute_on("dask://10.0.0.5:8786"):                # doctest: +SKIP
...     model.fit([label_holder, feature_holder])

:func:`compute_on` opens the cluster, installs it for this process
(:func:`vfl.crypto.executors.use_executor`) and, at the end, has every worker
drop the tables it built and disconnects. The ``vfl`` commands, ``vfl party``
(``[compute] executor``) and the estimators (``executor=``) call it for you.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager

from vfl.cluster.base import CONNECT_TIMEOUT_S, LOST_AFTER_S, ClusterExecutor
from vfl.cluster.setting import LOCAL, ExecutorSetting, executor_problem, parse_executor
from vfl.crypto.executors import use_executor

__all__ = [
    "CONNECT_TIMEOUT_S",
    "LOCAL",
    "LOST_AFTER_S",
    "ClusterExecutor",
    "ExecutorSetting",
    "compute_on",
    "executor_problem",
    "open_executor",
    "parse_executor",
]


def open_executor(setting: str | ExecutorSetting, *,
                  connect_timeout: float = CONNECT_TIMEOUT_S,
                  lost_after: float = LOST_AFTER_S) -> ClusterExecutor | None:
    """Connect to the cluster `setting` names; None for ``"local"``.

    The caller closes it (:meth:`ClusterExecutor.close`), or uses
    :func:`compute_on`, which does.

    Raises
    ------
    ConfigError
        If the setting is malformed, or names an engine that is not installed.
    ClusterUnreachableError
        If the cluster does not answer, or has no worker, within `connect_timeout`.
    """
    parsed = setting if isinstance(setting, ExecutorSetting) else parse_executor(setting)
    if parsed.is_local:
        return None
    if parsed.engine == "dask":
        from vfl.cluster.dask_executor import DaskExecutor

        return DaskExecutor(parsed, connect_timeout=connect_timeout, lost_after=lost_after)
    from vfl.cluster.ray_executor import RayExecutor

    return RayExecutor(parsed, connect_timeout=connect_timeout, lost_after=lost_after)


@contextmanager
def compute_on(executor: str | ExecutorSetting | Executor | None = LOCAL, *,
               connect_timeout: float = CONNECT_TIMEOUT_S,
               lost_after: float = LOST_AFTER_S) -> Iterator[Executor | None]:
    """Run this process's heavy public work on `executor` inside the block.

    Parameters
    ----------
    executor : str, ExecutorSetting, concurrent.futures.Executor or None
        An ``executor`` setting (``"local"`` or None: nothing changes), or an
        executor object, used as it is and not closed at the end.
    connect_timeout, lost_after : float
        See :func:`open_executor`.

    Yields
    ------
    concurrent.futures.Executor or None
        The executor in use (None: the local pool).
    """
    if executor is None or isinstance(executor, Executor):
        if executor is None:
            yield None
            return
        with use_executor(executor):
            yield executor
        return
    cluster = open_executor(executor, connect_timeout=connect_timeout, lost_after=lost_after)
    if cluster is None:
        yield None
        return
    try:
        with use_executor(cluster):
            yield cluster
    finally:
        cluster.close()
