"""Centralized training on the joined data: the yardstick for the federation.

:func:`train_centralized` applies exactly the update rule of the federated
protocol (same standardisation, initial weights, validation split, batch
order, optimiser, penalty, loss and stopping rule) in plain floating-point
numpy on one machine, so a federated run must match it to the precision of
the fixed-point encoding. Sample weights (and balanced class weights) make
every loss and gradient the weighted mean over its batch; Poisson
regression's loss is the exact sum(mu - y eta), eta = u + log(exposure).
Under ``optimizer="lbfgs"`` it runs the same L-BFGS rule (:mod:`vfl.lbfgs`:
direction from the Gram matrix, line search, stopping) on the whole vectors.
:func:`closed_form` is ordinary least squares, the optimum gradient descent
approaches.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vfl.crypto.encoding import DATA_FRAC_BITS, FixedPointCodec
from vfl.lbfgs import LbfgsBlock, LbfgsRule, LbfgsState, penalized_gradient
from vfl.model import mean_prediction, sigmoid
from vfl.optim import Optimizer, learning_rate_at, penalty_value
from vfl.training import (
    StoppingRule,
    TrainingConfig,
    balanced_class_weights,
    batch_plan,
    batch_weights,
    training_labels,
    validation_split,
)

__all__ = ["CentralizedResult", "closed_form", "sigmoid", "train_centralized"]


@dataclass(frozen=True)
class CentralizedResult:
    """Weights in raw units (joined column order), intercept and losses per epoch.

    ``trajectory`` holds the parameters after each epoch in standardised
    units (the weights, then the intercept), as the parties update them.
    """

    weights: np.ndarray
    intercept: float
    history: list[float]
    validation_history: list[float] = field(default_factory=list)
    model: str = "linear"
    trajectory: list[np.ndarray] = field(default_factory=list)

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        """The linear score X w + b."""
        return np.asarray(features, dtype=np.float64) @ self.weights + self.intercept

    def predict(self, features: np.ndarray) -> np.ndarray:
        """What the federation predicts: the score, P(class 1) for logistic models, the
        count per unit exposure exp(score) for Poisson ones."""
        return mean_prediction(self.model, self.decision_function(features))


def _batch_loss(config: TrainingConfig, score: np.ndarray, y: np.ndarray,
                weights: np.ndarray | None = None, offset: np.ndarray | None = None) -> float:
    """Mean data loss, weighted by `weights` (mean 1 over the batch) if given:
    squared (1/2 d^2), the Taylor log-loss, or Poisson's mu - y eta with eta =
    score + offset."""
    if config.model == "logistic":
        rows = math.log(2.0) - 0.5 * y * score + score * score / 8.0
    elif config.model == "poisson":
        eta = score if offset is None else score + offset
        rows = np.exp(eta) - y * eta
    else:
        rows = 0.5 * (score - y) ** 2
    return float(np.mean(rows if weights is None else weights * rows))


def _residual(config: TrainingConfig, score: np.ndarray, y: np.ndarray,
              weights: np.ndarray | None = None, offset: np.ndarray | None = None
              ) -> np.ndarray:
    """d, the derivative of a row's loss by its score (times its weight if given).

    Squared loss: u - y. Taylor log-loss: u/4 - y/2. Poisson: mu - y, mu = exp(u + offset).
    """
    if config.model == "logistic":
        residual = score / 4 - y / 2
    elif config.model == "poisson":
        residual = np.exp(score if offset is None else score + offset) - y
    else:
        residual = score - y
    return residual if weights is None else weights * residual


def train_centralized(features: np.ndarray, y: np.ndarray, config: TrainingConfig, *,
                      initial_weights: np.ndarray, initial_intercept: float,
                      batch_seeds: Sequence[int], split_seed: int = 0,
                      blocks: Sequence[int] | None = None,
                      sample_weight: np.ndarray | None = None,
                      class_weight: str | None = None,
                      exposure: np.ndarray | None = None,
                      data_frac_bits: int | None = DATA_FRAC_BITS) -> CentralizedResult:
    """Train on the joined data with the federation's rule.

    Parameters
    ----------
    features : numpy.ndarray, shape (n, d)
        Joined raw feature columns of all parties, feature holders first and
        the label holder's last, in the aligned row order.
    y : numpy.ndarray, shape (n,)
        Labels as the label holder holds them (0/1 or -1/+1 for logistic).
    config : TrainingConfig
    initial_weights : numpy.ndarray, shape (d,)
        Initial weights in standardised units, in the joined column order.
    initial_intercept : float
    batch_seeds : sequence of int
        One seed per epoch (the label holder's), for the batch order.
    split_seed : int
        The label holder's validation-split seed.
    blocks : sequence of int, optional
        Columns per party in joined order (the label holder's block last,
        the intercept belongs to it). Needed for ``early_stopping="weights"``,
        where each party judges its own block.
    sample_weight : numpy.ndarray, shape (n,), optional
        Non-negative row weights (the label holder's weight column).
    class_weight : {"balanced"}, optional
        Logistic: also weight each row by n / (2 n_c), counted over the
        training rows.
    exposure : numpy.ndarray, shape (n,), optional
        Poisson: each row's exposure; its log is the offset of the score.
    data_frac_bits : int or None
        The standardised features are rounded to multiples of
        ``2**-data_frac_bits``, as the federation's parties round their data
        (:meth:`vfl.crypto.FixedPointCodec.quantize_data`); the default is
        the codec's. None trains on the unrounded features.
    """
    features = np.asarray(features, dtype=np.float64)
    y = training_labels(y, config, party="reference", source="the joined data",
                        column="label")
    n, dim = features.shape
    train, validation = validation_split(n, config.validation_fraction, split_seed)
    if config.standardize:
        mean, scale = features[train].mean(axis=0), features[train].std(axis=0)
    else:
        mean, scale = np.zeros(dim), np.ones(dim)
    x = (features - mean) / scale
    if data_frac_bits is not None:
        x = FixedPointCodec(data_frac_bits=data_frac_bits).quantize_data(x)
    weights = None
    if sample_weight is not None or class_weight is not None:
        weights = (np.ones(n) if sample_weight is None
                   else np.asarray(sample_weight, dtype=np.float64))
        if class_weight == "balanced":
            weights = weights * balanced_class_weights(y, train)
    offset = None if exposure is None else np.log(np.asarray(exposure, dtype=np.float64))
    rows = _Rows(x, y, weights, offset)
    params = np.r_[np.asarray(initial_weights, dtype=np.float64), float(initial_intercept)]
    lbfgs = config.optimizer == "lbfgs"
    search = _LbfgsSearch(rows, train, config) if lbfgs else None
    optimizer = None if lbfgs else Optimizer(config, np.r_[np.ones(dim, dtype=bool), False])
    if config.early_stopping == "weights":
        if blocks is None or sum(blocks) != dim:
            raise ValueError("weight-change stopping needs the parties' column blocks")
        cuts = np.cumsum([0, *blocks[:-1], blocks[-1] + 1])  # the intercept joins B's block
    rule = StoppingRule(config)
    best = params.copy()
    history: list[float] = []
    validation_history: list[float] = []
    trajectory: list[np.ndarray] = []
    for epoch in range(1, config.epochs + 1):
        before = params.copy()
        if search is not None:
            params, loss = search.iterate(params)
        else:
            assert optimizer is not None
            params, loss = _train_epoch(rows, train, params, optimizer, config, epoch,
                                        batch_seeds[epoch - 1])
        history.append(loss)
        trajectory.append(params.copy())
        validation_loss = None
        if len(validation):
            validation_loss = rows.loss(config, validation, params)
            validation_history.append(validation_loss)
        votes = None
        if config.early_stopping == "weights":
            votes = [float(np.linalg.norm(params[a:b] - before[a:b])) <= config.tol
                     for a, b in itertools.pairwise(cuts)]
        stop, is_best = rule.update(history[-1], validation_loss, votes)
        stop = stop or (search is not None and search.rule.converged)
        if is_best:
            best = params.copy()
        if stop:
            break
    if config.early_stopping == "validation":
        params = best
    weights = params[:dim] / scale
    return CentralizedResult(weights, float(params[dim] - weights @ mean), history,
                             validation_history, config.model, trajectory)


@dataclass(frozen=True)
class _Rows:
    """The joined standardised rows, labels, raw weights (None: unweighted) and offsets."""

    x: np.ndarray
    y: np.ndarray
    weights: np.ndarray | None
    offset: np.ndarray | None

    def _parts(self, rows: np.ndarray, params: np.ndarray):
        dim = self.x.shape[1]
        score = self.x[rows] @ params[:dim] + params[dim]
        offset = None if self.offset is None else self.offset[rows]
        return score, batch_weights(self.weights, rows), offset

    def loss(self, config: TrainingConfig, rows: np.ndarray, params: np.ndarray) -> float:
        """The mean (weighted) data loss over `rows`, no penalty."""
        score, weights, offset = self._parts(rows, params)
        return _batch_loss(config, score, self.y[rows], weights, offset)

    def loss_and_gradient(self, config: TrainingConfig, rows: np.ndarray,
                          params: np.ndarray) -> tuple[float, np.ndarray]:
        """(mean data loss, its gradient: weights then intercept) over `rows`, no penalty."""
        score, weights, offset = self._parts(rows, params)
        y = self.y[rows]
        residual = _residual(config, score, y, weights, offset)
        gradient = np.r_[self.x[rows].T @ residual, residual.sum()] / len(rows)
        return _batch_loss(config, score, y, weights, offset), gradient


def _train_epoch(rows: _Rows, train: np.ndarray, params: np.ndarray,
                 optimizer: Optimizer, config: TrainingConfig, epoch: int,
                 seed: int) -> tuple[np.ndarray, float]:
    """One epoch over the training rows; the parameters after it and its mean loss."""
    dim, lr, total = rows.x.shape[1], learning_rate_at(config, epoch), 0.0
    for batch in batch_plan(len(train), config.batch_size, seed):
        chosen = train[batch]
        loss, gradient = rows.loss_and_gradient(config, chosen, params)
        total += len(chosen) * (loss + penalty_value(config, params[:dim]))
        params = optimizer.step(params, gradient, lr)
    return params, total / len(train)


class _LbfgsSearch:
    """The federation's L-BFGS iterations on the joined training rows (one block: all).

    Each step mirrors a protocol step: a pass (loss and gradient at a point),
    a Gram round (the new inner products, then C's direction), a trial verdict.
    """

    def __init__(self, rows: _Rows, train: np.ndarray, config: TrainingConfig) -> None:
        self.rows, self.train, self.config = rows, train, config
        dim = rows.x.shape[1]
        self.penalized = np.r_[np.ones(dim, dtype=bool), False]
        self.block = LbfgsBlock.empty(dim + 1)
        self.rule = LbfgsRule(config, LbfgsState.fresh())
        self.started = False

    def _pass(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """(loss with the penalty, gradient with the L2 term) at `params`."""
        config = self.config
        loss, gradient = self.rows.loss_and_gradient(config, self.train, params)
        loss += penalty_value(config, params[:-1])
        return loss, penalized_gradient(config, params, gradient, self.penalized)

    def _direction(self) -> None:
        keep, coefficients, step = self.rule.direction(self.block.gram_entries())
        self.block.take_direction(keep, coefficients, step, self.config.lbfgs_memory)

    def iterate(self, params: np.ndarray) -> tuple[np.ndarray, float]:
        """One iteration from `params`: (the accepted point, or `params` if none, its loss)."""
        block, rule = self.block, self.rule
        if not self.started:
            loss, block.gradient = self._pass(params)
            rule.begin(loss)
            self._direction()
            self.started = True
        step, trial = block.step, 1
        while True:
            loss, gradient = self._pass(block.trial(params, step))
            change = block.curvature_entries(gradient)[0] if trial == 1 else None
            accepted, taken = rule.verdict(loss, step, trial, change)
            if taken is None:
                return params, rule.state.loss
            if accepted:
                point = block.accept(params, taken, step, gradient)
                self._direction()
                return point, rule.state.loss
            step, trial = taken, trial + 1


def closed_form(features: np.ndarray, y: np.ndarray) -> CentralizedResult:
    """Ordinary least squares with an intercept (numpy ``lstsq``)."""
    features = np.asarray(features, dtype=np.float64)
    design = np.column_stack([features, np.ones(len(features))])
    solution, *_ = np.linalg.lstsq(design, np.asarray(y, dtype=np.float64), rcond=None)
    return CentralizedResult(solution[:-1], float(solution[-1]), [])
