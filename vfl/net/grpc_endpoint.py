"""An :class:`~vfl.protocol.channel.Endpoint` over gRPC, with mutual TLS by default.

Each party runs one gRPC server on its listen address and holds one client
channel per peer. Sending an envelope is one client-streaming call to the
recipient's server: the envelope is encoded once (:mod:`vfl.protocol.wire`)
and streamed in chunks sliced from that one buffer; the recipient's server
reassembles the chunks into one buffer, decodes it and queues the envelope
for the party's next ``receive`` from that sender. A ``send`` returns once
the recipient holds the envelope, not once it has used it, as with the
in-process queues.

A peer is trusted with nothing it could use to exhaust the receiver: the
buffer grows as chunks arrive (never to more than the header announces, nor
more than ``max_message_bytes``), whatever size a header claims; a peer
streams one message at a time (a second stream waits, with a bound, for the
first to end); every header field and value is checked by the decoder.

Security, with TLS (the default): every party presents the certificate the
federation CA issued to it and accepts only certificates from that CA.
A client checks that the server at a peer's address is that peer (the
certificate's DNS name must equal the peer's party name); a server takes the
sender's identity from its client certificate and refuses any envelope whose
sender is another party. ``insecure=True`` turns all of this off: no
encryption, no authentication, and the sender's name is what it claims.

Semantics equal the in-process endpoint's: sequence numbers, duplicates,
gaps, sessions, steps and epochs are checked by :meth:`Endpoint.receive`; an
abort reaches every peer; every wait has a bound. A peer whose process has
stopped (its port refuses connections) is named as stopped, by the next
receive and by a send being retried, within seconds: a stream cut off by a
dying sender is not a damaged message. A party that found a peer stopped
tells the other peers as it stops itself, so that every survivor names the
party that died, not the one that noticed first and left.

Peers that may leave (:meth:`GrpcEndpoint.allow_leaving`) may also come
back: every call names the calling process (a random *incarnation* per
endpoint), so a new process of a peer is told from the one before it, also
where that one's death went unnoticed. Its messages wait apart until the
party :meth:`readmits <GrpcEndpoint.readmit>` it, which starts a new link;
a message for the process before is refused by the new one, and the sender
learns that the peer left.
"""

from __future__ import annotations

import logging
import queue
import random
import secrets
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass
from typing import Any, cast

import grpc

from vfl.errors import (
    AddressInUseError,
    ChannelTimeoutError,
    PeerAbortedError,
    PeerAuthenticationError,
    PeerLeftError,
    PeerUnreachableError,
    ProtocolError,
    WireFormatError,
)
from vfl.net.certs import check_party_name
from vfl.net.probe import accepts, refuses_steadily, stopped_reason
from vfl.net.tls import TlsFiles
from vfl.protocol.channel import DEFAULT_TIMEOUT_S, Endpoint, Envelope, _Abort
from vfl.protocol.wire import HEADER, TypeRegistry, decode_envelope, encode_envelope, frame_length

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_CONNECT_TIMEOUT_S",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "MAX_STREAMS_PER_PEER",
    "Capture",
    "GrpcEndpoint",
    "InsecureTransportWarning",
    "LinkTraffic",
]

log = logging.getLogger(__name__)

#: Bytes per streamed chunk: large enough that per-chunk overhead is
#: negligible, small enough that a chunk copy costs nothing in memory.
DEFAULT_CHUNK_BYTES = 2 << 20
#: Largest chunk either side sends or accepts (gRPC's per-message limit).
MAX_CHUNK_BYTES = 4 << 20
#: Largest envelope a party accepts; a bigger announcement is refused before
#: any buffer is allocated.
DEFAULT_MAX_MESSAGE_BYTES = 4 << 30
#: Bytes reserved for a message before its data arrives, whatever size its
#: header announces; the buffer then doubles as chunks fill it.
INITIAL_BUFFER_BYTES = 2 * MAX_CHUNK_BYTES
#: Messages one peer may stream to this party at once. A peer sends one
#: envelope at a time; a further stream waits (STREAM_WAIT_S at most) for the
#: one before to end, as a retry does while the server finishes the attempt
#: it replaces.
MAX_STREAMS_PER_PEER = 1
#: Seconds a further stream from one peer waits for the one before to end.
STREAM_WAIT_S = 10.0
#: Seconds to keep retrying a peer that cannot be reached (it may still be
#: starting); afterwards :class:`~vfl.errors.PeerUnreachableError`.
DEFAULT_CONNECT_TIMEOUT_S = 60.0
#: Seconds an abort notice may take per peer: best effort, the party is stopping.
ABORT_TIMEOUT_S = 5.0

_SERVICE = "vfl.Transport"
_DELIVER = f"/{_SERVICE}/Deliver"
_ABORT = f"/{_SERVICE}/Abort"
_ABORT_STEP = "Abort"  # step of the envelope carrying an abort notice
#: Metadata: the calling process, and the recipient's process the caller writes to.
_INCARNATION = "vfl-incarnation"
_RECIPIENT_INCARNATION = "vfl-recipient-incarnation"
_MAX_REASON_CHARS = 4000  # of an abort notice's reason
#: Seconds a party that found a peer stopped spends telling the others.
_FORWARD_WAIT_S = 3.0
_FIRST_BACKOFF_S, _MAX_BACKOFF_S = 0.05, 2.0
#: A peer that was reached before and has refused connections for this many
#: seconds (three probes at least) while a send to it is retried has stopped.
_GONE_AFTER_S = 1.0
#: Seconds for gRPC to report a stream cut off by the sender as cancelled:
#: it may report the end of the requests first.
_CANCEL_GRACE_S = 1.0

