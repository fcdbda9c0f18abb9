"""The dense network's backward pass and the objective's gradients against finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from parties.transfer.config import TransferConfig
from parties.transfer.network import DenseNetwork, parse_hidden
from parties.transfer.objective import objective
from parties.transfer.ops import PlainOps
from vfl.errors import ConfigError, InsecureKeyError


def numeric_gradient(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for i in range(x.size):
        step = np.zeros_like(x)
        step[i] = eps
        grad[i] = (f(x + step) - f(x - step)) / (2 * eps)
    return grad


@pytest.mark.parametrize("hidden,activations", [
    ((4,), ("sigmoid",)), ((5, 3), ("tanh", "sigmoid")), ((3, 2), ("linear", "tanh"))])
def test_backward_matches_finite_differences(hidden, activations):
    rng = np.random.default_rng(1)
    net = DenseNetwork(3, hidden, activations)
    params = net.init_params(rng) + rng.normal(0, 0.1, net.n_params)
    x = rng.normal(size=(7, 3))
    upstream = rng.normal(size=(7, hidden[-1]))

    def f(p):
        return float(np.sum(net.predict(p, x) * upstream))

    cache = net.forward(params, x)
    expected = numeric_gradient(f, params)
    np.testing.assert_allclose(net.plain_backward(params, cache, upstream), expected,
                               rtol=1e-6, atol=1e-8)
    # the ops-generic backward (used under encryption) gives the same
    generic = net.backward(params, cache, upstream, PlainOps("A")).ravel()
    np.testing.assert_allclose(generic, expected, rtol=1e-6, atol=1e-8)


def test_weighted_jacobian_is_the_gradient_of_each_unit_of_the_weighted_sum():
    rng = np.random.default_rng(2)
    net = DenseNetwork(3, (4,), ("sigmoid",))
    params = net.init_params(rng)
    x, w = rng.normal(size=(9, 3)), rng.normal(size=9)
    jac = net.weighted_jacobian(params, net.forward(params, x), w)
    for j in range(4):
        expected = numeric_gradient(lambda p, j=j: float(w @ net.predict(p, x)[:, j]), params)
        np.testing.assert_allclose(jac[j], expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("hidden", [(3,), (4, 3)])
def test_objective_gradients_match_finite_differences(hidden):
    rng = np.random.default_rng(3)
    net_a = DenseNetwork(3, hidden, ("sigmoid",) * len(hidden))
    net_b = DenseNetwork(2, hidden, ("tanh",) * len(hidden))
    theta_a, theta_b = net_a.init_params(rng), net_b.init_params(rng)
    x_a, x_b = rng.normal(size=(12, 3)), rng.normal(size=(5, 2))
    y = np.where(rng.random(12) > 0.5, 1.0, -1.0)
    overlap = np.array([7, 2, 9, 0, 11])

    def loss(ta, tb):
        return objective(net_a, ta, x_a, y, overlap, net_b, tb, x_b, alpha=3.0, l2=0.1).loss

    value = objective(net_a, theta_a, x_a, y, overlap, net_b, theta_b, x_b, alpha=3.0, l2=0.1)
    np.testing.assert_allclose(value.grad_source,
                               numeric_gradient(lambda t: loss(t, theta_b), theta_a),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(value.grad_target,
                               numeric_gradient(lambda t: loss(theta_a, t), theta_b),
                               rtol=1e-5, atol=1e-7)


def test_objective_is_the_formula_of_the_document():
    rng = np.random.default_rng(4)
    net_a, net_b = DenseNetwork(3, (2,), ("sigmoid",)), DenseNetwork(2, (2,), ("sigmoid",))
    ta, tb = net_a.init_params(rng), net_b.init_params(rng)
    x_a, x_b = rng.normal(size=(6, 3)), rng.normal(size=(3, 2))
    y = np.array([1.0, -1, 1, -1, 1, 1])
    overlap = np.array([1, 3, 4])
    u_a, u_b = net_a.predict(ta, x_a), net_b.predict(tb, x_b)
    phi = sum(y[k] * u_a[k] for k in range(6)) / 6
    total = 0.0
    for i, k in enumerate(overlap):
        s = u_b[i] @ phi
        total += 2.0 * (np.log(2) - 0.5 * y[k] * s + s * s / 8) - 0.5 * u_a[k] @ u_b[i]
    total += 0.05 * (ta @ ta + tb @ tb)
    got = objective(net_a, ta, x_a, y, overlap, net_b, tb, x_b, alpha=2.0, l2=0.1).loss
    assert got == pytest.approx(total, rel=1e-12)


def test_network_and_config_refuse_bad_settings():
    with pytest.raises(ConfigError, match="activation"):
        DenseNetwork(3, (4,), ("softmax",))
    with pytest.raises(ConfigError, match="hidden"):
        TransferConfig(hidden=(0,))
    with pytest.raises(ConfigError, match="insecure"):
        TransferConfig(mode="plain")
    with pytest.raises(InsecureKeyError):
        TransferConfig(key_bits=512)
    with pytest.raises(ConfigError, match="local_rounds"):
        TransferConfig(local_rounds=0)
    assert TransferConfig(hidden=(4, 3), activations="tanh").activations == ("tanh", "tanh")
    assert parse_hidden("64, 32") == (64, 32)
