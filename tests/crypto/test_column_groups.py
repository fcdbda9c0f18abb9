"""[[X^T d]] by column groups equals the product of powmods, whatever the scalars."""

from __future__ import annotations

import random

import gmpy2
import numpy as np
import pytest

from vfl.crypto import column_groups
from vfl.crypto.ciphertext import EncryptedVector
from vfl.crypto.column_groups import (
    best_group,
    column_windows,
    grouped_cost,
    grouped_matvec,
    matvec,
    matvec_best_cost,
    shifted_bits,
)
from vfl.crypto.multiexp import matvec_cost

TOP = (1 << 61) - 1  # the largest magnitude the int64 kernel takes


def exact(cts, matrix, n):
    """prod_i c_i^(X_ij) mod n^2, one powmod per product (a negative power inverts)."""
    n2 = n * n
    out = []
    for j in range(len(matrix[0])):
        acc = gmpy2.mpz(1)
        for c, row in zip(cts, matrix):
            acc = acc * gmpy2.powmod(c, int(row[j]), n2) % n2
        out.append(int(acc))
    return out


@pytest.fixture(scope="module")
def key(keypair):
    n = keypair[0].n
    rng = random.Random(5)
    cts = [keypair[0].raw_encrypt(rng.getrandbits(60)) for _ in range(40)]
    return n, cts


