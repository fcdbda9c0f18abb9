"""What a party holds after binning: per column its bins, counts, WOE and IV."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

from vfl.errors import BinningFileError
from vfl.risk.binning import Bins
from vfl.risk.woe_encoding import WoeEncoder

__all__ = ["BINNING_FORMAT", "BinningResult", "FeatureBinning", "binning_report"]

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

    @classmethod
    def from_json(cls, data: Any) -> FeatureBinning:
        """Read :meth:`to_json`'s content (KeyError, TypeError or ValueError if damaged)."""
        edges, events = data["edges"], data["events"]
        return cls(name=str(data["name"]), owner=str(data["owner"]),
                   edges=None if edges is None else tuple(float(e) for e in edges),
                   missing_bin=None if data["missing_bin"] is None else int(data["missing_bin"]),
                   counts=tuple(int(c) for c in data["counts"]),
                   events=None if events is None else tuple(int(e) for e in events),
                   woe=tuple(float(w) for w in data["woe"]), iv=float(data["iv"]),
                   selected=bool(data["selected"]))

    def encoder(self) -> WoeEncoder:
        """The column's WOE encoding (its owner only: the edges are needed).

        Raises
        ------
        ValueError
            If this party does not know the column's edges, or the WOE does not fit the bins.
        """
        if self.edges is None:
            raise ValueError(f"column {self.name!r} is {self.owner}'s: only its owner knows "
                             "its bins")
        return WoeEncoder(self.name, Bins(self.edges, self.missing_bin), self.woe)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"a WOE or IV of {value} cannot be reported")
    return float(value)


def binning_report(party: str, role: str, config: dict[str, Any], rows: int,
                   features: list[FeatureBinning], *, session: str | None = None,
                   id_column: str | None = None,
                   label_column: str | None = None) -> dict[str, Any]:
    """The content of ``binning_<party>.json``.

    `session` names the run (the same in every party's file of one run);
    `id_column` and `label_column` (the label holder's) are the data's
    columns that are not binned.
    """
    return {"format": BINNING_FORMAT, "party": party, "role": role, "config": config,
            "rows": rows, "session": session, "id_column": id_column,
            "label_column": label_column, "features": [f.to_json() for f in features]}


@dataclass(frozen=True)
class BinningResult:
    """One party's ``binning_<party>.json``, read back.

    Attributes
    ----------
    party, role : str
        Whose file it is ("A1", "feature_holder"; "B", "label_holder").
    config : dict
        The run's :class:`~parties.binning.config.BinningConfig` fields.
    rows : int
        Rows shared by every party of the run.
    features : tuple of FeatureBinning
        Every column this party learnt about (the label holder's file also
        lists the feature holders' columns, anonymous and without edges).
    session : str or None
        The run (the same in every party's file of one run; None in files
        written before it was recorded).
    id_column, label_column : str or None
        The data's ID column and (label holder) label column, when recorded.
    source : str
        Where it was read from, for messages.
    """

    party: str
    role: str
    config: dict[str, Any]
    rows: int
    features: tuple[FeatureBinning, ...]
    session: str | None = None
    id_column: str | None = None
    label_column: str | None = None
    source: str = "the binning result"

    @property
    def own(self) -> tuple[FeatureBinning, ...]:
        """This party's own columns (those whose edges it holds)."""
        return tuple(f for f in self.features if f.owner == self.party)

    @property
    def owners(self) -> set[str]:
        """Every party whose columns this file lists."""
        return {f.owner for f in self.features}

    def encoders(self, *, all_columns: bool = False) -> dict[str, WoeEncoder]:
        """The WOE encoding of this party's columns, by name, in the file's order.

        Parameters
        ----------
        all_columns : bool
            Every own column; by default only those the feature selection kept
            (every column when the run selected none).
        """
        return {f.name: f.encoder() for f in self.own if all_columns or f.selected}

    @classmethod
    def from_report(cls, data: Any, *, source: str = "the binning result") -> BinningResult:
        """Read a :func:`binning_report` (ValueError naming what is wrong if damaged)."""
        if not isinstance(data, dict) or data.get("format") != BINNING_FORMAT:
            raise ValueError(f"not a binning file (format {BINNING_FORMAT})")
        try:
            result = cls(party=str(data["party"]), role=str(data["role"]),
                         config=dict(data["config"]), rows=int(data["rows"]),
                         features=tuple(FeatureBinning.from_json(f) for f in data["features"]),
                         session=data.get("session"), id_column=data.get("id_column"),
                         label_column=data.get("label_column"), source=source)
            for feature in result.own:
                feature.encoder()  # the bins and their WOE fit together
        except (KeyError, TypeError) as exc:
            raise ValueError(f"damaged: {type(exc).__name__} {exc}") from None
        return result

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, party: str | None = None) -> BinningResult:
        """Read ``binning_<party>.json``.

        Parameters
        ----------
        party : str, optional
            Expected owner; another party's file is refused.

        Raises
        ------
        BinningFileError
            If the file is missing, unreadable, not a binning file, damaged or
            another party's (the message names the party and the file).
        """
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            raise BinningFileError(f"binning file {path} does not exist (does the folder "
                                   "hold this party's file of 'vfl binning'?)",
                                   party=party) from None
        except OSError as exc:
            raise BinningFileError(f"cannot read binning file {path}: {exc.strerror}",
                                   party=party) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BinningFileError(f"binning file {path} is not valid JSON: {exc}",
                                   party=party) from None
        try:
            result = cls.from_report(data, source=path)
        except ValueError as exc:
            raise BinningFileError(f"{path} cannot be used: {exc}", party=party) from None
        if party is not None and result.party != party:
            raise BinningFileError(f"{path} is party {result.party}'s binning file, not "
                                   f"{party}'s", party=party)
        return result
