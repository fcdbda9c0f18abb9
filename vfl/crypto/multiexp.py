"""Multi-exponentiation ``prod_i b_i^(e_i) mod N`` by Pippenger's bucket method.

The encrypted gradient ``[[X^T d]]`` is, per column j, the product
``prod_i [[d_i]]^(X_ij)``: a multi-exponentiation with m bases and short
(~42-bit) exponents. One powmod per product costs about ``1.25 * bits``
multiplications; the bucket method costs about ``(bits / c) * (m + 2^(c+1))``
multiplications in total for window width c, i.e. ``bits / c`` (about 5 to
6) per product for m in the thousands.

Negative exponents use the inverse base: each base that meets a negative
exponent is inverted once (all of them together with Montgomery's batch
inversion: one modular inverse and three multiplications each), never once
per product.

Once every base has its inverse, digits can be signed (in
``[-2^(c-1), 2^(c-1))``): a negative digit puts the inverse base in the
bucket of its magnitude, which halves the buckets and so allows a wider
window for the same combining cost. :func:`matvec_columns` chooses, by a
cost count, between unsigned digits (inverting only the bases that meet a
negative scalar) and signed digits (inverting all of them); the signed form
wins when several columns share the inverses, e.g. ~5.4 instead of ~6.3
multiplications per product for 10,000 rows, 5 columns and 42-bit
scalars.
"""

from __future__ import annotations

from collections.abc import Sequence

import gmpy2
import numpy as np

__all__ = [
    "batch_invert",
    "best_signed_window",
    "best_window",
    "matvec_columns",
    "matvec_cost",
    "multiexp",
    "signed_residue",
]

#: Cost of one batch-inverted base, in modular multiplications.
_INVERSION_COST = 3


