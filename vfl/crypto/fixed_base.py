"""Fixed-base windowed exponentiation: ``base^e mod N`` from a precomputed table.

For one base used with many exponents (the DJN obfuscator ``h_s^r``), write
e in base ``2^w``: ``e = sum_i d_i 2^(w i)``. With the table
``T[i][d] = base^(d * 2^(w i)) mod N`` the power is the product of one
table entry per non-zero digit, ``ceil(bits / w)`` multiplications and no
squarings, against about ``1.2 * bits`` multiplications for a generic
square-and-multiply. The table holds ``ceil(bits / w) * (2^w - 1)`` residues.

The window is the one knob: each extra bit saves ``1 - w / (w + 1)`` of the
multiplications (7 % at w = 13) and doubles the table. The engine chooses
it from the work a run will do (:mod:`vfl.crypto.table_plan`), within the
memory bound :func:`table_budget`; :func:`choose_window` gives the widest
window that bound allows (at 2048-bit keys w = 13, 79 multiplications per
power and ~360 MB; at 3072 bits w = 12, 128 multiplications and ~430 MB),
what the engine used for every run before tables were sized to the work.

When the exponent is a fresh random number, as it is for an obfuscator, its
digits are drawn directly (:meth:`FixedBaseTable.random_pows`): no big
integer to cut into windows.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable

import gmpy2
import numpy as np

__all__ = [
    "DEFAULT_WINDOW",
    "MAX_WINDOW",
    "TABLE_BUDGET_BYTES",
    "FixedBaseTable",
    "choose_window",
    "table_budget",
    "table_bytes",
]

#: Smallest window used; 8 makes digits whole bytes.
DEFAULT_WINDOW = 8

#: Largest window: random digits are drawn as 16-bit words.
MAX_WINDOW = 16

#: Upper bound of the memory one table may take in each process that holds
#: it (one per worker process).
TABLE_BUDGET_BYTES = 512 << 20

#: Bytes of an mpz object besides its digits (object header, allocation slack).
_ENTRY_OVERHEAD = 64

#: Most table entries per exponent bit: building the table costs one
#: multiplication per entry, i.e. at most as much as ~1000 w powers, so it
#: pays for itself within a few thousand encryptions; small (test) keys get
#: small tables.
_ENTRIES_PER_EXP_BIT = 1024


def table_budget(workers: int | None = None) -> int:
    """Bytes one table may take: ``TABLE_BUDGET_BYTES``, or less on small machines.

    Every worker process holds its own copy, so the tables of all `workers`
    (default: one per core) together stay below an eighth of the physical
    memory.
    """
    if workers is None:
        try:
            workers = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            workers = os.cpu_count() or 1
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - no sysconf
        return TABLE_BUDGET_BYTES
    return max(1 << 20, min(TABLE_BUDGET_BYTES, memory // (8 * max(1, workers))))


def table_bytes(exp_bits: int, modulus_bits: int, window: int) -> int:
    """Approximate memory of a table for these sizes."""
    entry = -(-modulus_bits // 64) * 8 + _ENTRY_OVERHEAD
    return -(-exp_bits // window) * ((1 << window) - 1) * entry


def choose_window(exp_bits: int, modulus_bits: int, budget: int | None = None) -> int:
    """Widest window in [8, 16] whose table fits in `budget` bytes (default :func:`table_budget`).

    Also bounded by the build cost (at most 1024 entries per exponent bit).
    With the default 512 MB: 13 at 2048-bit keys (1024-bit exponents,
    4096-bit modulus, 79 multiplications per power), 12 at 3072 bits.
    """
    if budget is None:
        budget = table_budget()
    best = DEFAULT_WINDOW
    for w in range(DEFAULT_WINDOW, MAX_WINDOW + 1):
        entries = -(-exp_bits // w) * ((1 << w) - 1)
        if (table_bytes(exp_bits, modulus_bits, w) <= budget
                and entries <= _ENTRIES_PER_EXP_BIT * exp_bits):
            best = w
    return best


class FixedBaseTable:
    """Precomputed powers of one base for exponents of bounded size.

    Parameters
    ----------
    base : int
        The fixed base, an element of Z*_N.
    modulus : int
        N.
    exp_bits : int
        Largest exponent size the table serves; larger exponents raise.
    window : int
        Digit width w in bits, 1 to 16.
    """

    def __init__(self, base: int, modulus: int, exp_bits: int,
                 window: int = DEFAULT_WINDOW) -> None:
        if exp_bits <= 0 or not 0 < window <= MAX_WINDOW:
            raise ValueError(f"exp_bits must be positive and window in [1, {MAX_WINDOW}]")
        self.modulus = gmpy2.mpz(modulus)
        self.base = gmpy2.mpz(base) % self.modulus
        self.exp_bits = exp_bits
        self.window = window
        self.rows = -(-exp_bits // window)
        # Bits of the last (most significant) digit: exponents stay below 2^exp_bits.
        self._top_mask = (1 << (exp_bits - window * (self.rows - 1))) - 1
        mod = self.modulus
        table: list[list[gmpy2.mpz]] = []
        b = self.base  # base^(2^(w i)) for the current row i
        for _ in range(self.rows):
            row = [gmpy2.mpz(1), b]
            for _ in range(2, 1 << window):
                row.append(row[-1] * b % mod)
            table.append(row)
            b = row[-1] * b % mod  # base^((2^w - 1 + 1) 2^(w i))
        self.table = table

    def _digits(self, e: int) -> Iterable[int]:
        if self.window == 8:
            # Bytes are base-256 digits, least significant first.
            return e.to_bytes(self.rows, "little")
        mask = (1 << self.window) - 1
        w = self.window
        return [(e >> (w * i)) & mask for i in range(self.rows)]

    def _product(self, digits: Iterable[int]) -> gmpy2.mpz:
        """``prod_i T[i][d_i] mod N`` (digits least significant first, already in range)."""
        mod = self.modulus
        acc = None
        for row, d in zip(self.table, digits):
            if d:
                acc = row[d] if acc is None else acc * row[d] % mod
        return gmpy2.mpz(1) if acc is None else acc

    def pow(self, e: int) -> gmpy2.mpz:
        """``base^e mod N`` for ``0 <= e < 2^exp_bits``."""
        e = int(e)
        if e < 0 or e.bit_length() > self.exp_bits:
            raise ValueError(f"exponent must be in [0, 2^{self.exp_bits})")
        return self._product(self._digits(e))

    def random_pows(self, count: int) -> list[gmpy2.mpz]:
        """`count` values ``base^r mod N``, r uniform in ``[0, 2^exp_bits)`` and secret.

        The digits of each r are drawn directly from the operating system's
        CSPRNG: one 16-bit word per digit, masked to w bits (the top digit
        to the bits left), so every digit, and hence r, is uniform.
        """
        if count <= 0:
            return []
        rows, table, mod = self.rows, self.table, self.modulus
        masks = np.full(rows, (1 << self.window) - 1, dtype=np.uint16)
        masks[-1] = self._top_mask
        words = np.frombuffer(secrets.token_bytes(2 * rows * count), dtype=np.uint16)
        out = []
        # Entry 0 of every row is 1, so a zero digit (probability 2^-w) needs no branch.
        first, rest = table[0], table[1:]
        for digits in (words.reshape(count, rows) & masks).tolist():
            acc = first[digits[0]]
            for row, d in zip(rest, digits[1:]):
                acc = acc * row[d] % mod
            out.append(acc)
        return out
