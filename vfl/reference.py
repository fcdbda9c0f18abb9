"""Centralized training on the joined data: the yardstick for the federation.

:func:`train_centralized` applies exactly the update rule of the federated
protocol (same standardisation, initial weights, batch order, loss and stop
rule) in plain floating-point numpy, so a federated run must match it to
the precision of the fixed-point encoding. :func:`closed_form` is ordinary
least squares, the optimum gradient descent approaches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vfl.training import TrainingConfig, batch_plan

__all__ = ["CentralizedResult", "closed_form", "train_centralized"]


@dataclass(frozen=True)
class CentralizedResult:
    """Weights in raw units (joined column order), intercept, loss per epoch."""

    weights: np.ndarray
    intercept: float
    history: list[float]

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ self.weights + self.intercept


def train_centralized(features: np.ndarray, y: np.ndarray, config: TrainingConfig, *,
                      initial_weights: np.ndarray, initial_intercept: float,
                      batch_seeds: Sequence[int]) -> CentralizedResult:
    """Gradient descent on the joined data with the federation's rule.

    Parameters
    ----------
    features : numpy.ndarray, shape (n, d)
        Joined raw feature columns of all parties.
    y : numpy.ndarray, shape (n,)
    config : TrainingConfig
    initial_weights : numpy.ndarray, shape (d,)
        Initial weights in standardised units, in the joined column order.
    initial_intercept : float
    batch_seeds : sequence of int
        One seed per epoch (the label holder's), for the batch order.
    """
    features = np.asarray(features, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if config.standardize:
        mean, scale = features.mean(axis=0), features.std(axis=0)
    else:
        mean, scale = np.zeros(features.shape[1]), np.ones(features.shape[1])
    x = (features - mean) / scale
    theta = np.array(initial_weights, dtype=np.float64)
    bias = float(initial_intercept)
    lam, lr = config.l2, config.learning_rate
    history: list[float] = []
    for epoch in range(config.epochs):
        total = 0.0
        for rows in batch_plan(len(y), config.batch_size, batch_seeds[epoch]):
            m = len(rows)
            d = x[rows] @ theta + bias - y[rows]
            total += m * (d @ d / (2 * m) + lam / 2 * theta @ theta)
            grad = x[rows].T @ d / m + lam * theta
            theta = theta - lr * grad
            bias -= lr * d.sum() / m
        history.append(total / len(y))
        if config.tol > 0 and len(history) > 1 and abs(history[-2] - history[-1]) <= config.tol:
            break
    weights = theta / scale
    return CentralizedResult(weights, float(bias - weights @ mean), history)


def closed_form(features: np.ndarray, y: np.ndarray) -> CentralizedResult:
    """Ordinary least squares with an intercept (numpy ``lstsq``)."""
    features = np.asarray(features, dtype=np.float64)
    design = np.column_stack([features, np.ones(len(features))])
    solution, *_ = np.linalg.lstsq(design, np.asarray(y, dtype=np.float64), rcond=None)
    return CentralizedResult(solution[:-1], float(solution[-1]), [])