def signed_residue(k: int, n: int) -> int:
    """The representative of ``k mod n`` with the smallest magnitude."""
    k = int(k)
    if -(n // 2) <= k <= n // 2:
        return k
    k %= n
    return k - n if k > n // 2 else k


def best_window(count: int, bits: int) -> int:
    """Window width c minimising ``ceil(bits / c) * (count + 2^(c+1))``."""
    if bits <= 0 or count <= 0:
        return 1
    best_c, best_cost = 1, None
    for c in range(1, 17):
        cost = -(-bits // c) * (count + (2 << c))
        if best_cost is None or cost < best_cost:
            best_c, best_cost = c, cost
    return best_c


def multiexp(bases: Sequence[gmpy2.mpz], exps: Sequence[int], modulus: int) -> gmpy2.mpz:
    """``prod_i bases[i]^exps[i] mod modulus`` for non-negative exponents.

    Pippenger / bucket method: for each c-bit window of the exponents (most
    significant first), multiply every base into the bucket named by its
    digit, then combine the buckets as ``prod_d B_d^d`` with two running
    products (2^(c+1) multiplications), and shift the accumulator by c
    squarings.
    """
    mod = gmpy2.mpz(modulus)
    if len(bases) != len(exps):
        raise ValueError(f"{len(bases)} bases for {len(exps)} exponents")
    pairs = [(b, int(e)) for b, e in zip(bases, exps) if e]
    if not pairs:
        return gmpy2.mpz(1)
    if any(e < 0 for _, e in pairs):
        raise ValueError("multiexp takes non-negative exponents; invert the base for negative ones")
    bits = max(e for _, e in pairs).bit_length()
    c = best_window(len(pairs), bits)
    mask = (1 << c) - 1
    result = None
    for w in reversed(range(-(-bits // c))):
        if result is not None:
            for _ in range(c):
                result = result * result % mod
        shift = w * c
        buckets: list[gmpy2.mpz | None] = [None] * (mask + 1)
        for b, e in pairs:
            d = (e >> shift) & mask
            if d:
                bucket = buckets[d]
                buckets[d] = b if bucket is None else bucket * b % mod
        acc = _combine_buckets(buckets, mask, mod)
        if acc is not None:
            result = acc if result is None else result * acc % mod
    return gmpy2.mpz(1) if result is None else result


def batch_invert(values: Sequence[gmpy2.mpz], modulus: int) -> list[gmpy2.mpz]:
    """Inverses of all values mod `modulus` with one modular inversion.

    Montgomery's trick: prefix products, invert the total, walk back.

    Raises
    ------
    ZeroDivisionError
        If some value is not invertible.
    """
    mod = gmpy2.mpz(modulus)
    if not values:
        return []
    prefix = [gmpy2.mpz(values[0]) % mod]
    for v in values[1:]:
        prefix.append(prefix[-1] * v % mod)
    inv = gmpy2.invert(prefix[-1], mod)  # raises ZeroDivisionError if not invertible
    out: list[gmpy2.mpz] = [None] * len(values)  # each set below
    for i in range(len(values) - 1, 0, -1):
        out[i] = inv * prefix[i - 1] % mod
        inv = inv * values[i] % mod
    out[0] = inv
    return out


def best_signed_window(count: int, bits: int) -> tuple[int, int]:
    """(window c, multiplications) minimising ``ceil((bits + 1) / c) * (count + 2^c)``.

    Signed digits need one more bit (the last carry) and 2^(c-1) buckets,
    combined in 2^c multiplications.
    """
    costs = {c: -(-(bits + 1) // c) * (count + (1 << c)) for c in range(2, 20)}
    best_c = min(costs, key=costs.__getitem__)  # the smallest window among equals
    return best_c, costs[best_c]


def matvec_cost(rows: int, cols: int, bits: int, negative_rows: int | None = None) -> int:
    """Modular multiplications :func:`matvec_columns` spends on a block.

    The cheaper of unsigned digits (inverting only the `negative_rows`
    bases that meet a negative scalar, all of them if not given) and
    signed digits (inverting every base). Used to decide how to share the
    work out among workers.
    """
    if rows <= 0 or cols <= 0 or bits <= 0:
        return 0
    negative_rows = rows if negative_rows is None else negative_rows
    c = best_window(rows, bits)
    unsigned = cols * -(-bits // c) * (rows + (2 << c)) + _INVERSION_COST * negative_rows
    signed = cols * best_signed_window(rows, bits)[1] + _INVERSION_COST * rows
    return min(unsigned, signed)


def _signed_digits(magnitudes: np.ndarray, signs: np.ndarray, c: int,
                   windows: int) -> list[np.ndarray]:
    """Signed base-2^c digits of ``signs * magnitudes``, least significant window first.

    Digits lie in ``[-2^(c-1), 2^(c-1)]`` before the sign is applied;
    ``magnitudes`` must be below ``2^(c * windows - 1)``, so that the top
    window's digit plus the carry into it is at most 2^(c-1) and is kept
    as it is (no carry out of the top).
    """
    mask, half = (1 << c) - 1, 1 << (c - 1)
    carry = np.zeros_like(magnitudes)
    out = []
    for w in range(windows):
        digit = ((magnitudes >> (w * c)) & mask) + carry
        if w == windows - 1:
            out.append(digit * signs)
            break
        carry = (digit >= half).astype(np.int64)
        out.append((digit - (carry << c)) * signs)
    return out


def _signed_multiexp(both: list[gmpy2.mpz], digits: list[np.ndarray], c: int, mod: gmpy2.mpz,
                     count: int) -> gmpy2.mpz:
    """``prod_i b_i^(k_i)`` from signed digits; ``both = bases + inverse bases``."""
    half = 1 << (c - 1)
    result = None
    index = np.arange(count, dtype=np.int64)
    for digit in reversed(digits):
        if result is not None:
            for _ in range(c):
                result = result * result % mod
        nonzero = np.flatnonzero(digit)
        if nonzero.size == 0:
            continue
        d = digit[nonzero]
        # Base i for a positive digit, its inverse (at count + i) for a negative one.
        which = np.where(d > 0, index[nonzero], index[nonzero] + count).tolist()
        buckets: list[gmpy2.mpz | None] = [None] * (half + 1)
        for k, b in zip(np.abs(d).tolist(), which):
            bucket = buckets[k]
            buckets[k] = both[b] if bucket is None else bucket * both[b] % mod
        acc = _combine_buckets(buckets, half, mod)
        if acc is not None:
            result = acc if result is None else result * acc % mod
    return gmpy2.mpz(1) if result is None else result


def matvec_columns(ciphertexts: Sequence[int], rows: Sequence[Sequence[int]], n: int,
                   n_square: int, *, signed_digits: bool | None = None) -> list[int]:
    """``[prod_i c_i^(X_ij) mod n^2 for each column j]`` for signed integers X.

    Scalars are taken mod n with the smallest-magnitude representative, so
    both ``-5`` and ``n - 5`` act as ``-5``. Inverses are computed once per
    base (batch inversion) and shared by all columns; digits are unsigned
    or signed, whichever :func:`matvec_cost` counts as cheaper (or as
    `signed_digits` says; signed digits need scalars below 2^62).
    """
    if len(rows) != len(ciphertexts):
        raise ValueError(f"{len(rows)} matrix rows for {len(ciphertexts)} ciphertexts")
    if not rows:
        return []
    d = len(rows[0])
    if any(len(r) != d for r in rows):
        raise ValueError("matrix rows have different lengths")
    mod = gmpy2.mpz(n_square)
    half = n // 2
    signed = [[k if -half <= k <= half else signed_residue(k, n) for k in map(int, r)]
              for r in rows]
    bases = [gmpy2.mpz(c) for c in ciphertexts]
    m = len(bases)
    need_inverse = [i for i, r in enumerate(signed) if any(k < 0 for k in r)]
    bits = max((abs(k).bit_length() for r in signed for k in r), default=0)
    if bits == 0:
        return [1] * d
    c_u = best_window(m, bits)
    unsigned_cost = d * -(-bits // c_u) * (m + (2 << c_u)) + _INVERSION_COST * len(need_inverse)
    c_s, signed_mults = best_signed_window(m, bits)
    signed_cost = d * signed_mults + _INVERSION_COST * m
    if signed_digits is None:
        signed_digits = signed_cost < unsigned_cost
    if signed_digits and bits + 1 < 63:
        # Signed digits: every base and its inverse; digits vectorised in int64.
        both = bases + batch_invert(bases, mod)
        matrix = np.array(signed, dtype=np.int64).reshape(m, d)
        magnitudes, signs = np.abs(matrix), np.sign(matrix)
        windows = -(-(bits + 1) // c_s)
        return [int(_signed_multiexp(both, _signed_digits(magnitudes[:, j], signs[:, j], c_s,
                                                          windows), c_s, mod, m))
                for j in range(d)]
    inverses: dict[int, gmpy2.mpz] = {}
    if need_inverse:
        inverses = dict(zip(need_inverse, batch_invert([bases[i] for i in need_inverse], mod)))
    out = []
    for j in range(d):
        col_bases, col_exps = [], []
        for i, r in enumerate(signed):
            k = r[j]
            if k > 0:
                col_bases.append(bases[i])
                col_exps.append(k)
            elif k < 0:
                col_bases.append(inverses[i])
                col_exps.append(-k)
        out.append(int(multiexp(col_bases, col_exps, mod)))
    return out


def _combine_buckets(buckets: list[gmpy2.mpz | None], top: int,
                     mod: gmpy2.mpz) -> gmpy2.mpz | None:
    """prod_{d=1..top} B_d^d, or None if every bucket is empty.

    Equal to prod_d (prod_{d' >= d} B_d'): two running suffix products, at
    most 2 * top multiplications whatever the digits' size.
    """
    running = acc = None
    for d in range(top, 0, -1):
        bucket = buckets[d]
        if bucket is not None:
            running = bucket if running is None else running * bucket % mod
        if running is not None:
            acc = running if acc is None else acc * running % mod
    return acc
