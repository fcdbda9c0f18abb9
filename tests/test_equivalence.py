"""Federated training equals centralized training of the same rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from federation_checks import joined
from parties import Coordinator, FeatureHolder, Federation, LabelHolder
from vfl.metrics import regression_metrics
from vfl.reference import closed_form, train_centralized
from vfl.training import TrainingConfig

RTOL = 1e-6


def fit_and_reference(frames, config, coordinator, **party_kwargs):
    a_frame, b_frame = frames
    a = FeatureHolder(a_frame, id_column="patient_id", seed=21, **party_kwargs)
    b = LabelHolder(b_frame, id_column="patient_id", label_column="progression", seed=22)
    fed = Federation(coordinator, b, a, config=config).fit()
    x, y = joined(a, b, a_frame, b_frame)
    ref = train_centralized(x, y, config,
                            initial_weights=np.r_[a.initial_weights_, b.initial_weights_],
                            initial_intercept=b.initial_intercept_, batch_seeds=b.batch_seeds_)
    return fed, a, b, ref, x, y


@pytest.mark.parametrize("config", [
    TrainingConfig(epochs=4, learning_rate=0.1),
    TrainingConfig(epochs=4, learning_rate=0.05, batch_size=64, l2=0.01),
    TrainingConfig(epochs=3, learning_rate=1e-5, batch_size=100, standardize=False),
], ids=["full-batch", "mini-batch-l2", "raw-columns"])
def test_weights_and_losses_equal_centralized(frames, coordinator, config):
    fed, a, b, ref, x, y = fit_and_reference(frames, config, coordinator)
    federated = np.r_[a.coef_.to_numpy(), b.coef_.to_numpy(), b.intercept_]
    central = np.r_[ref.weights, ref.intercept]
    np.testing.assert_allclose(federated, central, rtol=RTOL)
    np.testing.assert_allclose(fed.history_["loss"].to_numpy(), ref.history, rtol=RTOL)
    assert list(fed.history_["epoch"]) == list(range(1, len(ref.history) + 1))
    # Prediction through the protocol equals the centralized model's.
    pred = fed.predict()
    order = [b.aligned_ids_.index(i) for i in pred.index]
    np.testing.assert_allclose(pred.to_numpy(), ref.predict(x[order]), rtol=RTOL)


def test_coordinator_stops_on_tolerance(frames, coordinator):
    config = TrainingConfig(epochs=50, learning_rate=0.5, tol=50.0)
    fed, a, b, ref, *_ = fit_and_reference(frames, config, coordinator)
    assert 1 < len(fed.history_) < 50
    assert len(fed.history_) == len(ref.history)
    losses = fed.history_["loss"].to_numpy()
    assert abs(losses[-1] - losses[-2]) <= 50.0 < abs(losses[-2] - losses[-3])


def test_mini_batch_training_reaches_closed_form(frames, coordinator):
    config = TrainingConfig(epochs=30, learning_rate=0.1, batch_size=64)
    fed, a, b, ref, x, y = fit_and_reference(frames, config, coordinator)
    best = closed_form(x, y)
    pred = fed.predict()
    truth = pd.Series(y, index=b.aligned_ids_).loc[pred.index].to_numpy()
    r2 = regression_metrics(truth, pred.to_numpy())["r2"]
    r2_best = regression_metrics(y, best.predict(x))["r2"]
    assert r2 == pytest.approx(r2_best, abs=0.01)
