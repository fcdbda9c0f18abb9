"""Helpers for alignment tests: run two or more parties as threads over one network."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from vfl.errors import PeerAbortedError
from vfl.protocol.channel import InProcessNetwork


def run_parties(network: InProcessNetwork, tasks: dict[str, Callable[[Any], Any]],
                timeout: float = 60.0) -> dict[str, Any]:
    """Run ``tasks[name](endpoint)`` for each party in its own thread.

    Returns each party's result; re-raises the first party's exception (a
    failing party aborts, so its peers stop waiting).
    """
    results: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}

    def work(name: str) -> None:
        endpoint = network.endpoint(name)
        try:
            results[name] = tasks[name](endpoint)
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            errors[name] = exc
            endpoint.abort(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(name,), name=f"party-{name}", daemon=True)
               for name in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a party hung"
    if errors:
        # The party that failed first is the one whose error is not a PeerAbortedError.
        first = [e for e in errors.values() if not isinstance(e, PeerAbortedError)]
        raise (first or list(errors.values()))[0]
    return results


@pytest.fixture
def run_all() -> Callable[..., dict[str, Any]]:
    """:func:`run_parties` as a fixture."""
    return run_parties


@pytest.fixture
def pair() -> Callable[..., tuple[Any, Any]]:
    """``pair(a_ids, b_ids, method_a, method_b=None)`` -> (A's result, B's result)."""

    def run(a_ids, b_ids, method_a, method_b=None, *, network=None):
        network = network or InProcessNetwork(["A", "B"], "psi-test")
        method_b = method_b or method_a
        out = run_parties(network, {
            "A": lambda ep: method_a.run(a_ids, ep, "B", leader=False),
            "B": lambda ep: method_b.run(b_ids, ep, "A", leader=True),
        })
        return out["A"], out["B"]

    return run
