"""Party C of a binning run: the key pair; decrypts only event sums masked uniformly in Z_n."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import phe

from parties.binning.config import BinningConfig
from parties.binning.messages import BinningPlan, DecryptedEventSums, MaskedEventSums
from parties.binning.party import BinningState
from vfl.crypto import (
    DEFAULT_BACKEND,
    DEFAULT_KEY_BITS,
    check_key_bits,
    generate_keypair,
    get_backend,
)
from vfl.errors import ConfigMismatchError
from vfl.protocol.channel import Endpoint
from vfl.protocol.messages import PublicKeyMessage
from vfl.runtime.role import Role

__all__ = ["BinningCoordinator"]


class BinningCoordinator(Role[BinningState]):
    """The coordinator (party C) of a binning run.

    C makes a fresh key pair, sends the public key, and decrypts, for each
    feature holder, B's masked event sums: values uniform in Z_n, from which
    it learns nothing but their number (the feature holders' bins in all).

    Parameters
    ----------
    key_bits : int
        Paillier modulus size; 2048 (default) or more.
    insecure_key : bool
        Allow keys below 2048 bits. For tests only: such keys can be factored.
    backend : str
        Paillier engine all parties use.
    name : str
        "C" by default.
    """

    role = "coordinator"
    state_type = BinningState

    def __init__(self, *, key_bits: int = DEFAULT_KEY_BITS, insecure_key: bool = False,
                 backend: str = DEFAULT_BACKEND, name: str = "C") -> None:
        super().__init__(name)
        check_key_bits(key_bits, insecure=insecure_key, party=name)
        get_backend(backend)
        self.key_bits, self.insecure_key, self.backend = key_bits, insecure_key, backend
        self.config = BinningConfig()
        self.label_holder = "B"
        self.feature_holders: list[str] = ["A1"]
        #: Every value C decrypted, for audits and tests (uniform residues only).
        self.decrypted_: list[int] = []
        self._decryptor: Any = None
        self._private_key: phe.PaillierPrivateKey | None = None

    def begin_run(self, config: BinningConfig, *, label_holder: str = "B",
                  feature_holders: Sequence[str] = ("A1",)) -> None:
        self.config, self.label_holder = config, label_holder
        self.feature_holders = list(feature_holders)
        self.decrypted_, self.state = [], None

    @property
    def leader(self) -> str:
        return self.label_holder

    @property
    def max_epochs(self) -> int:
        return 0

    def open(self, endpoint: Endpoint) -> None:
        public_key, private_key = generate_keypair(self.key_bits, insecure=self.insecure_key)
        self._private_key = private_key
        engine_class, decryptor_class = get_backend(self.backend)
        self._engine = engine_class(public_key, engine_class.public_params_for(private_key))
        self._decryptor = decryptor_class(private_key)
        message = PublicKeyMessage(public_key.n, self.backend, dict(self._engine.public_params))
        for name in (self.label_holder, *self.feature_holders):
            endpoint.send(name, message)

    def identity(self) -> dict[str, Any]:
        return {"role": self.role, "config": self.config.to_dict()}

    def agree_plan(self, endpoint: Endpoint, resumed: BinningState | None) -> None:
        plan = endpoint.receive(self.label_holder, BinningPlan)
        if plan.config != self.config or list(plan.feature_holders) != self.feature_holders:
            raise ConfigMismatchError(
                f"{self.label_holder} bins with {plan.config} and feature holders "
                f"{list(plan.feature_holders)}, the coordinator was configured with "
                f"{self.config} and {self.feature_holders}", party=self.name)

    def fresh_state(self) -> BinningState:
        return BinningState(epoch=0, stopped=False)

    def end_epoch(self, endpoint: Endpoint, epoch: int) -> float | None:
        raise RuntimeError("binning has no epochs")

    def finish(self, endpoint: Endpoint) -> None:
        """Decrypt B's masked event sums, once per feature holder, and return them to B."""
        for _ in self.feature_holders:
            masked = self.receive(endpoint, self.label_holder, MaskedEventSums)
            values = self._decryptor.decrypt(masked.values)
            self.decrypted_.extend(values)
            endpoint.send(self.label_holder, DecryptedEventSums(tuple(values)))

    def close(self) -> None:
        if self._decryptor is not None:
            self._decryptor.close()
            self._decryptor = None
        super().close()
