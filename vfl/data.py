"""Loading and checking one party's table.

Every problem is reported with the party, the file (when there is one), the
column and, where it helps, the first offending row's ID, plus what to do.
Input files are only ever read.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vfl.errors import (
    InputDataError,
    InvalidFeatureError,
    InvalidLabelError,
    LabelInFeatureHolderError,
    MissingColumnError,
)
from vfl.psi.ids import normalize_ids

__all__ = ["PartyTable", "Standardizer", "checked_header", "read_party_csv"]

# pandas' default NA strings, applied to every column but the ID column (an ID
# such as "NA" or "null" is text, not a missing value).
_NA_STRINGS = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan",
               "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a",
               "nan", "null"]


def read_party_csv(path: str | os.PathLike[str], *, party: str, id_column: str,
                   as_text: bool = False) -> pd.DataFrame:
    """Read a party's CSV file, keeping the ID column as text.

    With `as_text`, every column is kept as the text in the file (no number
    parsing, no missing values), so writing rows back reproduces each cell.

    Raises
    ------
    InputDataError
        If the file does not exist or cannot be parsed as CSV.
    MissingColumnError
        If the ID column is not in the header.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputDataError(f"input file {path} does not exist", party=party)
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputDataError(f"cannot read {path} as CSV: {exc}", party=party) from None
    if not header:
        raise InputDataError(f"cannot read {path} as CSV: the file is empty", party=party)
    # pandas would rename a repeated name to "x.1": which column is meant is a guess.
    _refuse_duplicate_columns(header, path, party)
    if id_column not in header:
        raise MissingColumnError(
            f"{path} has no ID column {id_column!r} (columns: {', '.join(header)}); pass the "
            "right --id-column", party=party)
    try:
        if as_text:
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
        return pd.read_csv(path, dtype={id_column: str}, keep_default_na=False,
                           na_values={c: _NA_STRINGS for c in header if c != id_column})
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise InputDataError(f"cannot read {path} as CSV: {exc}", party=party) from None


@dataclass(frozen=True)
class PartyTable:
    """One party's checked data: IDs, a float feature matrix and maybe a label.

    Attributes
    ----------
    party : str
        Owner's name.
    ids : list of str
        Normalised IDs (see :mod:`vfl.psi.ids`), one per row, unique.
    features : numpy.ndarray, shape (n_rows, n_features)
        Finite float64 values.
    feature_names : list of str
    label : numpy.ndarray or None
        Finite float64 labels (label holder only).
    source : str
        Where the table came from, for messages ("A.csv" or "DataFrame").
    """

    party: str
    ids: list[str]
    features: np.ndarray
    feature_names: list[str]
    label: np.ndarray | None
    source: str

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, party: str, id_column: str,
                   label_column: str | None = None, is_label_holder: bool = False,
                   feature_columns: Sequence[str] | None = None,
                   source: str | None = None) -> PartyTable:
        """Check a DataFrame and split it into IDs, features and label.

        Parameters
        ----------
        frame : pandas.DataFrame
        party : str
            Owner's name, used in errors.
        id_column : str
        label_column : str, optional
            The federation's label column. Required at the label holder; at a
            feature holder the table must NOT contain it.
        is_label_holder : bool
        feature_columns : sequence of str, optional
            Columns to use as features; default every column except ID and
            label.
        source : str, optional
            File name for messages.

        Raises
        ------
        MissingColumnError, LabelInFeatureHolderError, InvalidFeatureError,
        InvalidLabelError, InvalidIDError, DuplicateIDError
        """
        frame, ids = checked_header(frame, party=party, id_column=id_column,
                                    label_column=label_column,
                                    is_label_holder=is_label_holder, source=source)
        where = source or "the DataFrame"
        columns = list(frame.columns)
        if feature_columns is None:
            feature_columns = [c for c in columns if c not in (id_column, label_column)]
        else:
            feature_columns = [str(c) for c in feature_columns]
            missing = [c for c in feature_columns if c not in columns]
            if missing:
                raise MissingColumnError(f"{where} has no feature column(s) "
                                         f"{', '.join(map(repr, missing))}", party=party)
            if id_column in feature_columns or label_column in feature_columns:
                raise InvalidFeatureError("the ID and label columns cannot be features",
                                          party=party)
        if not feature_columns and not is_label_holder:
            raise InvalidFeatureError(f"{where} has no feature column besides the ID",
                                      party=party)
        features = np.column_stack(
            [_numeric_column(frame, c, ids, party=party, where=where, is_label=False)
             for c in feature_columns]) if feature_columns else np.empty((len(ids), 0))
        label = None
        if is_label_holder:
            assert label_column is not None  # checked above
            label = _numeric_column(frame, label_column, ids, party=party, where=where,
                                    is_label=True)
        return cls(party, ids, features, list(feature_columns), label, where)

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, positions: np.ndarray) -> PartyTable:
        """The rows at `positions`, in that order."""
        return PartyTable(self.party, [self.ids[i] for i in positions],
                          self.features[positions], self.feature_names,
                          None if self.label is None else self.label[positions], self.source)


