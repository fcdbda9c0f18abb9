"""The heavy work of ECDH alignment, one chunk at a time.

These functions run in worker processes (any ``concurrent.futures``
executor) or inline; they take and return plain ``bytes`` so a chunk crosses
a process boundary as one buffer, not as thousands of Python objects. The
scalar multiplications are X25519 from the ``cryptography`` package (OpenSSL,
about 37 microseconds each on a 2.3 GHz Xeon); per-point Python overhead is
about 2 microseconds.

Checks on a peer's points (see :func:`blind_points`): wrong width, a
non-canonical encoding (u >= p or the unused top bit set), a u-coordinate of
the twist rather than the curve, and low-order points (their product with a
clamped scalar is the identity, which X25519 reports as an all-zero output)
are all refused, with the index of the first offending point.

Scalars are 32 random bytes that X25519 clamps to k = 2^254 + 8 k', k'
uniform in [0, 2^251): a multiple of the cofactor 8 (so every product lies
in the prime-order subgroup), but not uniform modulo the group order l ~
2^252 (k mod l covers about half of the residues, never 0). Why that is
fine for the DH PSI: :mod:`vfl.psi.ecdh`, "Scalars".
"""

from __future__ import annotations

from collections.abc import Sequence

import gmpy2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from vfl.psi.hash_to_curve import DST, P, encode_to_curve

__all__ = ["POINT_BYTES", "PointError", "blind_ids", "blind_points", "first_noncanonical"]

#: Width of one encoded point (a u-coordinate).
POINT_BYTES = 32

_P = gmpy2.mpz(P)
_A = gmpy2.mpz(486662)


class PointError(ValueError):
    """A peer's point is unacceptable; ``index`` is its position in the chunk."""

    def __init__(self, index: int, reason: str) -> None:
        self.index = index
        self.reason = reason
        super().__init__(f"point {index}: {reason}")

    def __reduce__(self) -> tuple[type[PointError], tuple[int, str]]:
        # So that it survives pickling back from a worker process.
        return (PointError, (self.index, self.reason))


def _multiply(points: bytes, scalar: bytes, width: int) -> bytes:
    """X25519(scalar, point) for every point, each output cut to `width` bytes.

    Raises
    ------
    PointError
        For the first point whose product is the identity (a low-order point).
    """
    secret = X25519PrivateKey.from_private_bytes(scalar)
    exchange = secret.exchange
    public = X25519PublicKey.from_public_bytes
    step = POINT_BYTES
    try:
        if width == step:
            return b"".join([exchange(public(points[i:i + step]))
                             for i in range(0, len(points), step)])
        return b"".join([exchange(public(points[i:i + step]))[:width]
                         for i in range(0, len(points), step)])
    except ValueError:
        pass
    # Slow path, taken only for a bad chunk: find which point failed.
    for i in range(0, len(points), step):
        try:
            exchange(public(points[i:i + step]))
        except ValueError:
            raise PointError(i // step, "low-order point (its product with any "
                             "clamped scalar is the identity)") from None
    raise AssertionError("unreachable")  # pragma: no cover


def blind_ids(ids: Sequence[str], scalar: bytes) -> bytes:
    """Hash each ID to the curve and multiply by `scalar`: 32 bytes per ID.

    Parameters
    ----------
    ids : sequence of str
        Normalised IDs.
    scalar : bytes
        32-byte X25519 private scalar (clamped by X25519 itself to
        2^254 + 8 k', k' < 2^251; see the module docstring).
    """
    return _multiply(encode_to_curve(ids, DST), scalar, POINT_BYTES)


def first_noncanonical(points: bytes) -> int | None:
    """Index of the first point not encoded canonically (top bit set or u >= p)."""
    if not points:
        return None
    words = np.frombuffer(points, dtype="<u8").reshape(-1, 4)
    top = words[:, 3]
    # p = 2^255 - 19: u >= p iff the top word is 2^63 - 1, the middle words
    # are all ones and the low word is at least 2^64 - 19.
    bad = (top >= np.uint64(1 << 63)) | (
        (top == np.uint64((1 << 63) - 1)) & (words[:, 2] == np.uint64(2**64 - 1))
        & (words[:, 1] == np.uint64(2**64 - 1)) & (words[:, 0] >= np.uint64(2**64 - 19)))
    hits = np.flatnonzero(bad)
    return int(hits[0]) if hits.size else None


def _first_off_curve(points: bytes) -> int | None:
    """Index of the first u-coordinate of the twist (u^3 + A u^2 + u not a square)."""
    p, a, legendre, from_binary = _P, _A, gmpy2.legendre, gmpy2.from_binary
    for k, i in enumerate(range(0, len(points), POINT_BYTES)):
        u = from_binary(b"\x01\x01" + points[i:i + POINT_BYTES])
        if legendre(u * (u * (u + a) + 1) % p, p) == -1:
            return k
    return None


def blind_points(points: bytes, scalar: bytes, width: int = POINT_BYTES) -> bytes:
    """Check a peer's points and multiply each by `scalar`.

    Parameters
    ----------
    points : bytes
        Concatenated 32-byte u-coordinates received from the peer.
    scalar : bytes
        This party's 32-byte X25519 private scalar.
    width : int
        Bytes kept of each product (a prefix of the 32-byte encoding).

    Raises
    ------
    PointError
        Naming the first point that is not canonical, not on the curve, or of
        low order.
    """
    if len(points) % POINT_BYTES:
        raise PointError(len(points) // POINT_BYTES,
                         f"{len(points)} bytes is not a whole number of {POINT_BYTES}-byte points")
    bad = first_noncanonical(points)
    if bad is not None:
        raise PointError(bad, "not a canonical u-coordinate (top bit set or u >= 2^255 - 19)")
    bad = _first_off_curve(points)
    if bad is not None:
        raise PointError(bad, "not on Curve25519 (a point of its twist)")
    return _multiply(points, scalar, width)
