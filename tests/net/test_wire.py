"""The wire codec: exact round trips, and only specific errors for bad bytes."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import math
import struct
import types
import typing
import zlib

import phe
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parties.vertical.messages import EpochStart, TrainingPlan
from vfl.crypto.ciphertext import EncryptedVector
from vfl.errors import ProtocolError, WireFormatError
from vfl.protocol.channel import Envelope
from vfl.protocol.wire import (
    HEADER,
    MAGIC,
    MAX_DEPTH,
    TypeRegistry,
    decode_envelope,
    default_registry,
    encode_envelope,
)
from vfl.training import TrainingConfig

#: Registered dataclasses that are not messages (never sent): they hold numpy arrays.
NOT_SENT = {"AlignmentResult"}

KEY, _ = phe.generate_paillier_keypair(n_length=512)  # small: tests only


def vector(count: int = 3) -> EncryptedVector:
    nsquare = KEY.nsquare
    return EncryptedVector(KEY, tuple((7 ** (i + 50)) % nsquare for i in range(count)))


def example(hint: object) -> object:
    """A non-trivial value of a field's type hint."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return example(next(a for a in args if a is not type(None)))
    if origin is tuple:
        return tuple(example(args[0]) for _ in range(2)) if args[-1] is Ellipsis \
            else tuple(example(a) for a in args)
    if origin is list:
        return [example(args[0])]
    if origin is dict:
        return {"key": example(args[1])}
    if hint is bool:
        return True
    if hint is int:
        return 3 ** 90  # far beyond 64 bits
    if hint is float:
        return 0.1
    if hint is str:
        return "A1 \u00e9"
    if hint is bytes:
        return bytes(range(256))
    if hint is EncryptedVector:
        return vector()
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return next(iter(hint))
    if dataclasses.is_dataclass(hint):
        return build(hint)
    raise TypeError(f"no example for {hint!r}")


def build(cls: type) -> object:
    """An instance with every field set to an example, or to its default where the
    class refuses the example (validated configuration fields)."""
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    try:
        return cls(**{f.name: example(hints[f.name]) for f in fields})
    except (TypeError, ValueError):
        required = [f for f in fields if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]
        return cls(**{f.name: example(hints[f.name]) for f in required})


def envelope(body: object, **changes: object) -> Envelope:
    fields = {"session": "session-1", "sender": "B", "recipient": "A1", "seq": 12, "epoch": 3,
              "batch": 4, "step": type(body).__name__, "body": body}
    fields.update(changes)
    return Envelope(**fields)  # type: ignore[arg-type]


def round_trip(env: Envelope, registry: TypeRegistry | None = None) -> Envelope:
    return decode_envelope(encode_envelope(env, registry), registry=registry)


MESSAGE_TYPES = [name for name in default_registry().names() if name not in NOT_SENT]


def test_default_registry_finds_messages_of_every_module():
    names = set(default_registry().names())
    assert "EncryptedVector" not in names  # only ever built from its own tag
    assert {"EpochStart", "TrainingPlan", "TrainingConfig", "EcdhPoints", "EcdhHello",
            "AlignmentTags", "PublicKeyMessage"} <= names


@pytest.mark.parametrize("name", MESSAGE_TYPES)
def test_every_message_type_round_trips_exactly(name):
    cls = default_registry().lookup(name)
    body = build(cls) if dataclasses.is_dataclass(cls) else next(iter(cls))
    env = envelope(body)
    assert round_trip(env) == env


def test_nested_config_and_ciphertexts_keep_their_types():
    config = TrainingConfig(epochs=3, learning_rate=0.05, batch_size=None)
    plan = round_trip(envelope(TrainingPlan(config, 10_000, ("A1", "A2")))).body
    assert type(plan.config) is TrainingConfig and plan.config == config
    assert plan.feature_holders == ("A1", "A2") and type(plan.n_rows) is int


