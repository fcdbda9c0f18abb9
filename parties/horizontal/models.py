"""The models a horizontal federation trains, and each client's local training.

The linear models' parameters are one matrix ``W`` of shape ``(d + 1, c)``: a
row per feature and the intercept last; ``c = 1`` for the linear and
logistic models, one column per class for softmax (multinomial logistic).
The ``mlp`` model (one hidden layer of ``h`` tanh units, softmax output over
the classes) has two such matrices, ``W1 (d + 1, h)`` and ``W2 (h + 1, c)``.
On the wire and at the server every model is one flat vector (for the
linear models ``W`` row by row; for the MLP ``W1`` then ``W2``):
:class:`Architecture` converts. Everything here is plain numpy on one
party's own rows: the protocol sends only encrypted updates (see
``docs/horizontal.md``).

Losses (mean over the rows; FedProx adds ``mu/2 ||W - W_global||^2`` to the
local objective only):

- linear: ``1/2 (x.w + b - y)^2``
- logistic: binary cross-entropy, labels 0/1
- softmax, mlp: cross-entropy, labels one-hot over the declared classes
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["CLASS_MODELS", "HORIZONTAL_MODELS", "Architecture", "LocalTraining", "gradient",
           "local_update", "loss", "predict_scores", "targets"]

HORIZONTAL_MODELS = ("linear", "logistic", "softmax", "mlp")

#: Models whose labels are one of a declared set of classes (one output per class).
CLASS_MODELS = ("softmax", "mlp")


def _design(features: np.ndarray) -> np.ndarray:
    return np.hstack([features, np.ones((features.shape[0], 1))])


def targets(model: str, labels: np.ndarray, classes: Sequence[float]) -> np.ndarray:
    """Labels as the model's target matrix ``(rows, c)`` (one-hot for softmax)."""
    labels = np.asarray(labels, dtype=np.float64)
    if model in CLASS_MODELS:
        return (labels[:, None] == np.asarray(classes, dtype=np.float64)[None, :]).astype(
            np.float64)
    return labels[:, None]


def _softmax(scores: np.ndarray) -> np.ndarray:
    exp = np.exp(scores - scores.max(axis=1, keepdims=True))
    result: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return result


def _cross_entropy(scores: np.ndarray, target: np.ndarray) -> float:
    top = scores.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(scores - top).sum(axis=1))
    return float(np.mean(log_norm - (scores * target).sum(axis=1)))


