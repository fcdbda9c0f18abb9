"""What a party holds after binning: per column its bins, counts, WOE and IV."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["BINNING_FORMAT", "FeatureBinning", "binning_report"]

BINNING_FORMAT = "vfl-binning/1"


@dataclass(frozen=True)
class FeatureBinning:
    """One column's bins as one party knows them.

    Attributes
    ----------
    name : str
        The column's name at its owner; another party's column as the label
        holder sees it: ``<owner>#<k>``, k in a secret order.
    owner : str
        The party that holds the column.
    edges : tuple of float or None
        Cut points (value bin j: edges[j-1] <= x < edges[j]); only its owner knows them.
    missing_bin : int or None
        The bin holding missing values (owner only; None: there were none, or unknown).
    counts : tuple of int
        Rows per bin.
    events : tuple of int or None
        Events (label 1) per bin; None where this party is not told them.
    woe : tuple of float
    iv : float
    selected : bool
        Kept by the feature selection (every column when none was asked for).
    """

    name: str
    owner: str
    edges: tuple[float, ...] | None
    missing_bin: int | None
    counts: tuple[int, ...]
    events: tuple[int, ...] | None
    woe: tuple[float, ...]
    iv: float
    selected: bool

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "owner": self.owner,
                "edges": None if self.edges is None else list(self.edges),
                "missing_bin": self.missing_bin, "counts": list(self.counts),
                "events": None if self.events is None else list(self.events),
                "woe": [_finite(w) for w in self.woe], "iv": _finite(self.iv),
                "selected": self.selected}


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"a WOE or IV of {value} cannot be reported")
    return float(value)


def binning_report(party: str, role: str, config: dict[str, Any], rows: int,
                   features: list[FeatureBinning]) -> dict[str, Any]:
    """The content of ``binning_<party>.json``."""
    return {"format": BINNING_FORMAT, "party": party, "role": role, "config": config,
            "rows": rows, "features": [f.to_json() for f in features]}
