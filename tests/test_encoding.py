"""Fixed-point encoding: exact round trips, overflow raises, never wraps."""

from __future__ import annotations

import numpy as np
import pytest

from vfl.crypto import FixedPointCodec
from vfl.errors import EncodingOverflowError

N = (1 << 511) + 187  # any odd modulus works for the mapping itself


@pytest.mark.parametrize("value", [0.0, 1.0, -1.0, 2.0**-40, -123.456, 2.0**63, -(2.0**63)])
def test_round_trip(value):
    codec = FixedPointCodec()
    z = codec.encode([value])
    signed = codec.to_signed([v % N for v in z], N)
    assert codec.decode(signed)[0] == pytest.approx(value, abs=2.0**-41)


def test_products_decode_at_double_scale():
    codec = FixedPointCodec()
    x, y = codec.encode([3.25, -0.5])
    assert codec.decode([x * y], scale_power=2)[0] == -1.625


@pytest.mark.parametrize("bad", [np.nan, np.inf, 2.0**64])
def test_unencodable_values_raise(bad):
    with pytest.raises(EncodingOverflowError, match="party A1: feature 'x'"):
        FixedPointCodec().encode([1.0, bad], what="feature 'x'", party="A1")


def test_middle_third_residue_raises_instead_of_wrapping():
    with pytest.raises(EncodingOverflowError, match="middle third"):
        FixedPointCodec.to_signed([N // 2], N)


def test_capacity_check():
    codec = FixedPointCodec()
    codec.check_capacity(N, 10**6)
    with pytest.raises(EncodingOverflowError, match="cannot hold sums of 1000000 products"):
        codec.check_capacity((1 << 200) + 1, 10**6)


def test_phe_exponent_matches_the_scale():
    codec = FixedPointCodec(frac_bits=40)
    assert 16.0 ** codec.phe_exponent == 2.0**-40
    with pytest.raises(ValueError):
        FixedPointCodec(frac_bits=42)
