"""The objective and its gradients computed centrally in float64 (``docs/transfer.md``).

This is what the protocol computes between two parties, written directly
with both parties' data in one place: the reference the tests compare plain
and encrypted runs against, and the function finite differences check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parties.transfer.network import DenseNetwork

__all__ = ["ObjectiveValue", "objective", "phi_of", "train_reference"]

LOG2 = float(np.log(2.0))


@dataclass(frozen=True)
class ObjectiveValue:
    """L and its gradients with respect to each network's parameters."""

    loss: float
    grad_source: np.ndarray
    grad_target: np.ndarray


def phi_of(network: DenseNetwork, params: np.ndarray, x: np.ndarray, y: np.ndarray
           ) -> np.ndarray:
    """Φ = (1/N_A) Σ_k y_k u_k^A."""
    u = network.predict(params, x)
    return (y[:, None] * u).mean(axis=0)


def objective(source_net: DenseNetwork, source_params: np.ndarray, x_source: np.ndarray,
              y: np.ndarray, overlap_source: np.ndarray, target_net: DenseNetwork,
              target_params: np.ndarray, x_target_overlap: np.ndarray, *, alpha: float,
              l2: float) -> ObjectiveValue:
    """L = alpha Σ [log 2 - ½ y s + ⅛ s²] - kappa Σ u_A · u_B + (λ/2)(‖θ_A‖² + ‖θ_B‖²).

    Parameters
    ----------
    x_source, y : all of A's rows and labels (±1)
    overlap_source : positions of the overlap rows in A's rows, in the common order
    x_target_overlap : B's overlap rows in the same order
    """
    cache_a = source_net.forward(source_params, x_source)
    u_a = cache_a.output
    n_a, d = u_a.shape
    kappa = 1.0 / d
    phi = (y[:, None] * u_a).mean(axis=0)
    cache_b = target_net.forward(target_params, x_target_overlap)
    u_b = cache_b.output
    y_o, u_ao = y[overlap_source], u_a[overlap_source]
    s = u_b @ phi
    loss = (alpha * float(np.sum(LOG2 - 0.5 * y_o * s + 0.125 * s * s))
            - kappa * float(np.sum(u_ao * u_b))
            + 0.5 * l2 * (float(source_params @ source_params)
                          + float(target_params @ target_params)))
    dl_ds = alpha * (-0.5 * y_o + 0.25 * s)
    upstream_b = dl_ds[:, None] * phi[None, :] - kappa * u_ao
    grad_b = target_net.plain_backward(target_params, cache_b, upstream_b) + l2 * target_params
    dl_dphi = dl_ds @ u_b
    upstream_a = (y / n_a)[:, None] * dl_dphi[None, :]
    np.add.at(upstream_a, overlap_source, -kappa * u_b)
    grad_a = source_net.plain_backward(source_params, cache_a, upstream_a) + l2 * source_params
    return ObjectiveValue(loss, grad_a, grad_b)


def train_reference(source_net: DenseNetwork, source_params: np.ndarray,
                    x_source: np.ndarray, y: np.ndarray, overlap_source: np.ndarray,
                    target_net: DenseNetwork, target_params: np.ndarray,
                    x_target_overlap: np.ndarray, *, alpha: float, l2: float,
                    learning_rate: float, epochs: int
                    ) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Gradient descent on both networks at once (the normal mode, one step per epoch).

    Returns
    -------
    (source params, target params, loss of every epoch before its step)
    """
    theta_a, theta_b = source_params.copy(), target_params.copy()
    history = []
    for _ in range(epochs):
        value = objective(source_net, theta_a, x_source, y, overlap_source, target_net,
                          theta_b, x_target_overlap, alpha=alpha, l2=l2)
        history.append(value.loss)
        theta_a = theta_a - learning_rate * value.grad_source
        theta_b = theta_b - learning_rate * value.grad_target
    return theta_a, theta_b, history
