"""Packed fixed-point slots: encrypt, add, decrypt, unpack equals the exact sum, or raises."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vfl.crypto import generate_keypair, get_backend
from vfl.crypto.packing import PackingLayout
from vfl.errors import EncodingOverflowError

KEY_BITS = 512


@pytest.fixture(scope="module")
def keys():
    public, private = generate_keypair(KEY_BITS, insecure=True)
    engine_class, decryptor_class = get_backend("phe")
    return engine_class(public), decryptor_class(private)


def _exact_sum(layout: PackingLayout, rows: list[list[float]]) -> list[Fraction]:
    """Independent reference: round each value like the encoder, add as fractions."""
    scale = 2 ** layout.frac_bits
    return [sum((Fraction(round(Fraction(v) * scale)) for v in col), Fraction(0)) / scale
            for col in zip(*rows)]


def _roundtrip(keys, layout: PackingLayout, rows: list[list[float]]) -> list[int]:
    engine, decryptor = keys
    total = None
    for row in rows:
        encrypted = engine.encrypt(layout.pack(row))
        total = encrypted if total is None else engine.add(total, encrypted)
    assert total is not None
    return layout.unpack_integers(decryptor.decrypt(total), len(rows[0]), summands=len(rows))


def test_geometry_of_a_2048_bit_key() -> None:
    layout = PackingLayout(frac_bits=32, value_bits=32, max_summands=10, plaintext_bits=2047)
    assert layout.guard_bits == 4  # ceil(log2 10)
    assert layout.slot_bits == 32 + 32 + 1 + 4
    assert layout.slots_per_plaintext == 2047 // 69 == 29
    assert layout.plaintexts_for(1000) == math.ceil(1000 / 29)
    # BatchCrypt's setting, 16-bit values, K = 10: about 100 values per ciphertext.
    small = PackingLayout(frac_bits=12, value_bits=4, max_summands=10, plaintext_bits=2047)
    assert small.slots_per_plaintext == 2047 // 21 == 97


@pytest.mark.parametrize("clients", [1, 2, 3, 7, 8])
def test_extremes_sum_exactly(keys, clients: int) -> None:
    """Every slot at the largest and smallest value allowed, K summands: no carry."""
    layout = PackingLayout.for_modulus(keys[0].n, frac_bits=8, value_bits=8,
                                       max_summands=clients)
    top = (2**16 - 1) / 2**8  # the largest |x| whose encoding is below 2**m
    count = 2 * layout.slots_per_plaintext + 3  # spans three plaintexts
    rows = [[top if (i + j) % 3 else -top for i in range(count)] for j in range(clients)]
    rows[0][0] = top
    sums = _roundtrip(keys, layout, rows)
    expected = _exact_sum(layout, rows)
    assert [Fraction(s, 2**8) for s in sums] == expected
    all_top = _roundtrip(keys, layout, [[top] * count] * clients)
    assert all_top == [clients * (2**16 - 1)] * count
    all_bottom = _roundtrip(keys, layout, [[-top] * count] * clients)
    assert all_bottom == [-clients * (2**16 - 1)] * count


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=6).flatmap(lambda k: st.lists(
    st.lists(st.floats(min_value=-1000, max_value=1000, allow_nan=False), min_size=5,
             max_size=5), min_size=k, max_size=k)))
def test_random_sums_are_exact(keys, rows: list[list[float]]) -> None:
    layout = PackingLayout.for_modulus(keys[0].n, frac_bits=20, value_bits=10,
                                       max_summands=6)
    sums = _roundtrip(keys, layout, rows)
    assert [Fraction(s, 2**20) for s in sums] == _exact_sum(layout, rows)
    floats = layout.unpack([sum(layout.pack(r)[0] for r in rows)], 5, summands=len(rows))
    np.testing.assert_array_equal(floats, [float(v) for v in _exact_sum(layout, rows)])


def test_a_value_too_large_raises_before_packing() -> None:
    layout = PackingLayout(frac_bits=8, value_bits=4, max_summands=4, plaintext_bits=500)
    layout.pack([15.99])
    with pytest.raises(EncodingOverflowError, match=r"value\[1\]"):
        layout.pack([1.0, 16.0])
    with pytest.raises(EncodingOverflowError, match="NaN"):
        layout.pack([float("nan")])


def test_more_summands_than_declared_raise(keys) -> None:
    engine, decryptor = keys
    layout = PackingLayout.for_modulus(engine.n, frac_bits=8, value_bits=8, max_summands=2)
    ciphertexts = engine.encrypt(layout.pack([255.0, 255.0]))
    total = engine.add(engine.add(ciphertexts, ciphertexts), ciphertexts)
    with pytest.raises(EncodingOverflowError, match="sum of 3"):
        layout.unpack_integers(decryptor.decrypt(total), 2, summands=3)


def test_a_tampered_or_wrongly_unmasked_plaintext_raises() -> None:
    layout = PackingLayout(frac_bits=8, value_bits=8, max_summands=2, plaintext_bits=200)
    packed = layout.pack([1.0, -2.0, 3.0])
    assert layout.unpack_integers(packed, 3, summands=1) == [256, -512, 768]
    with pytest.raises(EncodingOverflowError, match="outside its 3 slots"):
        layout.unpack_integers([packed[0] | (1 << 199)], 3, summands=1)
    with pytest.raises(EncodingOverflowError, match="slot 0"):
        layout.unpack_integers([packed[0] & ~((1 << layout.slot_bits) - 1)], 3, summands=1)


def test_a_key_too_small_for_one_slot_raises() -> None:
    with pytest.raises(EncodingOverflowError, match="does not fit"):
        PackingLayout(frac_bits=64, value_bits=64, max_summands=4, plaintext_bits=100)
