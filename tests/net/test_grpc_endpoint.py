"""GrpcEndpoint on loopback: the in-process endpoint's semantics, over mutual TLS."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from parties.vertical.messages import EpochEnd, EpochStart
from vfl.errors import (
    CertificateFileError,
    ChannelTimeoutError,
    PeerAbortedError,
    PeerAuthenticationError,
    PeerUnreachableError,
    ProtocolError,
    UnexpectedMessageError,
    WireFormatError,
)
from vfl.net import GrpcEndpoint, InsecureTransportWarning, TlsFiles
from vfl.protocol.channel import Envelope
from vfl.protocol.wire import decode_envelope, encode_envelope
from vfl.psi.ecdh import EcdhPoints

ROOT = Path(__file__).resolve().parents[2]


def raw_deliver(certs: Path, client: str, address: str, server: str, chunks, *,
                ca: Path | None = None, sender: str | None = None) -> None:
    """Call a party's Deliver method directly, as a rogue or buggy peer would."""
    tls = TlsFiles.in_directory(certs, client)
    credentials = grpc.ssl_channel_credentials(
        Path(ca or tls.ca).read_bytes(), Path(tls.key).read_bytes(), Path(tls.cert).read_bytes())
    with grpc.secure_channel(address, credentials,
                             options=[("grpc.ssl_target_name_override", server)]) as channel:
        deliver = channel.stream_unary("/vfl.Transport/Deliver", request_serializer=bytes,
                                       response_deserializer=None)
        deliver(iter(chunks), timeout=3,
                metadata=(("vfl-sender", sender or client), ("vfl-recipient", server)))


def frame(seq: int, body: object, *, epoch: int = 1, sender: str = "B",
          recipient: str = "A1", session: str = "s1") -> bytearray:
    return encode_envelope(Envelope(session, sender, recipient, seq, epoch, 0,
                                    type(body).__name__, body))


# --- messages flow --------------------------------------------------------------------


def test_three_parties_exchange_messages_over_mutual_tls(federation):
    eps = federation()
    eps["B"].send("A1", EpochStart(11), epoch=1)
    eps["C"].send("A1", EpochEnd(stop=False, loss=0.5), epoch=1)
    eps["A1"].send("C", EpochStart(12), epoch=1)
    assert eps["A1"].receive("C", EpochEnd, epoch=1) == EpochEnd(stop=False, loss=0.5)
    assert eps["A1"].receive("B", EpochStart, epoch=1).batch_seed == 11
    assert eps["C"].receive("A1", EpochStart, epoch=1).batch_seed == 12


def test_messages_keep_their_order_on_each_link(federation):
    eps = federation(("A1", "B"))
    for seed in range(30):
        eps["B"].send("A1", EpochStart(seed), epoch=seed)
    assert [eps["A1"].receive("B", EpochStart, epoch=e).batch_seed for e in range(30)] == \
        list(range(30))


def test_traffic_counts_and_capture_see_the_exact_frames(federation):
    seen: list[tuple[str, str, bytes]] = []
    eps = federation(("A1", "B"), capture=lambda d, p, f: seen.append((d, p, bytes(f))))
    eps["B"].send("A1", EpochStart(99), epoch=2)
    eps["A1"].receive("B", EpochStart, epoch=2)
    sent = [f for d, p, f in seen if d == "sent" and p == "A1"]
    received = [f for d, p, f in seen if d == "received" and p == "B"]
    assert sent == received and len(sent) == 1
    assert decode_envelope(sent[0]).body == EpochStart(99)
    b_link, a_link = eps["B"].traffic_snapshot()["A1"], eps["A1"].traffic_snapshot()["B"]
    assert b_link.bytes_sent == a_link.bytes_received == len(sent[0])
    assert b_link.messages_sent == a_link.messages_received == 1


def test_a_large_payload_is_streamed_in_chunks_and_arrives_intact(federation):
    eps = federation(("A1", "B"), chunk_bytes=1 << 20, timeout=30)
    payload = os.urandom(120 << 20)
    started = time.monotonic()
    eps["B"].send("A1", EcdhPoints(0, payload))
    received = eps["A1"].receive("B", EcdhPoints)
    assert time.monotonic() - started < 10
    assert received.points == payload
    link = eps["A1"].traffic_snapshot()["B"]
    assert link.chunks_received == eps["B"].traffic_snapshot()["A1"].chunks_sent > 120
    assert link.bytes_received > 120 << 20


