"""The fast engine's building blocks: fixed-base tables, signed multi-exponentiation, the pool."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gmpy2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vfl.crypto import workers
from vfl.crypto.ciphertext import EncryptedVector
from vfl.crypto.fast_engine import FastEngine
from vfl.crypto.fixed_base import FixedBaseTable, choose_window, table_bytes
from vfl.crypto.multiexp import matvec_columns
from vfl.crypto.obfuscator_pool import ObfuscatorPool

ROOT = Path(__file__).resolve().parents[2]


def exact_matvec(cts, rows, n2):
    out = []
    for j in range(len(rows[0])):
        acc = gmpy2.mpz(1)
        for c, r in zip(cts, rows):
            k = r[j]
            base = c if k >= 0 else gmpy2.invert(c, n2)
            acc = acc * gmpy2.powmod(base, abs(k), n2) % n2
        out.append(int(acc))
    return out


def test_fixed_base_pow_matches_powmod():
    n2 = 1000003 * 999983
    table = FixedBaseTable(12345, n2, 40, 11)
    for e in (0, 1, 2047, 2048, (1 << 40) - 1, 987654321):
        assert table.pow(e) == pow(12345, e, n2)
    with pytest.raises(ValueError):
        table.pow(1 << 40)


def test_random_pows_are_powers_with_exponents_in_range():
    p = 1000003  # 3 generates Z*_p, so the powers of 3 below 2^18 are 2^18 distinct values
    table = FixedBaseTable(3, p, 18, 13)  # top digit has 5 bits: the mask matters
    powers = {pow(3, r, p) for r in range(1 << 18)}
    values = [int(v) for v in table.random_pows(3000)]
    assert all(v in powers for v in values)
    # 3000 draws from 2^18 values: ~17 collisions expected, far from all equal.
    assert len(set(values)) > 2900
    # Exponents above 2^18 would give other values: none may appear.
    beyond = {pow(3, r, p) for r in range(1 << 18, 1 << 19)} - powers
    assert not beyond & set(values)


def test_window_follows_the_memory_budget():
    assert choose_window(1024, 4096, budget=512 << 20) == 13
    assert choose_window(1536, 6144, budget=512 << 20) == 12
    assert choose_window(1024, 4096, budget=1 << 20) == 8  # never below 8
    assert table_bytes(1024, 4096, 13) <= 512 << 20 < table_bytes(1024, 4096, 14)
    # Small (test) keys get small tables: the build cost bound applies.
    assert table_bytes(256, 1024, choose_window(256, 1024, budget=1 << 40)) < 64 << 20


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_signed_and_unsigned_digits_give_exact_products(keypair, data):
    n = keypair[0].n
    n2 = n * n
    m = data.draw(st.integers(1, 25))
    d = data.draw(st.integers(1, 3))
    bits = data.draw(st.integers(1, 61))
    scalar = st.one_of(st.integers(-(1 << bits) + 1, (1 << bits) - 1),
                       st.sampled_from([0, (1 << bits) - 1, -((1 << bits) - 1)]))
    rows = data.draw(st.lists(st.lists(scalar, min_size=d, max_size=d), min_size=m, max_size=m))
    cts = [int(gmpy2.powmod(7 + i, n, n2)) for i in range(m)]
    exact = exact_matvec(cts, rows, n2)
    assert matvec_columns(cts, rows, n, n2, signed_digits=True) == exact
    assert matvec_columns(cts, rows, n, n2, signed_digits=False) == exact
    assert matvec_columns(cts, rows, n, n2) == exact


def test_background_refill_makes_encryptions_of_zero_and_close_stops_it(
        keypair, public_params, fast_decryptor):
    pub = keypair[0]
    spec = FastEngine(pub, public_params, parallel=False, pool_capacity=0).spec
    with ThreadPoolExecutor(max_workers=2) as executor:
        pool = ObfuscatorPool(spec, executor, capacity=40, batch=8)
        assert pool.take(1) == []  # empty at first; the refill starts now
        deadline = time.monotonic() + 30
        while len(pool) < 40 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(pool) >= 40
        zeros = pool.take(40)
        assert len(zeros) == 40 and len({int(o) for o in zeros}) == 40
        zero_vector = EncryptedVector(pub, tuple(int(o) for o in zeros))
        assert fast_decryptor.decrypt(zero_vector) == [0] * 40
        pool.close()
        assert pool._thread is not None and not pool._thread.is_alive()
        assert len(pool) == 0 and pool.take(5) == []
        time.sleep(0.2)
        assert len(pool) == 0  # nothing refills after close
        pool.close()  # idempotent


def test_pool_grows_to_the_demand_it_sees(keypair, public_params):
    spec = FastEngine(keypair[0], public_params, parallel=False, pool_capacity=0).spec
    with ThreadPoolExecutor(max_workers=1) as executor:
        pool = ObfuscatorPool(spec, executor, capacity=4, max_capacity=50)
        pool.take(20)
        assert pool.capacity == 40
        pool.take(1000)
        assert pool.capacity == 50
        pool.reserve(10)
        assert pool.capacity == 50
        pool.close()


def test_parallel_engine_keeps_no_table_in_the_caller(keypair, public_params, fast_decryptor):
    engine = FastEngine(keypair[0], public_params, pool_capacity=0)
    try:
        workers._tables.pop(engine.spec, None)
        c = engine.encrypt([5, -6])  # too few to ship: plain exponentiations here
        assert not workers.has_table(engine.spec)
        n = keypair[0].n
        assert [v if v < n // 2 else v - n for v in fast_decryptor.decrypt(c)] == [5, -6]
        r = engine.rerandomize(c)
        assert r.ciphertexts != c.ciphertexts
        assert fast_decryptor.decrypt(r) == fast_decryptor.decrypt(c)
        assert not workers.has_table(engine.spec)
    finally:
        engine.close()


@pytest.mark.parametrize("d", [1, 2, 5])
def test_parallel_matvec_by_rows_or_columns_is_exact(fast_parallel, fast_decryptor, keypair, d):
    n = keypair[0].n
    m = 120
    xs = [(-1) ** i * (i * 7919 + 3) << 30 for i in range(m)]
    matrix = [[((i * 31 + j * 17) % 201 - 100) << 35 for j in range(d)] for i in range(m)]
    c = fast_parallel.encrypt(xs)
    exact = [sum(matrix[i][j] * xs[i] for i in range(m)) for j in range(d)]
    got = fast_decryptor.decrypt(fast_parallel.matvec_t(matrix, c))
    assert [v if v < n // 2 else v - n for v in got] == exact


def test_interpreter_exits_with_the_background_pool_running():
    script = (
        "from vfl.crypto.fast_engine import FastEngine\n"
        "from vfl.crypto.keys import generate_keypair\n"
        "if __name__ == '__main__':\n"
        "    pub, priv = generate_keypair(512, insecure=True)\n"
        "    e = FastEngine(pub, FastEngine.public_params_for(priv), pool_capacity=10000)\n"
        "    e.encrypt(list(range(50)))\n"  # the refill thread is now busy; no close()
        "    print('done', flush=True)\n"
    )
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "done" in result.stdout
    assert time.monotonic() - start < 60
