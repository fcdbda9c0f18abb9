"""The one ID normalisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vfl.errors import DuplicateIDError, InvalidIDError
from vfl.psi import normalize_id, normalize_ids


@pytest.mark.parametrize("value, text", [
    (42, "42"), ("42", "42"), (42.0, "42"), (np.int64(42), "42"), (np.float64(42.0), "42"),
    (" 42\t", "42"), (b"42", "42"), (1.5, "1.5"), ("Zoe\u0308", "Zoë"), ("北京", "北京"),
])
def test_one_normalisation(value, text):
    assert normalize_id(value) == text


@pytest.mark.parametrize("value", [None, float("nan"), "", "   ", pd.NA, pd.NaT])
def test_missing_ids_are_refused(value):
    with pytest.raises(ValueError):
        normalize_id(value)


def test_int_and_string_columns_match():
    ints = normalize_ids(pd.Series([1, 2, 3]), party="A", column="id")
    with_gaps = normalize_ids(pd.Series([1.0, 2.0, 3.0]), party="B", column="id")
    strings = normalize_ids(["1", "2 ", "3"], party="B", column="id")
    assert ints == with_gaps == strings == ["1", "2", "3"]


def test_duplicates_are_an_error_naming_examples():
    with pytest.raises(DuplicateIDError, match=r"2 duplicated ID\(s\), e.g. '7', 'Zoë'") as info:
        normalize_ids([7, "7", "Zoë", "Zoe\u0308", 8], party="A", column="id", source="a.csv")
    assert "party A" in str(info.value) and "a.csv" in str(info.value)


def test_missing_id_names_the_row():
    with pytest.raises(InvalidIDError, match="row 1"):
        normalize_ids(pd.Series([1, None, 3], dtype=object), party="A", column="id")
    with pytest.raises(InvalidIDError, match="row 2"):
        normalize_ids(pd.array([1, 2, None], dtype="Int64"), party="A", column="id")
