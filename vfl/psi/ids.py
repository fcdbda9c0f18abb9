"""The one normalisation applied to IDs before any alignment.

Rule: an ID is compared as text. Integers (and floats holding an integer,
which is how pandas stores an integer column with gaps) become their decimal
form, so ``42``, ``42.0`` and ``"42"`` match; everything else becomes
``str(value)``. A float ID beyond 2**53 is refused: float64 cannot hold every
integer there, so two different people could read as one (read such IDs as
text, as :func:`vfl.data.read_party_csv` does). Surrounding whitespace is
stripped and the text is put in Unicode NFC form, so the same name typed on
two systems matches. Empty or missing IDs are an error, as are two rows of
one party with the same normalised ID.
"""

from __future__ import annotations

import math
import numbers
import unicodedata
from collections import Counter
from collections.abc import Iterable

from vfl.errors import DuplicateIDError, InvalidIDError

__all__ = ["normalize_id", "normalize_ids"]

#: pandas' missing-value markers (``pd.NA``, ``pd.NaT``), recognised by type
#: name so this module does not import pandas; ``str()`` would turn them into
#: the IDs "<NA>" and "NaT".
_MISSING_TYPES = frozenset({"NAType", "NaTType"})
#: Beyond this a float64 skips integers: 2**53 + 1 reads as 2**53.
_EXACT_FLOAT_LIMIT = 2.0**53


def normalize_id(value: object) -> str:
    """Normalised text form of one ID (see the module docstring).

    Raises
    ------
    ValueError
        If the ID is missing (None, NaN, empty after stripping).
    """
    if value is None or type(value).__name__ in _MISSING_TYPES:
        raise ValueError("missing ID; every row needs an ID")
    if isinstance(value, bool):
        text = str(value)
    elif isinstance(value, numbers.Integral):
        text = str(int(value))
    elif isinstance(value, numbers.Real):
        f = float(value)
        if math.isnan(f):
            raise ValueError("missing ID (NaN); every row needs an ID")
        if abs(f) >= _EXACT_FLOAT_LIMIT:
            raise ValueError(f"the float ID {f!r} is too large to be exact (float64 holds "
                             "integers exactly only up to 2**53); read the IDs as text")
        text = str(int(f)) if f.is_integer() else repr(f)
    elif isinstance(value, bytes):
        text = value.decode("utf-8")
    else:
        text = str(value)
    text = unicodedata.normalize("NFC", text.strip())
    if not text:
        raise ValueError("empty ID; every row needs an ID")
    return text


def normalize_ids(values: Iterable[object], *, party: str, column: str,
                  source: str | None = None) -> list[str]:
    """Normalise a column of IDs and refuse missing and duplicate ones.

    Parameters
    ----------
    values : iterable
        The ID column, in row order.
    party : str
        Party named in errors.
    column : str
        ID column named in errors.
    source : str, optional
        File the column came from, named in errors.

    Raises
    ------
    InvalidIDError
        If an ID is missing or empty (the first offending row is named).
    DuplicateIDError
        If two rows share a normalised ID (up to five examples are named).
    """
    where = f"column {column!r}" + (f" of {source}" if source else "")
    out = []
    for row, value in enumerate(values):
        try:
            out.append(normalize_id(value))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidIDError(
                f"{where}, row {row}: {exc}", party=party) from None
    if len(set(out)) != len(out):
        dupes = [i for i, c in Counter(out).items() if c > 1]
        examples = ", ".join(repr(d) for d in dupes[:5])
        raise DuplicateIDError(
            f"{where} has {len(dupes)} duplicated ID(s), e.g. {examples}; each ID must "
            "appear once (remove or merge the duplicate rows)", party=party)
    return out
