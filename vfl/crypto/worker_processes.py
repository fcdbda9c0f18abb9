"""Worker processes that never run the user's main module.

Python's ``forkserver`` and ``spawn`` start methods import the parent's
``__main__`` again in every child (as ``__mp_main__``), so that functions
defined there can be unpickled. A notebook example copied into a ``.py``
file without ``if __name__ == "__main__":`` then trains again inside every
worker, which starts workers of its own, and the parent sees
``BrokenProcessPool``. The engine's workers only ever run the kernels of
:mod:`vfl.crypto.workers`, so they have no use for the main module: the
processes of :func:`kernel_context` are launched without it.

How: :func:`multiprocessing.spawn.get_preparation_data` (what a child is
told to import before it runs) is wrapped once, and drops the main-module
entries only while this module launches one of its own processes, flagged
per thread; every other process of the program is launched as before.
"""

from __future__ import annotations

import multiprocessing
import threading
from multiprocessing import context, spawn
from typing import Any

__all__ = ["kernel_context"]

_MAIN_ENTRIES = ("init_main_from_path", "init_main_from_name")

_launching = threading.local()
_original_preparation_data = spawn.get_preparation_data


def _preparation_data(name: str) -> dict[str, Any]:
    data: dict[str, Any] = _original_preparation_data(name)
    if getattr(_launching, "active", False):
        for key in _MAIN_ENTRIES:
            data.pop(key, None)
    return data


_install_lock = threading.Lock()


def _install() -> None:
    with _install_lock:
        if spawn.get_preparation_data is not _preparation_data:
            spawn.get_preparation_data = _preparation_data


class _KernelProcess(context.ForkServerProcess):
    """A forkserver process started without the parent's main module."""

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        _install()
        _launching.active = True
        try:
            # Also covers the fork server's own start, which this call may trigger.
            return context.ForkServerProcess._Popen(process_obj)
        finally:
            _launching.active = False


class _KernelContext(context.ForkServerContext):
    Process = _KernelProcess


def kernel_context() -> context.BaseContext:
    """A ``forkserver`` context whose processes never import ``__main__``.

    Raises
    ------
    ValueError
        Where the platform has no fork server (the caller falls back to ``spawn``).
    """
    multiprocessing.get_context("forkserver")  # raises ValueError where there is none
    return _KernelContext()
