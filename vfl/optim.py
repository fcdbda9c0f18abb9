"""Optimisers, learning-rate schedules and penalties, applied by each party alone.

(Full-batch L-BFGS, ``optimizer="lbfgs"``, is not element-wise: it lives in
:mod:`vfl.lbfgs`.)

Every rule here is element-wise: the state of a weight depends only on that
weight's own gradients. So when each party updates its own block of weights
with its own unmasked gradient, the federation as a whole performs exactly
the update one optimiser would perform on the joined weight vector. That is
what lets :mod:`vfl.reference` check the protocol against a centralized run.

Update rules (g: gradient of the data loss plus the L2 term; lr: the
scheduled learning rate of the epoch; all operations element-wise):

- ``sgd``:      w -= lr * g
- ``momentum``: v = mu * v + g;  w -= lr * v  (Nesterov: w -= lr * (g + mu * v))
- ``adagrad``:  G += g**2;  w -= lr * g / (sqrt(G) + eps)
- ``rmsprop``:  E = rho * E + (1 - rho) * g**2;  w -= lr * g / (sqrt(E) + eps)
- ``adam``:     m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g**2;
  w -= lr * m_hat / (sqrt(v_hat) + eps), with bias-corrected m_hat, v_hat

L1 is applied as a proximal (soft-threshold) step after the update, with
each weight's own effective step size s (lr for sgd and momentum,
lr / (sqrt(.) + eps) for the adaptive ones): w = sign(w) * max(|w| - s*alpha, 0).
The gradient of |w| is never used, so nothing divides by a zero weight and a
weight can become exactly zero. The intercept is never penalised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ELEMENTWISE",
    "OPTIMIZERS",
    "PENALTIES",
    "SCHEDULES",
    "Optimizer",
    "OptimizerState",
    "learning_rate_at",
    "penalty_value",
]

#: The element-wise rules of :class:`Optimizer`.
ELEMENTWISE = ("sgd", "momentum", "adagrad", "rmsprop", "adam")
#: Every optimiser a run can choose: the element-wise ones and full-batch
#: L-BFGS, which needs the whole gradient's inner products (:mod:`vfl.lbfgs`).
OPTIMIZERS = (*ELEMENTWISE, "lbfgs")
PENALTIES = ("none", "l2", "l1")
SCHEDULES = ("constant", "step", "invsqrt")


def learning_rate_at(config, epoch: int) -> float:
    """The learning rate of `epoch` (counted from 1) under the configured schedule.

    - ``constant``: lr
    - ``step``: lr * gamma ** ((epoch - 1) // step_size)
    - ``invsqrt``: lr / sqrt(1 + decay * (epoch - 1))

    Parameters
    ----------
    config : vfl.training.TrainingConfig
    epoch : int
    """
    t = epoch - 1
    if config.schedule == "constant":
        return config.learning_rate
    if config.schedule == "step":
        return config.learning_rate * config.gamma ** (t // config.step_size)
    if config.schedule == "invsqrt":
        return config.learning_rate / math.sqrt(1.0 + config.decay * t)
    raise ValueError(f"unknown learning-rate schedule {config.schedule!r}")


def penalty_value(config, weights: np.ndarray) -> float:
    """The penalty term of the loss for these weights: alpha/2 |w|^2 or alpha |w|_1."""
    weights = np.asarray(weights, dtype=np.float64)
    if config.penalty == "l2":
        return 0.5 * config.alpha * float(weights @ weights)
    if config.penalty == "l1":
        return config.alpha * float(np.abs(weights).sum())
    return 0.0


@dataclass
class OptimizerState:
    """What an optimiser remembers between steps (saved in every checkpoint).

    Attributes
    ----------
    first : numpy.ndarray
        Momentum velocity, or Adam's first moment.
    second : numpy.ndarray
        Adagrad's, RMSprop's or Adam's squared-gradient state.
    steps : int
        Updates made so far (Adam's bias correction).
    """

    first: np.ndarray
    second: np.ndarray
    steps: int

    @classmethod
    def zeros(cls, size: int) -> OptimizerState:
        return cls(np.zeros(size), np.zeros(size), 0)


class Optimizer:
    """The configured update rule for one party's block of parameters.

    Parameters
    ----------
    config : vfl.training.TrainingConfig
        Supplies ``optimizer``, its constants, ``penalty`` and ``alpha``.
    penalized : array of bool
        Which parameters carry the penalty (every weight; not the intercept).
    state : OptimizerState, optional
        Where to continue from (a checkpoint's); default zeros. Updated in
        place by :meth:`step`.

    Examples
    --------
    >>> from vfl.training import TrainingConfig
    >>> opt = Optimizer(TrainingConfig(optimizer="adam"), np.array([True, False]))
    >>> w = opt.step(np.array([1.0, 0.5]), np.array([0.2, -0.1]), lr=0.1)
    """

    def __init__(self, config, penalized: np.ndarray, state: OptimizerState | None = None
                 ) -> None:
        if config.optimizer not in ELEMENTWISE:
            raise ValueError(f"{config.optimizer!r} is not an element-wise optimizer "
                             f"({', '.join(ELEMENTWISE)}); L-BFGS is vfl.lbfgs")
        self.config = config
        self.penalized = np.asarray(penalized, dtype=bool)
        size = self.penalized.shape[0]
        self.state = state if state is not None else OptimizerState.zeros(size)
        if self.state.first.shape != (size,) or self.state.second.shape != (size,):
            raise ValueError(f"optimizer state of size {self.state.first.shape} for "
                             f"{size} parameters")

    def step(self, params: np.ndarray, gradient: np.ndarray, lr: float) -> np.ndarray:
        """Return the parameters after one update with the data-loss `gradient`.

        Parameters
        ----------
        params : numpy.ndarray
            Current parameters (weights in standardised units, then the
            intercept for the label holder).
        gradient : numpy.ndarray
            Gradient of the data loss only; the L2 term is added here.
        lr : float
            Learning rate of this epoch (see :func:`learning_rate_at`).
        """
        c = self.config
        params = np.asarray(params, dtype=np.float64)
        g = np.asarray(gradient, dtype=np.float64)
        if g.shape != params.shape or params.shape != self.penalized.shape:
            raise ValueError(f"gradient of shape {g.shape} for parameters of shape "
                             f"{params.shape}")
        if c.penalty == "l2":
            g = g + c.alpha * np.where(self.penalized, params, 0.0)
        self.state.steps += 1
        if c.optimizer == "sgd":
            step_size = np.full_like(params, lr)
            direction = g
        elif c.optimizer == "momentum":
            self.state.first = c.momentum * self.state.first + g
            direction = g + c.momentum * self.state.first if c.nesterov else self.state.first
            step_size = np.full_like(params, lr)
        elif c.optimizer == "adagrad":
            self.state.second = self.state.second + g * g
            step_size = lr / (np.sqrt(self.state.second) + c.epsilon)
            direction = g
        elif c.optimizer == "rmsprop":
            self.state.second = c.rho * self.state.second + (1.0 - c.rho) * g * g
            step_size = lr / (np.sqrt(self.state.second) + c.epsilon)
            direction = g
        else:  # adam
            self.state.first = c.beta1 * self.state.first + (1.0 - c.beta1) * g
            self.state.second = c.beta2 * self.state.second + (1.0 - c.beta2) * g * g
            first = self.state.first / (1.0 - c.beta1 ** self.state.steps)
            second = self.state.second / (1.0 - c.beta2 ** self.state.steps)
            step_size = lr / (np.sqrt(second) + c.epsilon)
            direction = first
        updated = params - step_size * direction
        if c.penalty == "l1":
            threshold = np.where(self.penalized, step_size * c.alpha, 0.0)
            updated = np.sign(updated) * np.maximum(np.abs(updated) - threshold, 0.0)
        return updated
