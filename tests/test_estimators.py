"""The notebook API: scikit-learn-style estimators over in-process parties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from federation_checks import federated_params, reference_run

from parties import (
    FeatureHolder,
    LabelHolder,
    VerticalLinearRegression,
    VerticalLogisticRegression,
)
from vfl.errors import ConfigError
from vfl.metrics import classification_metrics

SMALL = {"key_bits": 512, "insecure_key": True}


def make_parties(frames, *, binary=False):
    a_frame, b_frame = frames
    if binary:
        b_frame = b_frame.assign(progression=(b_frame["progression"] > 140).astype(int))
    return (LabelHolder(b_frame, id_column="patient_id", label_column="progression", seed=5),
            FeatureHolder(a_frame, id_column="patient_id", seed=6), b_frame)


def test_linear_estimator_fits_like_the_reference(frames):
    b, a, b_frame = make_parties(frames)
    model = VerticalLinearRegression(epochs=5, optimizer="adam", learning_rate=1.0,
                                     batch_size=100, validation_fraction=0.2, **SMALL)
    assert model.fit([b, a]) is model
    ref, x, _ = reference_run([a], b, [frames[0]], b_frame, model.config)
    np.testing.assert_allclose(federated_params([a], b), np.r_[ref.weights, ref.intercept],
                               rtol=1e-6)
    assert list(model.history_.columns) == ["epoch", "loss", "validation_loss"]
    assert model.n_epochs_ == 5 and model.aligned_rows_ == len(b.aligned_ids_)
    assert set(model.coef_) == {"A1", "B"}
    assert list(model.coef_["A1"].index) == a.table.feature_names
    assert model.intercept_ == b.intercept_
    pred = model.predict()
    order = [b.aligned_ids_.index(i) for i in pred.index]
    np.testing.assert_allclose(pred.to_numpy(), ref.predict(x[order]), rtol=1e-6)
    np.testing.assert_allclose(model.predict(deliver_to="C").to_numpy(), pred.to_numpy(),
                               rtol=1e-9)
    assert -1 < model.score() < 1


def test_logistic_estimator_predicts_classes_in_the_labels_coding(frames):
    b, a, b_frame = make_parties(frames, binary=True)
    model = VerticalLogisticRegression(epochs=6, learning_rate=0.5, **SMALL).fit([a, b])
    proba = model.predict_proba()
    classes = model.predict()
    assert set(classes.unique()) <= {0, 1}
    assert ((proba > 0.5).astype(int) == classes).all()
    truth = b_frame.set_index("patient_id").loc[proba.index, "progression"]
    metrics = classification_metrics(truth.to_numpy(), proba.to_numpy())
    assert model.evaluate() == pytest.approx(metrics)
    assert model.score() == pytest.approx(metrics["accuracy"])
    assert metrics["auc"] > 0.65  # it learned something (0.70 after 6 epochs)


def test_new_rows_are_predicted_by_every_party(frames):
    b, a, _ = make_parties(frames)
    model = VerticalLinearRegression(epochs=2, **SMALL).fit([b, a])
    a_frame, b_frame = frames
    new_a = a_frame.iloc[:30]
    new_b = b_frame.drop(columns="progression")
    pred = model.predict(new_b, new_a)
    shared = set(new_a["patient_id"].astype(str)) & set(new_b["patient_id"].astype(str))
    assert set(pred.index) == shared


def test_parameters_are_checked_at_construction():
    with pytest.raises(ConfigError, match="tol"):
        VerticalLinearRegression(tol=0)
    with pytest.raises(ConfigError, match="optimizer"):
        VerticalLinearRegression(optimizer="lbfgs", penalty="l1", alpha=0.1)
    with pytest.raises(TypeError, match="unknown parameter"):
        VerticalLinearRegression(model="logistic")
    model = VerticalLinearRegression(epochs=3)
    assert model.get_params()["epochs"] == 3
    assert model.set_params(optimizer="adam").config.optimizer == "adam"
    assert "optimizer='adam'" in repr(model)


def test_fit_needs_the_right_parties(frames):
    b, a, _ = make_parties(frames)
    with pytest.raises(AttributeError, match="not fitted"):
        VerticalLinearRegression().predict()
    with pytest.raises(ValueError, match="one LabelHolder"):
        VerticalLinearRegression(**SMALL).fit([a])
    with pytest.raises(TypeError, match="party objects"):
        VerticalLinearRegression(**SMALL).fit([b, a, pd.DataFrame()])
