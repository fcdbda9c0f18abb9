"""Typed messages of the federated binning protocol (``docs/binning.md``), one per step.

Arrows give sender -> recipient. [[x]] is encrypted under C's key. Nothing
here carries an ID, a label, a bin edge or a column name in the clear; what
is revealed to whom is listed in ``docs/binning.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from parties.binning.config import BinningConfig
from vfl.crypto.ciphertext import EncryptedVector
from vfl.protocol.wire import wire_message

__all__ = [
    "BinSums",
    "BinWoe",
    "BinningPlan",
    "DecryptedEventSums",
    "EncryptedLabels",
    "MaskedEventSums",
]


@wire_message
@dataclass(frozen=True)
class BinningPlan:
    """B -> A_k, C: the settings, the aligned rows and the feature holders, in order."""

    config: BinningConfig
    n_rows: int
    feature_holders: tuple[str, ...]


@wire_message
@dataclass(frozen=True)
class EncryptedLabels:
    """B -> A_k: [[y_i]] (0 or 1) for every aligned row, fresh randomness per recipient."""

    labels: EncryptedVector


@wire_message
@dataclass(frozen=True)
class BinSums:
    """A_k -> B: per column (in a secret order), its bins' rows and [[events]].

    Attributes
    ----------
    bins : tuple of int
        Bins of each column.
    missing_apart : tuple of bool
        Whether a column's last bin is its missing values' own (kept out of
        ChiMerge's merges).
    counts : tuple of int
        Rows per bin, every column's bins one after another; each at least
        the plan's minimum.
    events : EncryptedVector
        [[sum of y over the bin's rows]], same order, re-randomised.
    """

    bins: tuple[int, ...]
    missing_apart: tuple[bool, ...]
    counts: tuple[int, ...]
    events: EncryptedVector


@wire_message
@dataclass(frozen=True)
class MaskedEventSums:
    """B -> C: [[events + R]], R uniform in Z_n and known to B alone."""

    values: EncryptedVector


@wire_message
@dataclass(frozen=True)
class DecryptedEventSums:
    """C -> B: the masked event sums decrypted (residues in Z_n, uniform to C)."""

    values: tuple[int, ...]


@wire_message
@dataclass(frozen=True)
class BinWoe:
    """B -> A_k: per column (the order of :class:`BinSums`), the final bins' WOE.

    Attributes
    ----------
    groups : tuple of int
        For every bin A_k sent, its final bin within its column (ChiMerge's
        merges; the identity for the other methods).
    woe : tuple of float
        WOE of each final bin, every column's one after another.
    iv : tuple of float
        Information value of each column.
    selected : tuple of bool
        Whether each column passed the feature selection.
    """

    groups: tuple[int, ...]
    woe: tuple[float, ...]
    iv: tuple[float, ...]
    selected: tuple[bool, ...]
