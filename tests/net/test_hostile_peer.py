"""A hostile or broken peer: whatever it sends, the receiver stays up and names it.

Three classes of cases:

* memory is committed only as data arrives, and one peer streams one message
  at a time (a huge announcement and nothing after it costs the receiver
  nothing; a second stream from the same peer waits, with a bound);
* every integer decoded from the wire has a size limit: crafted frames
  (huge lengths and counts, negative or oversized ints, truncated headers)
  are a ``WireFormatError`` naming the sender, never another exception,
  both for the decoder and for a real ``GrpcEndpoint`` server;
* a peer that stops is named as stopped, fast: while a send to it is
  retried, when an abort notice arrives during the retries, and when its
  process dies in the middle of a stream (not a damaged frame).
"""

from __future__ import annotations

import contextlib
import enum
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vfl.net.grpc_endpoint as grpc_endpoint
from parties.vertical.messages import EpochStart
from vfl.errors import PeerAbortedError, ProtocolError, WireFormatError
from vfl.net import GrpcEndpoint, TlsFiles
from vfl.net.grpc_endpoint import INITIAL_BUFFER_BYTES, _Reassembly, _tls_failure
from vfl.net.liveness import PeerWatch
from vfl.protocol.channel import Envelope
from vfl.protocol.wire import (
    HEADER,
    MAGIC,
    MAX_HEADER_TEXT,
    MAX_INT_BYTES,
    TypeRegistry,
    decode_envelope,
    encode_envelope,
    frame_length,
)
from vfl.psi.ecdh import EcdhPoints

ROOT = Path(__file__).resolve().parents[2]


# --- crafting frames ----------------------------------------------------------------


def frame_of(payload: bytes, *, length: int | None = None) -> bytes:
    """A frame with a valid checksum around arbitrary payload bytes."""
    return HEADER.pack(MAGIC, 1, len(payload) if length is None else length,
                       zlib.crc32(payload)) + payload


def s(text: str) -> bytes:
    raw = text.encode()
    return b"s" + struct.pack(">I", len(raw)) + raw


def i(value: int, size: int | None = None) -> bytes:
    size = size or (value.bit_length() + 8) // 8
    return b"i" + struct.pack(">I", size) + value.to_bytes(size, "big", signed=True)


def head(seq: int = 0, epoch: int = 1, batch: int = 0, *, session: str = "s1",
         step: str = "EpochStart") -> bytes:
    return s(session) + s("B") + s("A1") + i(seq) + i(epoch) + i(batch) + s(step)


def epoch_start(seed: int = 7) -> bytes:
    return b"D" + s("EpochStart") + struct.pack(">I", 1) + s("batch_seed") + i(seed)


def good_frame(seq: int = 0, seed: int = 7) -> bytes:
    return frame_of(head(seq) + epoch_start(seed))


# --- the decoder: every integer has a limit -------------------------------------------


