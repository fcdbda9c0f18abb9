"""Additive masks for values that the coordinator decrypts.

A mask drawn uniformly from Z_n makes ``(x + R) mod n`` uniform in Z_n
whatever x is, so the coordinator learns nothing from what it decrypts.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

__all__ = ["SHARE_MODULUS_BITS", "draw_masks", "expand_masks", "unmask"]

#: Additive shares of plaintext fixed-point values (prediction delivered to C)
#: live in Z_{2**256}: far above any encoded score, so sums never wrap.
SHARE_MODULUS_BITS = 256


def draw_masks(n: int, count: int) -> list[int]:
    """Draw `count` independent masks uniformly from Z_n with a CSPRNG."""
    return [secrets.randbelow(n) for _ in range(count)]


def unmask(masked: Sequence[int], masks: Sequence[int], n: int) -> list[int]:
    """Remove masks: return ``(z - r) mod n`` for each pair, still in Z_n."""
    if len(masked) != len(masks):
        raise ValueError(f"{len(masked)} masked values for {len(masks)} masks")
    return [(int(z) - r) % n for z, r in zip(masked, masks)]


def expand_masks(seed: bytes, count: int) -> list[int]:
    """`count` masks uniform in Z_{2**256}, expanded from a secret seed with SHAKE-256.

    Two parties holding the same 32-byte seed derive the same masks without
    sending them; whoever lacks the seed sees values indistinguishable from
    uniform. 2**256 is a power of two, so 32 bytes give an exactly uniform mask.
    """
    if len(seed) < 32:
        raise ValueError("a mask seed needs at least 32 bytes")
    width = SHARE_MODULUS_BITS // 8
    stream = hashlib.shake_256(b"vfl-masks/1" + seed).digest(width * count)
    return [int.from_bytes(stream[i * width:(i + 1) * width], "big") for i in range(count)]