#: ``capture(direction, peer, frame)``: direction is "sent" or "received",
#: frame the exact bytes handed to (or reassembled from) gRPC, inside TLS.
Capture = Callable[[str, str, memoryview], None]


class InsecureTransportWarning(UserWarning):
    """A party runs without TLS: traffic is readable and senders unauthenticated."""


@dataclass
class LinkTraffic:
    """Envelopes and their encoded bytes (wire frames, before gRPC and TLS framing)
    on the link between this party and one peer."""

    messages_sent: int = 0
    bytes_sent: int = 0
    chunks_sent: int = 0
    messages_received: int = 0
    bytes_received: int = 0
    chunks_received: int = 0
    #: Seconds spent sending to this peer: encoding, streaming, until it holds
    #: the message (benchmarks: the transport's share of an epoch).
    send_seconds: float = 0.0
    #: Seconds spent reassembling and decoding messages from this peer.
    receive_seconds: float = 0.0


@dataclass(frozen=True)
class _Failure:
    """A message from a sender that could not be accepted; raised by the next receive."""

    error: Exception


class _Closed:
    """Sentinel: the endpoint is closed; raised by every later receive."""


_CLOSED = _Closed()

#: What a receive queue holds: a message, or why the next receive must raise.
_Item = Envelope | _Abort | _Failure | _Closed


class _TooLarge(WireFormatError):
    """A header announces more bytes than this party accepts."""


class _Reassembly:
    """One inbound message, reassembled from its chunks.

    Memory is committed as data arrives: the buffer starts at
    ``INITIAL_BUFFER_BYTES`` at most and doubles as chunks fill it, never
    beyond the size the header announces, which is checked against the
    limit before anything is reserved for it.
    """

    def __init__(self, sender: str, party: str, limit: int) -> None:
        self.sender = sender
        self.party = party
        self.limit = limit
        self.buffer = bytearray()
        self.filled = 0
        #: Bytes the header announces; None until the whole header has arrived.
        self.expected: int | None = None

    @property
    def complete(self) -> bool:
        return self.expected is not None and self.filled == self.expected

    @property
    def capacity(self) -> int:
        """Bytes reserved so far."""
        return len(self.buffer)

    def add(self, chunk: bytes) -> None:
        """Append the next chunk of the stream.

        Raises
        ------
        WireFormatError
            If the header is not a frame header, announces more than the limit
            (:class:`_TooLarge`), or the chunks run past what it announces.
        """
        if self.expected is None:
            # Until the header is complete (a hostile peer may split it), the
            # buffer holds what arrived: a chunk is bounded by gRPC's limit.
            self.buffer += chunk
            self.filled = len(self.buffer)
            if self.filled < HEADER.size:
                return
            expected = frame_length(self.buffer[:HEADER.size], sender=self.sender,
                                    party=self.party)
            if expected > self.limit:
                raise _TooLarge(f"from {self.sender}: message announces {expected} bytes; "
                                f"this party accepts messages of at most {self.limit} bytes",
                                party=self.party)
            self.expected = expected
            self._check_length(self.filled)
            self._reserve(self.filled)
            return
        end = self.filled + len(chunk)
        self._check_length(end)
        self._reserve(end)
        self.buffer[self.filled:end] = chunk
        self.filled = end

    def _check_length(self, end: int) -> None:
        assert self.expected is not None
        if end > self.expected:
            raise WireFormatError(f"from {self.sender}: message is longer than the "
                                  f"{self.expected} bytes its header announces",
                                  party=self.party)

    def _reserve(self, end: int) -> None:
        """Make the buffer hold at least `end` bytes: doubling, up to what the header announces."""
        assert self.expected is not None
        if end <= len(self.buffer) and len(self.buffer) >= min(self.expected,
                                                               INITIAL_BUFFER_BYTES):
            return
        size = min(self.expected, max(end, 2 * len(self.buffer), INITIAL_BUFFER_BYTES))
        grown = bytearray(size)
        grown[:self.filled] = memoryview(self.buffer)[:self.filled]
        self.buffer = grown