def checked_header(frame: pd.DataFrame, *, party: str, id_column: str,
                   label_column: str | None, is_label_holder: bool,
                   source: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The checks every party's table starts with; (frame with str column names, IDs).

    A DataFrame, no column named twice, the ID column present; at the label
    holder the label column present, at any other party absent; the IDs
    normalised (:func:`vfl.psi.normalize_ids`: none missing, none twice).

    Raises
    ------
    MissingColumnError, LabelInFeatureHolderError, InvalidIDError, DuplicateIDError
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"party {party}: data must be a pandas DataFrame, "
                        f"got {type(frame).__name__}")
    where = source or "the DataFrame"
    columns = [str(c) for c in frame.columns]
    _refuse_duplicate_columns(columns, where, party)
    frame = frame.set_axis(columns, axis=1)
    if id_column not in columns:
        raise MissingColumnError(
            f"{where} has no ID column {id_column!r} (columns: {', '.join(columns)}); pass "
            "the right --id-column", party=party)
    if is_label_holder:
        if label_column is None:
            raise ValueError(f"party {party}: the label holder needs label_column")
        if label_column not in columns:
            raise MissingColumnError(
                f"{where} has no label column {label_column!r} (columns: "
                f"{', '.join(columns)}); pass the right --label-column", party=party)
    elif label_column is not None and label_column in columns:
        raise LabelInFeatureHolderError(
            f"{where} contains the label column {label_column!r}; only the label holder "
            "may hold the label: remove that column from the feature holder's data",
            party=party)
    ids = normalize_ids(frame[id_column].tolist(), party=party, column=id_column,
                        source=source)
    return frame, ids


def _refuse_duplicate_columns(columns: Sequence[str], where: str, party: str) -> None:
    repeated = sorted({c for c in columns if list(columns).count(c) > 1})
    if repeated:
        raise InputDataError(
            f"{where} has more than one column named {', '.join(map(repr, repeated))}; which "
            "one is meant would be a guess: rename or drop the repeats", party=party)


def _numeric_column(frame: pd.DataFrame, column: str, ids: list[str], *, party: str,
                    where: str, is_label: bool) -> np.ndarray:
    error = InvalidLabelError if is_label else InvalidFeatureError
    kind = "label" if is_label else "feature"
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise error(
            f"{kind} column {column!r} of {where} is not numeric: row with ID {ids[row]!r} "
            f"holds {raw.iloc[row]!r}; encode categories as numbers or drop the column",
            party=party)
    array = values.to_numpy(dtype=np.float64)
    finite = np.isfinite(array)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise error(
            f"{kind} column {column!r} of {where} has {int((~finite).sum())} missing or "
            f"infinite value(s), first at ID {ids[row]!r}; impute or drop those rows",
            party=party)
    return array


@dataclass(frozen=True)
class Standardizer:
    """Per-column centring and scaling a party applies to its own columns.

    Attributes
    ----------
    mean, scale : numpy.ndarray
        Column means and standard deviations (ddof=0) over the aligned rows;
        identity (0 and 1) when standardisation is off.
    """

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, table: PartyTable, enabled: bool) -> Standardizer:
        """Statistics of `table`'s columns; a constant column is an error."""
        d = table.features.shape[1]
        if not enabled:
            return cls(np.zeros(d), np.ones(d))
        mean, scale = np.empty(d), np.empty(d)
        for k in range(d):
            with np.errstate(over="raise", invalid="raise"):
                try:
                    mean[k], scale[k] = table.features[:, k].mean(), table.features[:, k].std()
                except FloatingPointError:
                    mean[k] = scale[k] = np.inf
        too_large = [n for n, m, s in zip(table.feature_names, mean, scale)
                     if not (np.isfinite(m) and np.isfinite(s))]
        if too_large:
            # Sums of squares overflow float64 long before the values do.
            raise InvalidFeatureError(
                f"column(s) {', '.join(map(repr, too_large))} of {table.source} hold values "
                "too large to standardise (their sum of squares overflows float64); rescale "
                "them (e.g. to other units) before training", party=table.party)
        constant = [n for n, s in zip(table.feature_names, scale) if not s > 0]
        if constant:
            raise InvalidFeatureError(
                f"column(s) {', '.join(map(repr, constant))} of {table.source} are constant "
                f"over the {len(table)} aligned rows, so they carry no information; drop them "
                "or turn standardisation off", party=table.party)
        return cls(mean, scale)

    def transform(self, features: np.ndarray) -> np.ndarray:
        return (features - self.mean) / self.scale

    def raw_weights(self, weights: np.ndarray) -> tuple[np.ndarray, float]:
        """Weights in raw units and the offset they imply (score of a zero row)."""
        raw = weights / self.scale
        return raw, float(-raw @ self.mean)
