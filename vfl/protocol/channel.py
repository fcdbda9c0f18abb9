"""How parties exchange messages: envelopes, endpoints and the in-process network.

Party code talks to an :class:`Endpoint` only: ``send(recipient, body)`` and
``receive(sender, ExpectedType)``. The endpoint wraps each body in an
:class:`Envelope` naming the session, the position in the protocol (epoch
and batch), the step (the message type) and a per-link sequence number, and
checks all of that on receipt. A transport (in-process queues here, a
network later) only moves envelopes; it never needs to understand them, and
party code never needs to know which transport it runs on.
"""

from __future__ import annotations

import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from vfl.errors import ChannelTimeoutError, PeerAbortedError, UnexpectedMessageError

__all__ = ["DEFAULT_TIMEOUT_S", "Endpoint", "Envelope", "InProcessNetwork"]

M = TypeVar("M")

#: Seconds a party waits for a peer before giving up. Generous because a peer
#: may be encrypting tens of thousands of values between two messages.
DEFAULT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Envelope:
    """One message on the wire.

    Attributes
    ----------
    session : str
        Identifier of the federation run; messages of another run are refused.
    sender, recipient : str
        Party names (``"A1"``, ``"B"``, ``"C"``).
    seq : int
        Position of this message on the link sender -> recipient, from 0.
        A repeated number is a duplicate and is dropped; a gap is an error.
    epoch, batch : int
        Position in training (0 outside training: key exchange, alignment).
    step : str
        Name of the body's type; must equal what the receiver expects.
    body : object
        The typed message (a dataclass from :mod:`vfl.protocol.messages`).
    """

    session: str
    sender: str
    recipient: str
    seq: int
    epoch: int
    batch: int
    step: str
    body: Any


@dataclass(frozen=True)
class _Abort:
    """Sentinel a failing party puts on its links so peers stop waiting."""

    party: str
    reason: str


