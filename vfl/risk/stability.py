"""Population stability index: how far new rows' distribution has moved from the training rows'.

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

over bins i, with e_i and a_i the shares of the expected (training) and
actual (new) rows in bin i. The bins are the training rows' own (quantile
bins of the expected values, missing values in a bin of their own, see
:mod:`vfl.risk.binning`), so each holds about the same share of training
rows. Common reading: below 0.1 stable, 0.1 to 0.25 a shift worth a look,
above 0.25 a shift that calls for action.

Empty bins: a share of zero would make the logarithm infinite, so a bin
empty on one side gets a share of `floor` (1e-4 by default, the usual
choice) on that side, shares otherwise unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vfl.risk.binning import Bins, make_bins

__all__ = ["DEFAULT_FLOOR", "Stability", "population_stability", "psi", "psi_from_counts",
           "stability_status"]

#: The share given to a bin that one population leaves empty.
DEFAULT_FLOOR = 1e-4


def psi_from_counts(expected: np.ndarray, actual: np.ndarray, *,
                    floor: float = DEFAULT_FLOOR) -> float:
    """PSI from rows per bin of the two populations (same bins, same order)."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.ndim != 1 or e.size == 0:
        raise ValueError(f"need equally long non-empty vectors, got {e.shape} and {a.shape}")
    if np.any(e < 0) or np.any(a < 0) or e.sum() == 0 or a.sum() == 0:
        raise ValueError("counts must be non-negative, with rows on both sides")
    if not 0 < floor < 1:
        raise ValueError(f"floor must be in (0, 1), got {floor}")
    share_e = np.maximum(e / e.sum(), floor)
    share_a = np.maximum(a / a.sum(), floor)
    return float(np.sum((share_a - share_e) * np.log(share_a / share_e)))


@dataclass(frozen=True)
class Stability:
    """The PSI of one column and the counts it comes from.

    Attributes
    ----------
    psi : float
    bins : Bins
        The bins (the training rows' quantiles, or given).
    expected, actual : numpy.ndarray
        Rows per bin of the training and the new rows.
    """

    psi: float
    bins: Bins
    expected: np.ndarray
    actual: np.ndarray

    @property
    def status(self) -> str:
        return stability_status(self.psi)


def stability_status(value: float) -> str:
    """The common reading: "stable" (< 0.1), "shift" (< 0.25) or "major shift"."""
    return "stable" if value < 0.1 else "shift" if value < 0.25 else "major shift"


def population_stability(expected: np.ndarray, actual: np.ndarray, *, bins: int = 10,
                         edges: Bins | None = None,
                         floor: float = DEFAULT_FLOOR) -> Stability:
    """PSI of one column (or score) between training rows and new rows, with its counts.

    Parameters
    ----------
    expected, actual : array_like
        The training rows' values and the new rows' (NaN: missing).
    bins : int
        Quantile bins of `expected` (fewer where values repeat).
    edges : Bins, optional
        Use these bins instead (e.g. the column's WOE bins).
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if edges is None:
        edges = make_bins(e, method="quantile", bins=bins, min_rows=1)
    if np.isnan(a).any() and edges.missing_bin is None:
        # The training rows had no missing value: new missing ones get a bin of their own.
        edges = Bins(edges.edges, edges.value_bins)
    n = edges.n_bins
    counts_e = np.bincount(edges.assign(e), minlength=n)
    counts_a = np.bincount(edges.assign(a), minlength=n)
    return Stability(psi_from_counts(counts_e, counts_a, floor=floor), edges, counts_e,
                     counts_a)


def psi(expected: np.ndarray, actual: np.ndarray, *, bins: int = 10,
        edges: Bins | None = None, floor: float = DEFAULT_FLOOR) -> float:
    """PSI of one column (see :func:`population_stability`)."""
    return population_stability(expected, actual, bins=bins, edges=edges, floor=floor).psi
