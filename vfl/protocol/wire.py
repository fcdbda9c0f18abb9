"""Envelopes as bytes, and back, without pickle.

A network transport needs the bytes of an :class:`~vfl.protocol.channel.Envelope`.
``pickle`` would run code chosen by whoever wrote the bytes; this codec only
ever builds plain values and instances of dataclasses on an allow-list
(:class:`TypeRegistry`), looked up by name, so a hostile or corrupted payload
can at worst raise :class:`~vfl.errors.WireFormatError`.

Frame layout (all integers big-endian)::

    magic   3 bytes  b"VFL"
    version 1 byte   FORMAT_VERSION
    length  8 bytes  number of payload bytes that follow
    crc32   4 bytes  CRC-32 of the payload
    payload          the envelope's fields, then its body, as tagged values

The CRC catches accidental damage (a truncated file, a bug, a plaintext link
in ``--insecure`` mode). It is no defence against a forger, who can
recompute it: over the network, integrity against an attacker comes from
TLS, whose AEAD records reject any altered byte before it reaches this codec.

Values are a one-byte tag and a body:

==========  =================================================================
``N``       None
``T``/``F`` True / False
``i``       int: u32 byte count, two's-complement big-endian (at most
            ``MAX_INT_BYTES`` bytes: a ciphertext-sized value, mod n^2)
``f``       float: 8 bytes IEEE 754 binary64 (exact, NaN and -0.0 included)
``s``       str: u32 byte count, UTF-8
``b``       bytes: u64 byte count, raw
``t``/``l`` tuple / list: u32 item count, items
``d``       dict with str keys: u32 entry count, (key, value) pairs
``c``       EncryptedVector: modulus n (an ``i``), u64 count, count
            ciphertexts of :meth:`EncryptedVector.byte_width` bytes each,
            exactly :meth:`EncryptedVector.to_bytes`
``D``       dataclass: type name (``s``), u32 field count, (name, value) pairs
``E``       enum member: type name (``s``), then its value
==========  =================================================================

Nothing a peer writes is trusted: every count and length is checked against
the bytes that remain before anything is built or reserved, every int has a
size limit, the envelope's sequence number, epoch and batch must fit in 63
bits (a sequence number of -1 marks an abort notice) and its texts in
``MAX_HEADER_TEXT`` bytes. Whatever the bytes, decoding ends in a value or a
:class:`~vfl.errors.WireFormatError` naming the sender, never in another
exception.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import struct
import threading
import types
import typing
import zlib
from collections.abc import Iterable
from typing import Any, TypeVar

import numpy as np
import phe

from vfl.crypto.ciphertext import EncryptedVector
from vfl.errors import WireFormatError
from vfl.protocol.channel import Envelope

__all__ = [
    "FORMAT_VERSION",
    "HEADER",
    "MAGIC",
    "MAX_ENVELOPE_INT",
    "MAX_HEADER_TEXT",
    "MAX_INT_BYTES",
    "TypeRegistry",
    "decode_envelope",
    "default_registry",
    "encode_envelope",
    "frame_length",
    "wire_message",
]

MAGIC = b"VFL"
FORMAT_VERSION = 1
HEADER = struct.Struct(">3sBQI")  # magic, version, payload length, CRC-32 of the payload

#: Deepest nesting of containers and dataclasses a decoder follows; a real
#: message nests a few levels, a hostile one could otherwise exhaust the stack.
MAX_DEPTH = 32

#: Largest Paillier modulus accepted: far above any real key, small enough that
#: a hostile one cannot make squaring it (for n^2) take long.
MAX_MODULUS_BITS = 1 << 14

#: Largest int on the wire, in bytes: a value mod n^2 for the largest modulus
#: (a public parameter such as DJN's h_s), and its sign byte.
MAX_INT_BYTES = 2 * MAX_MODULUS_BITS // 8 + 1

#: Bounds of the envelope's sequence number, epoch and batch (63 bits); a
#: sequence number of -1 marks an abort notice.
MAX_ENVELOPE_INT = (1 << 63) - 1

#: Longest session, party name or step name in an envelope, in UTF-8 bytes.
MAX_HEADER_TEXT = 4096

_T = TypeVar("_T")

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_F64 = struct.Struct(">d")


class TypeRegistry:
    """The dataclasses and enums a decoder may build, by class name.

    Names must be unique: the envelope's ``step`` is a class name already.
    """

    def __init__(self, types: Iterable[type] = ()) -> None:
        self._types: dict[str, type] = {}
        #: Registered with ``follow_fields`` and not yet followed (see :meth:`_follow_pending`).
        self._unfollowed: list[type] = []
        self._lock = threading.RLock()  # reentrant: following field types registers more
        for cls in types:
            self.register(cls)

    def register(self, cls: type[_T], *, follow_fields: bool = False) -> type[_T]:
        """Allow `cls` (a dataclass or an Enum) to be decoded; returns it (usable as a decorator).

        With `follow_fields`, the dataclasses and enums of its field types are
        allowed too (:meth:`register_field_types`), at the registry's first use
        after this call: annotations cannot be resolved while the module that
        defines `cls` is still being imported.

        Raises
        ------
        TypeError
            If `cls` is neither a dataclass nor an Enum.
        ValueError
            If another class of the same name is registered already.
        """
        if not (isinstance(cls, type)
                and (dataclasses.is_dataclass(cls) or issubclass(cls, enum.Enum))):
            raise TypeError(f"only dataclasses and enums can be registered, not {cls!r}")
        if cls is EncryptedVector:
            raise TypeError("EncryptedVector has its own wire tag; it needs no registration")
        with self._lock:
            known = self._types.get(cls.__name__)
            if known is not None and known is not cls:
                raise ValueError(f"two message types are named {cls.__name__}: "
                                 f"{known.__module__} and {cls.__module__}; rename one")
            self._types[cls.__name__] = cls
            if follow_fields:
                self._unfollowed.append(cls)
        return cls

    def register_field_types(self, cls: type) -> None:
        """Register the dataclasses and enums named in `cls`'s field types, recursively.

        A message's nested configuration (say an optimizer's settings) is thus
        allowed wherever its class is defined. Annotations that cannot be
        resolved add nothing.
        """
        self._follow(cls)

    def _follow(self, cls: type) -> bool:
        """:meth:`register_field_types`; False if a name in an annotation is not defined (yet)."""
        complete = True
        seen: set[type] = set()
        pending = [cls]
        with self._lock:
            while pending:
                current = pending.pop()
                if current in seen or not dataclasses.is_dataclass(current):
                    continue
                seen.add(current)
                try:
                    hints = typing.get_type_hints(current)
                except NameError:  # its module, or one it names, is still being imported
                    complete = False
                    continue
                except Exception:  # noqa: BLE001 - an unresolvable annotation: nothing to add
                    continue
                for hint in hints.values():
                    for found in _classes_in(hint):
                        if found is EncryptedVector:
                            continue  # has its own tag; never built from arbitrary fields
                        if dataclasses.is_dataclass(found) or issubclass(found, enum.Enum):
                            self.register(found)
                            pending.append(found)
        return complete

    def _follow_pending(self) -> None:
        """Follow the field types of classes newly registered with ``follow_fields``."""
        if not self._unfollowed:  # the common case, without taking the lock
            return
        with self._lock:
            pending, self._unfollowed = self._unfollowed, []
            # Kept for a later try if a forward reference is not defined yet.
            self._unfollowed += [cls for cls in pending if not self._follow(cls)]

    def lookup(self, name: str) -> type | None:
        self._follow_pending()
        return self._types.get(name)

    def __contains__(self, cls: object) -> bool:
        self._follow_pending()
        return isinstance(cls, type) and self._types.get(cls.__name__) is cls

    def names(self) -> list[str]:
        """Registered class names, sorted."""
        self._follow_pending()
        return sorted(self._types)


#: Every type marked with :func:`wire_message`, in whichever module defines it.
_MESSAGES = TypeRegistry()


def wire_message(cls: type[_T]) -> type[_T]:
    """Class decorator: `cls` (a dataclass or an Enum) is a message type of the protocol.

    Put it above ``@dataclass`` in the module that defines the message; the
    dataclasses and enums of its field types (a configuration nested in a
    plan) are allowed with it. A process registers a message by importing its
    module, which the code that sends or receives it always does.
    """
    return _MESSAGES.register(cls, follow_fields=True)


def default_registry() -> TypeRegistry:
    """The registry of every message type marked with :func:`wire_message` so far."""
    return _MESSAGES


@functools.cache
def _field_hints(cls: type) -> dict[str, Any]:
    """Declared field types of a dataclass; empty if they cannot be resolved."""
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - unresolvable annotations are simply not checked
        return {}


def _matches(value: Any, hint: Any) -> bool:
    """Whether a decoded value fits a field's declared type (checked through unions,
    tuples, lists and dicts; hints this cannot judge are accepted)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if hint is bool:
        return type(value) is bool
    if hint is int:
        return isinstance(value, int) and type(value) is not bool
    if hint is float:  # an int is a valid float (PEP 484), e.g. learning_rate=1
        return isinstance(value, (int, float)) and type(value) is not bool
    # Tuples and lists pass for each other: in process a party may send either.
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return not args or (len(args) == len(value)
                            and all(_matches(v, a) for v, a in zip(value, args)))
    if origin is list:
        return isinstance(value, (tuple, list)) and (not args or all(_matches(v, args[0])
                                                                     for v in value))
    if origin is dict:
        return isinstance(value, dict) and (not args or all(
            _matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items()))
    if hint in (tuple, list):
        return isinstance(value, (tuple, list))
    if isinstance(hint, type) and (hint in (str, bytes, dict, EncryptedVector)
                                   or dataclasses.is_dataclass(hint)
                                   or issubclass(hint, enum.Enum)):
        return isinstance(value, hint)
    return True


