"""One obfuscator table per key and process, grown with the work, unlinked at the end."""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import shared_memory

import gmpy2
import pytest

from vfl.crypto import generate_keypair, key_tables
from vfl.crypto.djn import djn_public_params, randomness_bits
from vfl.crypto.shared_table import detach_all, pows
from vfl.crypto.worker_processes import kernel_context


@pytest.fixture(scope="module")
def key():
    public, private = generate_keypair(512, insecure=True)
    return int(public.n), djn_public_params(private)["h_s"]


@pytest.fixture(scope="module")
def pool():
    with ProcessPoolExecutor(2, mp_context=kernel_context()) as executor:
        yield executor


def test_engines_of_one_key_share_one_table_that_grows_with_the_work(key, pool) -> None:
    n, h_s = key
    r_bits = randomness_bits(n)
    first, second = key_tables.acquire(n, h_s, r_bits), key_tables.acquire(n, h_s, r_bits)
    try:
        assert first is second
        source = first.source(pool)
        small = source.layout.window
        exponents = [secrets.randbits(r_bits) for _ in range(5)]
        assert pows(source.layout, exponents) == [gmpy2.powmod(h_s, e, n * n)
                                                  for e in exponents]
        first.served(50_000, pool)  # a longer run after all: a larger table is filled
        deadline = time.monotonic() + 60
        while first.source(pool).layout.window == small:
            assert time.monotonic() < deadline, "the larger table never replaced the small one"
            time.sleep(0.05)
        grown = first.source(pool).layout
        assert grown.window > small
        assert pows(grown, exponents) == [gmpy2.powmod(h_s, e, n * n) for e in exponents]
    finally:
        key_tables.release(first)
        key_tables.release(second)
        detach_all()


def test_settle_finishes_a_growing_table_while_the_workers_are_busy(key, pool) -> None:
    """A larger table grows only while no party waits on the workers; a party about
    to make its first epoch's powers settles it first, busy workers or not."""
    from vfl.crypto import executors

    n, h_s = key
    r_bits = randomness_bits(n)
    table = key_tables.acquire(n, h_s, r_bits)
    try:
        small = table.source(pool).layout.window
        with executors.foreground():  # a party is waiting: background growth holds back
            table.plan(200_000, pool)
            time.sleep(1.0)
            assert table.source(pool).layout.window == small
            table.settle(pool, timeout=60)
            grown = table.source(pool).layout
        assert grown.window > small
        exponents = [secrets.randbits(r_bits) for _ in range(3)]
        assert pows(grown, exponents) == [gmpy2.powmod(h_s, e, n * n) for e in exponents]
        table.settle(pool, timeout=1)  # nothing being grown: returns at once
    finally:
        key_tables.release(table)
        detach_all()


def test_the_last_release_unlinks_every_segment(key, pool) -> None:
    n, h_s = key
    table = key_tables.acquire(n, h_s, randomness_bits(n))
    name = table.source(pool).layout.name
    key_tables.release(table)
    detach_all()
    with pytest.raises(FileNotFoundError):
        shared_memory.SharedMemory(name=name)
    # A later engine of the same key starts a fresh table.
    again = key_tables.acquire(n, h_s, randomness_bits(n))
    try:
        assert again is not table
    finally:
        key_tables.release(again)


def test_a_cluster_gets_the_spec_of_a_worker_built_table(key) -> None:
    class Remote:
        remote = True

        def worker_count(self) -> int:
            return 4

    n, h_s = key
    table = key_tables.acquire(n, h_s, randomness_bits(n))
    try:
        spec = table.source(Remote())  # type: ignore[arg-type]
        assert spec[:3] == (n, h_s, randomness_bits(n)) and 4 <= spec[3] <= 16
    finally:
        key_tables.release(table)
