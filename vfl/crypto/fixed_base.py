"""Fixed-base windowed exponentiation: ``base^e mod N`` from a precomputed table.

For one base used with many exponents (the DJN obfuscator ``h_s^r``), write
e in base ``2^w``: ``e = sum_i d_i 2^(w i)``. With the table
``T[i][d] = base^(d * 2^(w i)) mod N`` the power is the product of one
table entry per non-zero digit, ``ceil(bits / w)`` multiplications and no
squarings, against about ``1.2 * bits`` multiplications for a generic
square-and-multiply. The table holds ``ceil(bits / w) * (2^w - 1)`` residues
(17 MB for 1024-bit exponents mod a 4096-bit N at w = 8).
"""

from __future__ import annotations

from collections.abc import Iterable

import gmpy2

__all__ = ["DEFAULT_WINDOW", "TABLE_BUDGET_BYTES", "FixedBaseTable", "choose_window"]

#: Smallest window used; 8 makes digits whole bytes (fast digit extraction).
DEFAULT_WINDOW = 8

#: Memory one table may take in each process that holds it. Each extra bit
#: of window saves ~8 % of the multiplications and doubles the table.
TABLE_BUDGET_BYTES = 128 << 20


def choose_window(exp_bits: int, modulus_bits: int, budget: int = TABLE_BUDGET_BYTES) -> int:
    """Widest window in [8, 12] whose table fits in `budget` bytes.

    At 2048-bit keys (1024-bit exponents, 4096-bit modulus) that is 11:
    94 multiplications per power, ~110 MB; at 3072 bits, 10.
    """
    entry = modulus_bits // 8 + 48  # digits plus the Python object header
    best = DEFAULT_WINDOW
    for w in range(DEFAULT_WINDOW, 13):
        if -(-exp_bits // w) * ((1 << w) - 1) * entry <= budget:
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
        Digit width w in bits.
    """

    def __init__(self, base: int, modulus: int, exp_bits: int,
                 window: int = DEFAULT_WINDOW) -> None:
        if exp_bits <= 0 or window <= 0:
            raise ValueError("exp_bits and window must be positive")
        self.modulus = gmpy2.mpz(modulus)
        self.base = gmpy2.mpz(base) % self.modulus
        self.exp_bits = exp_bits
        self.window = window
        self.rows = -(-exp_bits // window)
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

    def pow(self, e: int) -> gmpy2.mpz:
        """``base^e mod N`` for ``0 <= e < 2^exp_bits``."""
        e = int(e)
        if e < 0 or e.bit_length() > self.exp_bits:
            raise ValueError(f"exponent must be in [0, 2^{self.exp_bits})")
        mod = self.modulus
        acc = None
        for row, d in zip(self.table, self._digits(e)):
            if d:
                acc = row[d] if acc is None else acc * row[d] % mod
        return gmpy2.mpz(1) if acc is None else acc
