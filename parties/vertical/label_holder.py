"""Party B: holds IDs, features and the label; drives the rounds.

The steps follow ``PROTOCOL.md``, stage 2 (numbers in the method docstrings
refer to its steps).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from parties.vertical.data_party import DataParty
from parties.vertical.messages import (
    ConvergenceVote,
    CrossTerm,
    CrossTermRequest,
    DecryptedMaskedGradient,
    EncryptedGram,
    EncryptedGramPart,
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
    TrainingPlan,
)
from parties.vertical.state import EpochRecord, LabelHolderState
from vfl.crypto import EncryptedVector, draw_masks, expand_masks
from vfl.crypto.shares import share_scores
from vfl.errors import MalformedMessageError, TrainingDivergedError
from vfl.lbfgs import LbfgsBlock
from vfl.model import ModelPart, sigmoid
from vfl.optim import Optimizer, OptimizerState, learning_rate_at
from vfl.progress import EpochProgress
from vfl.protocol.channel import Endpoint
from vfl.psi import DEFAULT_ALIGNMENT, get_alignment
from vfl.psi.federation import align_as_label_holder
from vfl.reference import train_centralized
from vfl.runtime.checkpoint import CheckpointStore
from vfl.runtime.role import expect_length
from vfl.runtime.session import Session
from vfl.runtime.state import GeneratorState
from vfl.training import TrainingConfig, batch_plan, training_labels, validation_split

__all__ = ["DIVERGENCE_FACTOR", "LabelHolder"]

#: A loss this many times the first epoch's means the run diverged.
DIVERGENCE_FACTOR = 1e6


@dataclass(frozen=True)
class _Scores:
    """What B holds once every feature holder's encrypted scores arrived (steps 2-3).

    Attributes
    ----------
    u_a : EncryptedVector
        [[sum_k u_Ak]].
    v : list of int
        u_B - y (or u_B - 2y, logistic) encoded: [[k d]] = [[u_a]] + v.
    loss : EncryptedVector
        [[S]] without the feature holders' cross terms.
    cross_requests : list of (str, EncryptedVector)
        Who is asked for a cross term, over which [[U_j]].
    """

    u_a: EncryptedVector
    v: list[int]
    loss: EncryptedVector
    cross_requests: list[tuple[str, EncryptedVector]]


class LabelHolder(DataParty[LabelHolderState]):
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
    split_seed : int, optional
        Seed of the validation split; default drawn from the secret stream.
        Runs meant to hold out the same rows (contribution coalitions) pass
        the first run's :attr:`split_seed_`.
    """

    role = "label_holder"
    state_type = LabelHolderState
    is_label_holder = True

    def __init__(self, data: pd.DataFrame, *, id_column: str, label_column: str,
                 name: str = "B", feature_columns: list[str] | None = None,
                 seed: int | None = None, source: str | None = None,
                 model: ModelPart | None = None, split_seed: int | None = None) -> None:
        super().__init__(data, id_column=id_column, name=name, label_column=label_column,
                         feature_columns=feature_columns, seed=seed, source=source,
                         model=model)
        self.split_seed = split_seed
        #: IDs of the rows of the last prediction, in the alignment order.
        self.prediction_ids_: list[str] | None = None
        self.progress: EpochProgress | None = None
        #: Called as ``on_epoch(epoch, loss)`` after each epoch (e.g. live plots).
        self.on_epoch: Callable[[int, float], None] | None = None
        self.feature_holders: list[str] = ["A1"]
        self.coordinator = "C"
        self._y = np.zeros(0)
        self._split_seed = 0
        self._optimizer: Optimizer | None = None
        self._before = np.zeros(0)
        self._batches: list[np.ndarray] = []

    # --- learned attributes -----------------------------------------------------------

    @property
    def label_name(self) -> str:
        """The label column (a label holder always has one)."""
        assert self.label_column is not None
        return self.label_column

    @property
    def intercept_(self) -> float:
        """The model's intercept, raw units (all feature holders' offsets folded in)."""
        if self.model_ is None or self.model_.intercept is None:
            raise AttributeError(f"party {self.name} has not been trained or loaded yet")
        return self.model_.intercept

    @property
    def history_(self) -> list[dict[str, float]]:
        """One dict per epoch: ``epoch``, ``loss`` and, with a validation split,
        ``validation_loss``."""
        return [] if self.state is None else [r.as_dict() for r in self.state.history]

    @property
    def history(self) -> pd.DataFrame:
        """Loss per epoch: columns ``epoch``, ``loss`` (mean training loss, penalty
        included) and, with a validation split, ``validation_loss``."""
        frame = pd.DataFrame(self.history_)
        return frame if len(frame) else pd.DataFrame(columns=["epoch", "loss"])

    @property
    def initial_weights_(self) -> np.ndarray | None:
        """B's secret random start (standardised units) in the last run."""
        return None if self.state is None else self.state.initial_weights

    @property
    def initial_intercept_(self) -> float | None:
        return None if self.state is None else self.state.initial_intercept

    @property
    def batch_seeds_(self) -> list[int]:
        """The batch seed of every epoch of the last run."""
        return [] if self.state is None else list(self.state.batch_seeds)

    @property
    def split_seed_(self) -> int | None:
        """Seed of the validation split of the last run."""
        return None if self.state is None else self.state.split_seed

    # --- running ----------------------------------------------------------------------

    def run_training(self, endpoint: Endpoint, config: TrainingConfig, *,
                     feature_holders: Sequence[str] = ("A1",), coordinator: str = "C",
                     alignment: str = DEFAULT_ALIGNMENT,
                     checkpoints: CheckpointStore[LabelHolderState] | None = None) -> None:
        """Take part in alignment and training; afterwards ``model_`` is set.

        With `checkpoints`, B saves its state after every epoch and, at the
        start, picks the epoch every party resumes after (every party must
        keep checkpoints, or none).
        """
        feature_holders = list(feature_holders)
        if not feature_holders or len(set(feature_holders)) != len(feature_holders):
            raise ValueError(f"party {self.name}: feature holders must be distinct names, "
                             f"got {feature_holders}")
        self.feature_holders, self.coordinator = feature_holders, coordinator
        self._begin_run(config, alignment)
        Session(self, endpoint, checkpoints=checkpoints, progress=self.progress,
                on_epoch=self.on_epoch).run()

    @property
    def leader(self) -> str:
        return self.name

    def followers(self) -> list[str]:
        return [*self.feature_holders, self.coordinator]

    def open(self, endpoint: Endpoint) -> None:
        """Step 1: C's public key."""
        self._receive_codec(endpoint, self.coordinator)

    def align(self, endpoint: Endpoint) -> None:
        """Stage 1: private alignment with every feature holder; the labels of those rows."""
        positions = align_as_label_holder(self.table.ids, endpoint, self.feature_holders,
                                          get_alignment(self._alignment))
        self._take_aligned(positions)
        self._y = training_labels(self.aligned.label, self._config, party=self.name,
                                  source=self.aligned.source, column=self.label_column)

    def identity(self) -> dict[str, Any]:
        return self._data_identity(feature_holders=self.feature_holders,
                                   coordinator=self.coordinator)

    def agree_plan(self, endpoint: Endpoint, resumed: LabelHolderState | None) -> None:
        """B fixes the validation split and tells every party the plan."""
        if resumed is not None:
            split_seed = resumed.split_seed
            if resumed.rng is not None:
                # The seeded stream as it was after that epoch: later batch seeds match.
                self._public_rng = resumed.rng.generator()
        elif self.split_seed is not None:
            split_seed = self.split_seed
        else:
            split_seed = self._public_seed()
        self._split_seed = split_seed
        plan = TrainingPlan(self._config, len(self.aligned), tuple(self.feature_holders),
                            split_seed)
        for name in (*self.feature_holders, self.coordinator):
            endpoint.send(name, plan)
        self._prepare(plan)

    def fresh_state(self) -> LabelHolderState:
        d = self.rows.n_features
        theta = self._initial_weights(d)
        bias = self.draw_initial_intercept(self._y[self.rows.train])
        return LabelHolderState(
            epoch=0, stopped=False, theta=theta, bias=bias, best_theta=theta.copy(),
            best_bias=bias, initial_weights=theta.copy(), initial_intercept=bias,
            split_seed=self._split_seed, batch_seeds=[], history=[],
            optimizer=OptimizerState.zeros(d + 1), rng=self._public_stream_state(),
            search=LbfgsBlock.empty(d + 1) if self._config.optimizer == "lbfgs" else None)

    def start_epoch(self, endpoint: Endpoint, epoch: int) -> int:
        """B draws the epoch's batch seed and sends it to every feature holder."""
        state = self.current
        seed = self._public_seed()
        state.batch_seeds.append(seed)
        for a in self.feature_holders:
            endpoint.send(a, EpochStart(seed), epoch=epoch)
        if self._config.optimizer != "lbfgs":
            self._optimizer = Optimizer(self._config, self._penalized(), state.optimizer)
        self._before = np.r_[state.theta, state.bias]
        self._batches = batch_plan(len(self.rows.train), self._config.batch_size, seed)
        return len(self._batches)

    def batch_step(self, endpoint: Endpoint, epoch: int, batch: int) -> None:
        """Steps 3-7 for one batch: [[d]] to every A, gradients and loss to C, update.

        Under L-BFGS the epoch's one batch is an iteration (docs/lbfgs.md).
        """
        if self._config.optimizer == "lbfgs":
            self._lbfgs_iteration(endpoint, epoch)
            return
        rows = self.rows.train[self._batches[batch - 1]]
        params = self._params()
        grad = self._gradient_pass(endpoint, rows, params, epoch=epoch, batch=batch)
        assert self._optimizer is not None
        self._set_params(self._optimizer.step(params, grad,
                                              learning_rate_at(self._config, epoch)))

    def _gradient_pass(self, endpoint: Endpoint, rows: np.ndarray, params: np.ndarray,
                       **at: int) -> np.ndarray:
        """One pass of steps 3-7 at `params` (weights, then the intercept); the data
        loss's gradient."""
        scores = self._collect_scores(endpoint, rows, EncryptedPartialScores, params,
                                      penalty=True, **at)
        residual = self.engine.add_plain(scores.u_a, scores.v)
        self._send_residual(endpoint, residual, **at)
        self._ask_cross_terms(endpoint, scores, **at)
        masks = self._send_masked_gradient(endpoint, rows, residual, **at)
        loss = self._add_cross_terms(endpoint, scores, **at)
        endpoint.send(self.coordinator, EncryptedLoss(loss, len(rows)), **at)
        reply = endpoint.receive(self.coordinator, DecryptedMaskedGradient, **at)
        return self._unmask_gradient(reply, masks, self._config.residual_factor * len(rows),
                                     self.coordinator)

    def validation_step(self, endpoint: Endpoint, epoch: int) -> None:
        """The held-out rows' encrypted loss (no penalty) to C."""
        validation = self.rows.validation
        if not len(validation):
            return
        at = {"epoch": epoch, "batch": 0}
        scores = self._collect_scores(endpoint, validation, EncryptedValidationScores, None,
                                      penalty=False, **at)
        self._ask_cross_terms(endpoint, scores, **at)
        endpoint.send(self.coordinator, EncryptedValidationLoss(
            self._add_cross_terms(endpoint, scores, **at), len(validation)), **at)

    def end_epoch(self, endpoint: Endpoint, epoch: int) -> float:
        """A yes/no convergence vote if asked for; C's decision and the epoch's losses."""
        state = self.current
        if self._config.early_stopping == "weights":
            moved = float(np.linalg.norm(np.r_[state.theta, state.bias] - self._before))
            endpoint.send(self.coordinator, ConvergenceVote(moved <= self._config.tol),
                          epoch=epoch)
        end = endpoint.receive(self.coordinator, EpochEnd, epoch=epoch)
        if end.loss is None:
            raise MalformedMessageError(f"{self.coordinator} sent EpochEnd without the "
                                        "epoch's loss, which the label holder is owed",
                                        party=self.name)
        if len(self.rows.validation) and end.validation_loss is None:
            raise MalformedMessageError(f"{self.coordinator} sent EpochEnd without the "
                                        "validation loss", party=self.name)
        state.history.append(EpochRecord(epoch, end.loss, end.validation_loss
                                         if len(self.rows.validation) else None))
        self._refuse_divergence(state.history)
        if end.best:
            state.best_theta, state.best_bias = state.theta.copy(), state.bias
        state.epoch, state.stopped = epoch, end.stop
        state.rng = self._public_stream_state()
        return end.loss

    def finish(self, endpoint: Endpoint) -> None:
        """The intercept folds in every party's standardisation offset."""
        state = self.current
        if self._config.early_stopping == "validation":
            theta, bias = state.best_theta, state.best_bias
        else:
            theta, bias = state.theta, state.bias
        offsets = sum(endpoint.receive(a, InterceptOffset).offset for a in self.feature_holders)
        raw, own_offset = self.rows.scaler.raw_weights(theta)
        self.model_ = ModelPart(self.name, self.role, list(self.table.feature_names),
                                raw.tolist(), bias + own_offset + offsets, endpoint.session,
                                self._config.model, [*self.feature_holders, self.name])

    def train_alone(self, config: TrainingConfig) -> pd.DataFrame:
        """Train on B's own rows and columns alone, by the federation's rule; no message.

        B's secrets are drawn from its own stream as in a federated run. For
        coalitions without any feature holder (contributions): such a model
        involves nobody else's data, so there is nothing to protect.

        Returns
        -------
        pandas.DataFrame
            Columns ``loss`` and ``validation_loss`` per epoch.
        """
        self._begin_run(config, self._alignment)
        table = self.table
        assert table.label is not None  # a label holder's table always has one
        y = training_labels(table.label, config, party=self.name, source=table.source,
                            column=self.label_column)
        d = table.features.shape[1]
        initial = self._initial_weights(d)
        seeds = [self._public_seed() for _ in range(config.epochs)]
        split_seed = self.split_seed if self.split_seed is not None else self._public_seed()
        train, _ = validation_split(len(y), config.validation_fraction, split_seed)
        result = train_centralized(table.features, table.label, config,
                                   initial_weights=initial,
                                   initial_intercept=self.draw_initial_intercept(y[train]),
                                   batch_seeds=seeds, split_seed=split_seed, blocks=[d])
        return pd.DataFrame({"loss": result.history,
                             "validation_loss": result.validation_history})

    # --- pieces of the steps ----------------------------------------------------------

    def _refuse_divergence(self, history: list[EpochRecord]) -> None:
        """Stop a run whose loss left every sensible range, before it saves anything."""
        first, last = history[0].loss, history[-1].loss
        if not np.isfinite(last) or (first > 0 and last > DIVERGENCE_FACTOR * first):
            raise TrainingDivergedError(
                f"training diverged: the loss went from {first:.6g} (epoch 1) to {last:.6g} "
                f"(epoch {history[-1].epoch}); lower the learning rate (now "
                f"{self._config.learning_rate:g}) or choose an adaptive optimiser",
                party=self.name)

    def _public_stream_state(self) -> GeneratorState | None:
        """What a checkpoint keeps of the sent seeds' stream (None: they come from the OS)."""
        return None if self._public_rng is None else GeneratorState.of(self._public_rng)

    def draw_initial_intercept(self, y_train: np.ndarray) -> float:
        """A random secret intercept around the labels' mean, from this run's stream.

        Secret and random, it hides sum(y^2) from the first loss C sees
        (PROTOCOL.md, what each party learns).
        """
        return float(y_train.mean() + y_train.std() * self._secret_rng.normal())

    def _collect_scores(self, endpoint: Endpoint, rows: np.ndarray,
                        message: type[EncryptedPartialScores] | type[EncryptedValidationScores],
                        params: np.ndarray | None = None, *, penalty: bool,
                        **at: int) -> _Scores:
        """Steps 2-3: every [[u_Ak]] and [[L_Ak]]; v = u_B - y; [[S]] without cross terms.

        At `params` (weights, then the intercept), by default the current ones.
        """
        engine = self.engine
        params = self._params() if params is None else params
        theta, bias = params[:-1], float(params[-1])
        parts = [self.receive(endpoint, a, message, **at) for a in self.feature_holders]
        for a, part in zip(self.feature_holders, parts):
            expect_length(part.scores, len(rows), sender=a, message=message.__name__,
                          what="scores", party=self.name)
            expect_length(part.loss_part, 1, sender=a, message=message.__name__,
                          what="loss ciphertexts", party=self.name)
        # v = u_B - y for squared loss; the Taylor residual 4d = u - 2y needs 2y.
        label_factor = 2.0 if self._config.model == "logistic" else 1.0
        v = self.rows.x[rows] @ theta + bias - label_factor * self._y[rows]
        v_encoded = self._encode_scores(v, "u_B - y", at["epoch"])
        # Suffix sums [[U_j]] = [[sum_{k>j} u_Ak]]: A_j returns [[2 u_Aj . U_j]].
        suffix = parts[-1].scores
        requests = []
        for j in range(len(self.feature_holders) - 2, -1, -1):
            requests.append((self.feature_holders[j], suffix))
            suffix = engine.add(suffix, parts[j].scores)
        plain = self._loss_part(v_encoded, theta, penalty=penalty)
        loss = engine.add_plain(engine.dot(suffix, [2 * e for e in v_encoded]), [plain])
        for part in parts:
            loss = engine.add(loss, part.loss_part)
        return _Scores(suffix, v_encoded, loss, requests)

    def _params(self) -> np.ndarray:
        state = self.current
        return np.r_[state.theta, state.bias]

    def _set_params(self, params: np.ndarray) -> None:
        state = self.current
        state.theta, state.bias = params[:-1], float(params[-1])

    def _penalized(self) -> np.ndarray:
        """Every weight carries the penalty, the intercept (last) never."""
        return np.r_[np.ones(self.rows.n_features, dtype=bool), False]

    def _send_gram(self, endpoint: Endpoint, encoded: list[int], **at: int) -> None:
        """L-BFGS: every feature holder's [[Gram entries]] plus B's own, re-randomised, to C.

        B cannot read the feature holders' shares (C's key); C decrypts only the sum.
        """
        total: EncryptedVector | None = None
        for a in self.feature_holders:
            part = self.receive(endpoint, a, EncryptedGramPart, **at).values
            expect_length(part, len(encoded), sender=a, message="EncryptedGramPart",
                          what="entries", party=self.name)
            total = part if total is None else self.engine.add(total, part)
        assert total is not None  # a run has at least one feature holder
        endpoint.send(self.coordinator, EncryptedGram(
            self.engine.rerandomize(self.engine.add_plain(total, encoded))), **at)

    def _send_residual(self, endpoint: Endpoint, residual: EncryptedVector, **at: int) -> None:
        """Steps 3-4: [[d]] to every feature holder, each re-randomised on its own.

        Without re-randomisation A, who made [[u_A]], could divide it out of
        [[d]] and read u_B - y, hence y.
        """
        for a in self.feature_holders:
            endpoint.send(a, EncryptedResidual(self.engine.rerandomize(residual)), **at)

    def _send_masked_gradient(self, endpoint: Endpoint, rows: np.ndarray,
                              residual: EncryptedVector, **at: int) -> list[int]:
        """Step 5: [[X_B^T d + R]] and [[sum d + R']] to C."""
        engine, d = self.engine, self.rows.n_features
        # sum d carries one factor 2^f, X^T d two: lift the sum to the
        # product scale so the whole vector decodes alike.
        residual_sum = engine.mul_plain(engine.sum(residual), [1 << self._codec.frac_bits])
        gradient = EncryptedVector.concat(
            ([engine.matvec_t([self.rows.encoded[i] for i in rows], residual)] if d else [])
            + [residual_sum])
        masks = draw_masks(engine.n, d + 1)
        endpoint.send(self.coordinator, MaskedGradient(
            engine.rerandomize(engine.add_plain(gradient, masks))), **at)
        return masks

    def _ask_cross_terms(self, endpoint: Endpoint, scores: _Scores, **at: int) -> None:
        for name, values in scores.cross_requests:
            endpoint.send(name, CrossTermRequest(self.engine.rerandomize(values)), **at)

    def _add_cross_terms(self, endpoint: Endpoint, scores: _Scores,
                         **at: int) -> EncryptedVector:
        """Step 3: [[S]] with every cross term, re-randomised for C."""
        loss = scores.loss
        for name, _ in scores.cross_requests:
            term = self.receive(endpoint, name, CrossTerm, **at)
            expect_length(term.value, 1, sender=name, message="CrossTerm",
                          what="ciphertexts", party=self.name)
            loss = self.engine.add(loss, term.value)
        return self.engine.rerandomize(loss)

    # --- prediction -------------------------------------------------------------------

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
            expect_length(scores, len(positions), sender=name, message="PartialScores",
                          what="scores", party=self.name)
            total = total + np.asarray(scores)
        if self.model_.model == "logistic":
            total = sigmoid(total)
        order = np.argsort(positions)
        return pd.Series(total[order], index=pd.Index([self.table.ids[i] for i in
                                                       positions[order]], name=self.id_column),
                         name=self.label_column)