HUGE = 1 << 70
HOSTILE_FRAMES = {
    # header lengths
    "length 2^64-1": (frame_of(head() + epoch_start(), length=2 ** 64 - 1), "truncated"),
    "length 0": (frame_of(head() + epoch_start(), length=0), "extra bytes"),
    # envelope ints: negative, oversized, far beyond 64 bits
    "seq -2": (frame_of(head(seq=-2) + epoch_start()), r"seq is -2, outside -1\.\.2\^63-1"),
    "seq 2^63": (frame_of(head(seq=2 ** 63) + epoch_start()), "seq is 9223372036854775808"),
    "epoch -1": (frame_of(head(epoch=-1) + epoch_start()), r"epoch is -1, outside 0\.\."),
    "batch 2^70": (frame_of(head(batch=HUGE) + epoch_start()), "batch is an int of 71 bits"),
    "epoch 2^20000": (frame_of(head(epoch=2 ** 20000) + epoch_start()),
                      "epoch is an int of 20001 bits"),
    # int sizes
    "int of 2^32-1 bytes": (frame_of(head() + b"i" + struct.pack(">I", 2 ** 32 - 1)),
                            f"int of 4294967295 bytes, more than the {MAX_INT_BYTES}"),
    "int one byte too long": (frame_of(head() + i(1, MAX_INT_BYTES + 1)),
                              f"int of {MAX_INT_BYTES + 1} bytes"),
    "seq of 2^32-1 bytes": (frame_of(s("s1") + s("B") + s("A1") + b"i"
                                     + struct.pack(">I", 2 ** 32 - 1)), "int of 4294967295"),
    # counts and lengths
    "tuple of 2^32-1": (frame_of(head() + b"t" + struct.pack(">I", 2 ** 32 - 1)),
                        "announces 4294967295 items"),
    "dict of 2^32-1": (frame_of(head() + b"d" + struct.pack(">I", 2 ** 32 - 1)),
                       "announces 4294967295 items"),
    "fields 2^32-1": (frame_of(head() + b"D" + s("EpochStart") + struct.pack(">I", 2 ** 32 - 1)),
                      "announces 4294967295 items"),
    "bytes of 2^64-1": (frame_of(head() + b"b" + struct.pack(">Q", 2 ** 64 - 1)),
                        "needs 18446744073709551615 more bytes"),
    "str of 2^32-1": (frame_of(head() + b"s" + struct.pack(">I", 2 ** 32 - 1)),
                      "needs 4294967295 more bytes"),
    "ciphertexts 2^64-1": (frame_of(head() + b"c" + i(2 ** 511 + 1)
                                    + struct.pack(">Q", 2 ** 64 - 1)),
                           "announces 18446744073709551615 ciphertexts"),
    "modulus too large": (frame_of(head() + b"c" + i(1, MAX_INT_BYTES + 1)), "int of 4098"),
    # texts in the envelope
    "session too long": (frame_of(head(session="x" * (MAX_HEADER_TEXT + 1)) + epoch_start()),
                         f"session is longer than {MAX_HEADER_TEXT} bytes"),
    # values whose text would itself fail (ints beyond Python's 4300 printable digits)
    "field name a huge int": (frame_of(head() + b"D" + s("EpochStart") + struct.pack(">I", 1)
                                       + i(2 ** 30000) + i(1)),
                              "EpochStart has no field an int of 30001 bits"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_FRAMES))
def test_crafted_frames_are_wire_format_errors_naming_the_sender(case):
    data, message = HOSTILE_FRAMES[case]
    with pytest.raises(WireFormatError, match=message) as refused:
        decode_envelope(data, sender="B", party="A1")
    assert str(refused.value).startswith("party A1: from B: ")


@pytest.mark.parametrize("cut", range(HEADER.size))
def test_every_truncated_header_is_a_wire_format_error(cut):
    data = good_frame()[:cut]
    with pytest.raises(WireFormatError, match=r"from B: .* too few .* truncated"):
        frame_length(data, sender="B", party="A1")
    with pytest.raises(WireFormatError, match="from B: "):
        decode_envelope(data, sender="B", party="A1")


def test_frame_length_checks_the_limit_before_anything_is_reserved():
    data = frame_of(b"", length=2 ** 64 - 1)
    with pytest.raises(WireFormatError, match=r"announces 18446744073709551631 bytes; at most "
                                              r"1024 are accepted"):
        frame_length(data, sender="B", limit=1024)
    assert frame_length(good_frame(), limit=1024) == len(good_frame())


class Colour(enum.Enum):
    RED = 1


@dataclass(frozen=True)
class Paint:
    colour: Colour


def test_enum_values_of_any_kind_are_wire_format_errors():
    registry = TypeRegistry([Paint, Colour])
    for raw in (b"l" + struct.pack(">I", 0), i(2 ** 20000), s("RED"), b"N"):
        body = b"D" + s("Paint") + struct.pack(">I", 1) + s("colour") + b"E" + s("Colour") + raw
        with pytest.raises(WireFormatError, match="is not a Colour"):
            decode_envelope(frame_of(head(step="Paint") + body), sender="B", registry=registry)