def test_a_party_in_another_process(certs, free_address):
    listen, own = free_address(), free_address()
    with GrpcEndpoint("A1", "s1", own, {"B": listen}, tls=TlsFiles.in_directory(certs, "A1"),
                      timeout=20, connect_timeout=20) as a:
        peer = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("echo_peer.py")), str(certs), "B",
             listen, "A1", own, "3"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for epoch in (1, 2, 3):  # the first send retries until B listens
                a.send("B", EpochStart(10 * epoch), epoch=epoch)
                assert a.receive("B", EpochStart, epoch=epoch).batch_seed == 10 * epoch + 1
            a.send("B", EpochEnd(stop=True), epoch=4)
            assert peer.wait(timeout=20) == 0, peer.stderr.read()
        finally:
            if peer.poll() is None:
                peer.kill()
                peer.wait()


# --- endpoint semantics --------------------------------------------------------------


def test_duplicate_is_dropped_and_gap_names_sender(federation):
    eps = federation(("A1", "B"))
    first = Envelope("s1", "B", "A1", 0, 1, 0, "EpochStart", EpochStart(1))
    eps["B"]._transmit(first)
    eps["B"]._transmit(first)  # e.g. a retry after a lost acknowledgement
    eps["B"]._transmit(Envelope("s1", "B", "A1", 1, 2, 0, "EpochStart", EpochStart(2)))
    assert eps["A1"].receive("B", EpochStart, epoch=1).batch_seed == 1
    assert eps["A1"].receive("B", EpochStart, epoch=2).batch_seed == 2
    eps["B"]._transmit(Envelope("s1", "B", "A1", 5, 3, 0, "EpochStart", EpochStart(3)))
    with pytest.raises(UnexpectedMessageError,
                       match="party A1: message EpochStart from B has sequence number 5, "
                             "expected 2"):
        eps["A1"].receive("B", EpochStart, epoch=3)


def test_out_of_place_message_names_sender_and_step(federation):
    eps = federation(("A1", "B"))
    eps["B"].send("A1", EpochEnd(stop=True), epoch=1)
    with pytest.raises(UnexpectedMessageError,
                       match="expected EpochStart from B at epoch 1 batch 0, got EpochEnd"):
        eps["A1"].receive("B", EpochStart, epoch=1)


def test_message_of_another_session_is_refused(federation, free_address):
    eps = federation(("A1", "B"), insecure=True)
    with pytest.warns(InsecureTransportWarning):
        stranger = GrpcEndpoint("B", "old-run", free_address(), {"A1": eps["A1"].address},
                                insecure=True, timeout=2)
    with stranger:
        stranger.send("A1", EpochStart(1), epoch=1)
        with pytest.raises(UnexpectedMessageError, match="belongs to session 'old-run'"):
            eps["A1"].receive("B", EpochStart, epoch=1)


def test_silence_times_out_quickly_naming_the_silent_party(federation):
    eps = federation(("A1", "B"), timeout=0.3)
    started = time.monotonic()
    with pytest.raises(ChannelTimeoutError, match=r"party A1: B \(127\.0\.0\.1:\d+\) sent "
                                                  r"nothing for 0\.3 s"):
        eps["A1"].receive("B", EpochStart, epoch=1)
    assert time.monotonic() - started < 2


def test_abort_reaches_every_peer(federation):
    eps = federation()
    eps["C"].abort("disk full")
    for name, peer in [("A1", "B"), ("B", "A1"), ("A1", "C"), ("B", "C")]:
        with pytest.raises(PeerAbortedError, match="C stopped: disk full"):
            eps[name].receive(peer, EpochStart, epoch=1)


def test_leaving_a_with_block_by_an_error_tells_the_peers(federation):
    eps = federation()
    with pytest.raises(RuntimeError), eps["C"]:
        raise RuntimeError("out of memory")
    with pytest.raises(PeerAbortedError, match="C stopped: RuntimeError: out of memory"):
        eps["B"].receive("A1", EpochStart, epoch=1)


def test_a_closed_endpoint_fails_fast(federation):
    eps = federation(("A1", "B"))
    eps["A1"].close()
    eps["A1"].close()  # idempotent
    with pytest.raises(ProtocolError, match="closed"):
        eps["A1"].receive("B", EpochStart)
    with pytest.raises(ProtocolError, match="closed"):
        eps["A1"].send("B", EpochStart(1))


