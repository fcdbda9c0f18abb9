"""Run every party of a federation as a thread of this process (notebooks, tests, ``vfl simulate``).

Each party runs its own code over its own endpoint of an
:class:`~vfl.protocol.channel.InProcessNetwork`; the threads share nothing
but the messages. A party that fails aborts its links, so the others stop at
once instead of waiting for their timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from vfl.errors import PeerAbortedError
from vfl.protocol.channel import Endpoint, InProcessNetwork

__all__ = ["run_parties"]


def run_parties(network: InProcessNetwork, tasks: Mapping[str, Callable[[Endpoint], Any]], *,
                prefer: str | None = None) -> dict[str, Any]:
    """Run ``tasks[name](endpoint)`` for each party in its own thread.

    The error raised is the root cause: one that is not a reaction to
    another party's abort, `prefer`'s if that party failed on its own,
    otherwise the earliest.

    Returns
    -------
    dict
        Each party's return value.
    """
    results: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}  # in the order they happened
    lock = threading.Lock()

    def work(name: str) -> None:
        endpoint = network.endpoint(name)
        try:
            results[name] = tasks[name](endpoint)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            with lock:
                errors[name] = exc
            endpoint.abort(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(name,), name=f"party-{name}", daemon=True)
               for name in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        own = {n: e for n, e in errors.items() if not isinstance(e, PeerAbortedError)}
        if prefer in own:
            raise own[prefer]
        raise next(iter((own or errors).values()))
    return results
