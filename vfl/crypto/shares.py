"""Additive shares of plaintext scores in Z_{2**256} (prediction delivered to C).

Each party encodes its partial scores in fixed point and adds masks; the
masks of all parties cancel in the sum, so the receiver learns the total
score of each row and nothing about any single party's share.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from vfl.crypto.encoding import FixedPointCodec
from vfl.crypto.masks import SHARE_MODULUS_BITS

__all__ = ["combine_shares", "share_scores"]

_MODULUS = 1 << SHARE_MODULUS_BITS
_CODEC = FixedPointCodec()


def share_scores(scores: np.ndarray, masks: Sequence[int], *, subtract: bool = False,
                 party: str | None = None) -> tuple[int, ...]:
    """Encode `scores` and add (or, with `subtract`, remove) `masks`, mod 2**256."""
    encoded = _CODEC.encode(scores, what="prediction scores", party=party)
    if len(masks) != len(encoded):
        raise ValueError(f"{len(masks)} masks for {len(encoded)} scores")
    sign = -1 if subtract else 1
    return tuple((e + sign * r) % _MODULUS for e, r in zip(encoded, masks))


def combine_shares(shares: Iterable[Sequence[int]]) -> np.ndarray:
    """Sum every party's shares row by row and decode the total scores."""
    shares = list(shares)
    if len({len(s) for s in shares}) > 1:
        raise ValueError("every party must send one share per row")
    totals = [sum(column) % _MODULUS for column in zip(*shares)]
    half = _MODULUS >> 1
    return _CODEC.decode([t - _MODULUS if t >= half else t for t in totals])
