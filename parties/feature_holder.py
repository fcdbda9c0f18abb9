"""Party A: holds IDs and features, never sees labels or anyone's plaintext."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vfl.crypto import draw_masks, unmask
from vfl.model import ModelPart
from vfl.protocol.channel import Endpoint
from vfl.protocol.messages import (
    DecryptedMaskedGradient,
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
from vfl.psi.federation import align_as_feature_holder
from vfl.training import TrainingConfig, batch_plan

from parties.base import DataParty

__all__ = ["FeatureHolder"]


class FeatureHolder(DataParty):
    """A feature holder (party A, one of A1..Ak).

    Parameters
    ----------
    data : pandas.DataFrame
        IDs and feature columns. Checked at once: a missing ID column,
        duplicate IDs, non-numeric or non-finite features raise here.
    id_column : str
        Column holding the IDs shared with the label holder.
    name : str
        Party name, "A1" by default.
    label_column : str, optional
        Name of the label column at the label holder. If given, a column of
        that name in `data` is refused (a feature holder must not hold it).
    feature_columns : list of str, optional
        Features to use; default every column except the ID.
    seed : int, optional
        Seed of the secret initial weights; default from the OS CSPRNG.

    Examples
    --------
    >>> a = FeatureHolder(frame_a, id_column="ID")      # doctest: +SKIP
    >>> a.coef_                                        # after Federation.fit  # doctest: +SKIP
    """

    role = "feature_holder"

    def __init__(self, data: pd.DataFrame, *, id_column: str, name: str = "A1",
                 label_column: str | None = None, feature_columns: list[str] | None = None,
                 seed: int | None = None, source: str | None = None,
                 model: ModelPart | None = None) -> None:
        super().__init__(data, id_column=id_column, name=name, label_column=label_column,
                         feature_columns=feature_columns, seed=seed, source=source,
                         model=model)
        self.initial_weights_: np.ndarray | None = None

    def run_training(self, endpoint: Endpoint, config: TrainingConfig, *,
                     label_holder: str = "B", coordinator: str = "C",
                     alignment: str = DEFAULT_ALIGNMENT) -> None:
        """Take part in alignment and training; afterwards ``model_`` is set.

        Parameters
        ----------
        endpoint : Endpoint
            This party's connection to the others.
        config : TrainingConfig
            Must equal the label holder's; checked.
        label_holder, coordinator : str
            Peer names.
        alignment : str
            Alignment method name, the same as the label holder's.
        """
        try:
            self._train(endpoint, config, label_holder, coordinator, alignment)
        finally:
            self._close_engine()

    def _train(self, endpoint: Endpoint, config: TrainingConfig, label_holder: str,
               coordinator: str, alignment: str) -> None:
        public_key, codec = self._receive_public_key(endpoint, coordinator)
        engine = self._engine
        assert engine is not None
        n = public_key.n

        positions = align_as_feature_holder(self.table.ids, endpoint, label_holder,
                                            get_alignment(alignment))
        aligned = self.table.take(positions)
        self.aligned_rows_ = len(aligned)
        self.aligned_ids_ = list(aligned.ids)

        plan = endpoint.receive(label_holder, TrainingPlan)
        self._check_plan(plan, config, label_holder)
        if plan.n_rows != len(aligned) or self.name not in plan.feature_holders:
            raise ValueError(f"party {self.name}: the training plan does not match this "
                             f"party's alignment ({plan.n_rows} rows vs {len(aligned)})")
        self._check_batch_size(len(aligned), config)
        codec.check_capacity(n, len(aligned), party=self.name)

        scaler, x, x_encoded = self._prepare_features(aligned, config, codec)
        d = x.shape[1]
        theta = self._initial_weights(d)
        self.initial_weights_ = theta.copy()

        for epoch in range(1, config.epochs + 1):
            start = endpoint.receive(label_holder, EpochStart, epoch=epoch)
            for number, rows in enumerate(batch_plan(len(aligned), config.batch_size,
                                                     start.batch_seed), start=1):
                m = len(rows)
                at = {"epoch": epoch, "batch": number}
                u = x[rows] @ theta
                u_encoded = codec.encode(u, what="partial scores", party=self.name)
                # L_A = sum u^2 + m*lambda*||theta||^2, at the scale of a product.
                loss_part = sum(v * v for v in u_encoded) + codec.encode(
                    [m * config.l2 * float(theta @ theta)], scale_power=2,
                    what="L2 term", party=self.name)[0]
                endpoint.send(label_holder, EncryptedPartialScores(
                    engine.encrypt(u_encoded), engine.encrypt([loss_part])), **at)

                residual = self._receive(endpoint, label_holder, EncryptedResidual, **at)
                if len(residual.residual) != m:
                    raise ValueError(f"party {self.name}: {label_holder} sent "
                                     f"{len(residual.residual)} residuals for {m} rows")
                gradient = engine.matvec_t([x_encoded[i] for i in rows], residual.residual)
                masks = draw_masks(n, d)
                endpoint.send(coordinator, MaskedGradient(
                    engine.rerandomize(engine.add_plain(gradient, masks))), **at)

                reply = endpoint.receive(coordinator, DecryptedMaskedGradient, **at)
                if len(reply.values) != d:
                    raise ValueError(f"party {self.name}: {coordinator} returned "
                                     f"{len(reply.values)} values for {d} weights")
                summed = codec.decode(codec.to_signed(
                    unmask(reply.values, masks, n), n, what="gradient", party=self.name),
                    scale_power=2)
                theta = theta - config.learning_rate * (summed / m + config.l2 * theta)

            if endpoint.receive(coordinator, EpochEnd, epoch=epoch).stop:
                break

        raw, offset = scaler.raw_weights(theta)
        endpoint.send(label_holder, InterceptOffset(offset))
        self.model_ = ModelPart(self.name, self.role, list(self.table.feature_names),
                                raw.tolist(), None, endpoint.session)

    def serve_prediction(self, endpoint: Endpoint, *, label_holder: str = "B",
                         alignment: str = DEFAULT_ALIGNMENT) -> None:
        """Send the label holder this party's partial scores for the shared rows.

        The rows are this party's current data aligned with the label
        holder's prediction rows; the scores go in the clear, so the label
        holder learns u_A for those rows (PROTOCOL.md, prediction).
        """
        if self.model_ is None:
            raise AttributeError(f"party {self.name} has no model: train or load one first")
        positions = align_as_feature_holder(self.table.ids, endpoint, label_holder,
                                            get_alignment(alignment))
        scores = self.model_.score(self.table.features[positions])
        endpoint.send(label_holder, PartialScores(tuple(scores.tolist())))
