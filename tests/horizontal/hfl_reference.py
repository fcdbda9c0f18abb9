"""Plain numpy references, written apart from the library: central GD and FedAvg.

They share nothing with ``parties.horizontal`` but the documented seeding of
the random streams (client sampling: ``default_rng(seed).choice``; a client's
batch order in a round: ``default_rng([seed, round, client index]).permutation``;
the MLP's initial weights: Glorot-uniform from ``default_rng([seed, 0x6D6C70])``)
and the MLP's flat layout (``W1`` then ``W2``, each with its intercept row last).
"""

from __future__ import annotations

import math

import numpy as np


def standardise(blocks: list[np.ndarray]) -> list[np.ndarray]:
    """Standardise every client's block with the union's population mean and std."""
    union = np.vstack(blocks)
    mean, std = union.mean(axis=0), union.std(axis=0)
    return [(b - mean) / std for b in blocks]


def one_hot(labels: np.ndarray, classes: list[float]) -> np.ndarray:
    return np.stack([(labels == c).astype(float) for c in classes], axis=1)


def target(model: str, labels: np.ndarray, classes: list[float]) -> np.ndarray:
    return one_hot(labels, classes) if model in ("softmax", "mlp") else labels.reshape(-1, 1)


class Mlp:
    """One tanh hidden layer, softmax output; parameters flat: W1 (d+1, h), W2 (h+1, c)."""

    def __init__(self, d: int, h: int, c: int) -> None:
        self.d, self.h, self.c = d, h, c

    def initial(self, seed: int) -> np.ndarray:
        rng = np.random.default_rng([seed, 0x6D6C70])
        a = math.sqrt(6 / (self.d + self.h))
        w1 = rng.uniform(-a, a, size=(self.d, self.h))
        b = math.sqrt(6 / (self.h + self.c))
        w2 = rng.uniform(-b, b, size=(self.h, self.c))
        return np.concatenate([w1.ravel(), np.zeros(self.h), w2.ravel(), np.zeros(self.c)])

    def split(self, w: np.ndarray):
        d, h, c = self.d, self.h, self.c
        w1 = w[:(d + 1) * h].reshape(d + 1, h)
        w2 = w[(d + 1) * h:].reshape(h + 1, c)
        return w1[:-1], w1[-1], w2[:-1], w2[-1]

    def forward(self, w: np.ndarray, x: np.ndarray):
        a1, b1, a2, b2 = self.split(w)
        hidden = np.tanh(x @ a1 + b1)
        z = hidden @ a2 + b2
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return hidden, e / e.sum(axis=1, keepdims=True)

    def loss(self, w: np.ndarray, x: np.ndarray, t: np.ndarray) -> float:
        return float(-np.mean(np.sum(t * np.log(self.forward(w, x)[1]), axis=1)))

    def grad(self, w: np.ndarray, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        _, _, a2, _ = self.split(w)
        hidden, p = self.forward(w, x)
        delta2 = (p - t) / len(x)
        delta1 = delta2 @ a2.T * (1 - hidden**2)
        return np.concatenate([(x.T @ delta1).ravel(), delta1.sum(axis=0),
                               (hidden.T @ delta2).ravel(), delta2.sum(axis=0)])


def prediction(model: str, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    z = x @ w[:-1] + w[-1]
    if model == "logistic":
        return 1 / (1 + np.exp(-z))
    if model == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return z


def mean_loss(model: str, w: np.ndarray, x: np.ndarray, t: np.ndarray) -> float:
    p = prediction(model, w, x)
    if model == "linear":
        return float(np.mean((p - t) ** 2) / 2)
    if model == "logistic":
        return float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))
    return float(-np.mean(np.sum(t * np.log(p), axis=1)))


def grad(model: str, w: np.ndarray, x: np.ndarray, t: np.ndarray) -> np.ndarray:
    r = prediction(model, w, x) - t
    return np.vstack([x.T @ r, r.sum(axis=0, keepdims=True)]) / len(x)


_linear_grad, _linear_loss = grad, mean_loss


def central_gd(model: str, x: np.ndarray, t: np.ndarray, rounds: int, lr: float):
    """Full-batch gradient descent from zero; the loss at each iterate before its step."""
    w = np.zeros((x.shape[1] + 1, t.shape[1]))
    losses = []
    for _ in range(rounds):
        losses.append(mean_loss(model, w, x, t))
        w = w - lr * grad(model, w, x, t)
    return w, losses


def fedavg(model: str, xs: list[np.ndarray], ts: list[np.ndarray], *, rounds: int,
           epochs: int, batch: int | None, lr: float, seed: int, mu: float = 0.0,
           fraction: float = 1.0, min_clients: int = 2, server: str = "sgd",
           server_lr: float = 1.0, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3,
           absent: dict[int, set[int]] | None = None, hidden: int = 0):
    """FedAvg (FedProx with mu > 0; FedAdam with server="adam"), weights by row counts.

    absent: round -> client indices whose updates do not arrive in that round (the
    clients are sampled from all K every round, absent or not); a round with fewer
    than `min_clients` arrivals leaves the model unchanged, its loss None.
    model "mlp": `hidden` tanh units, parameters flat (see :class:`Mlp`).
    """
    k_total = len(xs)
    if model == "mlp":
        net = Mlp(xs[0].shape[1], hidden, ts[0].shape[1])
        w = net.initial(seed)

        def grad(_model, w, x, t):
            return net.grad(w, x, t)

        def mean_loss(_model, w, x, t):
            return net.loss(w, x, t)
    else:
        w = np.zeros((xs[0].shape[1] + 1, ts[0].shape[1]))
        grad, mean_loss = _linear_grad, _linear_loss
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    sampler = np.random.default_rng(seed)
    losses: list[float | None] = []
    for r in range(1, rounds + 1):
        size = min(k_total, max(min_clients, math.ceil(fraction * k_total - 1e-9)))
        chosen = sorted(int(i) for i in sampler.choice(k_total, size=size, replace=False))
        missing = (absent or {}).get(r, set())
        chosen = [k for k in chosen if k not in missing]
        if len(chosen) < min_clients:
            losses.append(None)
            continue
        total = np.zeros_like(w)
        loss_sum, rows = 0.0, 0
        for k in chosen:
            x, t = xs[k], ts[k]
            n = len(x)
            local = w.copy()
            rng = np.random.default_rng([seed, r, k])
            step = n if batch is None else min(batch, n)
            for _ in range(epochs):
                order = np.arange(n) if batch is None else rng.permutation(n)
                for s in range(0, n, step):
                    idx = order[s:s + step]
                    g = grad(model, local, x[idx], t[idx]) + mu * (local - w)
                    local = local - lr * g
            total += n * (local - w)
            loss_sum += n * mean_loss(model, w, x, t)
            rows += n
        delta = total / rows
        losses.append(loss_sum / rows)
        if server == "sgd":
            w = w + server_lr * delta
        else:
            m = beta1 * m + (1 - beta1) * delta
            v = beta2 * v + (1 - beta2) * delta**2
            w = w + server_lr * m / (np.sqrt(v) + tau)
    return w, losses