# --- connections ------------------------------------------------------------------------


def test_unreachable_peer_is_retried_then_named_with_its_address(certs, free_address):
    nobody = free_address()
    with GrpcEndpoint("A1", "s1", free_address(), {"B": nobody},
                      tls=TlsFiles.in_directory(certs, "A1"), timeout=5,
                      connect_timeout=0.8) as a:
        started = time.monotonic()
        with pytest.raises(PeerUnreachableError,
                           match=rf"party A1: cannot reach B at {nobody} to send EpochStart: "
                                 r"([2-9]|\d\d+) attempts"):
            a.send("B", EpochStart(1))
        assert 0.7 < time.monotonic() - started < 3


def test_a_peer_that_starts_late_is_reached_by_retries(certs, free_address):
    a_address, b_address = free_address(), free_address()
    with GrpcEndpoint("A1", "s1", a_address, {"B": b_address},
                      tls=TlsFiles.in_directory(certs, "A1"), timeout=5,
                      connect_timeout=5) as a:
        sender = threading.Thread(target=a.send, args=("B", EpochStart(5)))
        sender.start()
        time.sleep(0.5)
        with GrpcEndpoint("B", "s1", b_address, {"A1": a_address},
                          tls=TlsFiles.in_directory(certs, "B"), timeout=5) as b:
            assert b.receive("A1", EpochStart).batch_seed == 5
            sender.join(5)
            assert not sender.is_alive()


# --- who may talk -------------------------------------------------------------------------


def test_insecure_mode_works_and_warns(free_address):
    a_address, b_address = free_address(), free_address()
    with pytest.warns(InsecureTransportWarning, match="WITHOUT TLS"):
        a = GrpcEndpoint("A1", "s1", a_address, {"B": b_address}, insecure=True, timeout=3)
    with pytest.warns(InsecureTransportWarning):
        b = GrpcEndpoint("B", "s1", b_address, {"A1": a_address}, insecure=True, timeout=3)
    with a, b:
        a.send("B", EpochStart(3))
        assert b.receive("A1", EpochStart).batch_seed == 3


def test_tls_is_required_unless_insecure_is_explicit(free_address):
    with pytest.raises(ValueError, match="TLS is required"):
        GrpcEndpoint("A1", "s1", free_address(), {"B": free_address()})


def test_plaintext_client_is_refused_by_a_tls_server(federation, free_address):
    eps = federation(("A1", "B"), timeout=0.5)
    with pytest.warns(InsecureTransportWarning):
        plain = GrpcEndpoint("B", "s1", free_address(), {"A1": eps["A1"].address},
                             insecure=True, timeout=2, connect_timeout=0.5)
    with plain, pytest.raises(PeerUnreachableError, match="cannot reach A1"):
        plain.send("A1", EpochStart(1))
    with pytest.raises(ChannelTimeoutError):
        eps["A1"].receive("B", EpochStart)  # nothing got through


def test_tls_client_refuses_a_plaintext_server(certs, free_address):
    b_address = free_address()
    with pytest.warns(InsecureTransportWarning):
        plain = GrpcEndpoint("B", "s1", b_address, {"A1": free_address()}, insecure=True,
                             timeout=0.5)
    with plain, GrpcEndpoint("A1", "s1", free_address(), {"B": b_address},
                             tls=TlsFiles.in_directory(certs, "A1"), timeout=2,
                             connect_timeout=1) as a:
        with pytest.raises(PeerAuthenticationError, match="must speak TLS"):
            a.send("B", EpochStart(1))
        with pytest.raises(ChannelTimeoutError):
            plain.receive("A1", EpochStart)


def test_client_certificate_from_another_ca_is_refused(federation, certs, other_certs):
    eps = federation(("A1", "B"), timeout=0.5)
    with pytest.raises(grpc.RpcError) as refused:
        # Trusts the right CA, so only the server's check of the client can fail.
        raw_deliver(other_certs, "B", eps["A1"].address, "A1", [bytes(frame(0, EpochStart(1)))],
                    ca=certs / "ca.crt")
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    with pytest.raises(ChannelTimeoutError):
        eps["A1"].receive("B", EpochStart, epoch=1)


