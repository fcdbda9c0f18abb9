"""Plain numpy references, written apart from the library: central GD and FedAvg.

They share nothing with ``parties.horizontal`` but the documented seeding of
the random streams (client sampling: ``default_rng(seed).choice``; a client's
batch order in a round: ``default_rng([seed, round, client index]).permutation``).
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
    return one_hot(labels, classes) if model == "softmax" else labels.reshape(-1, 1)


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
           absent: dict[int, set[int]] | None = None):
    """FedAvg (FedProx with mu > 0; FedAdam with server="adam"), weights by row counts.

    absent: round -> client indices whose updates do not arrive in that round.
    """
    k_total = len(xs)
    w = np.zeros((xs[0].shape[1] + 1, ts[0].shape[1]))
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    sampler = np.random.default_rng(seed)
    gone: set[int] = set()
    losses = []
    for r in range(1, rounds + 1):
        remaining = [k for k in range(k_total) if k not in gone]
        size = min(len(remaining), max(min_clients, math.ceil(fraction * len(remaining) - 1e-9)))
        chosen = sorted(remaining[i] for i in sampler.choice(len(remaining), size=size,
                                                             replace=False))
        missing = (absent or {}).get(r, set())
        gone |= missing & set(chosen)
        chosen = [k for k in chosen if k not in missing]
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
