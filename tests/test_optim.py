"""Optimisers, schedules and penalties against textbook formulas; invalid options."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vfl.errors import ConfigError
from vfl.optim import Optimizer, learning_rate_at, penalty_value
from vfl.training import TrainingConfig

RNG = np.random.default_rng(7)
GRADS = [RNG.normal(size=4) for _ in range(5)]
START = RNG.normal(size=4)


def run(config, lr=0.1):
    opt = Optimizer(config, np.ones(4, dtype=bool))
    w = START.copy()
    for g in GRADS:
        w = opt.step(w, g, lr)
    return w


def textbook(name, lr=0.1, **c):
    """Plain-loop implementations written from the usual papers' formulas."""
    w = START.copy()
    v = [0.0] * 4
    s = [0.0] * 4
    for t, g in enumerate(GRADS, start=1):
        for i in range(4):
            if name == "sgd":
                w[i] -= lr * g[i]
            elif name == "momentum":
                v[i] = c["mu"] * v[i] + g[i]
                w[i] -= lr * ((g[i] + c["mu"] * v[i]) if c.get("nesterov") else v[i])
            elif name == "adagrad":
                s[i] += g[i] ** 2
                w[i] -= lr * g[i] / (math.sqrt(s[i]) + 1e-8)
            elif name == "rmsprop":
                s[i] = c["rho"] * s[i] + (1 - c["rho"]) * g[i] ** 2
                w[i] -= lr * g[i] / (math.sqrt(s[i]) + 1e-8)
            elif name == "adam":
                v[i] = 0.9 * v[i] + 0.1 * g[i]
                s[i] = 0.999 * s[i] + 0.001 * g[i] ** 2
                m_hat, s_hat = v[i] / (1 - 0.9 ** t), s[i] / (1 - 0.999 ** t)
                w[i] -= lr * m_hat / (math.sqrt(s_hat) + 1e-8)
    return w


@pytest.mark.parametrize("config, expected", [
    (TrainingConfig(), textbook("sgd")),
    (TrainingConfig(optimizer="momentum", momentum=0.7), textbook("momentum", mu=0.7)),
    (TrainingConfig(optimizer="momentum", momentum=0.7, nesterov=True),
     textbook("momentum", mu=0.7, nesterov=True)),
    (TrainingConfig(optimizer="adagrad"), textbook("adagrad")),
    (TrainingConfig(optimizer="rmsprop", rho=0.8), textbook("rmsprop", rho=0.8)),
    (TrainingConfig(optimizer="adam"), textbook("adam")),
], ids=["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
def test_update_rules_match_the_textbook(config, expected):
    np.testing.assert_allclose(run(config), expected, rtol=1e-12)


def test_l2_adds_alpha_w_to_the_gradient_but_not_to_the_intercept():
    config = TrainingConfig(penalty="l2", alpha=0.5)
    opt = Optimizer(config, np.array([True, False]))
    w = opt.step(np.array([2.0, 2.0]), np.array([0.0, 0.0]), 0.1)
    np.testing.assert_allclose(w, [2.0 - 0.1 * 0.5 * 2.0, 2.0])


def test_l1_is_a_soft_threshold_with_exact_zeros():
    config = TrainingConfig(penalty="l1", alpha=1.0)
    opt = Optimizer(config, np.array([True, True, True, False]))
    w = opt.step(np.array([0.05, -0.3, 0.0, 0.05]), np.zeros(4), 0.1)
    # |w| - lr*alpha = |w| - 0.1, floored at 0; the intercept is never shrunk.
    np.testing.assert_allclose(w, [0.0, -0.2, 0.0, 0.05])
    assert w[0] == 0.0 and w[2] == 0.0


def test_schedules():
    base = {"learning_rate": 0.8}
    assert [learning_rate_at(TrainingConfig(**base), e) for e in (1, 9)] == [0.8, 0.8]
    step = TrainingConfig(schedule="step", step_size=3, gamma=0.5, **base)
    assert [learning_rate_at(step, e) for e in (1, 3, 4, 7)] == [0.8, 0.8, 0.4, 0.2]
    inv = TrainingConfig(schedule="invsqrt", decay=0.5, **base)
    assert learning_rate_at(inv, 5) == pytest.approx(0.8 / math.sqrt(3.0))


def test_penalty_values():
    w = np.array([1.0, -2.0])
    assert penalty_value(TrainingConfig(penalty="l2", alpha=0.1), w) == pytest.approx(0.25)
    assert penalty_value(TrainingConfig(penalty="l1", alpha=0.1), w) == pytest.approx(0.3)
    assert penalty_value(TrainingConfig(), w) == 0.0


@pytest.mark.parametrize("kwargs, named", [
    ({"optimizer": "lbfgs", "penalty": "l1", "alpha": 0.1}, "optimizer"),
    ({"tol": 0.0}, "tol"),
    ({"tol": -1e-3}, "tol"),
    ({"penalty": "elasticnet"}, "penalty"),
    ({"schedule": "cosine"}, "schedule"),
    ({"model": "probit"}, "model"),
    ({"nesterov": True}, "nesterov"),
    ({"alpha": 0.1}, "alpha"),
    ({"early_stopping": "validation"}, "validation_fraction"),
    ({"validation_fraction": 0.6}, "validation_fraction"),
    ({"momentum": 1.0}, "momentum"),
    ({"batch_size": 0}, "batch_size"),
    ({"epochs": 0}, "epochs"),
    ({"learning_rate": float("nan")}, "learning_rate"),
    ({"patience": 0}, "patience"),
])
def test_invalid_options_raise_config_error_naming_the_option(kwargs, named):
    with pytest.raises(ConfigError, match=named):
        TrainingConfig(**kwargs)
