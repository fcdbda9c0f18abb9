"""[[X^T d]] for many columns at once: bit patterns of column groups over shared bases.

Every column j of the gradient is ``prod_i c_i^(X_ij) mod n^2`` over the
same m ciphertexts ``c_i = [[d_i]]``. The per-column bucket method
(:mod:`vfl.crypto.multiexp`) cannot share anything between columns but the
inverses, and costs about ``b / log2(m)`` multiplications per product for
b-bit scalars, ~2.5 to 3.5 at m in the thousands. This module shares the
work between columns:

1. **Offsets.** Each column is shifted to non-negative scalars,
   ``X_ij = X'_ij + lo_j`` with ``lo_j = min_i X_ij``; the shift comes back
   as one factor ``P^(lo_j)``, ``P = prod_i c_i``, computed once for all
   columns (P and its inverse), one short exponentiation per column.
2. **Shifted bases.** ``B_(k,i) = c_i^(2^k)`` for every bit k below the
   widest scalar: ``m (b - 1)`` squarings, shared by every column.
3. **Patterns.** Columns go in groups of g. For each base ``B_(k,i)`` the g
   bits ``k`` of ``X'_ij`` (j in the group) form a pattern p in
   ``[0, 2^g)``; the base is multiplied into bucket p: one multiplication
   serves g products at once.
4. **Combining.** Column j of the group is the product of the buckets whose
   pattern has bit j set. All g of them cost ``2 * 2^g`` multiplications
   (split the patterns on their top bit: the upper half's product is that
   column's result, then fold the upper half onto the lower and repeat).

Per product this costs about ``b / g + 2^(g+1) / (m g)`` multiplications,
plus ``(b - 1) / d`` for the shifted bases. On one of two workers' share of
FATE's host (m = 3,000 rows, 150 columns) with 22-bit scalars (the data at
18 fractional bits, :mod:`vfl.crypto.encoding`), g = 12 counts 2.2 per
product, against 3.3 for the per-column bucket method at that width and 5.9
at the 44-bit scalars of data encoded at 40 bits; at m = 20,000, g = 14
counts 1.8. :func:`grouped_cost` counts it and :func:`matvec` runs
whichever method counts fewer multiplications.

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
    "grouped_cost",
    "grouped_matvec",
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
    """(group size g, multiplications) minimising :func:`grouped_cost` for a block."""
    best = (1, grouped_cost(rows, cols, bits, 1))
    for g in range(2, min(cols, _MAX_GROUP) + 1):
        if -(-cols // g) << g > MAX_BUCKETS:
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
        Width of the shifted scalars ``X_ij - min_i X_ij``.
    group : int, optional
        Columns per group; default the best (:func:`best_group`).
    """
    if rows <= 0 or cols <= 0 or bits <= 0:
        return 0.0
    if group is None:
        return best_group(rows, cols, bits)[1]
    g = max(1, min(group, cols))
    groups = -(-cols // g)
    shifts = rows * (bits - 1)
    # Each shifted base meets each group once (unless its pattern is all zeros),
    # each group's buckets are combined once.
    entries = groups * rows * bits * (1.0 - 2.0 ** -g)
    combining = groups * (2 << g)
    offsets = 2 * rows + cols * _POWMOD_PER_BIT * bits
    return shifts + entries + combining + offsets


def matvec_best_cost(rows: int, cols: int, bits: int, method: str = "auto") -> float:
    """Multiplications :func:`matvec` spends with `method` ("auto": the cheaper)."""
    if rows <= 0 or cols <= 0 or bits <= 0:
        return 0.0
    per_column = float(matvec_cost(rows, cols, bits))
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
    bits = shifted_bits(matrix)
    widest = int(bits.max()) if d else 0
    if widest == 0 or grouped_cost(m, d, widest) < matvec_cost(m, d, widest):
        return grouped_matvec(ciphertexts, matrix, n * n, column_bits=bits)
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
                   column_bits: np.ndarray | None = None) -> list[int]:
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
        Columns per group; default the cheapest by :func:`grouped_cost`.
    column_bits : numpy.ndarray, optional
        Each column's shifted width (computed if not given).
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
    lows = matrix.min(axis=0)
    shifted = matrix - lows
    bits = shifted_bits(matrix) if column_bits is None else np.asarray(column_bits)
    widest = int(bits.max())
    results: list[mpz | None] = [None] * d
    if widest:
        g = best_group(m, d, widest)[0] if group is None else max(1, min(group, d))
        # Columns of similar width together: a group is as wide as its widest column.
        order = np.argsort(bits, kind="stable")
        groups = [order[s:s + g] for s in range(0, d, g)]
        bases = [mpz(c) for c in ciphertexts]
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
    _apply_offsets(results, lows, ciphertexts, mod)
    return [1 if r is None else int(r) for r in results]


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


def _apply_offsets(results: list[mpz | None], lows: np.ndarray, ciphertexts: Sequence[int],
                   mod: mpz) -> None:
    """Multiply column j by ``P^(lo_j)``, ``P = prod_i c_i`` (inverted once if needed)."""
    if not np.any(lows):
        return
    total = _product([mpz(c) for c in ciphertexts], mod)
    assert total is not None
    inverse = gmpy2.invert(total, mod) if np.any(lows < 0) else None
    for j, low in enumerate(lows.tolist()):
        if low:
            factor = gmpy2.powmod(total if low > 0 else inverse, abs(low), mod)
            old = results[j]
            results[j] = factor if old is None else old * factor % mod