def predict_scores(model: str, weights: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Predictions ``(rows, c)`` of a linear model: values, P(class 1), or class probabilities."""
    scores = _design(features) @ weights
    if model == "logistic":
        return 1.0 / (1.0 + np.exp(-scores))
    if model == "softmax":
        return _softmax(scores)
    return scores


def loss(model: str, weights: np.ndarray, features: np.ndarray, target: np.ndarray) -> float:
    """Mean loss of the rows (no proximal term), for a linear model's ``W``."""
    scores = _design(features) @ weights
    if model == "linear":
        return float(0.5 * np.mean((scores - target) ** 2))
    if model == "logistic":
        # log(1 + e^s) - y s, computed without overflow.
        return float(np.mean(np.logaddexp(0.0, scores) - target * scores))
    return _cross_entropy(scores, target)


def gradient(model: str, weights: np.ndarray, features: np.ndarray,
             target: np.ndarray) -> np.ndarray:
    """Gradient of :func:`loss` with respect to ``W``: ``X1^T (p - y) / m``."""
    design = _design(features)
    residual = predict_scores(model, weights, features) - target
    result: np.ndarray = design.T @ residual / features.shape[0]
    return result


@dataclass(frozen=True)
class Architecture:
    """A model's shape: how its flat parameter vector maps to its layers.

    Parameters
    ----------
    model : str
        One of :data:`HORIZONTAL_MODELS`.
    features : int
        d, the columns.
    outputs : int
        c: 1 for linear and logistic, the number of classes otherwise.
    hidden : int
        h, the MLP's hidden units (ignored by the other models).
    """

    model: str
    features: int
    outputs: int
    hidden: int = 0

    @property
    def parameters(self) -> int:
        """Length of the flat parameter vector."""
        d, c, h = self.features, self.outputs, self.hidden
        return (d + 1) * h + (h + 1) * c if self.model == "mlp" else (d + 1) * c

    def layers(self, flat: np.ndarray) -> list[np.ndarray]:
        """The layer matrices ``[W]`` or ``[W1, W2]`` (views of `flat`)."""
        flat = np.asarray(flat, dtype=np.float64)
        if flat.shape != (self.parameters,):
            raise ValueError(f"{self.model} with {self.features} features needs "
                             f"{self.parameters} parameters, got shape {flat.shape}")
        d, c, h = self.features, self.outputs, self.hidden
        if self.model != "mlp":
            return [flat.reshape(d + 1, c)]
        split = (d + 1) * h
        return [flat[:split].reshape(d + 1, h), flat[split:].reshape(h + 1, c)]

    def stored(self, flat: np.ndarray) -> np.ndarray:
        """The form the parties keep a trained model in (and hash for the audit log):
        ``W`` ``(d + 1, c)`` for the linear models, the flat vector for the MLP."""
        flat = np.array(flat, dtype=np.float64)
        return flat if self.model == "mlp" else self.layers(flat)[0].copy()

    def initial(self, seed: int) -> np.ndarray:
        """Starting parameters: zeros, or for the MLP Glorot-uniform weights drawn from
        `seed` (zeros would keep every hidden unit identical) and zero intercepts."""
        if self.model != "mlp":
            return np.zeros(self.parameters)
        rng = np.random.default_rng([seed, 0x6D6C70])  # its own stream: "mlp"
        parts = []
        for fan_in, fan_out in ((self.features, self.hidden), (self.hidden, self.outputs)):
            bound = np.sqrt(6.0 / (fan_in + fan_out))
            parts += [rng.uniform(-bound, bound, size=(fan_in, fan_out)).ravel(),
                      np.zeros(fan_out)]
        return np.concatenate(parts)

    def scores(self, flat: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Predictions ``(rows, c)``, as :func:`predict_scores` (MLP: class probabilities)."""
        if self.model != "mlp":
            return predict_scores(self.model, self.layers(flat)[0], features)
        first, second = self.layers(flat)
        return _softmax(_design(np.tanh(_design(features) @ first)) @ second)

    def loss(self, flat: np.ndarray, features: np.ndarray, target: np.ndarray) -> float:
        """Mean loss of the rows (no proximal term)."""
        if self.model != "mlp":
            return loss(self.model, self.layers(flat)[0], features, target)
        first, second = self.layers(flat)
        return _cross_entropy(_design(np.tanh(_design(features) @ first)) @ second, target)

    def gradient(self, flat: np.ndarray, features: np.ndarray,
                 target: np.ndarray) -> np.ndarray:
        """Gradient of :meth:`loss`, flat (backpropagation for the MLP)."""
        if self.model != "mlp":
            return gradient(self.model, self.layers(flat)[0], features, target).ravel()
        first, second = self.layers(flat)
        inputs = _design(features)
        hidden = np.tanh(inputs @ first)
        outer = _design(hidden)
        residual = (_softmax(outer @ second) - target) / features.shape[0]
        back = (residual @ second[:-1].T) * (1.0 - hidden**2)
        return np.concatenate([(inputs.T @ back).ravel(), (outer.T @ residual).ravel()])

    def raw_units(self, flat: np.ndarray, means: np.ndarray,
                  scales: np.ndarray) -> list[np.ndarray]:
        """The layers for raw (unstandardised) columns: the first layer takes the
        standardisation ``(x - means) / scales`` into its weights and intercepts."""
        layers = [layer.copy() for layer in self.layers(flat)]
        first = layers[0]
        weights = first[:-1] / scales[:, None]
        layers[0] = np.vstack([weights, first[-1] - means @ weights])
        return layers


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


def local_update(model: Architecture, global_weights: np.ndarray, features: np.ndarray,
                 target: np.ndarray, plan: LocalTraining,
                 rng: np.random.Generator) -> np.ndarray:
    """Train from the global model on one client's rows; return ``W_local - W_global``.

    Parameters are flat (see :class:`Architecture`). Each local epoch visits
    the rows in an order drawn from `rng` (full batch: in their own order),
    ``ceil(rows / B)`` steps of plain gradient descent.
    """
    weights = np.array(global_weights, dtype=np.float64, copy=True)
    rows = features.shape[0]
    size = rows if plan.batch_size is None else min(plan.batch_size, rows)
    for _ in range(plan.epochs):
        order = np.arange(rows) if plan.batch_size is None else rng.permutation(rows)
        for start in range(0, rows, size):
            idx = order[start:start + size]
            step = model.gradient(weights, features[idx], target[idx])
            if plan.mu:
                step = step + plan.mu * (weights - global_weights)
            weights -= plan.learning_rate * step
    delta: np.ndarray = weights - global_weights
    return delta