def _classes_in(hint: object) -> list[type]:
    """The classes a type hint mentions: ``tuple[X, ...] | None`` gives [X, NoneType]."""
    if isinstance(hint, type) and not typing.get_args(hint):
        return [hint]
    return [c for arg in typing.get_args(hint) for c in _classes_in(arg)]


# --- encoding -------------------------------------------------------------------


def encode_envelope(envelope: Envelope, registry: TypeRegistry | None = None) -> bytearray:
    """The frame of `envelope`: header and payload in one buffer.

    The buffer is built in place (ciphertexts are written straight into it),
    so a large message exists once as objects and once as bytes, never more.

    Raises
    ------
    TypeError
        If the body holds a value of a type the format cannot carry, or a
        dataclass the registry does not allow (the receiver would refuse it).
    ValueError
        If an int is larger than the receiver accepts (``MAX_INT_BYTES``).
    """
    registry = registry or default_registry()
    buf = bytearray(HEADER.size)
    encoder = _Encoder(buf, registry)
    for name in ("session", "sender", "recipient", "seq", "epoch", "batch", "step"):
        encoder.value(getattr(envelope, name), name)
    encoder.value(envelope.body, envelope.step)
    payload_length = len(buf) - HEADER.size
    crc = zlib.crc32(memoryview(buf)[HEADER.size:])
    HEADER.pack_into(buf, 0, MAGIC, FORMAT_VERSION, payload_length, crc)
    return buf