class GrpcEndpoint(Endpoint):
    """One party's endpoint on the network.

    The server starts in the constructor; call :meth:`close` (or use a
    ``with`` block) to stop it. Leaving a ``with`` block by an exception
    first tells every peer that this party stopped.

    Parameters
    ----------
    name : str
        This party's name; with TLS, the name its certificate carries.
    session : str
        Federation run identifier shared by all parties.
    listen : str
        ``host:port`` the server binds (port 0: any free port, see
        :attr:`address`). Bind to the interface the peers reach.
    peers : mapping of str to str
        Every other party's name and ``host:port`` address.
    tls : TlsFiles or None
        This party's CA, certificate and key files. Required unless
        `insecure`.
    insecure : bool
        Run without TLS (no encryption, no authentication). Warns.
    timeout : float
        Seconds a ``receive`` waits for a peer, and a ``send`` may take,
        before :class:`~vfl.errors.ChannelTimeoutError`.
    connect_timeout : float or None
        Seconds to keep retrying an unreachable peer, with exponential
        backoff, before :class:`~vfl.errors.PeerUnreachableError`; default
        ``min(timeout, DEFAULT_CONNECT_TIMEOUT_S)``.
    chunk_bytes : int
        Size of each streamed chunk (at most 4 MiB).
    max_message_bytes : int
        Largest envelope accepted from a peer. Memory is reserved as a
        message's chunks arrive (``INITIAL_BUFFER_BYTES`` first, then
        doubling), never for the size a header merely announces.
    capture : callable or None
        Called with every frame sent and received (see :data:`Capture`), for
        audits of what travels on the wire.
    registry : TypeRegistry or None
        Message types that may be decoded; the default registry if None.

    Attributes
    ----------
    address : str
        ``host:port`` the server listens on (with the real port).
    traffic : dict of str to LinkTraffic
        Per-peer counters; read a snapshot with :meth:`traffic_snapshot`.
    """

    def __init__(self, name: str, session: str, listen: str, peers: Mapping[str, str], *,
                 tls: TlsFiles | None = None, insecure: bool = False,
                 timeout: float = DEFAULT_TIMEOUT_S, connect_timeout: float | None = None,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 capture: Capture | None = None, registry: TypeRegistry | None = None) -> None:
        super().__init__(name, session, timeout)
        check_party_name(name)
        for peer in peers:
            check_party_name(peer)
        if name in peers:
            raise ValueError(f"party {name} lists itself among its peers")
        if not peers:
            raise ValueError(f"party {name} has no peers")
        if not 4096 <= chunk_bytes <= MAX_CHUNK_BYTES:
            raise ValueError(f"chunk_bytes must be between 4 KiB and 4 MiB, got {chunk_bytes}")
        if insecure and tls is not None:
            raise ValueError("pass either tls files or insecure=True, not both")
        if not insecure and tls is None:
            raise ValueError(f"party {name}: TLS is required; pass tls=TlsFiles(ca, cert, key) "
                             "(create them with 'vfl certs'), or insecure=True to run "
                             "unencrypted and unauthenticated")
        self.peers = dict(peers)
        self.insecure = insecure
        self.connect_timeout = (min(timeout, DEFAULT_CONNECT_TIMEOUT_S)
                                if connect_timeout is None else connect_timeout)
        self.chunk_bytes = chunk_bytes
        self.max_message_bytes = max_message_bytes
        self.capture = capture
        self._registry = registry
        self.traffic = {peer: LinkTraffic() for peer in self.peers}
        self._traffic_lock = threading.Lock()
        self._queues: dict[str, queue.Queue[_Item]] = {p: queue.Queue() for p in self.peers}
        self._channels: dict[str, grpc.Channel] = {}
        self._channel_lock = threading.Lock()
        self._closed = False
        self._aborted = False
        #: One slot per peer for the message it is streaming (see MAX_STREAMS_PER_PEER).
        self._streams = {p: threading.BoundedSemaphore(MAX_STREAMS_PER_PEER)
                         for p in self.peers}
        #: Peers that accepted a message from, or delivered one to, this party.
        self._up: set[str] = set()
        #: Peers whose leaving ends only their own link (see allow_leaving), and
        #: those of them that left (their reason).
        self._may_leave: frozenset[str] = frozenset()
        self._left: dict[str, str] = {}
        #: This process of the party: a peer that hears from another one under this
        #: name knows that the party restarted.
        self.incarnation = secrets.token_hex(8)
        #: Of each peer that may leave: the process this party talks to, and a new
        #: process of it that called since it left (its messages, until readmit).
        self._incarnations: dict[str, str] = {}
        self._returning: dict[str, tuple[str, queue.Queue[_Item]]] = {}
        #: Guards the two above, the links of peers that may leave and their leaving.
        self._links = threading.Condition()
        #: Peers this party itself found stopped (not told of by another party).
        self._found_stopped: set[str] = set()
        #: The first abort notice or stopped peer: every send being retried stops.
        self._stopping: _Abort | None = None
        self._stopping_lock = threading.Lock()
        self._wake = threading.Event()  # set with _stopping or on close: ends backoff waits

        if insecure:
            warnings.warn(f"party {name}: running WITHOUT TLS (insecure=True): messages travel "
                          "unencrypted and peers are not authenticated; use this only on a "
                          "trusted test machine", InsecureTransportWarning, stacklevel=2)
            self._tls = None
        else:
            assert tls is not None
            self._tls = tls.load(name)

        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=2 * len(self.peers) + 2,
                                       thread_name_prefix=f"vfl-{name}-server"),
            options=[*_message_size_options(),
                     # One listener per address: a second server on the port fails loudly.
                     ("grpc.so_reuseport", 0)])
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE, {
            "Deliver": grpc.stream_unary_rpc_method_handler(self._serve_deliver),
            "Abort": grpc.unary_unary_rpc_method_handler(self._serve_abort),
        }),))
        try:
            if self._tls is None:
                port = self._server.add_insecure_port(listen)
            else:
                port = self._server.add_secure_port(listen, grpc.ssl_server_credentials(
                    [(self._tls.key, self._tls.cert)], root_certificates=self._tls.ca,
                    require_client_auth=True))
        except RuntimeError:
            port = 0
        if not port:
            raise AddressInUseError(
                f"cannot listen on {listen}: the address is in use (another party or run on "
                "this machine?) or not an address of this machine; stop the other process or "
                "choose another listen address", party=name)
        host = listen.rsplit(":", 1)[0]
        self.address = f"{host}:{port}"
        self._server.start()

    # --- lifecycle --------------------------------------------------------------------

    def close(self, grace: float = 1.0) -> None:
        """Stop the server (in-flight deliveries get `grace` seconds) and the channels."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        with self._links:
            self._links.notify_all()
        self._server.stop(grace).wait(grace + 5.0)
        with self._channel_lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()
        for q in self._queues.values():
            q.put(_CLOSED)

    def __enter__(self) -> GrpcEndpoint:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            if exc is not None and not self._aborted and not isinstance(exc, PeerAbortedError):
                self.abort(f"{type(exc).__name__}: {exc}")
            elif isinstance(exc, PeerAbortedError):
                self.pass_on_stopped_peer()
        finally:
            self.close()

    def pass_on_stopped_peer(self) -> None:
        """If this party stops because it found a peer's process stopped, tell the
        other peers (briefly, never the stopped one).

        Each survivor would notice the stopped peer by itself, but one that
        notices late may first find this party gone, and then names the wrong
        party; told by this one, it names the one that died. A notice this
        party was told of is not passed on.
        """
        notice = self._stopping
        if notice is not None and notice.party in self._found_stopped and not self._aborted:
            self._broadcast_abort(_Abort(self.name, f"{notice.party} stopped: {notice.reason}"),
                                  wait=_FORWARD_WAIT_S, skip=notice.party)

    def abort(self, reason: str, *, wait: float | None = None) -> None:
        """Tell every peer that this party stopped, so none waits in vain.

        Parameters
        ----------
        reason : str
            What went wrong; every peer's next receive raises
            :class:`~vfl.errors.PeerAbortedError` with it.
        wait : float or None
            Seconds to wait for a peer that is not listening yet (a party that
            fails at start-up waits for peers that start after it); default
            ``min(timeout, ABORT_TIMEOUT_S)``.
        """
        self._broadcast_abort(_Abort(self.name, reason), wait=wait)

    def peer_stopped(self, peer: str, reason: str) -> None:
        """Record that `peer`'s process has stopped (its port refuses connections).

        Every pending and later receive raises
        :class:`~vfl.errors.PeerAbortedError` naming `peer`, as after its own
        abort notice, and a send being retried to any peer stops with it.
        """
        if peer not in self._may_leave:
            self._found_stopped.add(peer)
        self._notice(_Abort(peer, reason))

    def allow_leaving(self, peers: Iterable[str]) -> None:
        """Let `peers` leave the run: their abort notice, or their process stopping,
        ends only the link to them (receives from them raise
        :class:`~vfl.errors.PeerLeftError`), not this party's run.

        For protocols that go on without a participant (a horizontal client that
        drops out is left out of the round).
        """
        unknown = sorted(set(peers) - set(self.peers))
        if unknown:
            raise ValueError(f"{self.name} has no peer {', '.join(unknown)}")
        self._may_leave = frozenset(peers)

    def may_leave(self, peer: str) -> bool:
        """Whether `peer`'s leaving ends only its own link (see :meth:`allow_leaving`)."""
        return peer in self._may_leave

    def was_up(self, peer: str) -> bool:
        """Whether `peer` accepted a message from this party or delivered one to it."""
        return peer in self._up

    def stopped_reason(self, peer: str) -> str:
        """Why `peer` is taken to have stopped when its address refuses connections."""
        address = self.peers[peer]
        if peer in self._may_leave:
            return (f"its address {address} refuses connections, its process has stopped; "
                    "the run goes on without it")
        return stopped_reason(address)

    def has_left(self, peer: str) -> bool:
        """Whether `peer` (one that may leave) left and has not been readmitted."""
        return peer in self._left

    def returning(self) -> list[str]:
        """Peers that left and whose new process has since delivered a message: they
        wait for :meth:`readmit`."""
        with self._links:
            return self._returned(self.peers)

    def wait_for_return(self, peers: Iterable[str], timeout: float) -> list[str]:
        """Wait up to `timeout` seconds until one of `peers` is returning (see
        :meth:`returning`); return those that are."""
        wanted = set(peers)
        with self._links:
            self._links.wait_for(lambda: self._closed or bool(self._returned(wanted)), timeout)
            return self._returned(wanted)

    def _returned(self, peers: Iterable[str]) -> list[str]:
        """Those of `peers` whose new process's first message is here (hold `_links`)."""
        wanted = set(peers)
        return [peer for peer in self.peers if peer in wanted and peer in self._returning
                and not self._returning[peer][1].empty()]

    def readmit(self, peer: str) -> list[str]:
        """Start a new link to `peer`, a peer that may leave: to the new process that
        called since it left (its messages are the link's first), or to whatever
        process listens at its address if none called.

        Sequence numbers start again from 0 both ways, and the peer counts as
        present again (its leaving, or a new process of it, ends this link as
        before). The party's protocol says when: a horizontal server readmits a
        client that asks to rejoin, the key holder when the server says so.

        Returns
        -------
        list of str
            The steps (message types) of the new process's messages that wait on
            the new link, in order: what it said first.

        Raises
        ------
        ValueError
            If `peer` is not one that may leave.
        """
        if peer not in self._may_leave:
            raise ValueError(f"{self.name} readmits only peers that may leave, not {peer!r}")
        with self._links:
            incarnation, link = self._returning.pop(peer, (None, queue.Queue()))
            self._queues[peer] = link
            if incarnation is None:
                self._incarnations.pop(peer, None)  # learnt from its first message
                self._up.discard(peer)
            else:
                self._incarnations[peer] = incarnation
            self._left.pop(peer, None)
            self._sent.pop(peer, None)
            self._expected.pop(peer, None)
            with link.mutex:
                waiting = [item.step for item in link.queue if isinstance(item, Envelope)]
        with self._channel_lock:  # a fresh connection, not one backing off from the dead
            channel = self._channels.pop(peer, None)
        if channel is not None:
            channel.close()
        log.info("%s readmitted", peer)
        return waiting

    def _notice(self, notice: _Abort) -> None:
        """Make every receive, and every send being retried, raise for `notice`
        (only receives from that peer, if it may leave)."""
        if notice.party in self._may_leave:
            with self._links:
                self._left.setdefault(notice.party, notice.reason)
                self._queues[notice.party].put(notice)
            return
        with self._stopping_lock:
            if self._stopping is None:
                self._stopping = notice
        self._wake.set()
        for q in self._queues.values():
            q.put(notice)

    def _raise_if_gone(self, peer: str) -> None:
        """Stop a send to `peer` if it left the run, or if this party's run is stopping."""
        if peer in self._left:
            raise PeerLeftError(f"{peer} stopped: {self._left[peer]}", party=self.name)
        self._raise_if_stopping()

    def _raise_if_stopping(self) -> None:
        notice = self._stopping
        if notice is not None:
            raise PeerAbortedError(f"{notice.party} stopped: {notice.reason}", party=self.name)

    def traffic_snapshot(self) -> dict[str, LinkTraffic]:
        """A copy of the per-peer counters."""
        with self._traffic_lock:
            return {p: LinkTraffic(**vars(t)) for p, t in self.traffic.items()}

    # --- Endpoint: sending ------------------------------------------------------------

    def _transmit(self, envelope: Envelope) -> None:
        peer = envelope.recipient
        if peer not in self.peers:
            raise ValueError(f"{self.name} cannot send to unknown party {peer!r}; "
                             f"known: {', '.join(self.peers)}")
        if self._closed:
            raise ProtocolError("the endpoint is closed", party=self.name)
        started = time.perf_counter()
        frame = encode_envelope(envelope, self._registry)
        view = memoryview(frame)
        if self.capture is not None:
            self.capture("sent", peer, view)
        deliver: grpc.StreamUnaryMultiCallable[memoryview, bytes] = self._channel(
            peer).stream_unary(_DELIVER, request_serializer=bytes, response_deserializer=None)

        def chunks() -> Iterator[memoryview]:
            for start in range(0, len(view), self.chunk_bytes):
                yield view[start:start + self.chunk_bytes]

        self._with_retries(peer, envelope.step, lambda: deliver(
            chunks(), timeout=self.timeout, metadata=self._metadata(peer)))
        with self._traffic_lock:
            link = self.traffic[peer]
            link.messages_sent += 1
            link.bytes_sent += len(frame)
            link.chunks_sent += -(-len(frame) // self.chunk_bytes)
            link.send_seconds += time.perf_counter() - started

    def _broadcast_abort(self, abort: _Abort, *, wait: float | None = None,
                         skip: str | None = None) -> None:
        self._aborted = True
        if self._closed:
            return
        timeout = min(self.timeout, ABORT_TIMEOUT_S) if wait is None else wait
        pending = []
        for peer in self.peers:
            if peer == skip:
                continue
            notice = Envelope(self.session, self.name, peer, -1, 0, 0, _ABORT_STEP,
                              abort.reason[:_MAX_REASON_CHARS])
            frame = encode_envelope(notice, self._registry)
            call: grpc.UnaryUnaryMultiCallable[bytearray, bytes] = self._channel(
                peer).unary_unary(_ABORT, request_serializer=bytes, response_deserializer=None)
            # wait_for_ready: a peer still connecting gets the notice too, within the bound.
            pending.append((peer, call.future(frame, timeout=timeout,
                                              metadata=self._metadata(peer),
                                              wait_for_ready=True)))
        for peer, future in pending:
            try:
                future.result()
            except grpc.RpcError as exc:
                log.warning("party %s: could not tell %s that it stopped: %s", self.name, peer,
                            exc.details())

    def _channel(self, peer: str) -> grpc.Channel:
        with self._channel_lock:
            channel = self._channels.get(peer)
            if channel is None:
                options: list[tuple[str, int | str]] = [
                    *_message_size_options(),
                    ("grpc.enable_retries", 0),  # retries are ours, with our deadline
                    # Reconnect quickly once a peer (re)starts, not after minutes.
                    ("grpc.initial_reconnect_backoff_ms", 100),
                    ("grpc.min_reconnect_backoff_ms", 100),
                    ("grpc.max_reconnect_backoff_ms", 2000),
                    # Own connections: endpoints of one process never share one.
                    ("grpc.use_local_subchannel_pool", 1)]
                if self._tls is None:
                    channel = grpc.insecure_channel(self.peers[peer], options=options)
                else:
                    credentials = grpc.ssl_channel_credentials(
                        root_certificates=self._tls.ca, private_key=self._tls.key,
                        certificate_chain=self._tls.cert)
                    # The server must prove it is `peer`: its certificate's DNS name.
                    options.append(("grpc.ssl_target_name_override", peer))
                    channel = grpc.secure_channel(self.peers[peer], credentials,
                                                  options=options)
                self._channels[peer] = channel
            return channel

    def _metadata(self, peer: str) -> tuple[tuple[str, str], ...]:
        metadata = [("vfl-sender", self.name), ("vfl-recipient", peer),
                    (_INCARNATION, self.incarnation)]
        known = self._incarnations.get(peer)
        if known is not None:  # a new process of it refuses what was meant for this one
            metadata.append((_RECIPIENT_INCARNATION, known))
        return tuple(metadata)

    def _with_retries(self, peer: str, step: str, call: Callable[[], object]) -> None:
        """Run `call` (a delivery to `peer`), retrying while `peer` cannot be reached.

        Retries stop with :class:`~vfl.errors.PeerAbortedError` as soon as a
        peer's abort notice arrives or a peer is found stopped: by
        :class:`~vfl.net.liveness.PeerWatch`, or here, when `peer` was up
        before and its port has refused connections for ``_GONE_AFTER_S``.
        """
        address = self.peers[peer]
        deadline = time.monotonic() + self.connect_timeout
        delay = _FIRST_BACKOFF_S
        attempts = refusals = 0
        refused_since = 0.0
        while True:
            self._raise_if_gone(peer)
            attempts += 1
            try:
                call()
                self._up.add(peer)
                return
            except grpc.RpcError as exc:
                code, details = exc.code(), exc.details() or ""
            if code is grpc.StatusCode.UNAVAILABLE and not _tls_failure(
                    details, authenticated=peer in self._up):
                if peer in self._up:  # it was there: is its process gone?
                    if accepts(address, 0.5) is False:
                        refusals += 1
                        refused_since = refused_since or time.monotonic()
                        if refusals >= 3 and time.monotonic() - refused_since >= _GONE_AFTER_S:
                            reason = self.stopped_reason(peer)
                            log.warning("%s stopped: %s", peer, reason)
                            self.peer_stopped(peer, reason)
                            self._raise_if_gone(peer)
                    else:
                        refusals, refused_since = 0, 0.0
                remaining = deadline - time.monotonic()
                if remaining > 0 and not self._closed:
                    pause = min(delay * random.uniform(0.8, 1.2), remaining)
                    if refusals:  # probe the peer again soon, not after the backoff
                        pause = min(pause, 0.25)
                    self._wake.wait(pause)
                    delay = min(2 * delay, _MAX_BACKOFF_S)
                    continue
                raise PeerUnreachableError(
                    f"cannot reach {peer} at {address} to send {step}: {attempts} attempts in "
                    f"{self.connect_timeout:g} s, last error: {details}. Check that {peer} "
                    "runs and listens there, and that both sides use TLS with the same "
                    "federation CA (or both --insecure)", party=self.name)
            if code is grpc.StatusCode.NOT_FOUND:
                # The process this party wrote to stopped; a new one listens there now.
                reason = f"it restarted ({details})"
                log.warning("%s stopped: %s", peer, reason)
                self.peer_stopped(peer, reason)
                self._raise_if_gone(peer)
            raise self._send_error(peer, step, code, details)

    def _send_error(self, peer: str, step: str, code: grpc.StatusCode,
                    details: str) -> Exception:
        address = self.peers[peer]
        if code is grpc.StatusCode.UNAVAILABLE:  # a TLS failure, see _tls_failure
            return PeerAuthenticationError(
                f"TLS handshake with {peer} at {address} failed: {details}. The server there "
                f"must speak TLS (not --insecure) and present a certificate that the "
                f"federation CA signed and that names {peer!r}", party=self.name)
        if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
            return PeerAuthenticationError(f"{peer} at {address} refused {step}: {details}",
                                           party=self.name)
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            return ChannelTimeoutError(f"{peer} at {address} did not accept {step} within "
                                       f"{self.timeout:g} s; it may have stopped",
                                       party=self.name)
        if code is grpc.StatusCode.INVALID_ARGUMENT:
            return WireFormatError(f"{peer} could not decode {step} from this party: {details}",
                                   party=self.name)
        if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
            return ProtocolError(f"{peer} at {address} refused {step}: {details}",
                                 party=self.name)
        return ProtocolError(f"sending {step} to {peer} at {address} failed: {code.name}: "
                             f"{details}", party=self.name)

    # --- Endpoint: receiving ----------------------------------------------------------

    def _next_envelope(self, sender: str) -> Envelope:
        q = self._queues.get(sender)
        if q is None:
            raise ValueError(f"{self.name} cannot receive from unknown party {sender!r}; "
                             f"known: {', '.join(self.peers)}")
        try:
            item = q.get(timeout=self.timeout)
        except queue.Empty:
            raise ChannelTimeoutError(
                f"{sender} ({self.peers[sender]}) sent nothing for {self.timeout:g} s; it may "
                "have stopped", party=self.name) from None
        if isinstance(item, _Abort):
            q.put(item)  # every later receive on this link fails alike
            error = PeerLeftError if item.party in self._may_leave else PeerAbortedError
            raise error(f"{item.party} stopped: {item.reason}", party=self.name)
        if isinstance(item, _Closed):
            q.put(item)
            raise ProtocolError("the endpoint is closed", party=self.name)
        if isinstance(item, _Failure):
            raise item.error
        return item

    # --- the server -------------------------------------------------------------------

    def _identify(self, context: grpc.ServicerContext) -> str:
        """The calling party, authenticated by its certificate unless insecure."""
        metadata = dict(context.invocation_metadata())
        claimed, recipient = _text(metadata.get("vfl-sender")), _text(metadata.get("vfl-recipient"))
        if self._tls is None:
            identity = claimed
        else:
            # grpc gives a list of values per property; its type stub says bytes.
            auth = cast("Mapping[str, list[bytes]]", context.auth_context())
            common = auth.get("x509_common_name", [])
            identity = common[0].decode("utf-8", "replace") if len(common) == 1 else None
            if identity is None or identity.encode() not in auth.get(
                    "x509_subject_alternative_name", []):
                context.abort(grpc.StatusCode.UNAUTHENTICATED,
                              f"{self.name}: the client certificate names no party")
            if claimed != identity:
                context.abort(grpc.StatusCode.PERMISSION_DENIED,
                              f"{self.name}: the certificate names {identity!r} but the call "
                              f"claims to come from {claimed!r}")
        if identity not in self._queues:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"{self.name}: {identity!r} is not a peer of this party")
        if recipient != self.name:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"this is party {self.name}, not {recipient}: check the peer "
                          "addresses in the sender's configuration")
        wanted = _text(metadata.get(_RECIPIENT_INCARNATION))
        if wanted is not None and wanted != self.incarnation:
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f"{self.name} runs in a new process; the message was for the one "
                          "before it, which stopped")
        assert identity is not None
        return identity

    def _link_for(self, sender: str, context: grpc.ServicerContext) -> queue.Queue[_Item]:
        """The queue for what `sender`'s calling process delivers: the link's, or, for a
        new process of a peer that may leave, a queue apart until :meth:`readmit`."""
        incarnation = _text(dict(context.invocation_metadata()).get(_INCARNATION))
        if sender not in self._may_leave or incarnation is None:
            return self._queues[sender]
        with self._links:
            returning = self._returning.get(sender)
            if returning is not None and returning[0] == incarnation:
                return returning[1]
            known = self._incarnations.get(sender)
            if sender not in self._left and known in (None, incarnation):
                self._incarnations[sender] = incarnation
                return self._queues[sender]
            # A new process of it: the one this party talked to has stopped.
            if sender not in self._left:
                log.warning("%s stopped: it restarted (a new process called)", sender)
                self._notice(_Abort(sender, "it restarted (a new process took its place)"))
            link: queue.Queue[_Item] = queue.Queue()
            self._returning[sender] = (incarnation, link)
        log.info("%s is back (a new process); it waits to be readmitted", sender)
        return link

    def _put(self, sender: str, link: queue.Queue[_Item], item: _Item) -> None:
        """Queue what `sender` delivered; a new process's first message wakes
        :meth:`wait_for_return`."""
        link.put(item)
        if link is not self._queues.get(sender):
            with self._links:
                self._links.notify_all()

    def _serve_deliver(self, chunks: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        sender = self._identify(context)
        link = self._link_for(sender, context)
        slot = self._streams[sender]
        wait = min(self.timeout, STREAM_WAIT_S)
        if not slot.acquire(timeout=wait):
            error = ProtocolError(
                f"{sender} streams a second message while its previous one has not ended "
                f"after {wait:g} s; a peer sends one message at a time", party=self.name)
            self._put(sender, link, _Failure(error))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error))
        try:
            return self._reassemble(sender, link, chunks, context)
        finally:
            slot.release()

    def _reassemble(self, sender: str, link: queue.Queue[_Item], chunks: Iterator[bytes],
                    context: grpc.ServicerContext) -> bytes:
        started = time.perf_counter()
        message = _Reassembly(sender, self.name, self.max_message_bytes)
        count = 0
        try:
            try:
                for chunk in chunks:
                    count += 1
                    message.add(chunk)
            except grpc.RpcError:
                pass  # cancelled mid-stream: see _cut_off
            if not message.complete or not context.is_active():
                error = self._cut_off(sender, message, context)
                if error is None:
                    return b""
                raise error
            envelope = decode_envelope(message.buffer, sender=sender, party=self.name,
                                       registry=self._registry)
            if envelope.seq < 0:
                raise WireFormatError(f"from {sender}: message has sequence number "
                                      f"{envelope.seq}; only abort notices have one below 0",
                                      party=self.name)
        except WireFormatError as exc:
            # The receiving party learns why its next message from `sender` is missing.
            self._put(sender, link, _Failure(exc))
            code = (grpc.StatusCode.RESOURCE_EXHAUSTED if isinstance(exc, _TooLarge)
                    else grpc.StatusCode.INVALID_ARGUMENT)
            context.abort(code, str(exc))
        self._up.add(sender)
        if envelope.sender != sender or envelope.recipient != self.name:
            refused = PeerAuthenticationError(
                f"{sender} sent an envelope from {envelope.sender} to {envelope.recipient}; "
                f"only its own, to {self.name}, are accepted", party=self.name)
            self._put(sender, link, _Failure(refused))
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(refused))
        view = memoryview(message.buffer)
        if self.capture is not None:
            self.capture("received", sender, view)
        with self._traffic_lock:
            counters = self.traffic[sender]
            counters.messages_received += 1
            counters.bytes_received += len(view)
            counters.chunks_received += count
            counters.receive_seconds += time.perf_counter() - started
        self._put(sender, link, envelope)
        return b""

    def _cut_off(self, sender: str, message: _Reassembly,
                 context: grpc.ServicerContext) -> WireFormatError | None:
        """Why a stream ended before its message was complete; None: nothing to report.

        A sender that cancels (its deadline passed, it retries) or whose
        process dies leaves an incomplete stream behind. Neither is a damaged
        message: a dead sender is reported as stopped (its port refuses
        connections), a live one that cancelled sends again or stops itself.
        Only a stream its sender ended normally, short of what the header
        announces, is a truncated message.
        """
        # gRPC may report the end of the requests a moment before the cancellation.
        deadline = time.monotonic() + _CANCEL_GRACE_S
        while context.is_active() and time.monotonic() < deadline:
            time.sleep(0.02)
        cancelled = not context.is_active()
        # A dying process may accept connections a moment longer than it
        # keeps its stream: probe for a while (less where gRPC saw no cancel).
        address = self.peers[sender]
        if refuses_steadily(address, within=2.0 if cancelled else 0.6):
            reason = self.stopped_reason(sender)
            log.warning("%s stopped while sending a message: %s", sender, reason)
            self.peer_stopped(sender, reason)
            return None
        if cancelled:
            return None  # by the sender: it sends again, or stops and says so
        return WireFormatError(f"from {sender}: message is truncated: {message.filled} bytes, "
                               f"the header announces {message.expected}", party=self.name)

    def _serve_abort(self, frame: bytes, context: grpc.ServicerContext) -> bytes:
        sender = self._identify(context)
        try:
            envelope = decode_envelope(frame, sender=sender, party=self.name,
                                       registry=self._registry)
        except WireFormatError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if envelope.session != self.session or envelope.step != _ABORT_STEP:
            log.warning("party %s: ignored an abort notice from %s for session %r",
                        self.name, sender, envelope.session)
            return b""
        if not isinstance(envelope.body, str):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"{self.name}: an abort notice carries its reason as a str, not a "
                          f"{type(envelope.body).__name__}")
        self._up.add(sender)
        reason = envelope.body[:_MAX_REASON_CHARS]
        incarnation = _text(dict(context.invocation_metadata()).get(_INCARNATION))
        if sender in self._may_leave and incarnation is not None:
            with self._links:
                returning = self._returning.get(sender)
                if returning is not None and returning[0] == incarnation:
                    # Its new process stopped before it was readmitted: nothing to end.
                    del self._returning[sender]
                    return b""
                known = self._incarnations.get(sender)
            if known is not None and known != incarnation:
                # Another process under its name failed (started twice, say): the one
                # this party talks to is not the one that stopped.
                log.warning("%s: a process of %s that this party never talked to stopped: %s",
                            self.name, sender, reason)
                return b""
        self._notice(_Abort(sender, reason))
        return b""


def _text(value: str | bytes | None) -> str | None:
    """A text metadata value: only keys ending in ``-bin`` carry bytes."""
    return value if isinstance(value, str) else None


def _message_size_options() -> list[tuple[str, int]]:
    # Chunks are at most MAX_CHUNK_BYTES; the slack covers gRPC's own framing.
    limit = MAX_CHUNK_BYTES + (64 << 10)
    return [("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)]


def _tls_failure(details: str, *, authenticated: bool = False) -> bool:
    """Whether a connection failure was a refused TLS handshake, not a peer still down.

    gRPC reports both as UNAVAILABLE; only its message tells them apart. A
    handshake cut off by a reset connection, with a peer whose certificate
    this party accepted before (`authenticated`), is that peer's process
    stopping mid-handshake, not a refusal.
    """
    text = details.lower()
    if authenticated and "connection reset" in text:
        return False
    return any(word in text for word in ("handshake", "hostname verification", "certificate"))