def test_encrypted_vector_is_fixed_width_big_endian_with_its_modulus():
    v = vector(5)
    frame = encode_envelope(envelope(v, step="EncryptedVector"))
    assert v.to_bytes() in frame  # exactly EncryptedVector.to_bytes inside the frame
    back = decode_envelope(frame).body
    assert back.public_key.n == KEY.n and back.ciphertexts == v.ciphertexts


def test_vectors_of_one_key_share_one_key_object():
    back = round_trip(envelope((vector(2), vector(3)), step="pair")).body
    assert back[0].public_key is back[1].public_key


@pytest.mark.parametrize("value", [0.1, -0.0, math.inf, -math.inf, 5e-324, 1.7976931348623157e308,
                                   1 / 3])
def test_floats_are_exact(value):
    back = round_trip(envelope((value,), step="floats")).body[0]
    assert back.hex() == value.hex() and math.copysign(1, back) == math.copysign(1, value)


def test_nan_survives():
    assert math.isnan(round_trip(envelope((math.nan,), step="floats")).body[0])


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    | st.binary(),
    lambda children: st.lists(children, max_size=4) | st.lists(children, max_size=4).map(tuple)
    | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20))
@settings(max_examples=200, deadline=None)
def test_plain_values_round_trip(value):
    back = round_trip(envelope(value, step="value")).body
    assert back == value and type(back) is type(value)


def test_unregistered_dataclass_cannot_be_sent_and_cannot_be_received():
    @dataclasses.dataclass(frozen=True)
    class Smuggled:
        command: str

    with pytest.raises(TypeError, match="not a registered message type"):
        encode_envelope(envelope(Smuggled("rm -rf /")))
    mine = TypeRegistry([Smuggled])
    frame = encode_envelope(envelope(Smuggled("x")), mine)
    assert decode_envelope(frame, registry=mine).body == Smuggled("x")
    with pytest.raises(WireFormatError, match="'Smuggled' is not an allowed message type"):
        decode_envelope(frame, sender="B")


def test_registry_refuses_two_types_of_one_name():
    @dataclasses.dataclass(frozen=True)
    class EpochStart:  # deliberately the same name as the message
        batch_seed: int

    registry = default_registry()
    with pytest.raises(ValueError, match="two message types are named EpochStart"):
        registry.register(EpochStart)


def test_values_of_other_types_are_refused_with_their_path():
    with pytest.raises(TypeError, match=r"x\[1\]: a builtins.set cannot be sent"):
        encode_envelope(envelope((1, {2}), step="x"))


# --- bad bytes ----------------------------------------------------------------------


def small_frame() -> bytearray:
    return encode_envelope(envelope(TrainingPlan(TrainingConfig(), 50, ("A1",))))


def test_every_truncation_is_a_wire_format_error_naming_the_sender():
    frame = small_frame()
    for cut in range(len(frame)):
        with pytest.raises(WireFormatError, match=r"party A1: from B: .*(truncated|too few)"):
            decode_envelope(frame[:cut], sender="B", party="A1")


def test_every_single_byte_corruption_is_a_wire_format_error():
    frame = small_frame()
    for position in range(len(frame)):
        damaged = bytearray(frame)
        damaged[position] ^= 0x40
        with pytest.raises(WireFormatError, match="from B"):
            decode_envelope(damaged, sender="B")


def test_extra_bytes_are_refused():
    with pytest.raises(WireFormatError, match="followed by extra bytes"):
        decode_envelope(small_frame() + b"\x00", sender="B")


def test_wire_format_error_is_a_protocol_error_and_a_value_error():
    assert issubclass(WireFormatError, ProtocolError) and issubclass(WireFormatError, ValueError)


def frame_of(payload: bytes) -> bytes:
    """A frame with a correct header and checksum around arbitrary payload bytes."""
    return HEADER.pack(MAGIC, 1, len(payload), zlib.crc32(payload)) + payload


def s(text: str) -> bytes:
    raw = text.encode()
    return b"s" + struct.pack(">I", len(raw)) + raw


def i(value: int) -> bytes:
    raw = value.to_bytes(8, "big", signed=True)
    return b"i" + struct.pack(">I", len(raw)) + raw


