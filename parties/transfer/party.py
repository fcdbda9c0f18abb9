"""What the source and the target share: data, network, keys, the model file.

The protocol steps live in :mod:`parties.transfer.source` and
:mod:`parties.transfer.target`; the lifecycle around them in
:class:`vfl.runtime.session.Session`.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd
import phe

from parties.transfer.config import TransferConfig
from parties.transfer.messages import TransferOpen
from parties.transfer.network import DenseNetwork, ForwardCache
from parties.transfer.ops import (
    PaillierOps,
    PaillierVault,
    PlainOps,
    PlainVault,
    TensorOps,
    Vault,
    check_capacity,
    make_engine,
)
from vfl.audit.fingerprint import table_fingerprint
from vfl.crypto import FixedPointCodec, generate_keypair, get_backend
from vfl.crypto.plain_engine import check_plaintext_consent
from vfl.data import PartyTable, Standardizer, read_party_csv
from vfl.errors import ConfigMismatchError, EmptyIntersectionError, ModelFileError
from vfl.files import atomic_write_text
from vfl.protocol.channel import Endpoint
from vfl.protocol.messages import PublicKeyMessage
from vfl.psi import DEFAULT_ALIGNMENT
from vfl.runtime.role import Role
from vfl.runtime.state import RoleState

__all__ = ["MODEL_FORMAT", "TransferParty"]

S = TypeVar("S", bound=RoleState)
P = TypeVar("P", bound="TransferParty[Any]")

MODEL_FORMAT = "vfl-transfer-model/1"


def take_cache(cache: ForwardCache, rows: np.ndarray) -> ForwardCache:
    """The forward pass of some rows, cut out of a pass over more rows."""
    return ForwardCache([z[rows] for z in cache.inputs], [s[rows] for s in cache.slopes],
                        cache.output[rows])


class TransferParty(Role[S]):
    """A party of a transfer run: its table, standardised columns and network.

    Parameters
    ----------
    data : pandas.DataFrame
        IDs and feature columns (and, at the source, the label).
    id_column : str
    name : str
    label_column : str, optional
        The label column (source: required; target: refused if present).
    seed : int, optional
        Seed of the secret initial parameters; default from the OS CSPRNG.
    source : str, optional
        Where the data came from (a file name), for messages.
    """

    is_source: ClassVar[bool]

    def __init__(self, data: pd.DataFrame, *, id_column: str, name: str,
                 label_column: str | None = None, seed: int | None = None,
                 source: str | None = None) -> None:
        super().__init__(name)
        self.id_column = id_column
        self.label_column = label_column
        self.table = PartyTable.from_frame(data, party=name, id_column=id_column,
                                           label_column=label_column,
                                           is_label_holder=self.is_source, source=source)
        self.scaler = Standardizer.fit(self.table, True)
        self.x = self.scaler.transform(self.table.features)
        self.seed = seed
        self.config = TransferConfig()
        self.alignment = DEFAULT_ALIGNMENT
        self.parallel = True
        self.codec = FixedPointCodec()
        self.peer = ""
        self.overlap_: np.ndarray | None = None
        self.network_: DenseNetwork | None = None
        self._vault: Vault | None = None
        self._ops: TensorOps | None = None
        self._rng = np.random.default_rng(seed if seed is not None else secrets.randbits(64))

    @classmethod
    def from_csv(cls: type[P], path: str | os.PathLike[str], *, id_column: str,
                 **kwargs: Any) -> P:
        """Read the party's CSV file (checked as in :class:`vfl.data.PartyTable`)."""
        name = kwargs.get("name", cls._default_name())
        frame = read_party_csv(path, party=name, id_column=id_column)
        return cls(frame, id_column=id_column, source=os.fspath(path), **kwargs)

    @classmethod
    def _default_name(cls) -> str:
        return "A" if cls.is_source else "B"

    # --- run set-up -------------------------------------------------------------------

    def begin_run(self, config: TransferConfig, *, peer: str, alignment: str,
                  parallel: bool) -> None:
        self.config, self.peer, self.alignment, self.parallel = config, peer, alignment, parallel
        self.network_ = DenseNetwork(self.table.features.shape[1], config.hidden,
                                     config.activations)
        self.state = None

    @property
    def network(self) -> DenseNetwork:
        if self.network_ is None:
            raise RuntimeError(f"party {self.name} is not in a run")
        return self.network_

    @property
    def ops(self) -> TensorOps:
        if self._ops is None:
            raise RuntimeError(f"party {self.name}: no key exchange yet")
        return self._ops

    @property
    def vault(self) -> Vault:
        if self._vault is None:
            raise RuntimeError(f"party {self.name}: no key exchange yet")
        return self._vault

    @property
    def max_epochs(self) -> int:
        return self.config.epochs

    def open(self, endpoint: Endpoint) -> None:
        """Step 0: make a key pair, swap public keys (and the mode) with the peer."""
        config = self.config
        if config.mode == "plain":
            self._vault, self._ops = PlainVault(self.name), PlainOps(self.name)
            endpoint.send(self.peer, TransferOpen("plain"))
        else:
            public_key, private_key = generate_keypair(config.key_bits, insecure=config.insecure)
            engine_class, decryptor_class = get_backend(config.backend)
            params = engine_class.public_params_for(private_key)
            engine = make_engine(config.backend, public_key, params, self.parallel)
            decryptor = (decryptor_class(private_key, parallel=self.parallel)  # type: ignore[call-arg]
                         if config.backend == "fast" else decryptor_class(private_key))
            self._vault = PaillierVault(engine, decryptor, self.codec, self.name)
            endpoint.send(self.peer, TransferOpen("encrypted", PublicKeyMessage(
                public_key.n, config.backend, dict(params), self.codec.frac_bits,
                self.codec.value_bits)))
        message = endpoint.receive(self.peer, TransferOpen)
        if message.mode != config.mode:
            raise ConfigMismatchError(f"{self.peer} runs mode {message.mode!r}, this party "
                                      f"{config.mode!r}; start both with the same --mode",
                                      party=self.name)
        if config.mode == "encrypted":
            key = message.key
            if key is None:
                raise ConfigMismatchError(f"{self.peer} sent no public key in encrypted mode",
                                          party=self.name)
            if (key.frac_bits, key.value_bits) != (self.codec.frac_bits,
                                                   self.codec.value_bits):
                raise ConfigMismatchError(f"{self.peer} encodes with {key.frac_bits} "
                                          f"fractional bits, this party with "
                                          f"{self.codec.frac_bits}", party=self.name)
            if key.n.bit_length() < config.key_bits - 1:
                raise ConfigMismatchError(f"{self.peer} sent a {key.n.bit_length()}-bit key, the "
                                          f"run's settings ask for {config.key_bits} bits",
                                          party=self.name)
            # A transfer party never opts into the plaintext engine (its own mode
            # 'plain' is the explicit debugging path): refused as every role refuses it.
            check_plaintext_consent(key.backend, False, party=self.name,
                                    announced_by=self.peer)
            get_backend(key.backend)
            self._engine = make_engine(key.backend, phe.PaillierPublicKey(key.n), key.params,
                                       self.parallel)
            self._ops = PaillierOps(self._engine, self.codec, self.name)

    def close(self) -> None:
        if self._vault is not None:
            self._vault.close()
            self._vault = None
        super().close()

    def identity(self) -> dict[str, Any]:
        return {"role": "source" if self.is_source else "target", "peer": self.peer,
                "config": self.config.to_dict(), "alignment": self.alignment,
                "data_fingerprint": table_fingerprint(self.table)}

    # --- checks -----------------------------------------------------------------------

    def check_overlap_floor(self, overlap: int, n_inputs: int, whose: str) -> None:
        """Refuse an overlap whose parameter gradients could be solved for per-row terms.

        A layer's gradient gives (fan-in + 1) linear equations per unit in the
        N_AB per-row unknowns of that unit; the floor keeps them underdetermined.
        """
        factor = self.config.min_overlap_factor
        network = DenseNetwork(n_inputs, self.config.hidden, self.config.activations)
        widest = max(fan_in for fan_in, _ in network.shapes) + 1
        if overlap < factor * widest:
            raise EmptyIntersectionError(
                f"the overlap has {overlap} rows; {whose}'s network has layers with "
                f"{widest - 1} inputs, so the protocol needs at least {factor:g} x {widest} = "
                f"{factor * widest:g} shared rows for a masked gradient not to determine the "
                "other party's per-row values: find more shared rows or use fewer columns",
                party=self.name)

    def check_key_capacity(self, overlap: int) -> None:
        """The peer's key must hold the deepest fixed-point scale of this party's results."""
        if self.config.mode != "encrypted":
            return
        layers = len(self.config.hidden)
        scale = (4 if not self.is_source else 3) + 2 * (layers - 1)
        terms = max(overlap, len(self.table)) * max(self.network.n_inputs + 1,
                                                     *self.config.hidden)
        check_capacity(self.engine.n, self.codec, scale, terms, party=self.name)

    # --- the model file ---------------------------------------------------------------

    def model_dict(self) -> dict[str, Any]:
        if self.state is None:
            raise AttributeError(f"party {self.name} has not been trained yet")
        network = self.network
        return {"format": MODEL_FORMAT, "party": self.name,
                "role": "source" if self.is_source else "target",
                "features": list(self.table.feature_names),
                "mean": self.scaler.mean.tolist(), "scale": self.scaler.scale.tolist(),
                "hidden": list(network.hidden), "activations": list(network.activations),
                "params": [float(v) for v in self.current.params]}  # type: ignore[attr-defined]

    def model_json(self) -> str:
        return json.dumps(self.model_dict(), indent=2, allow_nan=False) + "\n"

    def save_model(self, path: str | os.PathLike[str]) -> None:
        atomic_write_text(path, self.model_json())


def read_model(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A transfer model file (either party's), checked for its format."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"cannot read transfer model {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path} is not a {MODEL_FORMAT} file")
    return data
