"""A small dense network in numpy: each party's representation u = Net(x).

Parameters live in one flat float64 vector (what the optimiser updates and a
checkpoint stores); :class:`DenseNetwork` knows the layout. The backward
pass is written once over a :class:`~parties.transfer.ops.TensorOps`, so the
same code back-propagates a plaintext upstream gradient and, homomorphically,
an encrypted one (every step is a linear map with plaintext coefficients).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from vfl.errors import ConfigError

if TYPE_CHECKING:
    from parties.transfer.ops import TensorOps

__all__ = ["ACTIVATIONS", "DenseNetwork", "ForwardCache"]

ACTIVATIONS = ("sigmoid", "tanh", "relu", "linear")


def _activate(name: str, a: np.ndarray) -> np.ndarray:
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-a))
    if name == "tanh":
        return np.tanh(a)
    if name == "relu":
        return np.maximum(a, 0.0)
    return a


def _derivative(name: str, a: np.ndarray, out: np.ndarray) -> np.ndarray:
    if name == "sigmoid":
        return out * (1.0 - out)
    if name == "tanh":
        return 1.0 - out * out
    if name == "relu":
        return (a > 0).astype(np.float64)
    return np.ones_like(a)


@dataclass(frozen=True)
class ForwardCache:
    """What the backward pass needs: each layer's input and activation slope.

    Attributes
    ----------
    inputs : list of numpy.ndarray
        Layer l's input z_l (rows x fan-in); inputs[0] is x.
    slopes : list of numpy.ndarray
        act'(a_l) (rows x units) of each layer.
    output : numpy.ndarray
        The representation u (rows x d).
    """

    inputs: list[np.ndarray]
    slopes: list[np.ndarray]
    output: np.ndarray


@dataclass(frozen=True)
class DenseNetwork:
    """Fully connected layers ``z_{l+1} = act_l(z_l W_l + b_l)``.

    Parameters
    ----------
    n_inputs : int
        Feature columns.
    hidden : sequence of int
        Units of each layer; the last is the representation size d.
    activations : sequence of str
        One of :data:`ACTIVATIONS` per layer.
    """

    n_inputs: int
    hidden: tuple[int, ...]
    activations: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "activations", tuple(self.activations))
        if self.n_inputs < 1:
            raise ConfigError(f"a network needs at least one input column, got {self.n_inputs}")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError(f"hidden must be one or more positive layer sizes, "
                              f"got {self.hidden}")
        if len(self.activations) != len(self.hidden):
            raise ConfigError(f"{len(self.activations)} activations for {len(self.hidden)} "
                              "layers; give one per layer")
        bad = [a for a in self.activations if a not in ACTIVATIONS]
        if bad:
            raise ConfigError(f"unknown activation {bad[0]!r}; choose from "
                              f"{', '.join(ACTIVATIONS)}")

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """(fan-in, units) of each layer."""
        sizes = (self.n_inputs, *self.hidden)
        return [(sizes[i], sizes[i + 1]) for i in range(len(self.hidden))]

    @property
    def n_params(self) -> int:
        return sum((fan_in + 1) * units for fan_in, units in self.shapes)

    @property
    def output_size(self) -> int:
        return self.hidden[-1]

    def layers(self, params: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(W, b) of each layer, views into `params` (W first, row-major, then b)."""
        params = np.asarray(params, dtype=np.float64)
        if params.shape != (self.n_params,):
            raise ValueError(f"expected {self.n_params} parameters, got shape {params.shape}")
        out, at = [], 0
        for fan_in, units in self.shapes:
            w = params[at:at + fan_in * units].reshape(fan_in, units)
            at += fan_in * units
            b = params[at:at + units]
            at += units
            out.append((w, b))
        return out

    def init_params(self, rng: np.random.Generator) -> np.ndarray:
        """Glorot-uniform weights, zero biases."""
        parts = []
        for fan_in, units in self.shapes:
            limit = np.sqrt(6.0 / (fan_in + units))
            parts.append(rng.uniform(-limit, limit, size=fan_in * units))
            parts.append(np.zeros(units))
        return np.concatenate(parts)

    def forward(self, params: np.ndarray, x: np.ndarray) -> ForwardCache:
        """u = Net(x) and what :meth:`backward` needs."""
        z = np.asarray(x, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != self.n_inputs:
            raise ValueError(f"expected rows of {self.n_inputs} features, got shape {z.shape}")
        inputs, slopes = [], []
        for (w, b), act in zip(self.layers(params), self.activations):
            inputs.append(z)
            a = z @ w + b
            out = _activate(act, a)
            slopes.append(_derivative(act, a, out))
            z = out
        return ForwardCache(inputs, slopes, z)

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        return self.forward(params, x).output

    def backward(self, params: np.ndarray, cache: ForwardCache, upstream: Any,
                 ops: TensorOps, *, factor: float = 1.0) -> Any:
        """Σ_rows J_rowᵀ (factor · upstream_row), as a (1 x n_params) tensor of `ops`.

        `upstream` is a (rows x d) tensor of `ops` (plaintext or encrypted);
        every operation applied to it has plaintext coefficients, so the
        encrypted result decrypts to the plaintext one. `factor` is folded
        into the first coefficients (no extra fixed-point scale).
        """
        layers = self.layers(params)
        grads: list[Any] = [None] * len(layers)
        delta = upstream
        for index in range(len(layers) - 1, -1, -1):
            w, _ = layers[index]
            slope = cache.slopes[index] * (factor if index == len(layers) - 1 else 1.0)
            delta = ops.mul_elementwise(delta, slope)
            z = cache.inputs[index]
            with_one = np.hstack([z, np.ones((z.shape[0], 1))])
            # rows: fan-in weights then the bias, columns: units
            grad_wb = ops.t_matmul(with_one, delta)
            grads[index] = grad_wb
            if index:
                delta = ops.matmul_right(delta, w.T)
        # Each (fan-in + 1) x units block, row-major, is the layer's W then b.
        return ops.concat_flat(grads)

    def plain_backward(self, params: np.ndarray, cache: ForwardCache,
                       upstream: np.ndarray) -> np.ndarray:
        """:meth:`backward` in float64 (the reference and the Jacobian of Φ)."""
        layers = self.layers(params)
        parts: list[np.ndarray] = [np.empty(0)] * (2 * len(layers))
        delta = np.asarray(upstream, dtype=np.float64)
        for index in range(len(layers) - 1, -1, -1):
            w, _ = layers[index]
            delta = delta * cache.slopes[index]
            parts[2 * index] = (cache.inputs[index].T @ delta).ravel()
            parts[2 * index + 1] = delta.sum(axis=0)
            if index:
                delta = delta @ w.T
        return np.concatenate(parts)

    def weighted_jacobian(self, params: np.ndarray, cache: ForwardCache,
                          weights: np.ndarray) -> np.ndarray:
        """∂/∂θ of Σ_k weights_k u_k: a (d x n_params) matrix, one backward pass per unit."""
        d = self.output_size
        rows = np.empty((d, self.n_params))
        for j in range(d):
            upstream = np.zeros((len(weights), d))
            upstream[:, j] = weights
            rows[j] = self.plain_backward(params, cache, upstream)
        return rows


def parse_hidden(hidden: Sequence[int] | int | str) -> tuple[int, ...]:
    """Layer sizes from an int, a sequence or a text like ``"64,32"``."""
    if isinstance(hidden, str):
        try:
            return tuple(int(p) for p in hidden.replace(" ", "").split(",") if p)
        except ValueError:
            raise ConfigError(f"hidden must be layer sizes like '32' or '64,32', "
                              f"got {hidden!r}") from None
    if isinstance(hidden, int):
        return (hidden,)
    return tuple(int(h) for h in hidden)
