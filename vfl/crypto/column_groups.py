"""[[X^T d]] for many columns at once: bit patterns of column groups over shared bases.

Every column j of the gradient is ``prod_i c_i^(X_ij) mod n^2`` over the
same m ciphertexts ``c_i = [[d_i]]``. The per-column bucket method
(:mod:`vfl.crypto.multiexp`) cannot share anything between columns but the
inverses, and costs about ``b / log2(m)`` multiplications per product for
b-bit scalars, ~2.5 to 3.5 at m in the thousands. This module shares the
work between columns:

1. **Windows.** Each column is shifted to non-negative scalars of few
   bits, ``X_ij = lo_j + s_ij (+ e_ij)`` with ``0 <= s_ij < 2^(W_j)``: the
   window ``[lo_j, lo_j + 2^(W_j))`` holds the column's values, all of them
   or all but a few at its ends (:func:`column_windows`: a value beyond it,
   ``e_ij != 0``, costs one exponentiation, and each bit less of window
   saves a bit-level of the column). The shift comes back as one factor
   ``P^(lo_j)``, ``P = prod_i c_i``, computed once for all columns (P and
   its inverse), one short exponentiation per column.
2. **Shifted bases.** ``B_(k,i) = c_i^(2^k)`` for every bit k below the
   widest window: ``m (W - 1)`` squarings, shared by every column.
3. **Patterns.** Columns go in groups of nearly equal sizes, at most g. For
   each base ``B_(k,i)`` the bits ``k`` of ``s_ij`` (j in the group) form a
   pattern p in ``[0, 2^g)``; the base is multiplied into bucket p: one
   multiplication serves g products at once.
4. **Combining.** Column j of the group is the product of the buckets whose
   pattern has bit j set. All g of them cost ``2 * 2^g`` multiplications
   (split the patterns on their top bit: the upper half's product is that
   column's result, then fold the upper half onto the lower and repeat).

Per product this costs about ``W / g + 2^(g+1) / (m g)`` multiplications,
plus ``(W - 1) / d`` for the shifted bases: the width W of the scalars, not
the number of rows, sets the cost, and g grows with the rows (about
``log2(m W) - 4``). On one of two workers' share of FATE's host (150
columns) with the data at 12 fractional bits (:mod:`vfl.crypto.encoding`;
standardised columns need 15 bits with their windows), it counts 1.50
multiplications per product at m = 3,000 rows (g = 12) and 1.25 at m =
20,000 (g = 14), against 2.08 and 1.74 with the data at 18 bits and no
windows, and 3.3 for the per-column bucket method at 22 bits. :func:`grouped_cost` counts it and
:func:`matvec` runs whichever method counts fewer multiplications. The
combining step is what keeps g near ``log2(m W) - 4``: its ``2 * 2^g``
multiplications (each bucket goes once into a column's product and once
into the fold for the other columns) grow faster with g than the filling
shrinks.

Memory: the shifted bases of at most :data:`MAX_SHIFTED_BASES` values at a
time (rows are taken in blocks beyond that) and the buckets of every group,
at most :data:`MAX_BUCKETS` values (kept across the blocks, combined once).
"""

from __future__ import annotations

from collections.abc import Sequence

import gmpy2
import numpy as np
from gmpy2 import mpz

from vfl.crypto.multiexp import matvec_columns, matvec_cost, signed_residue

__all__ = [
    "MAX_SHIFTED_BASES",
    "as_scalar_matrix",
    "best_group",
    "column_windows",
    "grouped_cost",
    "grouped_matvec",
    "magnitude_bits",
    "matvec",
    "matvec_best_cost",
    "shifted_bits",
    "use_method",
]