def test_a_party_of_another_federation_cannot_send(federation, other_certs, free_address):
    eps = federation(("A1", "B"))
    with (GrpcEndpoint("B", "s1", free_address(), {"A1": eps["A1"].address},
                       tls=TlsFiles.in_directory(other_certs, "B"), timeout=2,
                       connect_timeout=1) as outsider,
          pytest.raises(PeerAuthenticationError, match=r"TLS handshake with A1 .* failed")):
        outsider.send("A1", EpochStart(1))


def test_server_naming_another_party_is_refused(federation):
    eps = federation()
    # A1 believes B listens where C does: C's certificate does not name B.
    eps["A1"].peers["B"] = eps["C"].address
    with pytest.raises(PeerAuthenticationError,
                       match=r"Hostname Verification.*a certificate .* names 'B'"):
        eps["A1"].send("B", EpochStart(1))


def test_client_claiming_another_partys_name_is_refused(federation, certs):
    eps = federation()
    with pytest.raises(grpc.RpcError) as refused:
        raw_deliver(certs, "C", eps["A1"].address, "A1", [bytes(frame(0, EpochStart(1)))],
                    sender="B")
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "certificate names 'C'" in refused.value.details()


def test_envelope_claiming_another_sender_is_refused(federation, certs):
    eps = federation()
    with pytest.raises(grpc.RpcError) as refused:
        raw_deliver(certs, "C", eps["A1"].address, "A1",
                    [bytes(frame(0, EpochStart(1), sender="B"))])
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(PeerAuthenticationError, match="C sent an envelope from B"):
        eps["A1"].receive("C", EpochStart, epoch=1)


def test_own_certificate_of_another_party_is_refused_at_start(certs, free_address):
    with pytest.raises(CertificateFileError, match="names party 'B', but this party is 'A1'"):
        GrpcEndpoint("A1", "s1", free_address(), {"B": free_address()},
                     tls=TlsFiles(certs / "ca.crt", certs / "B.crt", certs / "B.key"))


def test_own_certificate_from_another_ca_is_refused_at_start(certs, other_certs, free_address):
    with pytest.raises(CertificateFileError, match="was not issued by the CA"):
        GrpcEndpoint("A1", "s1", free_address(), {"B": free_address()},
                     tls=TlsFiles(certs / "ca.crt", other_certs / "A1.crt",
                                  other_certs / "A1.key"))


def test_missing_certificate_file_is_named(certs, tmp_path, free_address):
    with pytest.raises(CertificateFileError, match=r"cannot read the private key .*nope\.key"):
        GrpcEndpoint("A1", "s1", free_address(), {"B": free_address()},
                     tls=TlsFiles(certs / "ca.crt", certs / "A1.crt", tmp_path / "nope.key"))


# --- damaged messages -----------------------------------------------------------------------


def test_corrupted_message_is_a_specific_error_and_state_stays_intact(federation, certs):
    eps = federation(("A1", "B"))
    damaged = frame(0, EpochStart(1))
    damaged[-3] ^= 0xFF
    with pytest.raises(grpc.RpcError) as refused:
        raw_deliver(certs, "B", eps["A1"].address, "A1", [bytes(damaged)])
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(WireFormatError, match="party A1: from B: message is corrupted"):
        eps["A1"].receive("B", EpochStart, epoch=1)
    # Nothing was consumed: the intact message with sequence number 0 is accepted.
    raw_deliver(certs, "B", eps["A1"].address, "A1", [bytes(frame(0, EpochStart(1)))])
    assert eps["A1"].receive("B", EpochStart, epoch=1).batch_seed == 1


def test_truncated_stream_is_a_specific_error(federation, certs):
    eps = federation(("A1", "B"))
    whole = bytes(frame(0, EcdhPoints(0, bytes(10_000)), epoch=0))
    with pytest.raises(grpc.RpcError):
        raw_deliver(certs, "B", eps["A1"].address, "A1", [whole[:4096], whole[4096:8000]])
    with pytest.raises(WireFormatError, match="from B: message is truncated: 8000 bytes"):
        eps["A1"].receive("B", EcdhPoints)


def test_oversized_announcement_is_refused_before_allocating(federation, certs):
    eps = federation(("A1", "B"), max_message_bytes=1 << 20)
    big = bytes(frame(0, EcdhPoints(0, bytes(2 << 20)), epoch=0))
    with pytest.raises(grpc.RpcError) as refused:
        raw_deliver(certs, "B", eps["A1"].address, "A1", [big[:1 << 20]])
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