class _Encoder:
    def __init__(self, buf: bytearray, registry: TypeRegistry) -> None:
        self.buf = buf
        self.registry = registry

    def value(self, value: Any, path: str) -> None:
        buf = self.buf
        # Order matters: bool is an int, enum members may be ints or strs.
        if value is None:
            buf += b"N"
        elif isinstance(value, (bool, np.bool_)):
            buf += b"T" if value else b"F"
        elif isinstance(value, enum.Enum):
            self._named(b"E", type(value), path)
            self.value(value.value, f"{path}.value")
        elif isinstance(value, (int, np.integer)):
            value = int(value)
            raw = value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True)
            if len(raw) > MAX_INT_BYTES:
                raise ValueError(f"{path}: an int of {value.bit_length()} bits cannot be sent; "
                                 f"the receiver accepts at most {MAX_INT_BYTES} bytes")
            buf += b"i"
            buf += _U32.pack(len(raw))
            buf += raw
        elif isinstance(value, (float, np.floating)):
            buf += b"f"
            buf += _F64.pack(float(value))
        elif isinstance(value, str):
            raw = value.encode("utf-8")
            buf += b"s"
            buf += _U32.pack(len(raw))
            buf += raw
        elif isinstance(value, (bytes, bytearray)):
            buf += b"b"
            buf += _U64.pack(len(value))
            buf += value
        elif isinstance(value, EncryptedVector):
            self._encrypted_vector(value, path)
        elif isinstance(value, (tuple, list)):
            buf += b"t" if isinstance(value, tuple) else b"l"
            buf += _U32.pack(len(value))
            for i, item in enumerate(value):
                self.value(item, f"{path}[{i}]")
        elif isinstance(value, dict):
            buf += b"d"
            buf += _U32.pack(len(value))
            for key, item in value.items():
                if not isinstance(key, str):
                    raise TypeError(f"{path}: dict keys must be str on the wire, got {key!r}")
                self.value(key, path)
                self.value(item, f"{path}[{key!r}]")
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            init_fields = [f for f in dataclasses.fields(value) if f.init]
            self._named(b"D", type(value), path)
            buf += _U32.pack(len(init_fields))
            for f in init_fields:
                self.value(f.name, path)
                self.value(getattr(value, f.name), f"{path}.{f.name}")
        else:
            raise TypeError(f"{path}: a {type(value).__module__}.{type(value).__qualname__} "
                            "cannot be sent; use None, bool, int, float, str, bytes, tuple, "
                            "list, dict, EncryptedVector or a registered dataclass")

    def _named(self, tag: bytes, cls: type, path: str) -> None:
        if cls not in self.registry:
            raise TypeError(f"{path}: {cls.__module__}.{cls.__qualname__} is not a registered "
                            "message type; the receiver would refuse it (mark its class with "
                            "@vfl.protocol.wire.wire_message)")
        self.buf += tag
        self.value(cls.__name__, path)

    def _encrypted_vector(self, vector: EncryptedVector, path: str) -> None:
        n = vector.public_key.n
        width = EncryptedVector.byte_width(vector.public_key)
        buf = self.buf
        buf += b"c"
        self.value(n, f"{path}.n")
        buf += _U64.pack(len(vector.ciphertexts))
        # The bytes of EncryptedVector.to_bytes, written in place: no second copy.
        extend = buf.extend
        for c in vector.ciphertexts:
            extend(int(c).to_bytes(width, "big"))