#: The method :meth:`~vfl.crypto.fast_engine.FastEngine.matvec_t` asks for:
#: "auto", or "columns" to run the per-column kernel it replaced (for
#: benchmarks side by side; :func:`use_method`).
default_method = "auto"
#: Most shifted bases held at once (~70 MB at 2048-bit keys); more rows are
#: taken in blocks.
MAX_SHIFTED_BASES = 1 << 17
#: Most buckets held at once, all groups together (~135 MB at 2048-bit keys).
MAX_BUCKETS = 1 << 18
#: Widest column group: 2^g buckets (2^20: ~0.5 GB at 2048-bit keys).
_MAX_GROUP = 20
#: Scalars are handled in int64 with a shift of up to 2^63: magnitudes below this.
_MAX_SCALAR = 1 << 61
#: One exponentiation with a b-bit exponent, in multiplications (inside GMP,
#: whose multiplications cost less than one made from Python).
_POWMOD_PER_BIT = 1.2
#: A squaring ``b * b % N``, in multiplications (measured: 0.85 to 0.94).
_SQUARING = 0.9
#: One modular inversion mod n^2, in multiplications (measured: ~7).
_INVERSION = 8


def as_scalar_matrix(rows: Sequence[Sequence[int]] | np.ndarray, n: int) -> np.ndarray | None:
    """The matrix as int64 signed scalars (residues mod n read as signed), or None.

    None when some scalar's smallest-magnitude representative mod n is
    2^61 or more: such a matrix goes to the per-column bucket method.
    """
    if isinstance(rows, np.ndarray) and rows.dtype == np.int64:
        matrix = rows
    else:
        try:
            matrix = np.array(rows, dtype=np.int64)
        except OverflowError:
            half = int(n) // 2
            signed = [[k if -half <= k <= half else signed_residue(k, n) for k in map(int, r)]
                      for r in rows]
            try:
                matrix = np.array(signed, dtype=np.int64)
            except OverflowError:
                return None
    if matrix.ndim != 2:
        raise ValueError(f"the matrix must be 2-D, got {matrix.ndim} dimension(s)")
    if matrix.size and int(np.max(np.abs(matrix))) >= _MAX_SCALAR:
        return None
    return matrix


def best_group(rows: int, cols: int, bits: int) -> tuple[int, float]:
    """(largest group size g, multiplications) minimising :func:`grouped_cost` for a block."""
    best = (1, grouped_cost(rows, cols, bits, 1))
    for g in range(2, min(cols, _MAX_GROUP) + 1):
        if _groups_buckets(cols, g) > MAX_BUCKETS:
            break
        cost = grouped_cost(rows, cols, bits, g)
        if cost < best[1]:
            best = (g, cost)
    return best


def grouped_cost(rows: int, cols: int, bits: int, group: int | None = None) -> float:
    """Modular multiplications :func:`grouped_matvec` spends on a block.

    Parameters
    ----------
    rows, cols : int
        The block's shape (m ciphertexts, d columns).
    bits : int
        Width of the shifted scalars (every column's window, :func:`column_windows`).
    group : int, optional
        Most columns per group (the d columns go in ``ceil(d / group)``
        groups of nearly equal sizes); default the best (:func:`best_group`).
    """
    if rows <= 0 or cols <= 0 or bits <= 0:
        return 0.0
    if group is None:
        return best_group(rows, cols, bits)[1]
    # Each shifted base meets each group once (unless its pattern is all zeros),
    # each group's buckets are combined once; a squaring costs a little less
    # than a multiplication.
    shifts = _SQUARING * rows * (bits - 1)
    entries = combining = 0.0
    for size in _group_sizes(cols, max(1, min(group, cols))):
        entries += rows * bits * (1.0 - 2.0 ** -size)
        combining += 2 << size
    offsets = 2 * rows + cols * _POWMOD_PER_BIT * bits
    return shifts + entries + combining + offsets