def test_an_int_the_receiver_would_refuse_is_not_sent():
    too_big = 1 << (8 * MAX_INT_BYTES)
    with pytest.raises(ValueError,
                       match=r"EpochStart.batch_seed: an int of \d+ bits cannot be sent"):
        encode_envelope(Envelope("s1", "B", "A1", 0, 1, 0, "EpochStart", EpochStart(too_big)))
    largest = (1 << (8 * MAX_INT_BYTES - 1)) - 1  # the largest that fits: accepted
    frame = encode_envelope(Envelope("s1", "B", "A1", 0, 1, 0, "EpochStart", EpochStart(largest)))
    assert decode_envelope(frame).body == EpochStart(largest)


ENVELOPE_INTS = st.one_of(st.integers(-(2 ** 80), 2 ** 80), st.integers(-3, 3),
                          st.sampled_from([2 ** 63 - 1, 2 ** 63, -(2 ** 63), 2 ** 64]))


@given(seq=ENVELOPE_INTS, epoch=ENVELOPE_INTS, batch=ENVELOPE_INTS,
       garbage=st.binary(max_size=40))
@settings(max_examples=300, deadline=None)
def test_any_envelope_ints_and_body_bytes_give_an_envelope_or_a_wire_format_error(
        seq, epoch, batch, garbage):
    data = frame_of(head(seq, epoch, batch) + garbage)
    try:
        envelope = decode_envelope(data, sender="B")
    except WireFormatError:
        return
    assert -1 <= envelope.seq < 2 ** 63 and 0 <= envelope.epoch < 2 ** 63
    assert 0 <= envelope.batch < 2 ** 63


# --- reassembly: memory follows the data ----------------------------------------------


def test_a_huge_announcement_reserves_a_few_chunks_not_its_size():
    message = _Reassembly("B", "A1", limit=4 << 30)
    header = HEADER.pack(MAGIC, 1, 3 << 30, 0)
    message.add(header[:5])  # a header split over chunks is still read
    message.add(header[5:] + bytes(1000))
    assert message.expected == HEADER.size + (3 << 30)
    assert message.capacity == INITIAL_BUFFER_BYTES
    for _ in range(5):
        message.add(bytes(4 << 20))
    # Doubled as data came: 8 -> 16 -> 32 MiB for 20 MiB received.
    assert message.filled == HEADER.size + 1000 + 5 * (4 << 20)
    assert message.capacity == 4 * INITIAL_BUFFER_BYTES
    assert not message.complete


def test_reassembly_never_reserves_beyond_the_announced_size():
    frame = bytes(encode_envelope(Envelope("s1", "B", "A1", 0, 0, 0, "EcdhPoints",
                                           EcdhPoints(0, bytes(3 * INITIAL_BUFFER_BYTES)))))
    message = _Reassembly("B", "A1", limit=1 << 30)
    for start in range(0, len(frame), 1 << 20):
        message.add(frame[start:start + (1 << 20)])
        assert message.capacity <= len(frame)
    assert message.complete and bytes(message.buffer) == frame
    with pytest.raises(WireFormatError, match=r"longer than the .* bytes its header announces"):
        message.add(b"x")


def test_reassembly_refuses_an_announcement_over_the_limit():
    message = _Reassembly("B", "A1", limit=1 << 20)
    with pytest.raises(WireFormatError, match=r"party A1: from B: message announces \d+ bytes; "
                                              r"this party accepts messages of at most 1048576"):
        message.add(HEADER.pack(MAGIC, 1, 1 << 21, 0))
    assert message.capacity == HEADER.size


# --- a real server ----------------------------------------------------------------------


