"""Helpers for alignment tests: run two or more parties as threads over one network."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from vfl.protocol.channel import InProcessNetwork
from vfl.runtime.inprocess import run_parties


@pytest.fixture
def run_all() -> Callable[..., dict[str, Any]]:
    """:func:`vfl.runtime.inprocess.run_parties` (every party a thread) as a fixture."""
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