def _group_sizes(cols: int, group: int) -> list[int]:
    """Sizes of ``ceil(cols / group)`` groups of nearly equal sizes (the first ones
    larger): fewer buckets than full groups and one small remainder."""
    count = -(-cols // group)
    size, extra = divmod(cols, count)
    return [size + 1] * extra + [size] * (count - extra)


def _groups_buckets(cols: int, group: int) -> int:
    return sum(1 << size for size in _group_sizes(cols, group))


def matvec_best_cost(rows: int, cols: int, bits: int, method: str = "auto",
                     magnitude: int | None = None) -> float:
    """Multiplications :func:`matvec` spends with `method` ("auto": the cheaper).

    `bits` is the width of the column groups' shifted scalars, `magnitude`
    that of the largest scalar's magnitude (the per-column method's; default
    `bits`).
    """
    if rows <= 0 or cols <= 0 or bits <= 0:
        return 0.0
    per_column = float(matvec_cost(rows, cols, bits if magnitude is None else magnitude))
    if _method(method) == "columns":
        return per_column
    return min(grouped_cost(rows, cols, bits), per_column)


def matvec(ciphertexts: Sequence[int], rows: Sequence[Sequence[int]] | np.ndarray,
           n: int, *, method: str = "auto") -> list[int]:
    """``[prod_i c_i^(X_ij) mod n^2 for each column j]``, by the cheaper method.

    Scalars are read mod n with the smallest-magnitude representative (so
    ``-5`` and ``n - 5`` both act as -5). Column groups
    (:func:`grouped_matvec`) or per-column buckets
    (:func:`~vfl.crypto.multiexp.matvec_columns`), whichever
    :func:`grouped_cost` and :func:`~vfl.crypto.multiexp.matvec_cost` count as
    cheaper; scalars of 2^61 or more always take the per-column method.

    Parameters
    ----------
    method : {"auto", "columns"}
        "columns" forces the per-column bucket method (the kernel before
        column groups; for benchmarks side by side).
    """
    n = mpz(n)
    if len(rows) != len(ciphertexts):
        raise ValueError(f"{len(rows)} matrix rows for {len(ciphertexts)} ciphertexts")
    if len(rows) == 0:
        return []
    matrix = None if _method(method) == "columns" else as_scalar_matrix(rows, n)
    if matrix is None:
        listed = rows.tolist() if isinstance(rows, np.ndarray) else [list(r) for r in rows]
        return matvec_columns(ciphertexts, listed, n, n * n)
    m, d = matrix.shape
    windows = column_windows(matrix)
    widest = int(windows[1].max()) if d else 0
    if widest == 0 or grouped_cost(m, d, widest) < matvec_cost(m, d, magnitude_bits(matrix)):
        return grouped_matvec(ciphertexts, matrix, n * n, windows=windows)
    return matvec_columns(ciphertexts, matrix.tolist(), n, n * n)


def use_method(method: str) -> None:
    """Set :data:`default_method` ("auto" or "columns"), e.g. in a benchmark that
    compares the kernels on the same protocol run."""
    global default_method
    default_method = _method(method)


def _method(method: str) -> str:
    if method not in ("auto", "columns"):
        raise ValueError(f"unknown matvec method {method!r}; use 'auto' or 'columns'")
    return method


def grouped_matvec(ciphertexts: Sequence[int], matrix: np.ndarray, n_square: int, *,
                   group: int | None = None,
                   windows: tuple[np.ndarray, np.ndarray] | None = None) -> list[int]:
    """``[prod_i c_i^(X_ij) mod n^2 for each column j]`` by column groups (module doc).

    Parameters
    ----------
    ciphertexts : sequence of int
        The m values c_i, invertible mod `n_square`.
    matrix : numpy.ndarray of int64, shape (m, d)
        Signed scalars, magnitudes below 2^61.
    n_square : int
        The modulus.
    group : int, optional
        Most columns per group; default the cheapest by :func:`grouped_cost`.
    windows : (numpy.ndarray, numpy.ndarray), optional
        Each column's window (lows, widths), as :func:`column_windows` gives
        them (computed if not given): any windows give the exact products,
        the values outside a window cost one exponentiation each.
    """
    matrix = np.asarray(matrix, dtype=np.int64)
    m, d = matrix.shape
    if m != len(ciphertexts):
        raise ValueError(f"{m} matrix rows for {len(ciphertexts)} ciphertexts")
    if m and int(np.max(np.abs(matrix))) >= _MAX_SCALAR:
        raise ValueError("grouped_matvec takes scalars of magnitude below 2^61")
    mod = mpz(n_square)
    if m == 0 or d == 0:
        return [1] * d
    lows, bits = column_windows(matrix) if windows is None else windows
    lows = np.asarray(lows, dtype=np.int64)
    bits = np.asarray(bits, dtype=np.int64)
    # X_ij = lo_j + s_ij + e_ij: s_ij in the window, e_ij (rarely non-zero) beyond it.
    offset = matrix - lows
    shifted = np.minimum(np.maximum(offset, 0), (np.int64(1) << bits) - 1)
    beyond = offset - shifted
    widest = int(bits.max())
    bases = [mpz(c) for c in ciphertexts]
    results: list[mpz | None] = [None] * d
    if widest:
        g = best_group(m, d, widest)[0] if group is None else max(1, min(group, d))
        # Columns of similar width together: a group is as wide as its widest column.
        order = np.argsort(bits, kind="stable")
        groups, start = [], 0
        for size in _group_sizes(d, g):
            groups.append(order[start:start + size])
            start += size
        buckets: list[list[mpz | None]] = [[None] * (1 << len(c)) for c in groups]
        block = max(1, min(m, MAX_SHIFTED_BASES // widest))
        for start in range(0, m, block):
            stop = min(m, start + block)
            shifts = _shifted_bases(bases[start:stop], widest, mod)
            for columns, held in zip(groups, buckets):
                width = int(bits[columns].max())
                if width:
                    _fill_buckets(held, shifts, shifted[start:stop, columns], width, mod)
        for columns, held in zip(groups, buckets):
            for j, value in zip(columns.tolist(), _column_products(held, len(columns), mod)):
                results[j] = value
    _apply_beyond(results, beyond, bases, mod)
    _apply_offsets(results, lows, bases, mod)
    return [1 if r is None else int(r) for r in results]


def column_windows(matrix: np.ndarray, level_cost: float | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(lows, widths): the window ``[lo_j, lo_j + 2^(W_j))`` of each column.

    A window holds the column's values but perhaps a few at either end: each
    of those costs one exponentiation by its distance beyond the window
    (about ``1.2 * bits`` multiplications, and an inversion below it), while
    every bit less of width saves a bit-level of the column, about ``m / g``
    multiplications (its share of filling its group's buckets). A standardised
    column whose spread is just above a power of two (a few rows 4 standard
    deviations out, or one heavy-tailed outlier) so loses a level.

    Parameters
    ----------
    matrix : numpy.ndarray of int64, shape (m, d)
    level_cost : float, optional
        Multiplications one bit-level of one column costs; default
        ``m / g`` for the best group size g of the block.
    """
    m, d = matrix.shape
    if m == 0 or d == 0:
        return np.zeros(d, dtype=np.int64), np.zeros(d, dtype=np.int64)
    lows = matrix.min(axis=0)
    widths = shifted_bits(matrix)
    widest = int(widths.max())
    if level_cost is None:
        level_cost = m / best_group(m, d, widest)[0] if widest else 0.0
    one = _POWMOD_PER_BIT * widest + _INVERSION
    most = min(m // 8, int(3 * level_cost / one)) if widest else 0
    if most < 1:
        return lows, widths
    # The most+1 smallest and largest values of each column, ascending.
    part = np.partition(matrix, [most, m - most - 1], axis=0)
    small = np.sort(part[:most + 1], axis=0)
    large = np.sort(part[m - most - 1:], axis=0)
    lows, widths = lows.copy(), widths.copy()
    for j in range(d):
        best_cost, full = widths[j] * level_cost, int(widths[j])
        for width in range(full - 1, 0, -1):
            # Window starting at the a-th smallest value: a values below, and
            # those above lo + 2^W - 1 (counted among the largest, if few enough).
            tops = small[:, j] + ((1 << width) - 1)
            above = (most + 1) - np.searchsorted(large[:, j], tops, side="right")
            outside = np.arange(most + 1) + above
            outside[above > most] = m  # too many above to count here
            a = int(np.argmin(outside))
            if outside[a] > most:
                break
            cost = width * level_cost + int(outside[a]) * one
            if cost < best_cost:
                best_cost, lows[j], widths[j] = cost, small[a, j], width
    return lows, widths


def magnitude_bits(matrix: np.ndarray) -> int:
    """Bit width of the largest magnitude in the matrix (the per-column method's)."""
    return int(np.max(np.abs(matrix))).bit_length() if matrix.size else 0


def shifted_bits(matrix: np.ndarray) -> np.ndarray:
    """Bit width of each column's ``X_ij - min_i X_ij``."""
    if matrix.size == 0:
        return np.zeros(matrix.shape[1], dtype=np.int64)
    spread = (matrix.max(axis=0) - matrix.min(axis=0)).astype(np.uint64)
    bits = np.zeros(spread.shape, dtype=np.int64)
    for k in range(64):
        bits[spread >= np.uint64(1) << np.uint64(k)] = k + 1
    return bits


def _shifted_bases(bases: Sequence[mpz], bits: int, mod: mpz) -> list[list[mpz]]:
    """``[[b^(2^k) for b in bases] for k < bits]``."""
    layers = [list(bases)]
    for _ in range(bits - 1):
        layers.append([b * b % mod for b in layers[-1]])
    return layers


def _fill_buckets(buckets: list[mpz | None], shifts: list[list[mpz]], scalars: np.ndarray,
                  width: int, mod: mpz) -> None:
    """Multiply each shifted base ``shifts[k][i] = c_i^(2^k)`` into the bucket of its
    pattern: bit k of ``scalars[i, j]`` for each column j of the group.

    `scalars` are non-negative and below ``2^width``.
    """
    rows, g = scalars.shape
    weights = (np.int64(1) << np.arange(g, dtype=np.int64))
    # patterns[k, i]: bit k of each column's scalar in row i, one bit per column.
    patterns = np.stack([((scalars >> k) & 1) @ weights for k in range(width)])
    flat = patterns.ravel()
    nonzero = np.flatnonzero(flat)
    for index, p in zip(nonzero.tolist(), flat[nonzero].tolist()):
        base = shifts[index // rows][index % rows]
        bucket = buckets[p]
        buckets[p] = base if bucket is None else bucket * base % mod


def _column_products(buckets: list[mpz | None], g: int, mod: mpz) -> list[mpz | None]:
    """For each bit j < g, the product of the buckets whose index has bit j set.

    Top bit first: the upper half's product is that bit's column; the upper
    half folded onto the lower (pattern p and p + 2^j merged) leaves the same
    problem one bit smaller. About ``2^(g+1)`` multiplications.
    """
    out: list[mpz | None] = [None] * g
    level = buckets
    for j in reversed(range(g)):
        half = 1 << j
        lower, upper = level[:half], level[half:2 * half]
        out[j] = _product(upper, mod)
        level = [lo if up is None else up if lo is None else lo * up % mod
                 for lo, up in zip(lower, upper)]
    return out


def _product(values: Sequence[mpz | None], mod: mpz) -> mpz | None:
    acc = None
    for v in values:
        if v is not None:
            acc = v if acc is None else acc * v % mod
    return acc


def _apply_beyond(results: list[mpz | None], beyond: np.ndarray, bases: Sequence[mpz],
                  mod: mpz) -> None:
    """Multiply column j by ``c_i^(e_ij)`` for each value beyond its window (e != 0)."""
    rows, cols = np.nonzero(beyond)
    for i, j, e in zip(rows.tolist(), cols.tolist(), beyond[rows, cols].tolist()):
        factor = gmpy2.powmod(bases[i], e, mod)  # a negative power inverts
        old = results[j]
        results[j] = factor if old is None else old * factor % mod


def _apply_offsets(results: list[mpz | None], lows: np.ndarray, bases: Sequence[mpz],
                   mod: mpz) -> None:
    """Multiply column j by ``P^(lo_j)``, ``P = prod_i c_i`` (inverted once if needed)."""
    if not np.any(lows):
        return
    total = _product(bases, mod)
    assert total is not None
    inverse = gmpy2.invert(total, mod) if np.any(lows < 0) else None
    for j, low in enumerate(lows.tolist()):
        if low:
            factor = gmpy2.powmod(total if low > 0 else inverse, abs(low), mod)
            old = results[j]
            results[j] = factor if old is None else old * factor % mod
