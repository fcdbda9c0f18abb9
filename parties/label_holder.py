"""Party B: holds IDs, features and the label; drives the rounds."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from vfl.checkpoint import CheckpointStore, agree_resume_epoch
from vfl.crypto import EncryptedVector, draw_masks, expand_masks
from vfl.crypto.shares import share_scores
from vfl.errors import ConfigMismatchError
from vfl.model import ModelPart, sigmoid
from vfl.progress import EpochProgress
from vfl.protocol.channel import Endpoint
from vfl.protocol.messages import (
    ConvergenceVote,
    CrossTerm,
    CrossTermRequest,
    DecryptedMaskedGradient,
    EncryptedLoss,
    EncryptedPartialScores,
    EncryptedResidual,
    EncryptedValidationLoss,
    EncryptedValidationScores,
    EpochEnd,
    EpochStart,
    InterceptOffset,
    MaskedGradient,
    MaskedPartialScores,
    PartialScores,
    PredictionMaskSeed,
    ResumeDecision,
    ResumeState,
    TrainingPlan,
)
from vfl.psi import DEFAULT_ALIGNMENT, get_alignment
from vfl.psi.federation import align_as_label_holder
from vfl.optim import Optimizer, learning_rate_at
from vfl.training import TrainingConfig, batch_plan, training_labels

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
        #: One dict per epoch: ``epoch``, ``loss`` and, with a validation split,
        #: ``validation_loss``.
        self.history_: list[dict[str, float]] = []
        self.initial_weights_: np.ndarray | None = None
        self.initial_intercept_: float | None = None
        self.batch_seeds_: list[int] = []
        #: Seed of the validation split of the last training run.
        self.split_seed_: int | None = None
        #: IDs of the rows of the last prediction, in the alignment order.
        self.prediction_ids_: list[str] | None = None
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
        """Loss per epoch: columns ``epoch``, ``loss`` (mean training loss, penalty
        included) and, with a validation split, ``validation_loss``."""
        frame = pd.DataFrame(self.history_)
        return frame if len(frame) else pd.DataFrame(columns=["epoch", "loss"])

    def run_training(self, endpoint: Endpoint, config: TrainingConfig, *,
                     feature_holders: Sequence[str] = ("A1",), coordinator: str = "C",
                     alignment: str = DEFAULT_ALIGNMENT,
                     checkpoints: CheckpointStore | None = None) -> None:
        """Take part in alignment and training; afterwards ``model_`` is set.

        With `checkpoints`, B saves its state after every epoch and, at the
        start, picks the epoch every party resumes after (every party must
        keep checkpoints, or none).
        """
        try:
            self._train(endpoint, config, list(feature_holders), coordinator, alignment,
                        checkpoints)
        finally:
            self._close_engine()

    def _train(self, endpoint: Endpoint, config: TrainingConfig, feature_holders: list[str],
               coordinator: str, alignment: str, checkpoints: CheckpointStore | None) -> None:
        if not feature_holders or len(set(feature_holders)) != len(feature_holders):
            raise ValueError(f"party {self.name}: feature holders must be distinct names, "
                             f"got {feature_holders}")
        public_key, codec = self._receive_public_key(endpoint, coordinator)
        engine = self._engine
        assert engine is not None
        n = public_key.n

        positions = self._aligned_positions(lambda: align_as_label_holder(
            self.table.ids, endpoint, feature_holders, get_alignment(alignment)))
        aligned = self.table.take(positions)
        self.aligned_rows_ = len(aligned)
        self.aligned_ids_ = list(aligned.ids)
        y = training_labels(aligned.label, config, party=self.name, source=aligned.source,
                            column=self.label_column)
        resumed = self._agree_resume(endpoint, checkpoints, self._identity(
            config, aligned, feature_holders=feature_holders, coordinator=coordinator,
            alignment=alignment) if checkpoints else {}, feature_holders, coordinator)
        split_seed = int(self._rng.integers(0, 2**63 - 1))
        if resumed is not None:
            split_seed = resumed["split_seed"]
        if self.reuse_alignment and self.split_seed_ is not None:
            split_seed = self.split_seed_  # the same validation rows as the last run
        plan = TrainingPlan(config, len(aligned), tuple(feature_holders), split_seed)
        self.split_seed_ = plan.split_seed
        for name in (*feature_holders, coordinator):
            endpoint.send(name, plan)
        scaler, x, x_encoded, train, validation = self._prepare(aligned, plan, codec, n)
        d = x.shape[1]
        k = config.residual_factor
        # v = u_B - y for squared loss; the Taylor residual 4d = u - 2y needs 2y.
        label_factor = 2.0 if config.model == "logistic" else 1.0
        theta = self._initial_weights(d)
        bias = self._initial_intercept(y[train])
        self.initial_weights_, self.initial_intercept_ = theta.copy(), bias
        self.history_, self.batch_seeds_ = [], []
        optimizer = Optimizer(config, np.r_[np.ones(d, dtype=bool), False])
        best = (theta.copy(), bias)
        done, stopped = 0, False
        if resumed is not None:
            done, stopped = resumed["epoch"], resumed["stop"]
            theta, bias = np.array(resumed["theta"]), resumed["bias"]
            best = (np.array(resumed["best_theta"]), resumed["best_bias"])
            self.initial_weights_ = np.array(resumed["initial_weights"])
            self.initial_intercept_ = resumed["initial_intercept"]
            self.history_, self.batch_seeds_ = resumed["history"], resumed["batch_seeds"]
            optimizer.restore(resumed["optimizer"])
            # The generator as it was after that epoch: later batch seeds match.
            self._rng.bit_generator.state = resumed["rng"]

        def save(epoch: int, stop: bool) -> None:
            if checkpoints is not None:
                checkpoints.save(epoch, {
                    "epoch": epoch, "stop": stop, "theta": theta, "bias": bias,
                    "best_theta": best[0], "best_bias": best[1],
                    "optimizer": optimizer.state(), "rng": self._rng.bit_generator.state,
                    "history": self.history_, "batch_seeds": self.batch_seeds_,
                    "split_seed": plan.split_seed, "initial_weights": self.initial_weights_,
                    "initial_intercept": self.initial_intercept_})

        if resumed is None:
            save(0, False)

        def encrypted_loss(rows: np.ndarray, message: type, *, penalty: bool, **at: int):
            """Collect every [[u_Ak]]; form [[k d]] and the loss without its cross terms.

            Returns [[sum_k u_Ak]], v encoded (so [[k d]] = [[sum u_Ak]] + v),
            the partial [[S]] and the cross-term requests (recipient, [[U_j]]).
            """
            scores = [self._receive(endpoint, a, message, **at) for a in feature_holders]
            for a, part in zip(feature_holders, scores):
                if len(part.scores) != len(rows) or len(part.loss_part) != 1:
                    raise ValueError(f"party {self.name}: {a} sent {len(part.scores)} "
                                     f"scores for {len(rows)} rows")
            v = x[rows] @ theta + bias - label_factor * y[rows]
            v_encoded = codec.encode(v, what="u_B - y", party=self.name)
            # Suffix sums [[U_j]] = [[sum_{k>j} u_Ak]]: A_j returns [[2 u_Aj . U_j]].
            suffix = scores[-1].scores
            requests = []
            for j in range(len(feature_holders) - 2, -1, -1):
                requests.append((feature_holders[j], suffix))
                suffix = engine.add(suffix, scores[j].scores)
            u_a = suffix  # now the sum over every feature holder
            plain = self._loss_part(v_encoded, theta, config, codec, penalty=penalty)
            loss = engine.add_plain(engine.dot(u_a, [2 * e for e in v_encoded]), [plain])
            for part in scores:
                loss = engine.add(loss, part.loss_part)
            return u_a, v_encoded, loss, requests

        def ask_cross_terms(requests, **at: int) -> None:
            for name, values in requests:
                endpoint.send(name, CrossTermRequest(engine.rerandomize(values)), **at)

        def add_cross_terms(loss: EncryptedVector, requests, **at: int) -> EncryptedVector:
            for name, _ in requests:
                term = self._receive(endpoint, name, CrossTerm, **at)
                if len(term.value) != 1:
                    raise ValueError(f"party {self.name}: {name} sent a cross term of "
                                     f"{len(term.value)} ciphertexts, not 1")
                loss = engine.add(loss, term.value)
            return engine.rerandomize(loss)

        last = done if stopped else config.epochs
        for epoch in range(done + 1, last + 1):
            seed = int(self._rng.integers(0, 2**63 - 1))
            self.batch_seeds_.append(seed)
            for a in feature_holders:
                endpoint.send(a, EpochStart(seed), epoch=epoch)
            lr = learning_rate_at(config, epoch)
            before = np.r_[theta, bias]
            batches = batch_plan(len(train), config.batch_size, seed)
            for number, batch in enumerate(batches, start=1):
                rows = train[batch]
                m = len(rows)
                at = {"epoch": epoch, "batch": number}
                u_a, v_encoded, loss, requests = encrypted_loss(
                    rows, EncryptedPartialScores, penalty=True, **at)
                residual = engine.add_plain(u_a, v_encoded)
                # Without re-randomisation A, who made [[u_A]], could divide it
                # out of [[d]] and read u_B - y, hence y. Each A gets its own.
                for a in feature_holders:
                    endpoint.send(a, EncryptedResidual(engine.rerandomize(residual)), **at)
                ask_cross_terms(requests, **at)

                # sum d carries one factor 2^f, X^T d two: lift the sum to the
                # product scale so the whole vector decodes alike.
                residual_sum = engine.mul_plain(engine.sum(residual), [1 << codec.frac_bits])
                gradient = EncryptedVector.concat(
                    ([engine.matvec_t([x_encoded[i] for i in rows], residual)] if d else [])
                    + [residual_sum])
                masks = draw_masks(n, d + 1)
                endpoint.send(coordinator, MaskedGradient(
                    engine.rerandomize(engine.add_plain(gradient, masks))), **at)
                endpoint.send(coordinator, EncryptedLoss(add_cross_terms(loss, requests, **at),
                                                         m), **at)
                reply = endpoint.receive(coordinator, DecryptedMaskedGradient, **at)
                grad = self._unmask_gradient(reply, masks, n, codec, k * m, coordinator)
                params = optimizer.step(np.r_[theta, bias], grad, lr)
                theta, bias = params[:d], float(params[d])
                if self.progress:
                    self.progress.batch(epoch, number, len(batches))

            if len(validation):
                at = {"epoch": epoch, "batch": 0}
                *_, loss, requests = encrypted_loss(validation, EncryptedValidationScores,
                                                    penalty=False, **at)
                ask_cross_terms(requests, **at)
                endpoint.send(coordinator, EncryptedValidationLoss(
                    add_cross_terms(loss, requests, **at), len(validation)), **at)
            if config.early_stopping == "weights":
                moved = float(np.linalg.norm(np.r_[theta, bias] - before))
                endpoint.send(coordinator, ConvergenceVote(moved <= config.tol), epoch=epoch)
            end = endpoint.receive(coordinator, EpochEnd, epoch=epoch)
            if end.loss is None:
                raise ConfigMismatchError(f"{coordinator} did not send the epoch loss",
                                          party=self.name)
            record = {"epoch": epoch, "loss": end.loss}
            if len(validation):
                record["validation_loss"] = end.validation_loss
            self.history_.append(record)
            if end.best:
                best = (theta.copy(), bias)
            if self.progress:
                self.progress.epoch(epoch, end.loss)
            if self.on_epoch:
                self.on_epoch(epoch, end.loss)
            save(epoch, end.stop)
            if end.stop:
                break

        if config.early_stopping == "validation":
            theta, bias = best
        offsets = sum(endpoint.receive(a, InterceptOffset).offset for a in feature_holders)
        raw, own_offset = scaler.raw_weights(theta)
        self.model_ = ModelPart(self.name, self.role, list(self.table.feature_names),
                                raw.tolist(), bias + own_offset + offsets, endpoint.session,
                                config.model)

    def _initial_intercept(self, y_train: np.ndarray) -> float:
        """A random secret intercept around the labels' mean.

        Secret and random, it hides sum(y^2) from the first loss C sees
        (PROTOCOL.md, what each party learns).
        """
        return float(y_train.mean() + y_train.std() * self._rng.normal())

    def _agree_resume(self, endpoint: Endpoint, checkpoints: CheckpointStore | None,
                      identity: dict, feature_holders: list[str], coordinator: str
                      ) -> dict | None:
        """Collect every party's checkpointed epochs, pick the common one, announce it.

        Returns B's own state after that epoch (None: a fresh start, or no
        checkpoints at all, in which case nothing is exchanged).
        """
        if checkpoints is None:
            return None
        holdings = {self.name: checkpoints.scan(identity)}
        for name in (*feature_holders, coordinator):
            holdings[name] = list(endpoint.receive(name, ResumeState).epochs)
        epoch = agree_resume_epoch(holdings, party=self.name)
        for name in (*feature_holders, coordinator):
            endpoint.send(name, ResumeDecision(epoch))
        return checkpoints.load(epoch)

    def predict_rows(self, endpoint: Endpoint, *, feature_holders: Sequence[str] = ("A1",),
                     coordinator: str = "C", deliver_to: str = "B",
                     alignment: str = DEFAULT_ALIGNMENT) -> pd.Series | None:
        """Federated prediction for this party's current rows shared with every A.

        Parameters
        ----------
        deliver_to : str
            This party's name (default): the feature holders' partial scores
            come here and the prediction is returned. The coordinator's name:
            every party sends masked shares to C, which alone learns the
            predictions; nothing is returned here.

        Returns
        -------
        pandas.Series or None
            Predictions (P(class 1) for logistic models) indexed by ID, in
            this party's row order; None when delivered to C.
        """
        if self.model_ is None:
            raise AttributeError(f"party {self.name} has no model: train or load one first")
        if deliver_to not in (self.name, coordinator):
            raise ValueError(f"party {self.name}: predictions go to {self.name} or "
                             f"{coordinator}, not {deliver_to!r}")
        positions = align_as_label_holder(self.table.ids, endpoint, list(feature_holders),
                                          get_alignment(alignment))
        self.prediction_ids_ = [self.table.ids[i] for i in positions]
        total = self.model_.score(self.table.features[positions])
        if deliver_to == coordinator:
            masks = np.zeros(len(positions), dtype=object)
            for name in feature_holders:
                seed = secrets.token_bytes(32)
                endpoint.send(name, PredictionMaskSeed(seed))
                masks = masks + np.array(expand_masks(seed, len(positions)), dtype=object)
            endpoint.send(coordinator, MaskedPartialScores(
                share_scores(total, list(masks), subtract=True, party=self.name),
                self.model_.model))
            return None
        for name in feature_holders:
            scores = endpoint.receive(name, PartialScores).scores
            if len(scores) != len(positions):
                raise ValueError(f"party {self.name}: {name} sent {len(scores)} scores "
                                 f"for {len(positions)} rows")
            total = total + np.asarray(scores)
        if self.model_.model == "logistic":
            total = sigmoid(total)
        order = np.argsort(positions)
        return pd.Series(total[order], index=pd.Index([self.table.ids[i] for i in
                                                       positions[order]], name=self.id_column),
                         name=self.label_column)