class Endpoint(ABC):
    """A party's connection to its peers.

    Parameters
    ----------
    name : str
        This party's name.
    session : str
        Federation run identifier shared by all parties.
    timeout : float
        Seconds to wait for any one message before raising
        :class:`~vfl.errors.ChannelTimeoutError`.
    """

    def __init__(self, name: str, session: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.name = name
        self.session = session
        self.timeout = timeout
        self._sent: dict[str, int] = {}
        self._expected: dict[str, int] = {}

    # --- what parties call ---------------------------------------------------

    def send(self, recipient: str, body: object, *, epoch: int = 0, batch: int = 0) -> None:
        """Send a typed message to `recipient` at the given protocol position."""
        seq = self._sent.get(recipient, 0)
        self._sent[recipient] = seq + 1
        self._transmit(Envelope(self.session, self.name, recipient, seq, epoch, batch,
                                type(body).__name__, body))

    def receive(self, sender: str, expected: type[M], *, epoch: int = 0, batch: int = 0) -> M:
        """Wait for the next message from `sender`, which must be an `expected`.

        Raises
        ------
        UnexpectedMessageError
            If the message belongs to another session, is of another type, is
            for another epoch or batch, or skips a sequence number.
        ChannelTimeoutError
            If `sender` sends nothing within the timeout.
        PeerAbortedError
            If any party stopped with an error.
        """
        while True:
            envelope = self._next_envelope(sender)
            want = self._expected.get(sender, 0)
            if envelope.session != self.session:
                raise UnexpectedMessageError(
                    f"message {envelope.step} from {sender} belongs to session "
                    f"{envelope.session!r}, not this federation's {self.session!r}",
                    party=self.name)
            if envelope.seq < want:
                continue  # a duplicate of a message already consumed: drop it
            if envelope.seq > want:
                raise UnexpectedMessageError(
                    f"message {envelope.step} from {sender} has sequence number "
                    f"{envelope.seq}, expected {want}: messages were lost", party=self.name)
            self._expected[sender] = want + 1
            break
        if envelope.step != expected.__name__ or not isinstance(envelope.body, expected):
            raise UnexpectedMessageError(
                f"expected {expected.__name__} from {sender} at epoch {epoch} batch {batch}, "
                f"got {envelope.step} (epoch {envelope.epoch} batch {envelope.batch})",
                party=self.name)
        if (envelope.epoch, envelope.batch) != (epoch, batch):
            raise UnexpectedMessageError(
                f"{envelope.step} from {sender} is for epoch {envelope.epoch} batch "
                f"{envelope.batch}, expected epoch {epoch} batch {batch}", party=self.name)
        return envelope.body

    def abort(self, reason: str) -> None:
        """Tell every peer that this party stopped, so none waits in vain."""
        self._broadcast_abort(_Abort(self.name, reason))

    # --- what a transport implements ----------------------------------------------

    @abstractmethod
    def _transmit(self, envelope: Envelope) -> None:
        """Deliver an envelope to its recipient."""

    @abstractmethod
    def _next_envelope(self, sender: str) -> Envelope:
        """Block for the next envelope from `sender` (timeouts, aborts raise)."""

    @abstractmethod
    def _broadcast_abort(self, abort: _Abort) -> None:
        """Make every peer's pending and future receives raise."""


class InProcessNetwork:
    """Queues between parties that run as threads of one process.

    Parameters
    ----------
    parties : iterable of str
        Names of all parties.
    session : str
        Federation run identifier.
    timeout : float
        Per-message timeout of every endpoint.
    record : bool
        Keep every delivered envelope in :attr:`transcript` (for audits and
        tests of what each party receives).
    """

    def __init__(self, parties: Iterable[str], session: str, *,
                 timeout: float = DEFAULT_TIMEOUT_S, record: bool = False) -> None:
        self.parties = list(parties)
        self.session = session
        self.timeout = timeout
        self.record = record
        self.transcript: list[Envelope] = []
        self._lock = threading.Lock()
        self._queues: dict[tuple[str, str], queue.Queue[Envelope | _Abort]] = {
            (s, r): queue.Queue() for s in self.parties for r in self.parties if s != r
        }

    def endpoint(self, name: str) -> Endpoint:
        """The endpoint party `name` uses."""
        if name not in self.parties:
            raise ValueError(f"unknown party {name!r}; known: {', '.join(self.parties)}")
        return _QueueEndpoint(self, name)

    def received_by(self, party: str) -> list[Envelope]:
        """Every envelope delivered to `party`, in order (needs ``record=True``)."""
        return [e for e in self.transcript if e.recipient == party]


class _QueueEndpoint(Endpoint):
    def __init__(self, network: InProcessNetwork, name: str) -> None:
        super().__init__(name, network.session, network.timeout)
        self._network = network

    def _transmit(self, envelope: Envelope) -> None:
        key = (envelope.sender, envelope.recipient)
        if key not in self._network._queues:
            raise ValueError(f"{self.name} cannot send to unknown party {envelope.recipient!r}")
        if self._network.record:
            with self._network._lock:
                self._network.transcript.append(envelope)
        self._network._queues[key].put(envelope)

    def _next_envelope(self, sender: str) -> Envelope:
        key = (sender, self.name)
        if key not in self._network._queues:
            raise ValueError(f"{self.name} cannot receive from unknown party {sender!r}")
        try:
            item = self._network._queues[key].get(timeout=self.timeout)
        except queue.Empty:
            raise ChannelTimeoutError(
                f"{sender} sent nothing for {self.timeout:.0f} s; it may have stopped",
                party=self.name) from None
        if isinstance(item, _Abort):
            # Leave the sentinel for any later receive on this link.
            self._network._queues[key].put(item)
            raise PeerAbortedError(f"{item.party} stopped: {item.reason}", party=self.name)
        return item

    def _broadcast_abort(self, abort: _Abort) -> None:
        for (_, recipient), q in self._network._queues.items():
            if recipient != abort.party:
                q.put(abort)
