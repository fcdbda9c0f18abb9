"""A binning party's checked data: IDs, numeric columns where missing values are allowed.

Unlike training's :class:`vfl.data.PartyTable`, which refuses missing values,
binning keeps them (NaN): they get a bin of their own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vfl.data import checked_header, read_party_csv
from vfl.errors import (
    InvalidFeatureError,
    InvalidLabelError,
)

__all__ = ["BinningTable"]


@dataclass(frozen=True)
class BinningTable:
    """One party's rows for binning.

    Attributes
    ----------
    ids : list of str
        Normalised IDs, unique.
    values : numpy.ndarray, shape (rows, columns)
        Float64, NaN where a value is missing, never infinite.
    names : list of str
        Column names.
    label : numpy.ndarray or None
        1 for an event, 0 otherwise (label holder only).
    source : str
        Where the rows came from, for messages.
    """

    ids: list[str]
    values: np.ndarray
    names: list[str]
    label: np.ndarray | None
    source: str

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, party: str, id_column: str,
                   label_column: str | None, is_label_holder: bool,
                   source: str | None = None) -> BinningTable:
        """Check a DataFrame: IDs, numeric columns (NaN allowed), a 0/1 (or -1/+1) label.

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
        names = [c for c in columns if c not in (id_column, label_column)]
        if not names and not is_label_holder:
            raise InvalidFeatureError(f"{where} has no feature column besides the ID",
                                      party=party)
        values = np.column_stack([_column(frame[c], c, where, party) for c in names]) \
            if names else np.empty((len(ids), 0))
        label = _label(frame[label_column], label_column, where, party) \
            if is_label_holder and label_column is not None else None
        return cls(ids, values, names, label, where)

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str], *, party: str, id_column: str,
                 label_column: str | None, is_label_holder: bool) -> BinningTable:
        frame = read_party_csv(path, party=party, id_column=id_column)
        return cls.from_frame(frame, party=party, id_column=id_column,
                              label_column=label_column, is_label_holder=is_label_holder,
                              source=os.fspath(path))

    def take(self, positions: np.ndarray) -> BinningTable:
        """The rows at `positions`, in that order."""
        return BinningTable([self.ids[i] for i in positions], self.values[positions],
                            self.names, None if self.label is None else self.label[positions],
                            self.source)


def _column(raw: pd.Series, name: str, where: str, party: str) -> np.ndarray:
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InvalidFeatureError(
            f"feature column {name!r} of {where} is not numeric: row {row + 1} holds "
            f"{raw.iloc[row]!r}; encode categories as numbers or drop the column", party=party)
    array = values.to_numpy(dtype=np.float64)
    if np.isinf(array).any():
        raise InvalidFeatureError(f"feature column {name!r} of {where} holds infinite values; "
                                  "replace them or leave the cells empty (missing)", party=party)
    return array


def _label(raw: pd.Series, name: str, where: str, party: str) -> np.ndarray:
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    if not np.isin(values, (0.0, 1.0, -1.0)).all():
        raise InvalidLabelError(f"label column {name!r} of {where} must hold 0/1 (or -1/+1) "
                                "for binning, with no missing value", party=party)
    label = (values == 1.0).astype(np.int64)
    if label.min() == label.max():
        raise InvalidLabelError(f"label column {name!r} of {where} holds one class only; "
                                "WOE needs events and non-events", party=party)
    return label