HEAD = s("session-1") + s("B") + s("A1") + i(0) + i(0) + i(0) + s("EpochStart")


@pytest.mark.parametrize("body, message", [
    (b"D" + s("Popen") + struct.pack(">I", 0), "'Popen' is not an allowed message type"),
    (b"D" + s("EpochStart") + struct.pack(">I", 1) + s("command") + s("x"),
     "EpochStart has no field 'command'"),
    (b"D" + s("TrainingConfig") + struct.pack(">I", 1) + s("epochs") + i(-1),
     "TrainingConfig refused its fields: epochs must be"),
    (b"D" + s("TrainingPlan") + struct.pack(">I", 3) + s("config") + i(1) + s("n_rows")
     + i(5) + s("feature_holders") + b"t" + struct.pack(">I", 0),
     "TrainingPlan.config is a int, which does not fit its declared type"),
    (b"D" + s("EpochStart") + struct.pack(">I", 1) + s("batch_seed") + s("7"),
     "EpochStart.batch_seed is a str"),
    (b"t" + struct.pack(">I", 2 ** 32 - 1), "announces 4294967295 items"),
    ((b"t" + struct.pack(">I", 1)) * (MAX_DEPTH + 1) + b"N", "nest deeper"),
    (b"c" + i(2 ** 61 - 1) + struct.pack(">Q", 2 ** 60), "announces 1152921504606846976 "
                                                         "ciphertexts"),
    (b"s" + struct.pack(">I", 2) + b"\xff\xfe", "not valid UTF-8"),
    (b"?", "unknown value tag"),
    (b"d" + struct.pack(">I", 1) + i(1) + b"N", "dict key is a int"),
])
def test_hostile_payloads_with_valid_checksums_are_refused(body, message):
    with pytest.raises(WireFormatError, match=message):
        decode_envelope(frame_of(HEAD + body), sender="B")


VALID_PAYLOAD = bytes(encode_envelope(envelope((
    TrainingPlan(TrainingConfig(), 50, ("A1",)), vector(2), {"k": [1.5, None, b"x"]}),
    step="mixed")))[HEADER.size:]


@given(st.lists(st.tuples(st.integers(0, len(VALID_PAYLOAD) - 1), st.binary(min_size=1,
                                                                            max_size=9)),
                min_size=1, max_size=4))
@settings(max_examples=400, deadline=None)
def test_damaged_payloads_with_valid_checksums_raise_only_wire_format_errors(edits):
    payload = bytearray(VALID_PAYLOAD)
    for position, data in edits:
        payload[position:position + len(data)] = data
    with contextlib.suppress(WireFormatError):  # refused; any other exception fails the test
        decode_envelope(frame_of(bytes(payload)), sender="B")


def test_envelope_fields_must_have_their_types():
    payload = s("session-1") + s("B") + s("A1") + s("zero") + i(0) + i(0) + s("EpochStart") + b"N"
    with pytest.raises(WireFormatError, match="envelope field seq is a str"):
        decode_envelope(frame_of(payload))


def test_other_format_version_is_refused_with_advice():
    frame = bytearray(encode_envelope(envelope(EpochStart(1))))
    frame[3] = 99
    with pytest.raises(WireFormatError, match=r"version 99.*same vfl version"):
        decode_envelope(frame)


@dataclasses.dataclass(frozen=True)
class Momentum:
    beta: float


@dataclasses.dataclass(frozen=True)
class Settings:
    optimizer: Momentum | None
    history: tuple[Momentum, ...]
    scores: EncryptedVector | None = None


def test_dataclasses_in_field_types_are_allowed_wherever_they_are_defined():
    registry = TypeRegistry([Settings])
    registry.register_field_types(Settings)
    assert registry.names() == ["Momentum", "Settings"]  # EncryptedVector has its own tag
    body = Settings(Momentum(0.9), (Momentum(0.5),))
    assert round_trip(envelope(body), registry).body == body
