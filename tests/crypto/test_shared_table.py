"""One fixed-base table in shared memory, filled and read by worker processes."""

from __future__ import annotations

import secrets
from concurrent.futures import ProcessPoolExecutor

import gmpy2
import pytest

from vfl.crypto import generate_keypair
from vfl.crypto.shared_table import SharedTable, detach_all, fill_rows, pows, random_pows
from vfl.crypto.worker_processes import kernel_context


@pytest.fixture(scope="module")
def modulus():
    public, _ = generate_keypair(512, insecure=True)
    return int(public.nsquare)


def test_worker_filled_rows_give_exact_powers(modulus) -> None:
    base = secrets.randbelow(modulus - 2) + 2
    table = SharedTable(base, modulus, exp_bits=128, window=6)
    try:
        with ProcessPoolExecutor(2, mp_context=kernel_context()) as pool:
            done = list(pool.map(fill_rows, [table.layout] * 3, table.row_ranges(3)))
        assert sum(done) == table.layout.rows
        table.mark_ready()
        exponents = [0, 1, 2**128 - 1, *(secrets.randbits(128) for _ in range(20))]
        assert pows(table.layout, exponents) == [gmpy2.powmod(base, e, modulus)
                                                 for e in exponents]
        values = random_pows(table.layout, 50)
        assert len(set(values)) == 50 and all(0 < v < modulus for v in values)
    finally:
        detach_all()
        table.close()


def test_an_unfilled_table_is_refused(modulus) -> None:
    table = SharedTable(3, modulus, exp_bits=64, window=4)
    try:
        with pytest.raises(RuntimeError, match="not filled"):
            random_pows(table.layout, 1)
    finally:
        detach_all()
        table.close()


def test_closing_unlinks_the_segment(modulus) -> None:
    from multiprocessing import shared_memory

    table = SharedTable(3, modulus, exp_bits=64, window=4)
    name = table.layout.name
    table.close()
    with pytest.raises(FileNotFoundError):
        shared_memory.SharedMemory(name=name)
