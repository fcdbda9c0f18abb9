"""WOE encoding of one column: each value replaced by the weight of evidence of its bin.

The bins are the owner's (:class:`~vfl.risk.binning.Bins`: left-closed value
bins, missing values in the bin ``missing_bin`` names), the WOE per bin the
one binning computed. New rows are encoded by the same rule as the training
rows: a value below the first edge falls in the first bin, one at or above
the last edge in the last value bin (the end bins are open), a missing value
(NaN) in the missing bin. A column binned without any missing value has no
place for one: encoding a missing value there is an error, never a guess.

Pure numpy; no party, no file. :func:`parties.binning.woe_encode` applies
it to a party's DataFrame with the party's binning file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vfl.risk.binning import Bins

__all__ = ["WoeEncoder"]


@dataclass(frozen=True)
class WoeEncoder:
    """The WOE encoding of one column.

    Attributes
    ----------
    name : str
        The column's name at its owner.
    bins : Bins
        The owner's final bins of the column.
    woe : tuple of float
        WOE of every bin (``bins.n_bins`` values, the missing bin last when
        it stands apart).
    """

    name: str
    bins: Bins
    woe: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.woe) != self.bins.n_bins:
            raise ValueError(f"column {self.name!r}: {len(self.woe)} WOE values for "
                             f"{self.bins.n_bins} bins")
        if not all(isinstance(w, (int, float)) and math.isfinite(w) for w in self.woe):
            raise ValueError(f"column {self.name!r}: every WOE must be a finite number")

    def bin_of(self, values: np.ndarray) -> np.ndarray:
        """The bin of every value (see the module: end bins open, NaN to the missing bin).

        Raises
        ------
        ValueError
            If a value is infinite, or missing where the column had no missing value.
        """
        values = np.asarray(values, dtype=np.float64)
        if np.isinf(values).any():
            raise ValueError(f"column {self.name!r} holds infinite values; leave such cells "
                             "empty (missing) or replace them")
        if np.isnan(values).any() and self.bins.missing_bin is None:
            rows = np.flatnonzero(np.isnan(values))
            raise ValueError(f"column {self.name!r} has {len(rows)} missing value(s) (first at "
                             f"row {rows[0] + 1}), but it had none when it was binned, so no "
                             "bin holds them; fill them in or bin again on rows that have some")
        return self.bins.assign(values)

    def encode(self, values: np.ndarray) -> np.ndarray:
        """The WOE of every value's bin (float64)."""
        return np.asarray(self.woe, dtype=np.float64)[self.bin_of(values)]
