"""The models a horizontal federation trains, and each client's local training.

A model's parameters are one matrix ``W`` of shape ``(d + 1, c)``: a row per
feature and the intercept last; ``c = 1`` for the linear and logistic models,
one column per class for softmax (multinomial logistic). Everything here is
plain numpy on one party's own rows: the protocol sends only encrypted
updates (see ``docs/horizontal.md``).

Losses (mean over the rows; FedProx adds ``mu/2 ||W - W_global||^2`` to the
local objective only):

- linear: ``1/2 (x.w + b - y)^2``
- logistic: binary cross-entropy, labels 0/1
- softmax: cross-entropy, labels one-hot over the declared classes
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["HORIZONTAL_MODELS", "LocalTraining", "gradient", "local_update", "loss",
           "predict_scores", "targets"]

HORIZONTAL_MODELS = ("linear", "logistic", "softmax")


def _design(features: np.ndarray) -> np.ndarray:
    return np.hstack([features, np.ones((features.shape[0], 1))])


def targets(model: str, labels: np.ndarray, classes: Sequence[float]) -> np.ndarray:
    """Labels as the model's target matrix ``(rows, c)`` (one-hot for softmax)."""
    labels = np.asarray(labels, dtype=np.float64)
    if model == "softmax":
        return (labels[:, None] == np.asarray(classes, dtype=np.float64)[None, :]).astype(
            np.float64)
    return labels[:, None]


def predict_scores(model: str, weights: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Predictions ``(rows, c)``: values, P(class 1), or class probabilities."""
    scores = _design(features) @ weights
    if model == "logistic":
        return 1.0 / (1.0 + np.exp(-scores))
    if model == "softmax":
        shifted = scores - scores.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(axis=1, keepdims=True)
    return scores


def loss(model: str, weights: np.ndarray, features: np.ndarray, target: np.ndarray) -> float:
    """Mean loss of the rows (no proximal term)."""
    scores = _design(features) @ weights
    if model == "linear":
        return float(0.5 * np.mean((scores - target) ** 2))
    if model == "logistic":
        # log(1 + e^s) - y s, computed without overflow.
        return float(np.mean(np.logaddexp(0.0, scores) - target * scores))
    top = scores.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(scores - top).sum(axis=1))
    return float(np.mean(log_norm - (scores * target).sum(axis=1)))


def gradient(model: str, weights: np.ndarray, features: np.ndarray,
             target: np.ndarray) -> np.ndarray:
    """Gradient of :func:`loss` with respect to ``W``: ``X1^T (p - y) / m``."""
    design = _design(features)
    residual = predict_scores(model, weights, features) - target
    result: np.ndarray = design.T @ residual / features.shape[0]
    return result


@dataclass(frozen=True)
class LocalTraining:
    """How a client trains in one round.

    Attributes
    ----------
    epochs : int
        Local passes over its rows (E).
    batch_size : int or None
        Rows per local step (B); None: the full batch (one step per epoch).
    learning_rate : float
    mu : float
        FedProx proximal weight (0: FedAvg).
    """

    epochs: int
    batch_size: int | None
    learning_rate: float
    mu: float = 0.0


def local_update(model: str, global_weights: np.ndarray, features: np.ndarray,
                 target: np.ndarray, plan: LocalTraining,
                 rng: np.random.Generator) -> np.ndarray:
    """Train from the global model on one client's rows; return ``W_local - W_global``.

    Each local epoch visits the rows in an order drawn from `rng` (full batch:
    in their own order), ``ceil(rows / B)`` steps of plain gradient descent.
    """
    weights = np.array(global_weights, dtype=np.float64, copy=True)
    rows = features.shape[0]
    size = rows if plan.batch_size is None else min(plan.batch_size, rows)
    for _ in range(plan.epochs):
        order = np.arange(rows) if plan.batch_size is None else rng.permutation(rows)
        for start in range(0, rows, size):
            idx = order[start:start + size]
            step = gradient(model, weights, features[idx], target[idx])
            if plan.mu:
                step = step + plan.mu * (weights - global_weights)
            weights -= plan.learning_rate * step
    delta: np.ndarray = weights - global_weights
    return delta
