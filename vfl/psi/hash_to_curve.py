"""Hashing IDs to points of Curve25519 (RFC 9380, ``curve25519_XMD:SHA-512_ELL2_NU_``).

An ID becomes a point in two standard steps:

1. ``hash_to_field``: ``expand_message_xmd`` with SHA-512 stretches the ID,
   under a domain-separation tag, to 48 bytes, read big-endian and reduced
   modulo p = 2^255 - 19 (the 128 extra bits make the result statistically
   uniform in GF(p)).
2. ``map_to_curve``: the Elligator 2 map for Curve25519 (RFC 9380, 6.7.1,
   with Z = 2) sends that field element to a point of the curve itself,
   never of its quadratic twist.

The result is returned as the point's Montgomery u-coordinate, 32 bytes
little-endian: exactly the input X25519 expects. RFC 9380 finishes
``encode_to_curve`` by clearing the cofactor (multiplying by 8); here the
X25519 scalar does that, because X25519 clamps every scalar to a multiple of
8 (see :mod:`vfl.psi.ecdh` for the whole argument).

Why the curve and not the twist: a u-coordinate drawn at random lies on the
curve or on its twist with probability 1/2 each, and multiplying by a secret
scalar keeps it there. A blinded value would therefore reveal one bit of the
hash of its ID, which a receiver could test against any guessed ID.
Elligator 2 lands on the curve every time, so blinded values reveal nothing.

Cost: about 6 to 9 microseconds per ID in Python (two SHA-512 calls, one
Legendre symbol with gmpy2, and a share of one batched inversion), small next
to the 37 microseconds of an X25519 scalar multiplication.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import gmpy2
from gmpy2 import mpz

__all__ = ["DST", "P", "encode_to_curve", "expand_message_xmd", "hash_to_field",
           "map_to_curve", "u_from_bytes", "u_to_bytes"]

#: The field prime of Curve25519.
P = 2**255 - 19
_P = mpz(P)
#: Montgomery coefficient of Curve25519, v^2 = u^3 + A u^2 + u.
_A = mpz(486662)
_MINUS_A = _P - _A
_ONE = mpz(1)

#: Domain-separation tag of this library's ID hashing (RFC 9380, section 3.1):
#: no other protocol hashes to the same points. At most 45 bytes, so that the
#: second SHA-512 call of expand_message_xmd fits one block.
DST = b"VFL-PSI-V01-curve25519_XMD:SHA-512_ELL2_NU_"

#: Bytes drawn per field element: ceil((255 + 128) / 8), RFC 9380 for k = 128.
_L = 48
_SHA512_BLOCK = 128


def expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380, 5.3.1, with SHA-512: `length` uniform bytes from `msg`."""
    if len(dst) > 255:
        raise ValueError("domain-separation tag longer than 255 bytes")
    ell = -(-length // 64)
    if ell > 255 or length > 65535:
        raise ValueError("expand_message_xmd: requested length too large")
    dst_prime = dst + bytes([len(dst)])
    b0 = hashlib.sha512(bytes(_SHA512_BLOCK) + msg + length.to_bytes(2, "big") + b"\x00"
                        + dst_prime).digest()
    blocks = [hashlib.sha512(b0 + b"\x01" + dst_prime).digest()]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b0, blocks[-1]))
        blocks.append(hashlib.sha512(mixed + bytes([i]) + dst_prime).digest())
    return b"".join(blocks)[:length]


def hash_to_field(msg: bytes, dst: bytes = DST) -> int:
    """RFC 9380, 5.2, count = 1: one element of GF(p) from `msg`."""
    return int.from_bytes(expand_message_xmd(msg, dst, _L), "big") % P


def map_to_curve(u: int) -> int:
    """Elligator 2 (RFC 9380, 6.7.1, Z = 2): the u-coordinate of a curve point."""
    return int(_elligator2([mpz(u % P)])[0])


def u_to_bytes(u: int) -> bytes:
    """X25519's encoding of a u-coordinate: 32 bytes, little-endian."""
    return int(u).to_bytes(32, "little")


def u_from_bytes(data: bytes) -> int:
    """Inverse of :func:`u_to_bytes` (no reduction, no masking)."""
    return int.from_bytes(data, "little")


def encode_to_curve(ids: Sequence[str], dst: bytes = DST) -> bytes:
    """Hash every ID to a Curve25519 point; their u-coordinates, concatenated.

    Parameters
    ----------
    ids : sequence of str
        Normalised IDs (encoded as UTF-8 before hashing).
    dst : bytes
        Domain-separation tag.

    Returns
    -------
    bytes
        ``32 * len(ids)`` bytes: the X25519 encoding of point i at ``[32 i, 32 i + 32)``.
    """
    if not ids:
        return b""
    # expand_message_xmd specialised to one SHA-512 output block (48 <= 64):
    # the 128 zero bytes that open every first hash are absorbed once.
    dst_prime = dst + bytes([len(dst)])
    zero_block = hashlib.sha512(bytes(_SHA512_BLOCK))
    tail0 = _L.to_bytes(2, "big") + b"\x00" + dst_prime
    tail1 = b"\x01" + dst_prime
    sha512 = hashlib.sha512
    from_binary = gmpy2.from_binary
    p = _P
    dens = []
    for text in ids:
        h = zero_block.copy()
        h.update(text.encode("utf-8"))
        h.update(tail0)
        digest = sha512(h.digest() + tail1).digest()
        # gmpy2's binary format: 0x01 0x01 then the magnitude little-endian.
        u = from_binary(b"\x01\x01" + digest[_L - 1::-1]) % p
        # Elligator 2's denominator 1 + Z u^2 (Z = 2); it never vanishes
        # (-1/2 is not a square mod p), but RFC 9380's rule for 0 costs nothing.
        dens.append((2 * u * u + 1) % p or _ONE)
    return b"".join(_elligator2_from_inverses(_batch_invert(dens)))


def _elligator2(us: list[mpz]) -> list[mpz]:
    """Elligator 2 on a batch of field elements, as integers."""
    p = _P
    dens = [(2 * u * u + 1) % p or _ONE for u in us]
    return [u_from_bytes(x) for x in _elligator2_from_inverses(_batch_invert(dens))]


def _elligator2_from_inverses(invs: list[mpz]) -> list[bytes]:
    """Elligator 2 given 1 / (1 + 2 u^2) for each u: 32-byte little-endian u-coordinates."""
    p, a, minus_a = _P, _A, _MINUS_A
    legendre, to_binary = gmpy2.legendre, gmpy2.to_binary
    out = []
    for inv in invs:
        x1 = minus_a * inv % p                 # -A / (1 + 2 u^2)
        gx1 = x1 * (x1 * (x1 + a) + 1) % p     # x1^3 + A x1^2 + x1
        # is_square(gx1) (0 counts): x1; otherwise x2 = -x1 - A, whose g(x2) is
        # then a square because Z = 2 is not.
        x = x1 if legendre(gx1, p) != -1 else (minus_a - x1) % p
        out.append(to_binary(x)[2:].ljust(32, b"\x00"))
    return out


def _batch_invert(values: list[mpz]) -> list[mpz]:
    """Inverses mod p of nonzero `values` with Montgomery's trick (one inversion)."""
    p = _P
    prefix = []
    acc = mpz(1)
    for v in values:
        prefix.append(acc)
        acc = acc * v % p
    inv = gmpy2.invert(acc, p)
    out = [mpz(0)] * len(values)
    for i in range(len(values) - 1, -1, -1):
        out[i] = inv * prefix[i] % p
        inv = inv * values[i] % p
    return out
