"""Party A: holds IDs and features, never sees labels or anyone's plaintext."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vfl.checkpoint import CheckpointStore
from vfl.crypto import draw_masks, expand_masks
from vfl.crypto.shares import share_scores
from vfl.model import ModelPart
from vfl.optim import Optimizer, learning_rate_at
from vfl.protocol.channel import Endpoint
from vfl.protocol.messages import (
    ConvergenceVote,
    CrossTerm,
    CrossTermRequest,
    DecryptedMaskedGradient,
    EncryptedPartialScores,
    EncryptedResidual,
    EncryptedValidationScores,
    EpochEnd,
    EpochStart,
    InterceptOffset,
    MaskedGradient,
    MaskedPartialScores,
    PartialScores,
    PredictionMaskSeed,
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
                     alignment: str = DEFAULT_ALIGNMENT,
                     checkpoints: CheckpointStore | None = None) -> None:
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
        checkpoints : CheckpointStore, optional
            Save this party's state after every epoch there and resume from
            it with the others (every party must keep checkpoints, or none).
        """
        try:
            self._train(endpoint, config, label_holder, coordinator, alignment, checkpoints)
        finally:
            self._close_engine()

    def _train(self, endpoint: Endpoint, config: TrainingConfig, label_holder: str,
               coordinator: str, alignment: str, checkpoints: CheckpointStore | None) -> None:
        public_key, codec = self._receive_public_key(endpoint, coordinator)
        engine = self._engine
        assert engine is not None
        n = public_key.n

        positions = self._aligned_positions(lambda: align_as_feature_holder(
            self.table.ids, endpoint, label_holder, get_alignment(alignment)))
        aligned = self.table.take(positions)
        self.aligned_rows_ = len(aligned)
        self.aligned_ids_ = list(aligned.ids)
        resumed = self._resume_as_follower(
            endpoint, checkpoints, label_holder, self._identity(
                config, aligned, label_holder=label_holder, coordinator=coordinator,
                alignment=alignment) if checkpoints else {})

        plan = endpoint.receive(label_holder, TrainingPlan)
        self._check_plan(plan, config, label_holder)
        if plan.n_rows != len(aligned) or self.name not in plan.feature_holders:
            raise ValueError(f"party {self.name}: the training plan does not match this "
                             f"party's alignment ({plan.n_rows} rows vs {len(aligned)})")
        # Every feature holder but the last multiplies the sum of the later
        # ones' encrypted scores by its own: the loss's cross terms.
        has_cross_term = plan.feature_holders.index(self.name) < len(plan.feature_holders) - 1
        scaler, x, x_encoded, train, validation = self._prepare(aligned, plan, codec, n)
        d = x.shape[1]
        k = config.residual_factor
        theta = self._initial_weights(d)
        self.initial_weights_ = theta.copy()
        optimizer = Optimizer(config, np.ones(d, dtype=bool))
        best = theta.copy()
        done, stopped = 0, False
        if resumed is not None:
            done, stopped = resumed["epoch"], resumed["stop"]
            theta, best = np.array(resumed["theta"]), np.array(resumed["best"])
            self.initial_weights_ = np.array(resumed["initial_weights"])
            optimizer.restore(resumed["optimizer"])

        def save(epoch: int, stop: bool) -> None:
            if checkpoints is not None:
                checkpoints.save(epoch, {"epoch": epoch, "stop": stop, "theta": theta,
                                         "best": best, "optimizer": optimizer.state(),
                                         "initial_weights": self.initial_weights_})

        if resumed is None:
            save(0, False)

        def send_scores(rows: np.ndarray, message: type, *, penalty: bool, **at: int):
            u_encoded = codec.encode(x[rows] @ theta, what="partial scores", party=self.name)
            loss_part = self._loss_part(u_encoded, theta, config, codec, penalty=penalty)
            endpoint.send(label_holder, message(engine.encrypt(u_encoded),
                                                engine.encrypt([loss_part])), **at)
            return u_encoded

        def answer_cross_term(u_encoded: list[int], **at: int) -> None:
            request = self._receive(endpoint, label_holder, CrossTermRequest, **at)
            if len(request.values) != len(u_encoded):
                raise ValueError(f"party {self.name}: {label_holder} asked for a cross term "
                                 f"over {len(request.values)} rows, not {len(u_encoded)}")
            endpoint.send(label_holder, CrossTerm(engine.rerandomize(
                engine.dot(request.values, [2 * v for v in u_encoded]))), **at)

        last = done if stopped else config.epochs
        for epoch in range(done + 1, last + 1):
            start = endpoint.receive(label_holder, EpochStart, epoch=epoch)
            lr = learning_rate_at(config, epoch)
            before = theta.copy()
            for number, batch in enumerate(batch_plan(len(train), config.batch_size,
                                                      start.batch_seed), start=1):
                rows = train[batch]
                m = len(rows)
                at = {"epoch": epoch, "batch": number}
                u_encoded = send_scores(rows, EncryptedPartialScores, penalty=True, **at)

                residual = self._receive(endpoint, label_holder, EncryptedResidual, **at)
                if len(residual.residual) != m:
                    raise ValueError(f"party {self.name}: {label_holder} sent "
                                     f"{len(residual.residual)} residuals for {m} rows")
                gradient = engine.matvec_t([x_encoded[i] for i in rows], residual.residual)
                masks = draw_masks(n, d)
                endpoint.send(coordinator, MaskedGradient(
                    engine.rerandomize(engine.add_plain(gradient, masks))), **at)
                if has_cross_term:
                    answer_cross_term(u_encoded, **at)

                reply = endpoint.receive(coordinator, DecryptedMaskedGradient, **at)
                grad = self._unmask_gradient(reply, masks, n, codec, k * m, coordinator)
                theta = optimizer.step(theta, grad, lr)

            if len(validation):
                at = {"epoch": epoch, "batch": 0}
                u_encoded = send_scores(validation, EncryptedValidationScores, penalty=False,
                                        **at)
                if has_cross_term:
                    answer_cross_term(u_encoded, **at)
            if config.early_stopping == "weights":
                moved = float(np.linalg.norm(theta - before))
                endpoint.send(coordinator, ConvergenceVote(moved <= config.tol), epoch=epoch)
            end = endpoint.receive(coordinator, EpochEnd, epoch=epoch)
            if end.best:
                best = theta.copy()
            save(epoch, end.stop)
            if end.stop:
                break

        if config.early_stopping == "validation":
            theta = best
        raw, offset = scaler.raw_weights(theta)
        endpoint.send(label_holder, InterceptOffset(offset))
        self.model_ = ModelPart(self.name, self.role, list(self.table.feature_names),
                                raw.tolist(), None, endpoint.session, config.model)

    def serve_prediction(self, endpoint: Endpoint, *, label_holder: str = "B",
                         coordinator: str = "C", deliver_to: str = "B",
                         alignment: str = DEFAULT_ALIGNMENT) -> None:
        """Send this party's partial scores for the rows shared with the label holder.

        The rows are this party's current data aligned with the label
        holder's prediction rows. With ``deliver_to="B"`` the scores go to B
        in the clear, so B learns u_A for those rows (PROTOCOL.md,
        prediction). With ``deliver_to="C"`` they go to C hidden by masks
        only B can remove in the sum, so C learns the total and no party's
        share, and B learns nothing of u_A.
        """
        if self.model_ is None:
            raise AttributeError(f"party {self.name} has no model: train or load one first")
        positions = align_as_feature_holder(self.table.ids, endpoint, label_holder,
                                            get_alignment(alignment))
        scores = self.model_.score(self.table.features[positions])
        if deliver_to == label_holder:
            endpoint.send(label_holder, PartialScores(tuple(scores.tolist())))
            return
        seed = endpoint.receive(label_holder, PredictionMaskSeed).seed
        endpoint.send(coordinator, MaskedPartialScores(share_scores(
            scores, expand_masks(seed, len(scores)), party=self.name)))
