"""One fixed-base table per key for all the worker processes of a party.

A table of window w holds ``rows * 2^w`` residues mod n^2 (each 512 bytes at
2048-bit keys). Held as Python integers it lives in one process, so a pool
of W workers would build and hold W copies. Here the table lives in one
shared-memory segment instead: the engine (in the party's own process)
creates the segment, the workers fill it together (each a range of rows,
the rows being independent) and read entries from it, converting the few
an obfuscator needs into integers as they go (about 0.7 microseconds each
against about 4.5 for the multiplication that uses it).

Layout: entry d of row i (``base^(d * 2^(w i)) mod N``, little-endian,
``width`` bytes) starts at byte ``(i * 2^w + d) * width``; a header byte
after the entries turns to 1 once every row is written.

The segment belongs to the process that created it (:class:`SharedTable`),
which unlinks it when the run ends; its resource tracker unlinks it if that
process dies without doing so. Workers only attach (:func:`attached`).
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from multiprocessing import shared_memory

import gmpy2
import numpy as np
from gmpy2 import mpz

from vfl.crypto.fixed_base import MAX_WINDOW

__all__ = ["SharedSource", "SharedTable", "TableLayout", "attached", "detach_all", "fill_rows",
           "pows", "random_pows"]


@dataclass(frozen=True)
class TableLayout:
    """Where each entry of a shared table sits.

    Parameters
    ----------
    base : int
        The fixed base, an element of Z*_N.
    modulus : int
        N.
    exp_bits : int
        Largest exponent size served.
    window : int
        Digit width w, 1 to 16.
    name : str
        The shared-memory segment's name.
    """

    base: int
    modulus: int
    exp_bits: int
    window: int
    name: str

    def __post_init__(self) -> None:
        if self.exp_bits <= 0 or not 0 < self.window <= MAX_WINDOW:
            raise ValueError(f"exp_bits must be positive and window in [1, {MAX_WINDOW}]")

    @property
    def rows(self) -> int:
        return -(-self.exp_bits // self.window)

    @property
    def width(self) -> int:
        """Bytes of one entry."""
        return (int(self.modulus).bit_length() + 7) // 8

    @property
    def entries_bytes(self) -> int:
        return self.rows * (1 << self.window) * self.width

    @property
    def size(self) -> int:
        """Bytes of the segment: the entries and the ready byte."""
        return self.entries_bytes + 1


@dataclass(frozen=True)
class SharedSource:
    """What a worker needs to make DJN obfuscators from a filled shared table.

    Attributes
    ----------
    n : int
        The Paillier modulus.
    layout : TableLayout
        The table of h_s mod n^2.
    """

    n: int
    layout: TableLayout


class SharedTable:
    """The segment of one table, owned by the process that made it.

    Parameters
    ----------
    base, modulus, exp_bits, window
        As :class:`TableLayout`.
    """

    def __init__(self, base: int, modulus: int, exp_bits: int, window: int) -> None:
        probe = TableLayout(base, modulus, exp_bits, window, "")
        self._segment: shared_memory.SharedMemory | None = shared_memory.SharedMemory(
            create=True, size=probe.size)
        self.layout = TableLayout(base, modulus, exp_bits, window,
                                  self._segment.name.lstrip("/"))

    @property
    def _buffer(self) -> memoryview:
        if self._segment is None or self._segment.buf is None:
            raise RuntimeError(f"shared table {self.layout.name} is closed")
        return self._segment.buf

    def row_ranges(self, parts: int) -> list[range]:
        """The rows cut into at most `parts` ranges, one per filling task."""
        rows = self.layout.rows
        parts = max(1, min(parts, rows))
        bounds = [rows * k // parts for k in range(parts + 1)]
        return [range(a, b) for a, b in itertools.pairwise(bounds) if b > a]

    def mark_ready(self) -> None:
        """Record that every row is written (after all filling tasks returned)."""
        self._buffer[self.layout.entries_bytes] = 1

    def close(self) -> None:
        """Unlink the segment; workers that still map it keep it until they let go."""
        segment, self._segment = self._segment, None
        if segment is None:
            return
        segment.close()
        with contextlib.suppress(FileNotFoundError):  # already gone
            segment.unlink()

    def __del__(self) -> None:  # pragma: no cover - a safety net; close() is the rule
        if getattr(self, "_segment", None) is not None:
            self.close()


# --- the worker side ------------------------------------------------------------------

# Segments this process maps, by name; a few at most (a party's key, maybe a
# smaller table still in use while a larger one is filled).
_MAX_ATTACHED = 2
_attached: OrderedDict[str, shared_memory.SharedMemory] = OrderedDict()
_attached_lock = threading.Lock()


def attached(layout: TableLayout) -> memoryview:
    """The entries of the segment `layout` names, mapped into this process once."""
    with _attached_lock:
        segment = _attached.get(layout.name)
        if segment is None:
            while len(_attached) >= _MAX_ATTACHED:
                _attached.popitem(last=False)[1].close()
            segment = shared_memory.SharedMemory(name=layout.name)
            _attached[layout.name] = segment
        else:
            _attached.move_to_end(layout.name)
        buf = segment.buf
    assert buf is not None
    return buf[:layout.size]


def detach_all() -> int:
    """Unmap every segment this process maps; how many."""
    with _attached_lock:
        count = len(_attached)
        while _attached:
            _attached.popitem()[1].close()
        return count


def fill_rows(layout: TableLayout, rows: range) -> int:
    """Write rows `rows` of the table (a worker task); the number written.

    Row i holds ``b_i^d`` for ``b_i = base^(2^(w i))``: one exponentiation to
    start the row, then one multiplication per entry.
    """
    view = attached(layout)
    mod = mpz(layout.modulus)
    w, width = layout.window, layout.width
    for i in rows:
        b = gmpy2.powmod(mpz(layout.base), mpz(1) << (w * i), mod)
        value = mpz(1)
        start = i * (1 << w) * width
        for d in range(1 << w):
            view[start + d * width:start + (d + 1) * width] = int(value).to_bytes(width, "little")
            value = value * b % mod
    return len(rows)


def random_pows(layout: TableLayout, count: int) -> list[mpz]:
    """`count` values ``base^r mod N``, r uniform in ``[0, 2^exp_bits)`` and secret.

    The digits of each r come straight from the operating system's CSPRNG
    (16-bit words masked to w bits, the top digit to the bits left), as in
    :meth:`vfl.crypto.fixed_base.FixedBaseTable.random_pows`.

    Raises
    ------
    RuntimeError
        If the table is not completely written yet.
    """
    if count <= 0:
        return []
    rows, w = layout.rows, layout.window
    masks = np.full(rows, (1 << w) - 1, dtype=np.uint16)
    masks[-1] = (1 << (layout.exp_bits - w * (rows - 1))) - 1
    words = np.frombuffer(secrets.token_bytes(2 * rows * count), dtype=np.uint16)
    return _products(layout, (words.reshape(count, rows) & masks).astype(np.int64))


def pows(layout: TableLayout, exponents: list[int]) -> list[mpz]:
    """``base^e mod N`` for given exponents ``0 <= e < 2^exp_bits`` (checks, tests)."""
    w, rows = layout.window, layout.rows
    if any(e < 0 or int(e).bit_length() > layout.exp_bits for e in exponents):
        raise ValueError(f"exponents must be in [0, 2^{layout.exp_bits})")
    digits = np.array([[(int(e) >> (w * i)) & ((1 << w) - 1) for i in range(rows)]
                       for e in exponents], dtype=np.int64).reshape(len(exponents), rows)
    return _products(layout, digits)


def _products(layout: TableLayout, digits: np.ndarray) -> list[mpz]:
    """``prod_i T[i][digits[k, i]] mod N`` for every row k of `digits`."""
    view = attached(layout)
    if view[layout.entries_bytes] != 1:
        raise RuntimeError(f"shared table {layout.name} is not filled yet")
    w, width = layout.window, layout.width
    mod = mpz(layout.modulus)
    # Byte offset of entry (i, d) is (i * 2^w + d) * width.
    offsets = (np.arange(layout.rows, dtype=np.int64) << w) * width
    starts = digits * width + offsets
    read = mpz.from_bytes
    out = []
    for row in starts.tolist():
        first = row[0]
        acc = read(view[first:first + width], "little")
        for at in row[1:]:
            acc = acc * read(view[at:at + width], "little") % mod
        out.append(acc)
    return out
