"""How big a fixed-base table a run should build: a cost model, not the memory size.

A table of window w for e-bit exponents has ``r = ceil(e / w)`` rows of
``2^w - 1`` entries. Building it costs one modular multiplication per entry;
each power it serves then costs ``r - 1`` multiplications instead of the
~e of a plain exponentiation. So the best window depends on how many powers
(encryptions and re-randomisations) the run will ask for:

    cost(w) = copies * r(w) * (2^w - 1)  +  powers * (r(w) - 1)

with `copies` the tables built (one per process that holds one). A one-epoch
run of 1,000 rows wants w = 8 or 9 (19-34 MB at 2048-bit keys); a demo of
twenty epochs w = 11 or 12; only runs of millions of powers want the
13-bit window (370 MB) that fills a memory budget. Below a few dozen
powers a plain exponentiation would be cheaper, but the smallest table
costs only a few exponentiations to build, so a table is always chosen.

:class:`TableSizer` applies the model as the work becomes known: a first
guess (the plan, when the caller can state it), and a larger window once
the powers actually served show that the run is bigger than guessed, so
the total cost stays within a small factor of the best fixed choice.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from vfl.crypto.fixed_base import MAX_WINDOW, table_budget, table_bytes

__all__ = ["MIN_WINDOW", "TableSizer", "WindowChoice", "best_window_for"]

#: Smallest window a table is built with (a 4-bit table of a 1024-bit exponent
#: costs 3,840 multiplications: a handful of plain exponentiations).
MIN_WINDOW = 4

@dataclass(frozen=True)
class WindowChoice:
    """A window and what the cost model expects of it.

    Attributes
    ----------
    window : int
        The table's window.
    multiplications : int
        Expected multiplications: building (every copy) plus serving the powers.
    table_bytes : int
        Memory of one copy of the table.
    """

    window: int
    multiplications: int
    table_bytes: int


def best_window_for(powers: int, exp_bits: int, modulus_bits: int, *, copies: int = 1,
                    budget: int | None = None) -> WindowChoice:
    """The window that minimises building plus serving `powers` powers.

    Parameters
    ----------
    powers : int
        Powers (encryptions, re-randomisations) the table will serve.
    exp_bits, modulus_bits : int
        Exponent size and modulus size (DJN at 2048 bits: 1024 and 4096).
    copies : int
        Tables built for this work (1 when one table serves every worker).
    budget : int, optional
        Bytes one table may take (default :func:`~vfl.crypto.fixed_base.table_budget`).
    """
    if powers < 0 or exp_bits <= 0 or modulus_bits <= 0 or copies < 1:
        raise ValueError("powers must be >= 0, sizes positive and copies >= 1")
    if budget is None:
        budget = table_budget()
    best: WindowChoice | None = None
    for window in range(MIN_WINDOW, MAX_WINDOW + 1):
        size = table_bytes(exp_bits, modulus_bits, window)
        if best is not None and size > budget:
            break
        rows = -(-exp_bits // window)
        cost = copies * rows * ((1 << window) - 1) + powers * (rows - 1)
        if best is None or cost < best.multiplications:
            best = WindowChoice(window, cost, size)
    assert best is not None
    return best


class TableSizer:
    """The window of one key's table through a run: a guess, then growth.

    Parameters
    ----------
    exp_bits, modulus_bits : int
    copies : int
        Tables built per window (see :func:`best_window_for`).
    budget : int, optional
        Bytes one table may take.
    expected : int
        Powers expected before anything is known (a small run).

    Notes
    -----
    The window only grows, and only when it pays twice over: the table in
    use is already paid for, so a larger one must save, on the powers still
    to come, at least twice what building it costs (a 5 % saving is not
    worth a table built while the parties work). :meth:`served` counts the
    powers actually made; once they exceed the plan, the run has shown it
    is bigger than planned and as many again are expected, so a table is
    rebuilt at most about log2 of the run's size times.
    """

    def __init__(self, exp_bits: int, modulus_bits: int, *, copies: int = 1,
                 budget: int | None = None, expected: int = 2_000) -> None:
        self.exp_bits = exp_bits
        self.modulus_bits = modulus_bits
        self.copies = copies
        self.budget = table_budget() if budget is None else budget
        self._lock = threading.Lock()
        self._served = 0
        self._planned = 0
        self._choice = self._choose(expected)

    def _choose(self, powers: int) -> WindowChoice:
        self._planned = max(self._planned, powers)
        return best_window_for(self._planned, self.exp_bits, self.modulus_bits,
                               copies=self.copies, budget=self.budget)

    def _consider(self, remaining: int) -> None:
        """Switch to the best window for `remaining` more powers if it pays twice over."""
        choice = best_window_for(remaining, self.exp_bits, self.modulus_bits,
                                 copies=self.copies, budget=self.budget)
        if choice.window <= self.window:
            return
        rows_now = -(-self.exp_bits // self.window)
        rows_new = -(-self.exp_bits // choice.window)
        build = self.copies * rows_new * ((1 << choice.window) - 1)
        if remaining * (rows_now - rows_new) >= 2 * build:
            self._choice = choice

    @property
    def window(self) -> int:
        """The window tables are built with now."""
        return self._choice.window

    @property
    def choice(self) -> WindowChoice:
        return self._choice

    @property
    def planned(self) -> int:
        """Powers the current window was chosen for."""
        return self._planned

    def expect(self, powers: int) -> int:
        """Say the run will make `powers` more powers (from its plan); the window after."""
        if powers < 0:
            raise ValueError(f"powers must be >= 0, got {powers}")
        with self._lock:
            self._planned = max(self._planned, self._served + powers)
            self._consider(powers)
            return self.window

    def served(self, count: int) -> int:
        """Count `count` powers made; the window to use from now on (maybe larger)."""
        with self._lock:
            self._served += count
            if self._served > self._planned:
                self._planned = 2 * self._served
                self._consider(self._served)
            return self.window
