"""Federated training equals centralized training of the same rule.

Every optimiser, penalty, schedule, stopping rule and both models: the
weights, intercept, loss history and predictions of a federated run equal
:func:`vfl.reference.train_centralized` on the joined data, given the same
secret initial weights and batch seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from federation_checks import federated_params, reference_run

from parties import FeatureHolder, Federation, LabelHolder
from vfl.metrics import regression_metrics
from vfl.reference import closed_form
from vfl.training import TrainingConfig

RTOL = 1e-6


def binary(frames):
    """The diabetes frames with the label turned into 0/1 (above the median)."""
    a_frame, b_frame = frames
    b_frame = b_frame.copy()
    b_frame["progression"] = (b_frame["progression"] > b_frame["progression"].median()
                              ).astype(int)
    return a_frame, b_frame


def fit_and_reference(frames, config, coordinator, **party_kwargs):
    a_frame, b_frame = frames
    a = FeatureHolder(a_frame, id_column="patient_id", seed=21, **party_kwargs)
    b = LabelHolder(b_frame, id_column="patient_id", label_column="progression", seed=22)
    fed = Federation(coordinator, b, a, config=config).fit()
    ref, x, y = reference_run([a], b, [a_frame], b_frame, config)
    return fed, a, b, ref, x, y


def assert_same_as_reference(fed, holders, b, ref, x):
    np.testing.assert_allclose(federated_params(holders, b), np.r_[ref.weights, ref.intercept],
                               rtol=RTOL, atol=1e-9)
    history = fed.history_
    np.testing.assert_allclose(history["loss"].to_numpy(), ref.history, rtol=RTOL)
    assert list(history["epoch"]) == list(range(1, len(ref.history) + 1))
    if ref.validation_history:
        np.testing.assert_allclose(history["validation_loss"].to_numpy(),
                                   ref.validation_history, rtol=RTOL)
    pred = fed.predict()
    order = [b.aligned_ids_.index(i) for i in pred.index]
    np.testing.assert_allclose(pred.to_numpy(), ref.predict(x[order]), rtol=RTOL)


LINEAR = {
    "full-batch": TrainingConfig(epochs=4, learning_rate=0.1),
    "mini-batch-l2": TrainingConfig(epochs=4, learning_rate=0.05, batch_size=64, penalty="l2",
                                    alpha=0.01),
    "raw-columns": TrainingConfig(epochs=3, learning_rate=1e-5, batch_size=100,
                                  standardize=False),
    "momentum": TrainingConfig(epochs=4, learning_rate=0.05, batch_size=100,
                               optimizer="momentum", momentum=0.8),
    "nesterov": TrainingConfig(epochs=4, learning_rate=0.05, batch_size=100,
                               optimizer="momentum", nesterov=True),
    "adagrad": TrainingConfig(epochs=4, learning_rate=5.0, batch_size=100, optimizer="adagrad"),
    "rmsprop": TrainingConfig(epochs=4, learning_rate=1.0, batch_size=100, optimizer="rmsprop",
                              rho=0.8),
    "adam": TrainingConfig(epochs=4, learning_rate=2.0, batch_size=100, optimizer="adam"),
    "l1-sgd": TrainingConfig(epochs=5, learning_rate=0.1, penalty="l1", alpha=5.0),
    "l1-adam": TrainingConfig(epochs=4, learning_rate=2.0, batch_size=100, optimizer="adam",
                              penalty="l1", alpha=2.0),
    "l2-rmsprop": TrainingConfig(epochs=4, learning_rate=1.0, batch_size=100,
                                 optimizer="rmsprop", penalty="l2", alpha=0.1),
    "step-schedule": TrainingConfig(epochs=5, learning_rate=0.2, schedule="step", step_size=2,
                                    gamma=0.5, batch_size=100),
    "invsqrt-schedule": TrainingConfig(epochs=5, learning_rate=0.2, schedule="invsqrt",
                                       decay=0.5, batch_size=100),
    "validation-patience": TrainingConfig(epochs=30, learning_rate=0.9, validation_fraction=0.25,
                                          early_stopping="validation", patience=2, tol=1.0),
    "weight-change": TrainingConfig(epochs=40, learning_rate=0.1, early_stopping="weights",
                                    tol=0.5),
    "no-stopping": TrainingConfig(epochs=3, learning_rate=0.1, early_stopping="none",
                                  validation_fraction=0.2),
}


@pytest.mark.parametrize("config", LINEAR.values(), ids=LINEAR.keys())
def test_linear_training_equals_centralized(frames, coordinator, config):
    fed, a, b, ref, x, _y = fit_and_reference(frames, config, coordinator)
    assert_same_as_reference(fed, [a], b, ref, x)


LOGISTIC = {
    "logistic-sgd": TrainingConfig(model="logistic", epochs=4, learning_rate=0.5,
                                   batch_size=100),
    "logistic-adam-l2": TrainingConfig(model="logistic", epochs=4, learning_rate=0.3,
                                       optimizer="adam", penalty="l2", alpha=0.05),
    "logistic-l1-validation": TrainingConfig(model="logistic", epochs=6, learning_rate=0.5,
                                             penalty="l1", alpha=0.01,
                                             validation_fraction=0.2),
}


@pytest.mark.parametrize("config", LOGISTIC.values(), ids=LOGISTIC.keys())
def test_logistic_training_equals_centralized(frames, coordinator, config):
    fed, a, b, ref, x, _y = fit_and_reference(binary(frames), config, coordinator)
    assert_same_as_reference(fed, [a], b, ref, x)
    probabilities = fed.predict()
    assert ((probabilities > 0) & (probabilities < 1)).all()


def test_logistic_accepts_minus_one_plus_one_labels(frames, coordinator):
    a_frame, b_frame = binary(frames)
    signed = b_frame.assign(progression=2 * b_frame["progression"] - 1)
    config = TrainingConfig(model="logistic", epochs=3, learning_rate=0.5)
    _, a1, b1, *_ = fit_and_reference((a_frame, b_frame), config, coordinator)
    _, a2, b2, *_ = fit_and_reference((a_frame, signed), config, coordinator)
    np.testing.assert_allclose(federated_params([a2], b2), federated_params([a1], b1), rtol=RTOL)


def test_stopping_rules_stop_early_and_as_the_reference(frames, coordinator):
    config = LINEAR["validation-patience"]
    fed, _a, _b, _ref, *_ = fit_and_reference(frames, config, coordinator)
    epochs = len(fed.history_)
    assert config.patience < epochs < config.epochs
    validation = fed.history_["validation_loss"].to_numpy()
    best = int(np.argmin(validation))
    # Stopped `patience` epochs after the best one, and kept the best weights
    # (the reference restores them too: the equality test above covers that).
    assert epochs - 1 - best == config.patience
    config = LINEAR["weight-change"]
    fed, *_ = fit_and_reference(frames, config, coordinator)
    assert 1 < len(fed.history_) < config.epochs


def test_loss_tolerance_stops_training(frames, coordinator):
    config = TrainingConfig(epochs=60, learning_rate=0.1, tol=5.0)
    fed, _a, _b, ref, *_ = fit_and_reference(frames, config, coordinator)
    losses = fed.history_["loss"].to_numpy()
    assert 2 < len(losses) < 60 and len(losses) == len(ref.history)
    assert abs(losses[-1] - losses[-2]) <= 5.0 < abs(losses[-2] - losses[-3])


def test_l1_sets_weights_exactly_to_zero(frames, coordinator):
    config = TrainingConfig(epochs=30, learning_rate=0.1, penalty="l1", alpha=20.0)
    _fed, a, b, ref, _x, _y = fit_and_reference(frames, config, coordinator)
    weights = np.r_[a.coef_.to_numpy(), b.coef_.to_numpy()]
    assert (weights == 0).sum() >= 3
    assert ((ref.weights == 0) == (weights == 0)).all()


def test_mini_batch_training_reaches_closed_form(frames, coordinator):
    config = TrainingConfig(epochs=30, learning_rate=0.1, batch_size=64)
    fed, _a, b, _ref, x, y = fit_and_reference(frames, config, coordinator)
    best = closed_form(x, y)
    pred = fed.predict()
    truth = pd.Series(y, index=b.aligned_ids_).loc[pred.index].to_numpy()
    r2 = regression_metrics(truth, pred.to_numpy())["r2"]
    r2_best = regression_metrics(y, best.predict(x))["r2"]
    assert r2 == pytest.approx(r2_best, abs=0.01)
