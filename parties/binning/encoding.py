"""A party's columns WOE-encoded with its own binning result, and the files of one run checked.

Each party encodes only its own columns with only its own
``binning_<party>.json`` (the edges are in the owner's file alone): its
values never leave it, and what it trains on is the WOE of the bin each
value falls in.

>>> a_woe = woe_encode(frame_a, a.binning)            # doctest: +SKIP
>>> FeatureHolder(a_woe, id_column="id")              # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd

from parties.binning.result import BinningResult
from parties.binning.table import _column
from vfl.errors import BinningFileError, InvalidFeatureError

if TYPE_CHECKING:
    from parties.binning.party import BinningParty

__all__ = ["check_binning_files", "woe_encode"]


def woe_encode(frame: pd.DataFrame, binning: BinningResult | BinningParty | str | os.PathLike[str],
               *, id_column: str | None = None, label_column: str | None = None,
               columns: Sequence[str] | None = None, all_columns: bool = False,
               source: str | None = None) -> pd.DataFrame:
    """The party's rows with each column replaced by the WOE of its bin.

    Parameters
    ----------
    frame : pandas.DataFrame
        The party's rows: the ID column, its columns (missing values allowed:
        NaN, as :func:`vfl.data.read_party_csv` reads empty cells) and, at the
        label holder, the label.
    binning : BinningResult, binning party or path
        This party's binning result: its ``binning_<party>.json`` (read with
        :meth:`BinningResult.load`), or the party object of an in-process run.
    id_column, label_column : str, optional
        Columns kept as they are (default: those the binning file recorded;
        the label only where `frame` has it).
    columns : sequence of str, optional
        The columns to encode (e.g. a model's); other columns of `frame` are
        left out. Default: the columns the feature selection kept (every one
        when the run selected none, or with `all_columns`); then a column of
        `frame` that the binning file does not know is an error, since the
        file must be of another run or other data.
    all_columns : bool
        Encode every binned column, selected or not.
    source : str, optional
        Where `frame` came from, for messages.

    Returns
    -------
    pandas.DataFrame
        The ID column, the label (if any), then the encoded columns in the
        binning file's order (`columns`' order when given), float64.

    Raises
    ------
    BinningFileError
        If the binning file lacks a column or `frame` lacks one the file bins,
        or `frame` has columns the file does not know (naming party and file).
    InvalidFeatureError
        If a value is not numeric or infinite, or missing in a column binned
        without missing values.
    """
    result = _result(binning)
    party, where = result.party, source or "the data"
    id_column = id_column or result.id_column
    if id_column is None:
        raise ValueError(f"party {party}: pass id_column (the binning result does not "
                         "record it)")
    label_column = label_column or result.label_column
    names = [str(c) for c in frame.columns]
    frame = frame.set_axis(names, axis=1)
    if id_column not in names:
        raise BinningFileError(f"{where} has no ID column {id_column!r} (the one "
                               f"{result.source} names)", party=party)
    # The label where the rows have it (training rows, not new rows to predict).
    kept = [id_column, *([label_column] if label_column in names else [])]
    encoders = result.encoders(all_columns=True)
    if columns is None:
        unknown = [c for c in names if c not in kept and c not in encoders]
        if unknown:
            raise BinningFileError(
                f"{where} has column {unknown[0]!r}, which {result.source} does not bin: a "
                "binning file of another run or of other data? Bin these columns again",
                party=party)
        wanted = list(result.encoders(all_columns=all_columns))
    else:
        wanted = [str(c) for c in columns]
        unknown = [c for c in wanted if c not in encoders]
        if unknown:
            raise BinningFileError(
                f"{result.source} has no bins of column {unknown[0]!r} (its own columns: "
                f"{', '.join(encoders) or 'none'}): a binning file of another run?",
                party=party)
    if not wanted and result.role == "feature_holder":
        raise BinningFileError(f"none of this party's columns was selected in "
                               f"{result.source}: leave the party out, or encode every column "
                               "(all_columns, --woe-all-columns)", party=party)
    absent = [c for c in wanted if c not in names]
    if absent:
        raise BinningFileError(f"{result.source} bins column {absent[0]!r}, which {where} "
                               "does not have: a binning file of another run, or other data?",
                               party=party)
    out = frame[kept].copy()
    for name in wanted:
        values = _column(frame[name], name, where, party)
        try:
            out[name] = encoders[name].encode(values)
        except ValueError as exc:
            raise InvalidFeatureError(f"{where}: {exc}", party=party) from None
    return out


def _result(binning: BinningResult | BinningParty | str | os.PathLike[str]) -> BinningResult:
    if isinstance(binning, BinningResult):
        return binning
    if isinstance(binning, (str, os.PathLike)):
        return BinningResult.load(binning)
    from parties.binning.party import BinningParty

    if isinstance(binning, BinningParty):
        return binning.binning
    raise TypeError(f"binning must be a BinningResult, a binning party or a path, got "
                    f"{type(binning).__name__}")


def check_binning_files(results: Mapping[str, BinningResult], *, label_holder: str = "B"
                        ) -> None:
    """Refuse binning files that are not of one run with these parties.

    Parameters
    ----------
    results : mapping of party name to BinningResult
        Every party's file (the label holder's and each feature holder's).
        Whoever holds every file can run this check (``vfl simulate``, a
        notebook); over the network each party has only its own.

    Raises
    ------
    BinningFileError
        Naming the party and its file: another party's file, files of
        different runs (their sessions, settings or rows differ), a feature
        holder the label holder's file does not know, or one the run had
        whose columns were selected but which is missing here.
    """
    if label_holder not in results:
        raise BinningFileError(f"no binning file of the label holder {label_holder}",
                               party=label_holder)
    b = results[label_holder]
    for name, result in results.items():
        role = "label_holder" if name == label_holder else "feature_holder"
        if result.party != name or result.role != role:
            raise BinningFileError(f"{result.source} is party {result.party}'s "
                                   f"({result.role}) binning file, not {name}'s ({role})",
                                   party=name)
        if name == label_holder:
            continue
        differs = next((what for what, x, y in (
            ("sessions", result.session, b.session), ("settings", result.config, b.config),
            ("numbers of shared rows", result.rows, b.rows)) if x != y and not (
                what == "sessions" and (x is None or y is None))), None)
        if differs is not None:
            raise BinningFileError(f"{result.source} and {b.source} are of different binning "
                                   f"runs (their {differs} differ); use the files of one "
                                   "'vfl binning' run", party=name)
        # B's anonymous view of this party's columns is the same bins and WOE.
        theirs = sorted((f.counts, f.woe) for f in b.features if f.owner == name)
        own = sorted((f.counts, f.woe) for f in result.own)
        if not theirs:
            raise BinningFileError(f"{b.source} has no column of {name}: {name} took no part "
                                   "in that binning run", party=name)
        if theirs != own:
            raise BinningFileError(f"the bins of {result.source} are not those {b.source} "
                                   "lists for this party: files of different runs",
                                   party=name)
    missing = sorted(owner for owner in b.owners - set(results)
                     if any(f.selected for f in b.features if f.owner == owner))
    if missing:
        raise BinningFileError(f"{b.source} has selected columns of {', '.join(missing)}, "
                               "which take no part here: give every party of the binning run",
                               party=missing[0])
