"""A role's saved state: one dataclass, stored and loaded exactly.

A role keeps everything that must survive a crash in one dataclass (see
:class:`RoleState`); a checkpoint is that dataclass and nothing else. This
module turns such a dataclass into plain JSON values and back, guided by the
field types alone:

- ``numpy.ndarray`` fields hold float64 vectors (stored as lists of floats,
  every bit kept: JSON floats round-trip float64 exactly);
- nested dataclasses (optimizer moments, the stopping rule, a generator),
  lists, tuples and dicts of them, ints, floats, bools, strings and ``None``.

Anything else is refused when saving, so no untyped value can slip into a
checkpoint. Every state class names its layout (``LAYOUT``, e.g.
``"vertical.label_holder/1"``); a checkpoint of another layout is refused by
name instead of being half-read.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, ClassVar, TypeVar

import numpy as np

from vfl.errors import CheckpointError

__all__ = ["GeneratorState", "RoleState", "state_from_json", "state_to_json"]

S = TypeVar("S")


@dataclasses.dataclass
class RoleState:
    """What every role's state holds: where in the run it is.

    Attributes
    ----------
    epoch : int
        Epochs completed (0: right before the first).
    stopped : bool
        The stopping rule ended the run after `epoch`.
    """

    LAYOUT: ClassVar[str] = ""

    epoch: int
    stopped: bool


@dataclasses.dataclass
class GeneratorState:
    """The exact state of a numpy PCG64 generator (a party's secret stream).

    Restoring it continues the stream where it was, so a resumed run draws
    the same batch seeds as an uninterrupted one.
    """

    state: int
    inc: int
    has_uint32: int
    uinteger: int

    @classmethod
    def of(cls, generator: np.random.Generator) -> GeneratorState:
        raw = generator.bit_generator.state
        if raw["bit_generator"] != "PCG64":
            raise TypeError(f"only PCG64 generators are saved, not {raw['bit_generator']}")
        return cls(int(raw["state"]["state"]), int(raw["state"]["inc"]),
                   int(raw["has_uint32"]), int(raw["uinteger"]))

    def generator(self) -> np.random.Generator:
        """A generator in exactly this state."""
        bits = np.random.PCG64()
        bits.state = {"bit_generator": "PCG64",
                      "state": {"state": self.state, "inc": self.inc},
                      "has_uint32": self.has_uint32, "uinteger": self.uinteger}
        return np.random.Generator(bits)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def state_to_json(state: object) -> dict[str, Any]:
    """Plain JSON values of a state dataclass (refusing any untyped value)."""
    if not dataclasses.is_dataclass(state) or isinstance(state, type):
        raise TypeError(f"a state is a dataclass instance, not {type(state).__name__}")
    hints = _hints(type(state))
    return {f.name: _encode(getattr(state, f.name), hints[f.name], f.name)
            for f in dataclasses.fields(state)}


def state_from_json(cls: type[S], data: Any, *, where: str = "checkpoint") -> S:
    """The state dataclass `cls` from :func:`state_to_json`'s values.

    Raises
    ------
    CheckpointError
        If a field is missing, unknown or of the wrong type (naming it).
    """
    return typing.cast(S, _decode(data, cls, cls.__name__, where))


def _encode(value: Any, hint: Any, path: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None:
        return None
    if hint is np.ndarray:
        return [float(v) for v in np.asarray(value, dtype=np.float64)]
    if dataclasses.is_dataclass(hint):
        return state_to_json(value)
    if origin in (typing.Union, types.UnionType):
        kind = next(a for a in args if a is not type(None))
        return _encode(value, kind, path)
    if origin in (list, tuple):
        item = args[0] if args else Any
        return [_encode(v, item, f"{path}[]") for v in value]
    if origin is dict:
        return {str(k): _encode(v, args[1], f"{path}.{k}") for k, v in value.items()}
    if hint in (int, float, bool, str) and isinstance(value, (int, float, bool, str, np.generic)):
        return value.item() if isinstance(value, np.generic) else value
    raise TypeError(f"state field {path}: cannot store {type(value).__name__} as {hint}")


def _decode(value: Any, hint: Any, path: str, where: str) -> Any:
    def fail(expected: str) -> CheckpointError:
        return CheckpointError(f"{where}: field {path} should be {expected}, "
                               f"got {type(value).__name__}")

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        kind = next(a for a in args if a is not type(None))
        return _decode(value, kind, path, where)
    if hint is np.ndarray:
        if not isinstance(value, list):
            raise fail("a list of numbers")
        return np.asarray(value, dtype=np.float64)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise fail(f"a {hint.__name__} object")
        names = {f.name for f in dataclasses.fields(hint)}
        if set(value) != names:
            diff = sorted(set(value) ^ names)
            raise CheckpointError(f"{where}: {path} has fields {sorted(value)}, this version "
                                  f"expects {sorted(names)} (differs in {', '.join(diff)})")
        types_ = _hints(hint)
        return hint(**{name: _decode(value[name], types_[name], f"{path}.{name}", where)
                       for name in names})
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise fail("a list")
        item = args[0] if args else Any
        items = [_decode(v, item, f"{path}[]", where) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise fail("an object")
        return {k: _decode(v, args[1], f"{path}.{k}", where) for k, v in value.items()}
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("a number")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        return value
    if hint in (bool, str):
        if not isinstance(value, hint):
            raise fail(hint.__name__)
        return value
    if hint is Any:
        return value
    raise fail(str(hint))