def channel_to(certs: Path, client: str, address: str, server: str) -> grpc.Channel:
    tls = TlsFiles.in_directory(certs, client)
    credentials = grpc.ssl_channel_credentials(
        Path(tls.ca).read_bytes(), Path(tls.key).read_bytes(), Path(tls.cert).read_bytes())
    return grpc.secure_channel(address, credentials,
                               options=[("grpc.ssl_target_name_override", server)])


def deliver(channel: grpc.Channel, chunks, *, client: str = "B", server: str = "A1",
            timeout: float = 10.0):
    call = channel.stream_unary("/vfl.Transport/Deliver", request_serializer=bytes,
                                response_deserializer=None)
    return call(iter(chunks), timeout=timeout,
                metadata=(("vfl-sender", client), ("vfl-recipient", server)))


def deliver_future(channel: grpc.Channel, chunks, *, timeout: float = 30.0):
    call = channel.stream_unary("/vfl.Transport/Deliver", request_serializer=bytes,
                                response_deserializer=None)
    return call.future(iter(chunks), timeout=timeout,
                       metadata=(("vfl-sender", "B"), ("vfl-recipient", "A1")))


def held(first: bytes, release: threading.Event, rest: bytes = b""):
    """Chunks: `first`, then nothing until `release` is set, then `rest`."""
    yield first
    release.wait(30)
    if rest:
        yield rest


def test_a_huge_announcement_without_data_costs_the_server_nothing(federation, certs):
    eps = federation(("A1", "B"), max_message_bytes=4 << 30)
    release = threading.Event()
    tracemalloc.start()
    try:
        with channel_to(certs, "B", eps["A1"].address, "A1") as channel:
            call = deliver_future(channel, held(HEADER.pack(MAGIC, 1, 3 << 30, 0) + bytes(100),
                                                release))
            time.sleep(1.0)  # the server has read the header and waits for data
            current, _ = tracemalloc.get_traced_memory()
            release.set()
            with pytest.raises(grpc.RpcError):
                call.result()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current < 64 << 20 and peak < 64 << 20, (current, peak)
    with pytest.raises(WireFormatError, match=r"party A1: from B: message is truncated: 116 "
                                              r"bytes, the header announces 3221225488"):
        eps["A1"].receive("B", EpochStart, epoch=1)


def test_an_announcement_over_the_limit_stops_the_receiver_too(federation, certs):
    eps = federation(("A1", "B"), max_message_bytes=1 << 20)
    with channel_to(certs, "B", eps["A1"].address, "A1") as channel, \
            pytest.raises(grpc.RpcError) as refused:
        deliver(channel, [HEADER.pack(MAGIC, 1, 1 << 30, 0)])
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(WireFormatError, match="from B: message announces 1073741840 bytes"):
        eps["A1"].receive("B", EpochStart, epoch=1)


def test_a_header_split_over_chunks_is_accepted(federation, certs):
    eps = federation(("A1", "B"))
    data = good_frame(seed=5)
    with channel_to(certs, "B", eps["A1"].address, "A1") as channel:
        deliver(channel, [data[:3], data[3:9], data[9:]])
    assert eps["A1"].receive("B", EpochStart, epoch=1).batch_seed == 5


@pytest.mark.parametrize("case", ["seq -2", "batch 2^70", "int of 2^32-1 bytes",
                                  "field name a huge int", "length 0", "session too long"])
def test_crafted_frames_to_a_server_are_refused_and_name_the_sender(federation, certs, case):
    eps = federation(("A1", "B"))
    data, message = HOSTILE_FRAMES[case]
    if case == "length 0":  # the server sees the extra bytes as they arrive
        message = "message is longer than the 16 bytes its header announces"
    with channel_to(certs, "B", eps["A1"].address, "A1") as channel:
        with pytest.raises(grpc.RpcError) as refused:
            deliver(channel, [data])
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(WireFormatError, match=f"party A1: from B: .*{message}"):
            eps["A1"].receive("B", EpochStart, epoch=1)
        # The server is still up and the link usable: the intact message is accepted.
        deliver(channel, [good_frame(seq=0, seed=3)])
    assert eps["A1"].receive("B", EpochStart, epoch=1).batch_seed == 3


