"""Party B: holds IDs, features and the label; drives the rounds."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from vfl.crypto import EncryptedVector, draw_masks, unmask
from vfl.errors import ConfigMismatchError
from vfl.model import ModelPart
from vfl.progress import EpochProgress
from vfl.protocol.channel import Endpoint
from vfl.protocol.messages import (
    DecryptedMaskedGradient,
    EncryptedLoss,
    EncryptedPartialScores,
    EncryptedResidual,
    EpochEnd,
    EpochStart,
    InterceptOffset,
    MaskedGradient,
    PartialScores,
    TrainingPlan,
)
from vfl.psi import DEFAULT_ALIGNMENT, get_alignment
from vfl.psi.federation import align_as_label_holder
from vfl.training import TrainingConfig, batch_plan

from parties.base import DataParty

__all__ = ["LabelHolder"]


class LabelHolder(DataParty):
    """The label holder (party B).

    B holds the label and the intercept, draws each epoch's batch seed,
    combines the feature holders' encrypted partial scores with its own into
    the encrypted residual, and is the only party told the loss.

    Parameters
    ----------
    data : pandas.DataFrame
        IDs, the label and B's own feature columns (possibly none).
    id_column, label_column : str
    name : str
        Party name, "B" by default.
    feature_columns : list of str, optional
        Features to use; default every column except ID and label.
    seed : int, optional
        Seed of the secret initial weights, intercept and batch seeds;
        default from the OS CSPRNG.
    """

    role = "label_holder"
    is_label_holder = True

    def __init__(self, data: pd.DataFrame, *, id_column: str, label_column: str,
                 name: str = "B", feature_columns: list[str] | None = None,
                 seed: int | None = None, source: str | None = None,
                 model: ModelPart | None = None) -> None:
        super().__init__(data, id_column=id_column, name=name, label_column=label_column,
                         feature_columns=feature_columns, seed=seed, source=source,
                         model=model)
        self.history_: list[tuple[int, float]] = []
        self.initial_weights_: np.ndarray | None = None
        self.initial_intercept_: float | None = None
        self.batch_seeds_: list[int] = []
        self.progress: EpochProgress | None = None
        #: Called as ``on_epoch(epoch, loss)`` after each epoch (e.g. live plots).
        self.on_epoch: Callable[[int, float], None] | None = None

    @property
    def intercept_(self) -> float:
        """The model's intercept, raw units (all feature holders' offsets folded in)."""
        if self.model_ is None or self.model_.intercept is None:
            raise AttributeError(f"party {self.name} has not been trained or loaded yet")
        return self.model_.intercept

    @property
    def history(self) -> pd.DataFrame:
        """Mean training loss per epoch (columns ``epoch``, ``loss``)."""
        return pd.DataFrame(self.history_, columns=["epoch", "loss"])

    def run_training(self, endpoint: Endpoint, config: TrainingConfig, *,
                     feature_holders: Sequence[str] = ("A1",), coordinator: str = "C",
                     alignment: str = DEFAULT_ALIGNMENT) -> None:
        """Take part in alignment and training; afterwards ``model_`` is set."""
        try:
            self._train(endpoint, config, list(feature_holders), coordinator, alignment)
        finally:
            self._close_engine()

    def _train(self, endpoint: Endpoint, config: TrainingConfig, feature_holders: list[str],
               coordinator: str, alignment: str) -> None:
        if len(feature_holders) != 1:
            raise ValueError(f"party {self.name}: this version trains with exactly one "
                             f"feature holder, got {len(feature_holders)}")
        peer = feature_holders[0]
        public_key, codec = self._receive_public_key(endpoint, coordinator)
        engine = self._engine
        assert engine is not None
        n = public_key.n

        positions = align_as_label_holder(self.table.ids, endpoint, feature_holders,
                                          get_alignment(alignment))
        aligned = self.table.take(positions)
        self.aligned_rows_ = len(aligned)
        self.aligned_ids_ = list(aligned.ids)
        plan = TrainingPlan(config, len(aligned), tuple(feature_holders))
        for name in (*feature_holders, coordinator):
            endpoint.send(name, plan)
        self._check_batch_size(len(aligned), config)
        codec.check_capacity(n, len(aligned), party=self.name)

        scaler, x, x_encoded = self._prepare_features(aligned, config, codec)
        y = aligned.label
        assert y is not None
        d = x.shape[1]
        theta = self._initial_weights(d)
        # A random secret intercept hides sum(y^2) from the first loss C sees.
        bias = float(y.mean() + y.std() * self._rng.normal())
        self.initial_weights_, self.initial_intercept_ = theta.copy(), bias
        self.history_, self.batch_seeds_ = [], []

        for epoch in range(1, config.epochs + 1):
            seed = int(self._rng.integers(0, 2**63 - 1))
            self.batch_seeds_.append(seed)
            endpoint.send(peer, EpochStart(seed), epoch=epoch)
            batches = batch_plan(len(aligned), config.batch_size, seed)
            for number, rows in enumerate(batches, start=1):
                m = len(rows)
                at = {"epoch": epoch, "batch": number}
                scores = self._receive(endpoint, peer, EncryptedPartialScores, **at)
                if len(scores.scores) != m or len(scores.loss_part) != 1:
                    raise ValueError(f"party {self.name}: {peer} sent {len(scores.scores)} "
                                     f"scores for a batch of {m} rows")
                v = x[rows] @ theta + bias - y[rows]
                v_encoded = codec.encode(v, what="u_B - y", party=self.name)
                residual = engine.add_plain(scores.scores, v_encoded)
                # Without re-randomisation A, who made [[u_A]], could divide it
                # out of [[d]] and read u_B - y, hence y.
                endpoint.send(peer, EncryptedResidual(engine.rerandomize(residual)), **at)

                endpoint.send(coordinator, EncryptedLoss(
                    self._encrypted_loss(scores, v, v_encoded, theta, m, config, codec),
                    m), **at)

                # sum d carries one factor 2^f, X^T d two: lift the sum to the
                # product scale so the whole vector decodes alike.
                residual_sum = engine.mul_plain(engine.sum(residual), [1 << codec.frac_bits])
                gradient = EncryptedVector.concat(
                    ([engine.matvec_t([x_encoded[i] for i in rows], residual)] if d else [])
                    + [residual_sum])
                masks = draw_masks(n, d + 1)
                endpoint.send(coordinator, MaskedGradient(
                    engine.rerandomize(engine.add_plain(gradient, masks))), **at)
                reply = endpoint.receive(coordinator, DecryptedMaskedGradient, **at)
                if len(reply.values) != d + 1:
                    raise ValueError(f"party {self.name}: {coordinator} returned "
                                     f"{len(reply.values)} values for {d + 1}")
                summed = codec.decode(codec.to_signed(
                    unmask(reply.values, masks, n), n, what="gradient", party=self.name),
                    scale_power=2)
                theta = theta - config.learning_rate * (summed[:d] / m + config.l2 * theta)
                bias -= config.learning_rate * summed[d] / m
                if self.progress:
                    self.progress.batch(epoch, number, len(batches))

            end = endpoint.receive(coordinator, EpochEnd, epoch=epoch)
            if end.loss is None:
                raise ConfigMismatchError(f"{coordinator} did not send the epoch loss",
                                          party=self.name)
            self.history_.append((epoch, end.loss))
            if self.progress:
                self.progress.epoch(epoch, end.loss)
            if self.on_epoch:
                self.on_epoch(epoch, end.loss)
            if end.stop:
                break

        offsets = sum(endpoint.receive(a, InterceptOffset).offset for a in feature_holders)
        raw, own_offset = scaler.raw_weights(theta)
        self.model_ = ModelPart(self.name, self.role, list(self.table.feature_names),
                                raw.tolist(), bias + own_offset + offsets, endpoint.session)

    def _encrypted_loss(self, scores: EncryptedPartialScores, v: np.ndarray,
                        v_encoded: list[int], theta: np.ndarray, m: int,
                        config: TrainingConfig, codec) -> EncryptedVector:
        """[[2 m L]] = [[L_A]] + sum v^2 + m*lambda*||theta_B||^2 + sum 2 v_i [[u_A,i]]."""
        engine = self._engine
        assert engine is not None
        plain = sum(e * e for e in v_encoded) + codec.encode(
            [m * config.l2 * float(theta @ theta)], scale_power=2, what="L2 term",
            party=self.name)[0]
        cross = engine.dot(scores.scores, [2 * e for e in v_encoded])
        return engine.rerandomize(engine.add_plain(engine.add(scores.loss_part, cross), [plain]))

    def predict_rows(self, endpoint: Endpoint, *, feature_holders: Sequence[str] = ("A1",),
                     alignment: str = DEFAULT_ALIGNMENT) -> pd.Series:
        """Federated prediction for this party's current rows shared with every A.

        Returns
        -------
        pandas.Series
            Predictions indexed by ID, in this party's row order.
        """
        if self.model_ is None:
            raise AttributeError(f"party {self.name} has no model: train or load one first")
        positions = align_as_label_holder(self.table.ids, endpoint, list(feature_holders),
                                          get_alignment(alignment))
        total = self.model_.score(self.table.features[positions])
        for name in feature_holders:
            scores = endpoint.receive(name, PartialScores).scores
            if len(scores) != len(positions):
                raise ValueError(f"party {self.name}: {name} sent {len(scores)} scores "
                                 f"for {len(positions)} rows")
            total = total + np.asarray(scores)
        order = np.argsort(positions)
        return pd.Series(total[order], index=pd.Index([self.table.ids[i] for i in
                                                       positions[order]], name=self.id_column),
                         name=self.label_column)