# --- decoding -------------------------------------------------------------------


def frame_length(header: bytes | bytearray | memoryview, *, sender: str | None = None,
                 party: str | None = None, limit: int | None = None) -> int:
    """Total bytes (header included) of the frame whose first bytes are `header`.

    Lets a receiver check a stream's announced size from its first chunk,
    before it reserves memory for it.

    Raises
    ------
    WireFormatError
        If `header` is too short or not a frame header of this version, or
        announces more than `limit` bytes.
    """
    if len(header) < HEADER.size:
        raise _error(f"{len(header)} bytes are too few for a frame header "
                     f"({HEADER.size} bytes): the message was truncated", sender, party)
    magic, version, length, _ = HEADER.unpack_from(header, 0)
    if magic != MAGIC:
        raise _error("the bytes are not a vfl message (bad magic number)", sender, party)
    if version != FORMAT_VERSION:
        raise _error(f"message format version {version}, this party reads version "
                     f"{FORMAT_VERSION}: run the same vfl version at every party", sender, party)
    total = HEADER.size + int(length)
    if limit is not None and total > limit:
        raise _error(f"message announces {total} bytes; at most {limit} are accepted",
                     sender, party)
    return total


def decode_envelope(data: bytes | bytearray | memoryview, *, sender: str | None = None,
                    party: str | None = None,
                    registry: TypeRegistry | None = None) -> Envelope:
    """The envelope whose frame is `data` (exactly one frame, nothing more).

    Parameters
    ----------
    data : bytes-like
        A frame from :func:`encode_envelope`.
    sender : str or None
        Who sent it, if known; named in errors.
    party : str or None
        The receiving party, named in front of errors.
    registry : TypeRegistry or None
        Allowed dataclasses; :func:`default_registry` if None.

    Raises
    ------
    WireFormatError
        If the frame is truncated, too long, fails its checksum, or holds
        anything malformed or not allowed. Nothing is built from a frame that
        fails its checksum.
    """
    view = memoryview(data).cast("B")
    total = frame_length(view, sender=sender, party=party)
    if len(view) != total:
        what = "truncated" if len(view) < total else "followed by extra bytes"
        raise _error(f"message is {what}: {len(view)} bytes, the header announces {total}",
                     sender, party)
    _, _, _, crc = HEADER.unpack_from(view, 0)
    payload = view[HEADER.size:]
    if zlib.crc32(payload) != crc:
        raise _error("message is corrupted: its CRC-32 checksum does not match", sender, party)
    decoder = _Decoder(payload, registry or default_registry(), sender, party)
    try:
        # The envelope's fields are checked before anything of the body is built.
        fields = [decoder.value() for _ in range(7)]
        _check_envelope_fields(fields, sender, party)
        body = decoder.value()
    except RecursionError:
        raise _error("message nests too deeply", sender, party) from None
    if decoder.pos != len(payload):
        raise _error("message has trailing bytes after its body", sender, party)
    session, env_sender, recipient, seq, epoch, batch, step = fields
    return Envelope(session, env_sender, recipient, seq, epoch, batch, step, body)


