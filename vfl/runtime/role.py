"""What every role of every protocol is to the runtime: a name, checked messages, steps.

A protocol family (vertical, horizontal, transfer) writes each of its roles
as a subclass of :class:`Role` and implements only the steps of its protocol
document; :class:`~vfl.runtime.session.Session` runs the lifecycle around
them (keys, alignment, resume, the epoch loop, checkpoints, progress, the
end). Steps a role has no part in keep the default, which does nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

import phe

from vfl.crypto import FixedPointCodec, PaillierEngine, get_backend
from vfl.crypto.plain_engine import check_plaintext_consent
from vfl.errors import MalformedMessageError, ProtocolError
from vfl.protocol.channel import Endpoint
from vfl.protocol.messages import PublicKeyMessage, ciphertext_fields
from vfl.runtime.state import RoleState

__all__ = ["Role", "expect_length"]

S = TypeVar("S", bound=RoleState)
M = TypeVar("M")


def expect_length(values: object, expected: int, *, sender: str, message: str,
                  what: str, party: str) -> None:
    """Refuse a message whose vector has not the agreed length.

    Raises
    ------
    MalformedMessageError
        Naming the sender, the message and both lengths.
    """
    found = len(values)  # type: ignore[arg-type]
    if found != expected:
        raise MalformedMessageError(
            f"{sender} sent {message} with {found} {what}, the protocol expects {expected}; "
            f"{sender} is faulty or runs another version", party=party)


class Role(ABC, Generic[S]):
    """One party's part in a federated run.

    Subclasses set :attr:`state_type` (their :class:`RoleState` dataclass,
    which is exactly what a checkpoint stores) and implement the steps.
    During a run, :attr:`state` is that dataclass.

    Parameters
    ----------
    name : str
        Unique name in the federation ("A1", "B", "C").

    Attributes
    ----------
    insecure_plaintext : bool
        This party's opt-in to the plaintext engine (``backend="plain"``,
        debugging only); without it the party refuses a key holder that
        announces that engine. False unless set by whoever builds the party.
    """

    role: ClassVar[str]
    state_type: ClassVar[type[RoleState]]

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("a party needs a non-empty name")
        self.name = name
        self.state: S | None = None
        self.insecure_plaintext = False
        self._engine: PaillierEngine | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # --- what the session asks of every role ---------------------------------------

    @property
    @abstractmethod
    def leader(self) -> str:
        """The party that picks the epoch every party resumes after."""

    def followers(self) -> list[str]:
        """The parties that report their checkpoints to this one (when it leads)."""
        return []

    @property
    @abstractmethod
    def max_epochs(self) -> int:
        """Epochs of a run that never stops early."""

    @abstractmethod
    def open(self, endpoint: Endpoint) -> None:
        """First step: the key (made and published, or received)."""

    def align(self, endpoint: Endpoint) -> None:
        """Private alignment of the rows, if this role holds any."""

    @abstractmethod
    def identity(self) -> Mapping[str, Any]:
        """What a checkpoint of this party must match to be resumed."""

    @abstractmethod
    def agree_plan(self, endpoint: Endpoint, resumed: S | None) -> None:
        """Agree the run's plan (sent by the leader, checked by the others)."""

    @abstractmethod
    def fresh_state(self) -> S:
        """The state before the first epoch of a new run."""

    def start_epoch(self, endpoint: Endpoint, epoch: int) -> int:
        """Begin `epoch`; return its number of batches."""
        return 0

    def batch_step(self, endpoint: Endpoint, epoch: int, batch: int) -> None:
        """One batch of `epoch` (numbered from 1)."""

    def validation_step(self, endpoint: Endpoint, epoch: int) -> None:
        """After the batches of `epoch`: the held-out rows, if any."""

    @abstractmethod
    def end_epoch(self, endpoint: Endpoint, epoch: int) -> float | None:
        """Close `epoch`: set ``state.epoch``/``state.stopped``; return the epoch's loss
        if this party learns it."""

    def finish(self, endpoint: Endpoint) -> None:
        """After the last epoch: the model."""

    def close(self) -> None:
        """Release the engine's workers (always called, also after an error)."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    # --- tools of the steps -----------------------------------------------------------

    @property
    def engine(self) -> PaillierEngine:
        if self._engine is None:
            raise ProtocolError("no public key yet: the key step comes first", party=self.name)
        return self._engine

    @property
    def current(self) -> S:
        """The run's state (only during a run)."""
        if self.state is None:
            raise RuntimeError(f"party {self.name} is not in a run")
        return self.state

    def receive(self, endpoint: Endpoint, sender: str, expected: type[M], *,
                epoch: int = 0, batch: int = 0) -> M:
        """Receive the next message and validate every ciphertext in it."""
        message = endpoint.receive(sender, expected, epoch=epoch, batch=batch)
        for field, vector in ciphertext_fields(message):
            self.engine.validate(vector, sender=sender, what=f"{expected.__name__}.{field}",
                                 party=self.name)
        return message

    def receive_key(self, endpoint: Endpoint, sender: str) -> FixedPointCodec:
        """Take the key holder's public key; return the agreed fixed-point encoding."""
        message = endpoint.receive(sender, PublicKeyMessage)
        check_plaintext_consent(message.backend, self.insecure_plaintext, party=self.name,
                                announced_by=sender)
        engine_class, _ = get_backend(message.backend)
        public_key = phe.PaillierPublicKey(message.n)
        # Refused here, naming the key holder, before any value is encrypted under it.
        engine_class.check_public_params(public_key, message.params, sender=sender,
                                         party=self.name)
        self._engine = engine_class(public_key, message.params)
        return FixedPointCodec(message.frac_bits, message.value_bits, message.data_frac_bits)
