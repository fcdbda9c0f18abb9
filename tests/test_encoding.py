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


# --- the capacity check is exact, and counts the feature holders ------------------------


def worst_loss(codec: FixedPointCodec, m: int, k: int) -> int:
    """The largest loss a run can decrypt, computed as the protocol computes it.

    Every party's value at the encoding's limit: K feature holders' scores
    u_Ak and the label holder's u_B - y, all equal to the largest encoding,
    and each of the K + 1 parties' penalty terms at its own limit.
    """
    top = np.nextafter(2.0**codec.value_bits, 0)
    e = codec.encode([top])[0]
    penalty = codec.encode([top], scale_power=2)[0]
    assert e == codec.max_encoded() <= 1 << codec.max_encoded_bits
    assert penalty == codec.max_encoded(2)
    residual = (k + 1) * e                   # d_i = u_B_i - y_i + sum_k u_Ak_i
    return m * residual * residual + (k + 1) * penalty


@pytest.mark.parametrize("frac_bits, value_bits", [(4, 4), (8, 20), (40, 64), (12, 600)])
@pytest.mark.parametrize("m", [1, 7, 1000])
@pytest.mark.parametrize("k", [0, 1, 2, 5])
def test_capacity_bound_is_exact(frac_bits, value_bits, m, k):
    codec = FixedPointCodec(frac_bits, value_bits)
    worst = worst_loss(codec, m, k)
    assert codec.max_result(m, k) == worst
    inside, outside = 3 * worst + 2, 3 * worst - 1      # n // 3 == worst, worst - 1
    codec.check_capacity(inside, m, holders=k)
    assert FixedPointCodec.to_signed([worst % inside], inside) == [worst]
    with pytest.raises(EncodingOverflowError, match=f"with {k} feature holder"):
        codec.check_capacity(outside, m, holders=k, party="A1")
    # ...and rightly: there the worst loss lands in the middle third (or would wrap).
    with pytest.raises(EncodingOverflowError, match="middle third"):
        FixedPointCodec.to_signed([worst % outside], outside)


def test_more_feature_holders_need_more_room():
    codec = FixedPointCodec()
    m = 10**6
    n = 3 * codec.max_result(m, 1) + 2
    codec.check_capacity(n, m)                 # the default is one feature holder
    codec.check_capacity(n, m, holders=1)
    for k in (2, 3, 10):
        with pytest.raises(EncodingOverflowError, match=r"party B: a .*-bit key cannot hold"):
            codec.check_capacity(n, m, holders=k, party="B")
    # (K + 1)^2: ten holders need about 30 times the room of one.
    assert codec.max_result(m, 10) // codec.max_result(m, 1) == 30


def test_capacity_arguments_are_checked():
    codec = FixedPointCodec()
    codec.check_capacity(N, np.int64(1000), holders=np.int64(3))
    with pytest.raises(TypeError):
        codec.check_capacity(N, 1000, holders=True)
    with pytest.raises(TypeError):
        codec.check_capacity(N, 1000.0)
    with pytest.raises(ValueError, match="holders must be >= 0"):
        codec.check_capacity(N, 1000, holders=-1)