def test_a_regular_message_with_the_abort_sequence_number_is_refused(federation, certs):
    eps = federation(("A1", "B"))
    with channel_to(certs, "B", eps["A1"].address, "A1") as channel, \
            pytest.raises(grpc.RpcError):
        deliver(channel, [frame_of(head(seq=-1) + epoch_start())])
    with pytest.raises(WireFormatError, match="sequence number -1; only abort notices"):
        eps["A1"].receive("B", EpochStart, epoch=1)


@pytest.mark.parametrize("body", [i(2 ** 30000), b"l" + struct.pack(">I", 0), b"N"])
def test_an_abort_notice_without_a_text_reason_is_refused(federation, certs, body):
    eps = federation(("A1", "B"))
    notice = frame_of(s("s1") + s("B") + s("A1") + i(-1) + i(0) + i(0) + s("Abort") + body)
    with channel_to(certs, "B", eps["A1"].address, "A1") as channel:
        abort = channel.unary_unary("/vfl.Transport/Abort", request_serializer=bytes,
                                    response_deserializer=None)
        with pytest.raises(grpc.RpcError) as refused:
            abort(notice, timeout=5, metadata=(("vfl-sender", "B"), ("vfl-recipient", "A1")))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "reason as a str" in refused.value.details()
    eps["B"].send("A1", EpochStart(4), epoch=1)  # the party is unaffected
    assert eps["A1"].receive("B", EpochStart, epoch=1).batch_seed == 4


def wait_until_streaming(endpoint: GrpcEndpoint, peer: str, limit: float = 20.0) -> None:
    """Return once `peer`'s stream slot at `endpoint` is taken (its first stream is read)."""
    slot = endpoint._streams[peer]
    deadline = time.monotonic() + limit
    while slot.acquire(blocking=False):
        slot.release()
        assert time.monotonic() < deadline, "the first stream never reached the server"
        time.sleep(0.02)


def test_a_second_stream_from_one_peer_waits_for_the_first(federation, certs):
    eps = federation(("A1", "B"))
    release = threading.Event()
    first, second = good_frame(seq=0, seed=1), good_frame(seq=1, seed=2)
    with channel_to(certs, "B", eps["A1"].address, "A1") as channel:
        one = deliver_future(channel, held(first[:20], release, first[20:]))
        wait_until_streaming(eps["A1"], "B")
        two = deliver_future(channel, [second])
        time.sleep(0.5)
        assert not two.done()  # waits for the first stream to end
        release.set()
        one.result()
        two.result()
    assert eps["A1"].receive("B", EpochStart, epoch=1).batch_seed == 1
    assert eps["A1"].receive("B", EpochStart, epoch=1).batch_seed == 2


def test_a_second_stream_that_waits_too_long_is_refused_naming_the_peer(federation, certs,
                                                                        monkeypatch):
    monkeypatch.setattr(grpc_endpoint, "STREAM_WAIT_S", 0.5)
    eps = federation(("A1", "B"))
    release = threading.Event()
    with channel_to(certs, "B", eps["A1"].address, "A1") as channel:
        stalled = deliver_future(channel, held(HEADER.pack(MAGIC, 1, 1 << 30, 0), release))
        wait_until_streaming(eps["A1"], "B")
        extra = [deliver_future(channel, [good_frame(seq=n)]) for n in range(3)]
        for call in extra:
            with pytest.raises(grpc.RpcError) as refused:
                call.result()
            assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "B streams a second message" in refused.value.details()
        release.set()
        with pytest.raises(grpc.RpcError):
            stalled.result()
    with pytest.raises(ProtocolError, match=r"party A1: B streams a second message while its "
                                            r"previous one has not ended after 0\.5 s"):
        eps["A1"].receive("B", EpochStart, epoch=1)


# --- a peer that stops ----------------------------------------------------------------


