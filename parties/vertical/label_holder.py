"""Party B: holds IDs, features and the label; drives the rounds.

The steps follow ``PROTOCOL.md``, stage 2 (numbers in the method docstrings
refer to its steps).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from parties.vertical.data_party import DataParty
from parties.vertical.messages import (
    ChainedExpScores,
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
    ExtendExpScores,
    InterceptOffset,
    MaskedGradient,
    MaskedPartialScores,
    PartialScores,
    PredictionMaskSeed,
    TrainingPlan,
    WeightedLossTerm,
)
from parties.vertical.state import EpochRecord, LabelHolderState
from vfl.crypto import EncryptedVector, draw_masks, expand_masks
from vfl.crypto.shares import share_scores
from vfl.errors import (
    ConfigError,
    InputDataError,
    MalformedMessageError,
    MissingColumnError,
    TrainingDivergedError,
)
from vfl.lbfgs import LbfgsBlock
from vfl.model import ModelPart, mean_prediction
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
from vfl.training import (
    CLASS_WEIGHTS,
    TrainingConfig,
    balanced_class_weights,
    batch_plan,
    batch_weights,
    check_exposure,
    check_sample_weights,
    training_labels,
    validation_split,
)

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
        u_B - y (or u_B - 2y, logistic) encoded: [[k d]] = [[u_a]] + v (empty
        for Poisson).
    loss : EncryptedVector
        [[S]] without the feature holders' cross terms (or, weighted, without
        their loss terms and sum r v).
    cross_requests : list of (str, EncryptedVector)
        Who is asked for a cross term, over which [[U_j]].
    residual : EncryptedVector
        [[r]]: [[k d]], weighted [[k w' d]], Poisson [[w' (mu - y)]]
        (``parties.vertical.scales`` gives its scale).
    """

    u_a: EncryptedVector
    v: list[int]
    loss: EncryptedVector
    cross_requests: list[tuple[str, EncryptedVector]]
    residual: EncryptedVector


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
    weight_column : str, optional
        A column of non-negative sample weights (not a feature): every loss
        and gradient becomes the weighted mean over its batch. Only B knows
        the weights (``docs/poisson.md``).
    class_weight : {"balanced"}, optional
        Logistic regression: weight each row by n / (2 n_c) (n training
        rows, n_c of them in its class), times its sample weight if any.
    exposure_column : str, optional
        Poisson regression: a column of positive exposures (time at risk,
        population); log(exposure) is the offset of the score, and the
        predicted count is exposure * exp(score).
    """

    role = "label_holder"
    state_type = LabelHolderState
    is_label_holder = True

    def __init__(self, data: pd.DataFrame, *, id_column: str, label_column: str,
                 name: str = "B", feature_columns: list[str] | None = None,
                 seed: int | None = None, source: str | None = None,
                 model: ModelPart | None = None, split_seed: int | None = None,
                 weight_column: str | None = None, class_weight: str | None = None,
                 exposure_column: str | None = None) -> None:
        where = source or "the DataFrame"
        extra = {"weight": weight_column, "exposure": exposure_column}
        for kind, column in extra.items():
            if column is None:
                continue
            if isinstance(data, pd.DataFrame) and column not in [str(c) for c in data.columns]:
                raise MissingColumnError(f"{where} has no {kind} column {column!r} (columns: "
                                         f"{', '.join(map(str, data.columns))}); pass the right "
                                         f"--{kind}-column", party=name)
            if column in (id_column, label_column) or (feature_columns is not None
                                                       and column in feature_columns):
                raise InputDataError(f"the {kind} column {column!r} of {where} cannot also be "
                                     "the ID, the label or a feature", party=name)
        if class_weight is not None and class_weight not in CLASS_WEIGHTS:
            raise ConfigError(f"class_weight must be one of {', '.join(CLASS_WEIGHTS)} or "
                              f"None, got {class_weight!r}", party=name)
        if feature_columns is None and isinstance(data, pd.DataFrame) and any(extra.values()):
            # The weight and exposure columns are B's row data, never features.
            feature_columns = [str(c) for c in data.columns
                               if str(c) not in (id_column, label_column, *extra.values())]
        super().__init__(data, id_column=id_column, name=name, label_column=label_column,
                         feature_columns=feature_columns, seed=seed, source=source,
                         model=model)
        self.split_seed = split_seed
        self.weight_column, self.class_weight = weight_column, class_weight
        self.exposure_column = exposure_column
        named = {str(c): c for c in data.columns}
        #: Sample weights and exposures of every row of the table (None: not given).
        self._sample_weights = None if weight_column is None else check_sample_weights(
            data[named[weight_column]].to_numpy(), party=name, source=source,
            column=weight_column)
        self._exposure = None if exposure_column is None else check_exposure(
            data[named[exposure_column]].to_numpy(), party=name, source=source,
            column=exposure_column)
        #: This run's raw row weights (aligned order; None: unweighted) and offsets.
        self._row_weights: np.ndarray | None = None
        self._offset: np.ndarray | None = None
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
        identity = self._data_identity(feature_holders=self.feature_holders,
                                       coordinator=self.coordinator)
        # A checkpoint is of these weights and exposures too (B's own rows).
        rows = self._aligned_positions
        for key, values in (("weights", self._sample_weights), ("exposure", self._exposure)):
            if values is not None:
                identity[f"{key}_fingerprint"] = hashlib.sha256(
                    np.ascontiguousarray(values[rows], dtype="<f8").tobytes()).hexdigest()
        if self.class_weight is not None:
            identity["class_weight"] = self.class_weight
        return identity

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
        self._check_row_options()
        plan = TrainingPlan(self._config, len(self.aligned), tuple(self.feature_holders),
                            split_seed, weighted=self.weighted)
        for name in (*self.feature_holders, self.coordinator):
            endpoint.send(name, plan)
        self._prepare(plan)
        self._row_weights, self._offset = self._aligned_row_data(self._aligned_positions,
                                                                 self._y, self.rows.train)

    @property
    def weighted(self) -> bool:
        """Whether this party weights its rows (a weight column or balanced classes)."""
        return self._sample_weights is not None or self.class_weight is not None

    def _check_row_options(self) -> None:
        """Refuse weights and exposures the configured model cannot use."""
        model = self._config.model
        if self.class_weight is not None and model != "logistic":
            raise ConfigError(f"class_weight={self.class_weight!r} weights the two classes of "
                              f"logistic regression; this run trains {model!r}: drop it or "
                              "use a weight column", party=self.name)
        if self.exposure_column is not None and model != "poisson":
            raise ConfigError(f"an exposure column ({self.exposure_column!r}) is the offset of "
                              f"Poisson regression; this run trains {model!r}: drop it or use "
                              "model='poisson'", party=self.name)

    def _aligned_row_data(self, positions: np.ndarray, y: np.ndarray, train: np.ndarray
                          ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(raw row weights, log-exposure offsets) of the rows at `positions` (None: none).

        Balanced class weights count the training rows `train` (positions into `y`).
        """
        weights = None
        if self.weighted:
            weights = (np.ones(len(positions)) if self._sample_weights is None
                       else self._sample_weights[positions])
            if self.class_weight == "balanced":
                weights = weights * balanced_class_weights(y, train)
        offset = None if self._exposure is None else np.log(self._exposure[positions])
        return weights, offset

    def _row_columns(self, positions: np.ndarray) -> tuple[dict[str, np.ndarray],
                                                           dict[str, Any]]:
        columns: dict[str, np.ndarray] = {}
        if self.weight_column is not None and self._sample_weights is not None:
            columns[self.weight_column] = self._sample_weights[positions]
        if self.exposure_column is not None and self._exposure is not None:
            columns[self.exposure_column] = self._exposure[positions]
        return columns, {"weight_column": self.weight_column, "class_weight": self.class_weight,
                         "exposure_column": self.exposure_column}

    @property
    def _powers_per_row(self) -> int:
        """The residual re-randomised for each feature holder, and with several of
        them each one's cross-term request."""
        return 2 * len(self.feature_holders) - 1

    def fresh_state(self) -> LabelHolderState:
        d = self.rows.n_features
        theta = self._initial_weights(d)
        train = self.rows.train
        bias = self.draw_initial_intercept(
            self._y[train], None if self._offset is None else self._offset[train])
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
        self._send_residual(endpoint, scores.residual, **at)
        self._ask_cross_terms(endpoint, scores, **at)
        masks = self._send_masked_gradient(endpoint, rows, scores.residual, **at)
        loss = self._finish_loss(endpoint, scores, **at)
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
        if self._scales.loss_terms:
            # The weighted loss needs each A's sum r u_A over these rows too.
            self._send_residual(endpoint, scores.residual, **at)
        endpoint.send(self.coordinator, EncryptedValidationLoss(
            self._finish_loss(endpoint, scores, **at), len(validation)), **at)

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
        self._check_row_options()
        offset = None if self._exposure is None else np.log(self._exposure)
        result = train_centralized(table.features, table.label, config,
                                   initial_weights=initial,
                                   initial_intercept=self.draw_initial_intercept(
                                       y[train], None if offset is None else offset[train]),
                                   batch_seeds=seeds, split_seed=split_seed, blocks=[d],
                                   sample_weight=self._sample_weights,
                                   class_weight=self.class_weight, exposure=self._exposure)
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

    def draw_initial_intercept(self, y_train: np.ndarray,
                               offset: np.ndarray | None = None) -> float:
        """A random secret intercept around the labels' mean, from this run's stream.

        Secret and random, it hides sum(y^2) from the first loss C sees
        (PROTOCOL.md, what each party learns). Poisson (log link): around
        the log of the mean rate, sum y / sum exposure, with a spread of 1/2.
        """
        if self._config.model == "poisson":
            exposure = np.ones(len(y_train)) if offset is None else np.exp(offset)
            rate = max(float(y_train.sum() / exposure.sum()), 1e-3)
            return float(np.log(rate) + 0.5 * self._secret_rng.normal())
        return float(y_train.mean() + y_train.std() * self._secret_rng.normal())

    def _collect_scores(self, endpoint: Endpoint, rows: np.ndarray,
                        message: type[EncryptedPartialScores] | type[EncryptedValidationScores],
                        params: np.ndarray | None = None, *, penalty: bool,
                        **at: int) -> _Scores:
        """Steps 2-3: every [[u_Ak]] and [[L_Ak]]; v = u_B - y; [[S]] without cross terms;
        the residual [[r]].

        At `params` (weights, then the intercept), by default the current ones.
        Weighted and Poisson passes: see :meth:`_weighted_scores` and
        :meth:`_poisson_scores`.
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
        score = self.rows.x[rows] @ theta + bias
        if self._scales.poisson:
            return self._poisson_scores(endpoint, rows, parts, score, theta, penalty=penalty,
                                        **at)
        # v = u_B - y for squared loss; the Taylor residual 4d = u - 2y needs 2y.
        label_factor = 2.0 if self._config.model == "logistic" else 1.0
        v = score - label_factor * self._y[rows]
        v_encoded = self._encode_scores(v, "u_B - y", at["epoch"])
        if self._scales.weighted:
            return self._weighted_scores(rows, parts, v_encoded, theta, penalty=penalty)
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
        return _Scores(suffix, v_encoded, loss, requests, engine.add_plain(suffix, v_encoded))

    def _batch_weights(self, rows: np.ndarray) -> np.ndarray:
        """w' of these rows: their weights scaled to mean 1 (all ones when unweighted)."""
        weights = batch_weights(self._row_weights, rows)
        return np.ones(len(rows)) if weights is None else weights

    def _sum_scores(self, parts: Sequence[EncryptedPartialScores | EncryptedValidationScores]
                    ) -> tuple[EncryptedVector, EncryptedVector]:
        """([[sum_k u_Ak]], [[sum_k L_Ak]]) of the feature holders' messages."""
        engine = self.engine
        total, loss = parts[0].scores, parts[0].loss_part
        for part in parts[1:]:
            total, loss = engine.add(total, part.scores), engine.add(loss, part.loss_part)
        return total, loss

    def _weighted_scores(self, rows: np.ndarray,
                         parts: Sequence[EncryptedPartialScores | EncryptedValidationScores],
                         v_encoded: list[int], theta: np.ndarray, *, penalty: bool) -> _Scores:
        """The weighted pass (docs/poisson.md): [[k w' d]] = w' [[sum_k u_Ak]] + w' v.

        B multiplies by its encoded weights w' (mean 1 over the batch), so the
        residual carries scale 2^2f and no weight leaves B. The loss needs no
        cross term: each A returns [[sum_i r_i u_A,i]] (:meth:`_finish_loss`).
        """
        engine, codec = self.engine, self._codec
        weights = codec.encode(self._batch_weights(rows), what="sample weights",
                               party=self.name)
        total, loss = self._sum_scores(parts)
        # Integer products: exactly w' (u + v) at scale 2^2f, as the ciphertexts carry it.
        residual = engine.add_plain(engine.mul_plain(total, weights),
                                    [w * v for w, v in zip(weights, v_encoded)])
        loss = engine.add_plain(loss, [self._penalty_part(len(rows), theta, penalty=penalty)])
        return _Scores(total, v_encoded, loss, [], residual)

    def _poisson_scores(self, endpoint: Endpoint, rows: np.ndarray,
                        parts: Sequence[EncryptedPartialScores | EncryptedValidationScores],
                        score: np.ndarray, theta: np.ndarray, *, penalty: bool,
                        **at: int) -> _Scores:
        """The Poisson pass (docs/poisson.md): [[w' (mu - y)]] and [[S]], no approximation.

        [[prod_k exp(u_Ak)]] comes down the feature holders' chain; B multiplies
        it by its own factor w' exposure exp(u_B) (scale 2^f) and subtracts w' y
        at the product's scale 2^((K+1) f). The loss S = sum w' (mu - y eta) +
        m penalty, eta = sum_k u_Ak + u_B + log(exposure): sum r + sum w' y -
        sum_k [[u_Ak]] . w' y - sum w' y (u_B + log exposure) + the penalties.
        """
        engine, codec, top = self.engine, self._codec, self._scales.residual
        chain = self._collect_chain(endpoint, len(rows), **at)
        weights, y = self._batch_weights(rows), self._y[rows]
        eta_b = score if self._offset is None else score + self._offset[rows]
        factor = self._encode_scores(weights * np.exp(eta_b), "w' exposure exp(u_B)",
                                     at["epoch"])
        weighted_y = weights * y
        y_top = codec.encode(weighted_y, scale_power=top, what="weighted labels",
                             party=self.name)
        residual = engine.add_plain(engine.mul_plain(chain, factor), [-v for v in y_top])
        total, loss = self._sum_scores(parts)
        y_low = codec.encode(weighted_y, scale_power=top - 1, what="weighted labels",
                             party=self.name)
        plain = (sum(y_top) - codec.encode([float(weighted_y @ eta_b)], scale_power=top,
                                           what="sum w' y eta_B", party=self.name)[0]
                 + self._penalty_part(len(rows), theta, penalty=penalty))
        loss = engine.add(loss, engine.add(engine.sum(residual),
                                           engine.dot(total, [-v for v in y_low])))
        return _Scores(total, [], engine.add_plain(loss, [plain]), [], residual)

    def _collect_chain(self, endpoint: Endpoint, rows: int, **at: int) -> EncryptedVector:
        """Poisson: [[prod_k exp(u_Ak)]], relayed from each feature holder to the next.

        Feature holders talk only to B and C (also over the network), so B
        passes each product on; it cannot read it (C's key), and each feature
        holder re-randomises after its multiplication.
        """
        holders = self.feature_holders
        chain = None
        for k, a in enumerate(holders):
            if k:
                assert chain is not None
                endpoint.send(a, ExtendExpScores(chain), **at)
            chain = self.receive(endpoint, a, ChainedExpScores, **at).scores
            expect_length(chain, rows, sender=a, message="ChainedExpScores", what="scores",
                          party=self.name)
        assert chain is not None  # a run has at least one feature holder
        return chain

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
        # At the gradients' scale: the residual's times the data's.
        residual_sum = engine.mul_plain(engine.sum(residual), [1 << self._codec.data_frac_bits])
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

    def _finish_loss(self, endpoint: Endpoint, scores: _Scores, **at: int) -> EncryptedVector:
        """[[S]] complete, re-randomised for C: the cross terms (unweighted squared
        losses), or every A's [[sum r u_A]] plus sum r v (weighted), or as it is
        (Poisson)."""
        if self._scales.cross_terms:
            return self._add_cross_terms(endpoint, scores, **at)
        engine, loss = self.engine, scores.loss
        if self._scales.loss_terms:
            for name in self.feature_holders:
                term = self.receive(endpoint, name, WeightedLossTerm, **at)
                expect_length(term.value, 1, sender=name, message="WeightedLossTerm",
                              what="ciphertexts", party=self.name)
                loss = engine.add(loss, term.value)
            loss = engine.add(loss, engine.dot(scores.residual, scores.v))
        return engine.rerandomize(loss)

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
            Predictions (P(class 1) for logistic models, the expected count
            for Poisson ones, times the exposure where this party has an
            exposure column) indexed by ID, in this party's row order; None
            when delivered to C.
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
        if self._exposure is not None and self.model_.model == "poisson":
            # The offset: mu = exposure * exp(score) = exp(score + log exposure).
            total = total + np.log(self._exposure[positions])
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
        total = mean_prediction(self.model_.model, total)
        order = np.argsort(positions)
        return pd.Series(total[order], index=pd.Index([self.table.ids[i] for i in
                                                       positions[order]], name=self.id_column),
                         name=self.label_column)

