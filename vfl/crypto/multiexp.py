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
"""

from __future__ import annotations

from collections.abc import Sequence

import gmpy2

__all__ = ["batch_invert", "best_window", "matvec_columns", "multiexp", "signed_residue"]


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
        buckets: list = [None] * (mask + 1)
        for b, e in pairs:
            d = (e >> shift) & mask
            if d:
                bucket = buckets[d]
                buckets[d] = b if bucket is None else bucket * b % mod
        # prod_d B_d^d = prod_{d} (prod_{d' >= d} B_d'): running suffix products.
        running = acc = None
        for d in range(mask, 0, -1):
            bucket = buckets[d]
            if bucket is not None:
                running = bucket if running is None else running * bucket % mod
            if running is not None:
                acc = running if acc is None else acc * running % mod
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
    out: list = [None] * len(values)
    for i in range(len(values) - 1, 0, -1):
        out[i] = inv * prefix[i - 1] % mod
        inv = inv * values[i] % mod
    out[0] = inv
    return out


def matvec_columns(ciphertexts: Sequence[int], rows: Sequence[Sequence[int]], n: int,
                   n_square: int) -> list[int]:
    """``[prod_i c_i^(X_ij) mod n^2 for each column j]`` for signed integers X.

    Scalars are taken mod n with the smallest-magnitude representative, so
    both ``-5`` and ``n - 5`` act as ``-5``. Each ciphertext whose row holds
    a negative scalar is inverted once (batch inversion).
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
    need_inverse = [i for i, r in enumerate(signed) if any(k < 0 for k in r)]
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