def test_a_send_retried_to_a_peer_that_stopped_names_it_within_seconds(certs, free_address):
    addresses = {"A1": free_address(), "B": free_address()}
    a = GrpcEndpoint("A1", "s1", addresses["A1"], {"B": addresses["B"]}, timeout=30,
                     connect_timeout=60, tls=TlsFiles.in_directory(certs, "A1"))
    b = GrpcEndpoint("B", "s1", addresses["B"], {"A1": addresses["A1"]}, timeout=30,
                     connect_timeout=60, tls=TlsFiles.in_directory(certs, "B"))
    try:
        a.send("B", EpochStart(1), epoch=1)
        b.close(grace=0)
        started = time.monotonic()
        with pytest.raises(PeerAbortedError, match=r"party A1: B stopped: its address "
                                                   r"127\.0\.0\.1:\d+ refuses connections"):
            a.send("B", EpochStart(2), epoch=2)
        assert time.monotonic() - started < 10  # not connect_timeout (60 s)
    finally:
        a.close(grace=0)
        b.close(grace=0)


def test_an_abort_notice_ends_a_send_being_retried(federation):
    eps = federation(connect_timeout=60)
    eps["B"].close(grace=0)  # never reached: A1 retries as for a peer still starting
    failure: list[BaseException] = []

    def send() -> None:
        try:
            eps["A1"].send("B", EpochStart(1), epoch=1)
        except BaseException as exc:  # noqa: BLE001 - checked below
            failure.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(1.0)
    started = time.monotonic()
    # C's notice to B (not listening) waits for it in vain: in the background.
    threading.Thread(target=eps["C"].abort, args=("ConfigFileError: bad column",),
                     daemon=True).start()
    sender.join(15)
    assert not sender.is_alive() and time.monotonic() - started < 4
    assert isinstance(failure[0], PeerAbortedError)
    assert "party A1: C stopped: ConfigFileError: bad column" in str(failure[0])


def test_the_peer_watch_ends_a_send_being_retried(federation):
    eps = federation(("A1", "B"), connect_timeout=60)
    eps["A1"].send("B", EpochStart(1), epoch=1)
    with PeerWatch(eps["A1"], interval=0.2) as watch:
        eps["B"].close(grace=0)
        started = time.monotonic()
        with pytest.raises(PeerAbortedError, match="party A1: B stopped: its address"):
            eps["A1"].send("B", EpochStart(2), epoch=2)
        assert time.monotonic() - started < 10
    assert watch.gone in (None, "B")  # the watch or the send's own probe, whichever is first


def test_a_stream_cut_short_by_a_peer_that_stopped_reads_as_stopped(federation, certs):
    """gRPC may report a dying sender's stream as ended before it reports it cancelled:
    the short frame is then blamed on the stopped peer, not called damaged."""
    eps = federation(("A1", "B"))
    whole = bytes(encode_envelope(Envelope("s1", "B", "A1", 0, 0, 0, "EcdhPoints",
                                           EcdhPoints(0, bytes(10_000)))))
    eps["B"].close(grace=0)  # B's port refuses connections: its process has gone
    with channel_to(certs, "B", eps["A1"].address, "A1") as channel, \
            contextlib.suppress(grpc.RpcError):
        deliver(channel, [whole[:4096]])
    with pytest.raises(PeerAbortedError, match=r"party A1: B stopped: its address .* refuses"):
        eps["A1"].receive("B", EcdhPoints)


def test_a_handshake_reset_by_a_peer_once_authenticated_is_its_death_not_a_refusal():
    reset = ("failed to connect to all addresses; last error: UNAVAILABLE: "
             "ipv4:127.0.0.1:43205: Handshake read failed (recvmsg:Connection reset by peer "
             "(104))")
    assert _tls_failure(reset)  # a peer never authenticated: a refused handshake
    assert not _tls_failure(reset, authenticated=True)  # it was up: its process stopped
    assert _tls_failure("Handshake failed: certificate verify failed", authenticated=True)


