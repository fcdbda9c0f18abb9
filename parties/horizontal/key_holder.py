"""Party C of the horizontal protocol: owns the private key, decrypts only masked sums.

C makes a fresh key pair per run, publishes the public key, and decrypts
what S sends it: sums of the clients' packed updates plus a mask drawn
uniformly from Z_n per ciphertext, so every value C sees is uniform in Z_n.
A client that rejoins the run (a new process of it, over the network) gets
the public key from C too, when S names it in a masked aggregate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import phe

from parties.horizontal.config import HorizontalConfig
from parties.horizontal.messages import DecryptedAggregate, HorizontalPlan, MaskedAggregate
from parties.horizontal.rejoin import readmitting
from parties.horizontal.state import KeyHolderState
from vfl.crypto import (
    DEFAULT_BACKEND,
    DEFAULT_KEY_BITS,
    FixedPointCodec,
    check_key_bits,
    generate_keypair,
    get_backend,
)
from vfl.errors import (
    ConfigError,
    ConfigMismatchError,
    MalformedMessageError,
    PeerLeftError,
    PeerUnreachableError,
)
from vfl.protocol.channel import Endpoint
from vfl.protocol.messages import PublicKeyMessage
from vfl.runtime.role import Role

__all__ = ["KeyHolder"]

log = logging.getLogger("vfl.horizontal")


class KeyHolder(Role[KeyHolderState]):
    """The key holder C (does not collude with the server).

    Parameters
    ----------
    config : HorizontalConfig
        The run C agrees to serve (checked against the server's plan).
    clients : sequence of str
        Names of the clients (they receive the public key).
    server : str
    key_bits : int
        2048 (default) or more unless `insecure_key`.
    insecure_key : bool
        Allow keys below 2048 bits (tests only: they can be factored).
    backend : str
        Paillier engine every party uses.
    name : str
    keypair : tuple, optional
        Reuse this key pair instead of making one (benchmarks, tests).
    """

    role = "key_holder"
    state_type = KeyHolderState

    def __init__(self, config: HorizontalConfig, clients: Sequence[str], *, server: str = "S",
                 key_bits: int = DEFAULT_KEY_BITS, insecure_key: bool = False,
                 backend: str = DEFAULT_BACKEND, name: str = "C",
                 keypair: tuple[phe.PaillierPublicKey, phe.PaillierPrivateKey] | None = None
                 ) -> None:
        super().__init__(name)
        check_key_bits(key_bits, insecure=insecure_key, party=name)
        get_backend(backend)
        if backend == "plain":
            raise ConfigError("backend 'plain' is offered for vertical runs only; choose "
                              "another backend for a horizontal run", party=name)
        self.config = config
        self.clients = list(clients)
        self.server = server
        self.key_bits = key_bits
        self.insecure_key = insecure_key
        self.backend = backend
        self.keypair = keypair
        self.public_key_: phe.PaillierPublicKey | None = None
        self.decrypted_: list[tuple[int, ...]] = []  # what C saw, for audits and tests
        self._decryptor: Any = None
        self._key_message: PublicKeyMessage | None = None

    @property
    def leader(self) -> str:
        return self.server

    @property
    def max_epochs(self) -> int:
        return self.config.rounds

    def open(self, endpoint: Endpoint) -> None:
        """The key pair; the public key and the run's fixed-point scale to S and every client."""
        public_key, private_key = self.keypair or generate_keypair(
            self.key_bits, insecure=self.insecure_key)
        self.public_key_ = public_key
        engine_class, decryptor_class = get_backend(self.backend)
        self._engine = engine_class(public_key, engine_class.public_params_for(private_key))
        self._decryptor = decryptor_class(private_key)
        # The message's fixed-point fields are the vertical protocol's encoding;
        # horizontal parties pack with the run's own precision (the plan's config).
        codec = FixedPointCodec()
        message = PublicKeyMessage(public_key.n, self.backend, dict(self._engine.public_params),
                                   codec.frac_bits, codec.value_bits)
        self._key_message = message  # again to a client that rejoins
        for name in (self.server, *self.clients):
            endpoint.send(name, message)

    def align(self, endpoint: Endpoint) -> None:
        """Federated standardisation: two masked sums to decrypt."""
        if self.config.standardize:
            for step in (1, 2):
                self._serve(endpoint, epoch=0, batch=step)

    def identity(self) -> dict[str, Any]:
        return {"role": self.role, "config": self.config.to_dict(), "clients": self.clients}

    def agree_plan(self, endpoint: Endpoint, resumed: KeyHolderState | None) -> None:
        plan = endpoint.receive(self.server, HorizontalPlan)
        if plan.config != self.config or list(plan.clients) != self.clients:
            raise ConfigMismatchError(
                f"{self.server} runs {plan.config} with clients {list(plan.clients)}; the key "
                f"holder was configured with {self.config} and clients {self.clients}",
                party=self.name)

    def fresh_state(self) -> KeyHolderState:
        return KeyHolderState(epoch=0, stopped=False, decryptions=0)

    def start_epoch(self, endpoint: Endpoint, epoch: int) -> int:
        return 1

    def batch_step(self, endpoint: Endpoint, epoch: int, batch: int) -> None:
        message = self._serve(endpoint, epoch=epoch, batch=batch)
        for name in message.joining:
            self._send_key(endpoint, name)

    def end_epoch(self, endpoint: Endpoint, epoch: int) -> None:
        self.current.epoch = epoch
        return None

    def close(self) -> None:
        if self._decryptor is not None:
            self._decryptor.close()
            self._decryptor = None
        super().close()

    def _serve(self, endpoint: Endpoint, *, epoch: int, batch: int) -> MaskedAggregate:
        """Decrypt one masked aggregate and return it to S; the message."""
        message = self.receive(endpoint, self.server, MaskedAggregate, epoch=epoch, batch=batch)
        strangers = [n for n in message.joining if n not in self.clients]
        if strangers or len(set(message.joining)) != len(message.joining):
            raise MalformedMessageError(
                f"{self.server} names {list(message.joining)} as rejoining clients; the run's "
                f"clients are {self.clients}", party=self.name)
        values = (tuple(int(v) for v in self._decryptor.decrypt(message.values))
                  if len(message.values) else ())
        self.decrypted_.append(values)
        if self.state is not None:
            self.state.decryptions += len(values)
        endpoint.send(self.server, DecryptedAggregate(values), epoch=epoch, batch=batch)
        return message

    def _send_key(self, endpoint: Endpoint, name: str) -> None:
        """The public key to a client that rejoins, on a new link to its new process."""
        rejoin = readmitting(endpoint)
        if rejoin is not None:
            rejoin.readmit(name)
        assert self._key_message is not None
        try:
            endpoint.send(name, self._key_message)
        except (PeerLeftError, PeerUnreachableError) as exc:
            # Gone again: S finds it departed when it next writes to it.
            log.warning("could not send the key to %s, which rejoins: %s", name, exc)