def _check_envelope_fields(fields: list[Any], sender: str | None, party: str | None) -> None:
    names = ("session", "sender", "recipient", "seq", "epoch", "batch", "step")
    kinds = (str, str, str, int, int, int, str)
    for name, value, kind in zip(names, fields, kinds):
        if type(value) is not kind:
            raise _error(f"envelope field {name} is a {type(value).__name__}, not a "
                         f"{kind.__name__}", sender, party)
        if isinstance(value, str) and (len(value) > MAX_HEADER_TEXT
                                       or len(value.encode()) > MAX_HEADER_TEXT):
            raise _error(f"envelope field {name} is longer than {MAX_HEADER_TEXT} bytes",
                         sender, party)
        if isinstance(value, int):
            low = -1 if name == "seq" else 0
            if not low <= value <= MAX_ENVELOPE_INT:
                raise _error(f"envelope field {name} is {_shown(value)}, outside "
                             f"{low}..2^63-1", sender, party)


def _shown(value: object, limit: int = 60) -> str:
    """`value` for an error message: short, and never an exception of its own.

    (Python refuses to print an int of more than 4300 digits.)
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an int of {value.bit_length()} bits"
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a value whose repr fails is described by its type
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else text[:limit] + "..."


def _shown_error(exc: Exception, limit: int = 300) -> str:
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a message that cannot be printed: name the type
        return type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def _error(message: str, sender: str | None, party: str | None) -> WireFormatError:
    return WireFormatError(f"from {sender}: {message}" if sender else message, party=party)


class _Decoder:
    def __init__(self, data: memoryview, registry: TypeRegistry, sender: str | None,
                 party: str | None) -> None:
        self.data = data
        self.pos = 0
        self.registry = registry
        self.sender = sender
        self.party = party
        self.depth = 0
        self.keys: dict[int, phe.PaillierPublicKey] = {}  # vectors of one key share one object

    def fail(self, message: str) -> WireFormatError:
        return _error(f"{message} (at payload byte {self.pos})", self.sender, self.party)

    def take(self, count: int) -> memoryview:
        if count > len(self.data) - self.pos:
            raise self.fail(f"needs {count} more bytes, {len(self.data) - self.pos} left")
        chunk = self.data[self.pos:self.pos + count]
        self.pos += count
        return chunk

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])

    def value(self) -> Any:
        tag = bytes(self.take(1))
        if tag == b"N":
            return None
        if tag == b"T":
            return True
        if tag == b"F":
            return False
        if tag == b"i":
            return self.integer()
        if tag == b"f":
            return float(_F64.unpack(self.take(8))[0])
        if tag == b"s":
            raw = self.take(self.u32())
            try:
                return str(raw, "utf-8")
            except UnicodeDecodeError:
                raise self.fail("a string is not valid UTF-8") from None
        if tag == b"b":
            return bytes(self.take(self.u64()))
        if tag == b"c":
            return self.encrypted_vector()
        if tag in (b"t", b"l", b"d", b"D", b"E"):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.fail(f"values nest deeper than {MAX_DEPTH} levels")
            try:
                return self.compound(tag)
            finally:
                self.depth -= 1
        raise self.fail(f"unknown value tag {tag!r}")

    def integer(self) -> int:
        size = self.u32()
        if size > MAX_INT_BYTES:
            raise self.fail(f"an int of {size} bytes, more than the {MAX_INT_BYTES} any "
                            "message holds")
        return int.from_bytes(self.take(size), "big", signed=True)

    def compound(self, tag: bytes) -> Any:
        if tag in (b"t", b"l"):
            count = self.u32()
            self.check_count(count)
            items = [self.value() for _ in range(count)]
            return tuple(items) if tag == b"t" else items
        if tag == b"d":
            count = self.u32()
            self.check_count(count)
            result: dict[str, Any] = {}
            for _ in range(count):
                key = self.value()
                if not isinstance(key, str):
                    raise self.fail(f"a dict key is a {type(key).__name__}, not a str")
                result[key] = self.value()
            return result
        name = self.value()
        if not isinstance(name, str):
            raise self.fail("a type name is not a string")
        cls = self.registry.lookup(name)
        if cls is None:
            raise self.fail(f"type {name!r} is not an allowed message type")
        if tag == b"E":
            if not issubclass(cls, enum.Enum):
                raise self.fail(f"{name} is not an enum")
            raw = self.value()
            try:
                return cls(raw)
            except Exception:  # noqa: BLE001 - ValueError, or TypeError for unhashable values
                raise self.fail(f"{_shown(raw)} is not a {name}") from None
        if not dataclasses.is_dataclass(cls):
            raise self.fail(f"{name} is not a dataclass")
        count = self.u32()
        self.check_count(count)
        allowed = {f.name for f in dataclasses.fields(cls) if f.init}
        kwargs: dict[str, Any] = {}
        for _ in range(count):
            field = self.value()
            if field not in allowed or field in kwargs:
                raise self.fail(f"{name} has no field {_shown(field)} (or it is repeated)")
            kwargs[field] = self.value()
        hints = _field_hints(cls)
        for field, value in kwargs.items():
            if field in hints and not _matches(value, hints[field]):
                raise self.fail(f"{name}.{field} is a {type(value).__name__}, which does not "
                                f"fit its declared type {hints[field]}")
        try:
            # The class's own checks (__post_init__) run: a bad value is refused here.
            return cls(**kwargs)
        except Exception as exc:  # noqa: BLE001 - whatever a check raises on hostile values
            raise self.fail(f"{name} refused its fields: {_shown_error(exc)}") from None

    def check_count(self, count: int) -> None:
        # Every item takes at least one byte: refuse counts the rest cannot hold.
        if count > len(self.data) - self.pos:
            raise self.fail(f"announces {count} items, only {len(self.data) - self.pos} "
                            "bytes left")

    def encrypted_vector(self) -> EncryptedVector:
        if bytes(self.take(1)) != b"i":
            raise self.fail("an EncryptedVector's modulus is not an int")
        n = self.integer()
        if n < 3 or n % 2 == 0 or n.bit_length() > MAX_MODULUS_BITS:
            raise self.fail(f"an EncryptedVector's modulus is not an odd number of 2 to "
                            f"{MAX_MODULUS_BITS} bits")
        key = self.keys.get(n)
        if key is None:
            key = self.keys[n] = phe.PaillierPublicKey(n)
        count = self.u64()
        width = EncryptedVector.byte_width(key)
        if count > (len(self.data) - self.pos) // width:
            raise self.fail(f"an EncryptedVector announces {count} ciphertexts of {width} "
                            "bytes, more than the message holds")
        # Range checks (0 < c < n^2, coprime to n) are the receiving party's job.
        return EncryptedVector.from_bytes(key, self.take(count * width))

