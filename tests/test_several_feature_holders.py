"""Several feature holders: the loss with its cross terms, and equality with one holder."""

from __future__ import annotations

import numpy as np
import pytest
from federation_checks import federated_params, reference_run

from parties import FeatureHolder, Federation, LabelHolder
from parties.vertical.messages import CrossTerm, CrossTermRequest
from vfl.training import TrainingConfig


def split_a(a_frame, first: list[str]):
    """A's frame cut into two feature holders' frames (both keep every ID)."""
    rest = [c for c in a_frame.columns if c not in first and c != "patient_id"]
    return a_frame[["patient_id", *first]], a_frame[["patient_id", *rest]].sample(
        frac=1.0, random_state=3)


def three_holders(a_frame):
    cols = [c for c in a_frame.columns if c != "patient_id"]
    thirds = [cols[0::3], cols[1::3], cols[2::3]]
    return [a_frame[["patient_id", *t]] for t in thirds]


@pytest.mark.parametrize("config", [
    TrainingConfig(epochs=3, learning_rate=0.1, batch_size=100, penalty="l2", alpha=0.01),
    TrainingConfig(epochs=3, learning_rate=0.3, optimizer="adam", validation_fraction=0.2),
    TrainingConfig(model="logistic", epochs=3, learning_rate=0.5, batch_size=150),
], ids=["linear-l2", "adam-validation", "logistic"])
def test_three_feature_holders_equal_centralized(frames, coordinator, config):
    a_frame, b_frame = frames
    if config.model == "logistic":
        b_frame = b_frame.assign(progression=(b_frame["progression"] > 140).astype(int))
    parts = three_holders(a_frame)
    holders = [FeatureHolder(f, id_column="patient_id", name=f"A{k}", seed=30 + k)
               for k, f in enumerate(parts, start=1)]
    b = LabelHolder(b_frame, id_column="patient_id", label_column="progression", seed=40)
    fed = Federation(coordinator, b, holders, config=config, record=True).fit()
    steps = {(e.sender, e.step) for e in fed.network_.transcript}
    ref, x, _ = reference_run(holders, b, parts, b_frame, config)
    np.testing.assert_allclose(federated_params(holders, b), np.r_[ref.weights, ref.intercept],
                               rtol=1e-6)
    # The loss is exact, cross terms included (FATE skips it with several hosts).
    np.testing.assert_allclose(fed.history_["loss"].to_numpy(), ref.history, rtol=1e-6)
    pred = fed.predict()
    order = [b.aligned_ids_.index(i) for i in pred.index]
    np.testing.assert_allclose(pred.to_numpy(), ref.predict(x[order]), rtol=1e-6)
    # A1 and A2 were asked for cross terms (encrypted), A3 was not.
    assert ("A1", CrossTerm.__name__) in steps and ("A2", CrossTerm.__name__) in steps
    assert ("A3", CrossTerm.__name__) not in steps
    assert ("B", CrossTermRequest.__name__) in steps


def test_two_feature_holders_equal_one_holding_all_columns(frames, coordinator):
    a_frame, b_frame = frames
    first = ["age", "bmi"]
    a1_frame, a2_frame = split_a(a_frame, first)
    config = TrainingConfig(epochs=4, learning_rate=0.05, batch_size=100, optimizer="momentum",
                            penalty="l1", alpha=0.5)
    a1 = FeatureHolder(a1_frame, id_column="patient_id", name="A1", seed=1)
    a2 = FeatureHolder(a2_frame, id_column="patient_id", name="A2", seed=2)
    b = LabelHolder(b_frame, id_column="patient_id", label_column="progression", seed=3)
    Federation(coordinator, b, [a1, a2],
               config=config).fit()

    merged = a1_frame.merge(a2_frame, on="patient_id")
    single = FeatureHolder(merged, id_column="patient_id", name="A1", seed=1)
    # The single holder starts from the two holders' initial weights, in its column order.
    start = dict(zip([*a1.table.feature_names, *a2.table.feature_names],
                     np.r_[a1.initial_weights_, a2.initial_weights_]))
    single._initial_weights = lambda d: np.array([start[c] for c in single.table.feature_names])
    b_single = LabelHolder(b_frame, id_column="patient_id", label_column="progression", seed=3)
    fed_single = Federation(coordinator, b_single,
                            single, config=config).fit()

    several = {**a1.coef_.to_dict(), **a2.coef_.to_dict()}
    for column, weight in single.coef_.items():
        assert several[column] == pytest.approx(weight, rel=1e-9, abs=1e-12)
    assert b.intercept_ == pytest.approx(b_single.intercept_, rel=1e-9)
    np.testing.assert_allclose(b.coef_.to_numpy(), b_single.coef_.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(b.history["loss"], fed_single.history_["loss"], rtol=1e-9)
