"""Optimisers, learning-rate schedules and penalties, applied by each party alone.

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

import numpy as np

__all__ = [
    "OPTIMIZERS",
    "PENALTIES",
    "SCHEDULES",
    "Optimizer",
    "learning_rate_at",
    "penalty_value",
]

OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam")
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


class Optimizer:
    """The configured update rule for one party's block of parameters.

    Parameters
    ----------
    config : vfl.training.TrainingConfig
        Supplies ``optimizer``, its constants, ``penalty`` and ``alpha``.
    penalized : array of bool
        Which parameters carry the penalty (every weight; not the intercept).

    Examples
    --------
    >>> from vfl.training import TrainingConfig
    >>> opt = Optimizer(TrainingConfig(optimizer="adam"), np.array([True, False]))
    >>> w = opt.step(np.array([1.0, 0.5]), np.array([0.2, -0.1]), lr=0.1)
    """

    def __init__(self, config, penalized: np.ndarray) -> None:
        if config.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {config.optimizer!r}")
        self.config = config
        self.penalized = np.asarray(penalized, dtype=bool)
        size = self.penalized.shape[0]
        self._first = np.zeros(size)   # momentum velocity, Adam's first moment
        self._second = np.zeros(size)  # Adagrad/RMSprop/Adam squared-gradient state
        self._steps = 0

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
        self._steps += 1
        if c.optimizer == "sgd":
            step_size = np.full_like(params, lr)
            direction = g
        elif c.optimizer == "momentum":
            self._first = c.momentum * self._first + g
            direction = g + c.momentum * self._first if c.nesterov else self._first
            step_size = np.full_like(params, lr)
        elif c.optimizer == "adagrad":
            self._second = self._second + g * g
            step_size = lr / (np.sqrt(self._second) + c.epsilon)
            direction = g
        elif c.optimizer == "rmsprop":
            self._second = c.rho * self._second + (1.0 - c.rho) * g * g
            step_size = lr / (np.sqrt(self._second) + c.epsilon)
            direction = g
        else:  # adam
            self._first = c.beta1 * self._first + (1.0 - c.beta1) * g
            self._second = c.beta2 * self._second + (1.0 - c.beta2) * g * g
            first = self._first / (1.0 - c.beta1 ** self._steps)
            second = self._second / (1.0 - c.beta2 ** self._steps)
            step_size = lr / (np.sqrt(second) + c.epsilon)
            direction = first
        updated = params - step_size * direction
        if c.penalty == "l1":
            threshold = np.where(self.penalized, step_size * c.alpha, 0.0)
            updated = np.sign(updated) * np.maximum(np.abs(updated) - threshold, 0.0)
        return updated

    def state(self) -> dict[str, object]:
        """The optimiser's state, for checkpoints."""
        return {"first": self._first.tolist(), "second": self._second.tolist(),
                "steps": self._steps}

    def restore(self, state: dict[str, object]) -> None:
        """Resume from :meth:`state`."""
        self._first = np.asarray(state["first"], dtype=np.float64)
        self._second = np.asarray(state["second"], dtype=np.float64)
        self._steps = int(state["steps"])  # type: ignore[arg-type]
