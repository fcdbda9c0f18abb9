"""Fingerprints a party computes over its own aligned data and its own model part.

A fingerprint lets a party later show which data a recorded model was trained
on without revealing the data: the log holds only the digest, the party keeps
the data, and anyone the party shows the data to can recompute it.

Dataset fingerprint, format ``vfl-dataset-fingerprint/1``: the SHA-256 of the
byte string

====================  ========================================================
``magic``             ``b"vfl-dataset-fingerprint/1\\x00"``
``n_rows``            uint64, little-endian
``n_columns``         uint64, little-endian
column names          each as uint64 byte length + UTF-8 bytes, in column order
``dtype``             ``b"<f8"``: every value is encoded as float64 little-endian
IDs                   each as uint64 byte length + UTF-8 bytes, in row order
values                ``n_rows * n_columns`` float64, row by row
``has_label``         one byte, 0 or 1
label                 if present, ``n_rows`` float64 in row order
====================  ========================================================

Length prefixes make the encoding unambiguous (no ID or name can be mistaken
for two). Before encoding, ``-0.0`` becomes ``0.0`` and every NaN the one
quiet NaN, so equal values always give equal bytes; any other change of a
value, of the row order, of an ID, of a column name or of the column order
changes the digest. Only numpy and Python strings are involved, so the digest
does not depend on the pandas version.

Model-part hash, format ``vfl-model-part-hash/1``: the SHA-256 of the
canonical JSON (:mod:`vfl.audit.canonical`) of the object
:meth:`vfl.model.ModelPart.to_json` writes (format tag included).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence

import numpy as np

from vfl.audit.canonical import canonical_json, sha256_hex
from vfl.data import PartyTable
from vfl.model import ModelPart

__all__ = ["dataset_fingerprint", "model_part_hash", "table_fingerprint"]

_MAGIC = b"vfl-dataset-fingerprint/1\x00"
_DTYPE = b"<f8"


def dataset_fingerprint(ids: Sequence[str], columns: Sequence[str], values: np.ndarray,
                        label: np.ndarray | None = None) -> str:
    """SHA-256 hex digest of a party's aligned data (format in the module docstring).

    Parameters
    ----------
    ids : sequence of str
        Row IDs in aligned order (the order training used).
    columns : sequence of str
        Feature column names, in the order of `values`' columns.
    values : array-like, shape (n_rows, n_columns)
        Feature values; converted to float64.
    label : array-like, shape (n_rows,), optional
        The label holder's labels, in row order.

    Returns
    -------
    str
        64 lower-case hex characters.

    Raises
    ------
    TypeError
        If an ID or column name is not a string.
    ValueError
        If the shapes of IDs, columns, values and label disagree.
    """
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape != (len(ids), len(columns)):
        raise ValueError(f"values have shape {matrix.shape}, expected ({len(ids)} IDs, "
                         f"{len(columns)} columns)")
    digest = hashlib.sha256(_MAGIC)
    digest.update(struct.pack("<QQ", len(ids), len(columns)))
    for name in columns:
        digest.update(_text(name, "column name"))
    digest.update(_DTYPE)
    for row_id in ids:
        digest.update(_text(row_id, "ID"))
    digest.update(_float_bytes(matrix))
    if label is None:
        digest.update(b"\x00")
    else:
        labels = np.asarray(label, dtype=np.float64)
        if labels.shape != (len(ids),):
            raise ValueError(f"label has shape {labels.shape}, expected ({len(ids)},)")
        digest.update(b"\x01")
        digest.update(_float_bytes(labels))
    return digest.hexdigest()


def table_fingerprint(table: PartyTable) -> str:
    """:func:`dataset_fingerprint` of a checked party table, label included if it has one.

    Pass the aligned table (rows in the order training used them).
    """
    return dataset_fingerprint(table.ids, table.feature_names, table.features, table.label)


def model_part_hash(part: ModelPart) -> str:
    """SHA-256 hex digest of a model part's canonical JSON (see the module docstring)."""
    return sha256_hex(canonical_json(json.loads(part.to_json())).encode("ascii"))


def _text(value: str, what: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"every {what} must be a string, got {value!r} "
                        f"({type(value).__name__})")
    data = value.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def _float_bytes(array: np.ndarray) -> bytes:
    # Adding 0.0 turns -0.0 into 0.0; NaNs with other payloads become one NaN.
    canonical = np.where(np.isnan(array), np.nan, array + 0.0)
    return np.ascontiguousarray(canonical, dtype="<f8").tobytes(order="C")
