"""Additive masks for values that the coordinator decrypts.

A mask drawn uniformly from Z_n makes ``(x + R) mod n`` uniform in Z_n
whatever x is, so the coordinator learns nothing from what it decrypts.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

__all__ = ["draw_masks", "unmask"]


def draw_masks(n: int, count: int) -> list[int]:
    """Draw `count` independent masks uniformly from Z_n with a CSPRNG."""
    return [secrets.randbelow(n) for _ in range(count)]


def unmask(masked: Sequence[int], masks: Sequence[int], n: int) -> list[int]:
    """Remove masks: return ``(z - r) mod n`` for each pair, still in Z_n."""
    if len(masked) != len(masks):
        raise ValueError(f"{len(masked)} masked values for {len(masks)} masks")
    return [(int(z) - r) % n for z, r in zip(masked, masks)]
