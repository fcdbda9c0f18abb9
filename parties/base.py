"""What the three roles share: receiving checked messages, holding data.

Party code runs over any :class:`~vfl.protocol.channel.Endpoint`; the
in-process :class:`~parties.federation.Federation` and a network transport
drive the same methods.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from typing import ClassVar, TypeVar

import numpy as np
import pandas as pd
import phe

from vfl.checkpoint import CheckpointStore
from vfl.crypto import FixedPointCodec, PaillierEngine, get_backend, unmask
from vfl.data import PartyTable, Standardizer, read_party_csv
from vfl.errors import BatchTooSmallError, ConfigMismatchError
from vfl.model import ModelPart
from vfl.optim import penalty_value
from vfl.protocol.channel import Endpoint
from vfl.protocol.messages import (
    DecryptedMaskedGradient,
    PublicKeyMessage,
    ResumeDecision,
    ResumeState,
    TrainingPlan,
    ciphertext_fields,
)
from vfl.training import TrainingConfig, smallest_batch, validation_split

__all__ = ["DataParty", "Party"]

M = TypeVar("M")


class Party:
    """A participant with a name that receives validated messages.

    Parameters
    ----------
    name : str
        Unique name in the federation ("A1", "B", "C").
    """

    role: ClassVar[str]

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("a party needs a non-empty name")
        self.name = name
        self._engine: PaillierEngine | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def _receive(self, endpoint: Endpoint, sender: str, expected: type[M], *,
                 epoch: int = 0, batch: int = 0) -> M:
        """Receive the next message and validate every ciphertext in it."""
        message = endpoint.receive(sender, expected, epoch=epoch, batch=batch)
        for field, vector in ciphertext_fields(message):
            if self._engine is None:
                raise RuntimeError("ciphertexts received before the public key")
            self._engine.validate(vector, sender=sender, what=f"{expected.__name__}.{field}",
                                  party=self.name)
        return message

    def _resume_as_follower(self, endpoint: Endpoint, checkpoints: CheckpointStore | None,
                            label_holder: str, identity: dict) -> dict | None:
        """Tell B which epochs this party can resume from; return the state B picks.

        Without checkpoints nothing is exchanged (the in-process default).
        """
        if checkpoints is None:
            return None
        endpoint.send(label_holder, ResumeState(tuple(checkpoints.scan(identity))))
        return checkpoints.load(endpoint.receive(label_holder, ResumeDecision).epoch)

    def _close_engine(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


class DataParty(Party):
    """A party that holds rows of data: feature holder or label holder.

    Learned attributes (after training) end in ``_``: ``coef_`` (a Series of
    raw-unit weights indexed by feature name), ``model_`` (the
    :class:`~vfl.model.ModelPart` to save) and ``aligned_rows_``.
    """

    is_label_holder: ClassVar[bool] = False

    def __init__(self, data: pd.DataFrame, *, id_column: str, name: str,
                 label_column: str | None = None,
                 feature_columns: list[str] | None = None,
                 seed: int | None = None, source: str | None = None,
                 model: ModelPart | None = None) -> None:
        super().__init__(name)
        self.id_column = id_column
        self.label_column = label_column
        self.feature_columns = feature_columns
        self.table = PartyTable.from_frame(
            data, party=name, id_column=id_column, label_column=label_column,
            is_label_holder=self.is_label_holder, feature_columns=feature_columns,
            source=source)
        # An unseeded party draws its secret initial weights from the OS CSPRNG.
        self.seed = seed if seed is not None else secrets.randbits(63)
        self._rng = np.random.default_rng(self.seed)
        self.model_: ModelPart | None = model
        self.aligned_rows_: int | None = None
        #: This party's own IDs of the shared rows, in the agreed order.
        self.aligned_ids_: list[str] | None = None
        #: Positions (in the aligned order) of the rows held out for validation.
        self.validation_rows_: np.ndarray | None = None
        #: Skip private alignment and train on the rows of the previous run
        #: (set by every party alike, e.g. for contribution coalitions).
        self.reuse_alignment = False
        self._alignment_cache: np.ndarray | None = None

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str], *, id_column: str, **kwargs: object):
        """Build the party from a CSV file (read only, never modified)."""
        name = str(kwargs.get("name", cls._default_name()))
        frame = read_party_csv(path, party=name, id_column=id_column)
        return cls(frame, id_column=id_column, source=os.fspath(path), **kwargs)  # type: ignore[arg-type]

    @classmethod
    def _default_name(cls) -> str:
        return "B" if cls.is_label_holder else "A1"

    @property
    def coef_(self) -> pd.Series:
        """Raw-unit weights of this party's features."""
        if self.model_ is None:
            raise AttributeError(f"party {self.name} has not been trained or loaded yet")
        return pd.Series(self.model_.weights, index=self.model_.features, name=self.name)

    def save_model(self, path: str | os.PathLike[str]) -> None:
        """Save this party's part of the model (and nothing of any other party)."""
        if self.model_ is None:
            raise AttributeError(f"party {self.name} has no model to save yet")
        self.model_.save(path)

    def load_model(self, path: str | os.PathLike[str]) -> None:
        """Load this party's saved part, checking it matches the data's columns."""
        part = ModelPart.load(path, party=self.name)
        if part.features != self.table.feature_names:
            raise ValueError(
                f"party {self.name}: the model in {os.fspath(path)} uses features "
                f"{part.features}, the data has {self.table.feature_names}")
        self.model_ = part

    # --- steps shared by A and B ------------------------------------------------

    def _aligned_positions(self, run_alignment: Callable[[], np.ndarray]) -> np.ndarray:
        """This party's rows shared by all, from private alignment or the last run's."""
        if self.reuse_alignment and self._alignment_cache is not None:
            return self._alignment_cache
        positions = run_alignment()
        self._alignment_cache = positions
        return positions

    def _receive_public_key(self, endpoint: Endpoint, coordinator: str
                            ) -> tuple[phe.PaillierPublicKey, FixedPointCodec]:
        message = endpoint.receive(coordinator, PublicKeyMessage)
        public_key = phe.PaillierPublicKey(message.n)
        engine_class, _ = get_backend(message.backend)
        self._engine = engine_class(public_key, message.params)
        return public_key, FixedPointCodec(message.frac_bits, message.value_bits)

    def _identity(self, config: TrainingConfig, aligned: PartyTable, **peers: object) -> dict:
        """What a checkpoint of this party must match to be resumed (see vfl.checkpoint)."""
        from vfl.audit.fingerprint import table_fingerprint

        return {"role": self.role, "config": config.to_dict(), **peers,
                "data_fingerprint": table_fingerprint(self.table),
                "aligned_fingerprint": table_fingerprint(aligned)}

    def _check_plan(self, plan: TrainingPlan, config: TrainingConfig, sender: str) -> None:
        if plan.config != config:
            raise ConfigMismatchError(
                f"{sender} runs {plan.config}, this party was configured with {config}; start "
                "every party with the same training parameters", party=self.name)

    def _check_batch_size(self, n_rows: int, config: TrainingConfig) -> None:
        """Refuse batches small enough for the gradient to reveal residuals."""
        d = self.table.features.shape[1]
        smallest = smallest_batch(n_rows, config.batch_size)
        if d and smallest <= config.min_batch_factor * d:
            raise BatchTooSmallError(
                f"with {d} features this party needs batches of more than "
                f"{config.min_batch_factor:g} x {d} = {config.min_batch_factor * d:g} rows, but "
                f"the smallest batch has {smallest} of the {n_rows} training rows: raise the "
                "batch size (or use full batch)", party=self.name)

    def _prepare(self, aligned: PartyTable, plan: TrainingPlan, codec: FixedPointCodec,
                 n: int) -> tuple[Standardizer, np.ndarray, list, np.ndarray, np.ndarray]:
        """Split, check and standardise the aligned rows as the plan says.

        Returns the scaler (fitted on the training rows only), the float and
        encoded feature matrices of every aligned row, and the training and
        validation positions.
        """
        config = plan.config
        train, validation = validation_split(len(aligned), config.validation_fraction,
                                             plan.split_seed)
        self._check_batch_size(len(train), config)
        codec.check_capacity(n, max(len(train), len(validation)), party=self.name)
        scaler = Standardizer.fit(aligned.take(train), config.standardize)
        x = scaler.transform(aligned.features)
        encoded = codec.encode_matrix(x, what="features", party=self.name)
        self.validation_rows_ = validation
        return scaler, x, encoded, train, validation

    def _loss_part(self, u_encoded: list[int], weights: np.ndarray, config: TrainingConfig,
                   codec: FixedPointCodec, *, penalty: bool) -> int:
        """This party's plaintext share of S at product scale: sum u^2, plus
        2 m k penalty(w) on training batches (validation losses carry no penalty)."""
        squares = sum(v * v for v in u_encoded)
        if not penalty:
            return squares
        term = 2 * len(u_encoded) * config.residual_factor * penalty_value(config, weights)
        return squares + codec.encode([term], scale_power=2, what="penalty term",
                                      party=self.name)[0]

    def _unmask_gradient(self, reply: DecryptedMaskedGradient, masks: list[int], n: int,
                         codec: FixedPointCodec, scale: float, sender: str) -> np.ndarray:
        """Decoded gradient sums from C's reply, divided by `scale` (k m)."""
        if len(reply.values) != len(masks):
            raise ValueError(f"party {self.name}: {sender} returned {len(reply.values)} "
                             f"values for {len(masks)}")
        summed = codec.decode(codec.to_signed(unmask(reply.values, masks, n), n,
                                              what="gradient", party=self.name),
                              scale_power=2)
        return summed / scale

    def _initial_weights(self, d: int) -> np.ndarray:
        """Random secret initial weights (PROTOCOL.md: never all zeros)."""
        return self._rng.normal(0.0, 1.0 / np.sqrt(max(d, 1)), size=d)
