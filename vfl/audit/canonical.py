"""One canonical byte form of JSON-able values, so that every party hashes the same bytes.

The form is ``json.dumps`` with sorted keys, ``","`` and ``":"`` separators,
ASCII output (``\\uXXXX`` escapes) and no NaN or infinity. Floats are written
as Python's ``repr``: the shortest text that reads back as the same float64,
so a record read from the log and written again gives the same bytes.
Integers stay integers (``1`` and ``1.0`` are different values here).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["canonical_json", "jsonable", "sha256_hex"]


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> str:
    """The canonical JSON text of `value` (see the module docstring).

    Raises
    ------
    TypeError
        If `value` holds something JSON cannot represent.
    ValueError
        If it holds NaN or infinity.
    """
    return json.dumps(jsonable(value), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=False)


def jsonable(value: Any, where: str = "value") -> Any:
    """Plain JSON types for `value`: dicts with str keys, lists, str, int, float, bool, None.

    Dataclass instances become dicts, tuples and numpy arrays become lists,
    numpy scalars become Python numbers.

    Parameters
    ----------
    value : object
    where : str
        Name of `value` in error messages ("config.l2").

    Raises
    ------
    TypeError
        For a type JSON cannot hold, or a mapping key that is not a string.
    ValueError
        For NaN or infinity, which JSON cannot hold either.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{where} is {number!r}; the audit log holds finite numbers only")
        return number
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has key {key!r} of type {type(key).__name__}; "
                                "keys must be strings")
            out[key] = jsonable(item, f"{where}.{key}")
        return out
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [jsonable(item, f"{where}[{k}]") for k, item in enumerate(value)]
    raise TypeError(f"{where} is a {type(value).__name__}, which the audit log cannot hold; "
                    "pass numbers, strings, lists or dicts")