def test_a_survivor_that_found_a_peer_stopped_tells_the_others_which(federation):
    """B's process stops; A1 finds it and stops too. C, told by A1, names B: not A1,
    whose port it might otherwise find closed first. A notice C was told of is not
    passed on again."""
    eps = federation(("A1", "B", "C"))
    eps["B"].close(grace=0)
    eps["A1"].peer_stopped("B", "its address refuses connections")
    with pytest.raises(PeerAbortedError) as stopped:
        eps["A1"].receive("B", EpochStart)
    eps["A1"].pass_on_stopped_peer()
    eps["A1"].close(grace=0)
    with pytest.raises(PeerAbortedError, match=r"party C: A1 stopped: B stopped: its address "
                                               r"refuses connections"):
        eps["C"].receive("A1", EpochStart)
    assert "B stopped" in str(stopped.value)
    eps["C"].pass_on_stopped_peer()  # told, not found: nothing to pass on
    assert not eps["C"]._aborted


def test_a_cancelled_stream_of_a_live_peer_is_no_error(federation, certs):
    eps = federation(("A1", "B"))
    release = threading.Event()
    data = good_frame(seed=9)
    with channel_to(certs, "B", eps["A1"].address, "A1") as channel:
        call = deliver_future(channel, held(data[:20], release))
        time.sleep(0.3)
        call.cancel()  # the sender gives up (its deadline) and sends again
        time.sleep(1.5)
        release.set()
        deliver(channel, [data])
    assert eps["A1"].receive("B", EpochStart, epoch=1).batch_seed == 9


DYING_SENDER = """
import sys, threading, time
import grpc
from vfl.net import GrpcEndpoint, TlsFiles
certs, listen, target = sys.argv[1:]
endpoint = GrpcEndpoint("B", "s1", listen, {"A1": target},
                        tls=TlsFiles.in_directory(certs, "B"), timeout=30)
tls = TlsFiles.in_directory(certs, "B")
credentials = grpc.ssl_channel_credentials(*(open(p, "rb").read()
                                             for p in (tls.ca, tls.key, tls.cert)))
channel = grpc.secure_channel(target, credentials,
                              options=[("grpc.ssl_target_name_override", "A1")])
frame = bytes.fromhex(sys.stdin.readline())

def chunks():
    yield frame[:len(frame) // 2]
    print("streaming", flush=True)
    time.sleep(60)  # killed here, in the middle of the message

channel.stream_unary("/vfl.Transport/Deliver", request_serializer=bytes,
                     response_deserializer=None)(
    chunks(), timeout=60, metadata=(("vfl-sender", "B"), ("vfl-recipient", "A1")))
"""


@pytest.mark.parametrize("attempt", range(3))
def test_a_peer_killed_while_sending_reads_as_stopped_not_damaged(certs, free_address, attempt):
    listen, own = free_address(), free_address()
    whole = bytes(encode_envelope(Envelope("s1", "B", "A1", 0, 0, 0, "EcdhPoints",
                                           EcdhPoints(0, bytes(100_000)))))
    with GrpcEndpoint("A1", "s1", own, {"B": listen}, tls=TlsFiles.in_directory(certs, "A1"),
                      timeout=20) as a:
        sender = subprocess.Popen([sys.executable, "-c", DYING_SENDER, str(certs), listen, own],
                                  cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        try:
            sender.stdin.write(whole.hex() + "\n")
            sender.stdin.flush()
            assert sender.stdout.readline().strip() == "streaming"
            wait_until_streaming(a, "B")  # A1 reads the stream
            time.sleep(0.2 * attempt)
            sender.kill()
            sender.wait()
            started = time.monotonic()
            with pytest.raises(PeerAbortedError, match="party A1: B stopped: its address"):
                a.receive("B", EcdhPoints)
            assert time.monotonic() - started < 10
        finally:
            if sender.poll() is None:
                sender.kill()
                sender.wait()