def random_matrix(rows, cols, bits, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(-(1 << bits), 1 << bits, size=(rows, cols), dtype=np.int64)


@pytest.mark.parametrize("bits", [1, 5, 20, 43, 61])
def test_grouped_equals_powmod_products(key, bits):
    n, cts = key
    matrix = random_matrix(len(cts), 7, bits, seed=bits)
    matrix[0, 0] = (1 << bits) - 1 if bits < 61 else TOP
    matrix[1, 0] = -matrix[0, 0]
    assert grouped_matvec(cts, matrix, n * n) == exact(cts, matrix.tolist(), n)


@pytest.mark.parametrize("group", [1, 2, 3, 7, 11])
def test_every_group_size_gives_the_same_products(key, group):
    n, cts = key
    matrix = random_matrix(len(cts), 11, 18, seed=group)
    assert grouped_matvec(cts, matrix, n * n, group=group) == exact(cts, matrix.tolist(), n)


def test_extreme_columns(key):
    """All zero, constant, only negative, only positive, the int64 kernel's extremes."""
    n, cts = key
    m = len(cts)
    matrix = np.zeros((m, 6), dtype=np.int64)
    matrix[:, 1] = -7                                  # constant: only the offset
    matrix[:, 2] = -np.arange(1, m + 1)                # all negative
    matrix[:, 3] = np.arange(m) * 1000                 # non-negative, lowest 0
    matrix[::2, 4], matrix[1::2, 4] = TOP, -TOP        # widest spread the kernel takes
    matrix[5, 5] = 1                                   # one non-zero
    assert grouped_matvec(cts, matrix, n * n) == exact(cts, matrix.tolist(), n)
    assert grouped_matvec(cts[:1], matrix[:1], n * n) == exact(cts[:1], matrix[:1].tolist(), n)


def test_row_blocks_give_the_same_products(key, monkeypatch):
    n, cts = key
    matrix = random_matrix(len(cts), 5, 12, seed=3)
    monkeypatch.setattr(column_groups, "MAX_SHIFTED_BASES", 30)  # 2 rows per block
    assert grouped_matvec(cts, matrix, n * n) == exact(cts, matrix.tolist(), n)


def test_matvec_reads_residues_and_wide_scalars(key):
    """n - 5 acts as -5; scalars beyond 2^61 take the per-column method, exactly."""
    n, cts = key
    rows = [[n - 5, 3], [2, -(n - 9)], [0, 1]]
    assert matvec(cts[:3], rows, n) == exact(cts[:3], [[-5, 3], [2, 9], [0, 1]], n)
    wide = [[1 << 80, -(1 << 70)], [-(1 << 61), 5], [7, 1 << 61]]
    assert column_groups.as_scalar_matrix(wide, n) is None
    assert matvec(cts[:3], wide, n) == exact(cts[:3], wide, n)
    small = random_matrix(len(cts), 4, 30, seed=9)
    for method in ("auto", "columns"):
        assert matvec(cts, small, n, method=method) == exact(cts, small.tolist(), n)
    with pytest.raises(ValueError, match="unknown matvec method"):
        matvec(cts, small, n, method="fastest")
    with pytest.raises(ValueError, match="3 matrix rows for 2 ciphertexts"):
        matvec(cts[:2], rows, n)
    with pytest.raises(ValueError, match="below 2\\^61"):
        grouped_matvec(cts[:1], np.array([[1 << 62]], dtype=np.int64), n * n)


@pytest.fixture(scope="module")
def many(keypair):
    """400 ciphertexts: enough rows for windows that leave values out."""
    rng = random.Random(6)
    return [keypair[0].raw_encrypt(rng.getrandbits(60)) for _ in range(400)]


def standardised(rows, cols, bits, seed):
    """Standard normal columns at `bits` fractional bits, as the parties encode data."""
    rng = np.random.default_rng(seed)
    return np.rint(rng.normal(size=(rows, cols)) * (1 << bits)).astype(np.int64)


def test_windows_leave_out_a_few_outliers_and_the_products_stay_exact(keypair, many):
    n = keypair[0].n
    matrix = standardised(len(many), 4, 12, seed=1)
    matrix[7, 0] = 60 << 12       # one value 60 standard deviations out
    matrix[9, 1] = -(45 << 12)    # and one far below
    matrix[:2, 2] = [40 << 12, -(40 << 12)]  # both ends of one column
    lows, widths = column_windows(matrix)
    full = shifted_bits(matrix)
    # Each outlier column loses the bits its outliers alone needed ...
    assert np.all(widths[:3] <= 15) and np.all(full[:3] >= 17)
    # ... and a column without them keeps the window that holds all its values.
    assert widths[3] == full[3] and lows[3] == matrix[:, 3].min()
    shifted = matrix - lows
    assert np.count_nonzero((shifted < 0) | (shifted >= (1 << widths))) == 4
    want = exact(many, matrix.tolist(), n)
    assert grouped_matvec(many, matrix, n * n) == want
    assert grouped_matvec(many, matrix, n * n, group=2) == want
    assert matvec(many, matrix, n) == want


def test_any_windows_give_the_exact_products(keypair, many):
    """Windows far too narrow (most values beyond, on both sides) or too wide."""
    n = keypair[0].n
    cts = many[:60]
    matrix = standardised(len(cts), 5, 10, seed=2)
    want = exact(cts, matrix.tolist(), n)
    lows = np.array([0, -3, 5000, -(1 << 20), matrix[:, 4].min()], dtype=np.int64)
    widths = np.array([3, 1, 0, 30, 12], dtype=np.int64)
    assert grouped_matvec(cts, matrix, n * n, windows=(lows, widths)) == want


def test_windows_follow_their_cost():
    """A level of a column costs about m / g; an outlier one exponentiation: a few
    outliers are left out when levels are dear, none when they are cheap."""
    matrix = standardised(4000, 2, 12, seed=3)
    matrix[:3, 0] = 30 << 12
    full = shifted_bits(matrix)
    assert column_windows(matrix, level_cost=500.0)[1][0] < full[0]
    lows, widths = column_windows(matrix, level_cost=1.0)
    assert np.array_equal(widths, full) and np.array_equal(lows, matrix.min(axis=0))
    assert column_windows(np.zeros((0, 3), dtype=np.int64))[1].tolist() == [0, 0, 0]


def test_groups_are_balanced():
    """150 columns in groups of at most 14: 11 groups of 13 or 14, not 10 of 14 and
    one of 10 (one fewer group of buckets to combine at the widest size)."""
    sizes = column_groups._group_sizes(150, 14)
    assert sum(sizes) == 150 and len(sizes) == 11 and set(sizes) == {13, 14}
    assert column_groups._group_sizes(28, 14) == [14, 14]
    assert column_groups._group_sizes(5, 20) == [5]


def test_cost_model_picks_groups_for_wide_blocks_and_buckets_for_one_column():
    # FATE's host: 3,000 rows x 300 columns of ~22-bit shifted scalars.
    assert grouped_cost(3000, 300, 22) < 0.8 * matvec_cost(3000, 300, 22)
    group, cost = best_group(3000, 300, 22)
    assert 10 <= group <= 14 and cost / (3000 * 300) < 2.3
    # One column (a dot product): nothing to share, the per-column method wins.
    assert grouped_cost(3000, 1, 45) > matvec_cost(3000, 1, 45)
    # More rows: wider groups, fewer multiplications per product.
    assert best_group(20000, 150, 22)[0] > best_group(3000, 150, 22)[0]
    assert (best_group(20000, 150, 22)[1] / (20000 * 150)
            < best_group(3000, 150, 22)[1] / (3000 * 150))
    # Data at 12 fractional bits (15-bit windows): under 1.6 multiplications per
    # product on a worker's share of FATE's host at 3,000 rows, under 1.35 at 20,000.
    assert grouped_cost(3000, 150, 15) / (3000 * 150) < 1.6
    assert grouped_cost(20000, 150, 15) / (20000 * 150) < 1.35
    # The per-column method is judged at the magnitudes' width (a window's may be wider).
    assert (matvec_best_cost(3000, 1, 46, "columns", magnitude=40)
            == matvec_cost(3000, 1, 40) < matvec_best_cost(3000, 1, 46, "columns"))
    # The buckets of all groups stay within their budget.
    for rows, cols in ((100_000, 300), (3000, 2), (50, 1000)):
        g = best_group(rows, cols, 22)[0]
        assert sum(1 << s for s in column_groups._group_sizes(cols, g)) \
            <= column_groups.MAX_BUCKETS


def test_fast_engine_matvec_on_the_pool_both_ways(fast_parallel, fast_decryptor, keypair):
    """Split by columns (wide) and by rows (narrow), with the previous kernel alongside."""
    n = keypair[0].n
    rng = np.random.default_rng(4)
    for rows, cols in ((200, 40), (300, 2)):
        values = rng.integers(-(1 << 20), 1 << 20, size=rows)
        c = fast_parallel.encrypt(values.tolist())
        matrix = rng.integers(-(1 << 19), 1 << 19, size=(rows, cols)).tolist()
        want = [sum(int(v) * r[j] for v, r in zip(values, matrix)) for j in range(cols)]
        got = fast_decryptor.decrypt(fast_parallel.matvec_t(matrix, c))
        assert [x if x <= n // 2 else x - n for x in got] == want
        column_groups.use_method("columns")
        try:
            again = fast_decryptor.decrypt(fast_parallel.matvec_t(matrix, c))
        finally:
            column_groups.use_method("auto")
        assert again == got
    with pytest.raises(ValueError, match="unknown matvec method"):
        column_groups.use_method("fastest")
    assert isinstance(c, EncryptedVector)
