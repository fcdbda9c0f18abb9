"""Integration runs: real 2048-bit keys, and FATE's motor data."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from federation_checks import joined

from parties import Coordinator, FeatureHolder, Federation, LabelHolder
from vfl.reference import train_centralized
from vfl.training import TrainingConfig

FATE_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fate"
needs_fate = pytest.mark.skipif(not (FATE_DATA / "motor_hetero_guest.csv").exists(),
                                reason=f"FATE example data not found at {FATE_DATA}")


@pytest.mark.slow
def test_real_2048_bit_key_run_equals_centralized(frames):
    a_frame, b_frame = frames
    a = FeatureHolder(a_frame, id_column="patient_id", seed=3)
    b = LabelHolder(b_frame, id_column="patient_id", label_column="progression", seed=4)
    config = TrainingConfig(epochs=2, batch_size=128, penalty="l2", alpha=0.01)
    fed = Federation(Coordinator(), b, a, config=config).fit()
    assert fed.coordinator.public_key_.n.bit_length() == 2048
    x, y = joined(a, b, a_frame, b_frame)
    ref = train_centralized(x, y, config,
                            initial_weights=np.r_[a.initial_weights_, b.initial_weights_],
                            initial_intercept=b.initial_intercept_, batch_seeds=b.batch_seeds_)
    np.testing.assert_allclose(np.r_[a.coef_, b.coef_, b.intercept_],
                               np.r_[ref.weights, ref.intercept], rtol=1e-6)
    np.testing.assert_allclose(fed.history_["loss"], ref.history, rtol=1e-6)


def _compare_fate():
    spec = importlib.util.spec_from_file_location(
        "compare_fate", Path(__file__).resolve().parents[1] / "scripts" / "compare_fate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_fate
def test_motor_with_fates_configuration_matches_fates_r2():
    script = _compare_fate()
    config = TrainingConfig(epochs=10, learning_rate=0.13, batch_size=100, penalty="l2",
                            alpha=0.01, early_stopping="none")
    r2, best, fed = script.train_motor(FATE_DATA, config, 512, True)
    assert fed.aligned_rows_ == 800
    assert best == pytest.approx(0.923, abs=5e-4)
    # FATE published 0.9031 for this configuration from zero initial weights.
    # Ours start from secret random weights, so 10 epochs land within about
    # 0.01 of it either way (0.903-0.913 over seeds in the reference); plain
    # gradient descent on these strongly correlated columns stays below the
    # closed form.
    assert abs(r2 - script.FATE_R2) <= 0.02
    assert r2 < best


@needs_fate
def test_motor_split_over_two_feature_holders_equals_one_holder():
    script = _compare_fate()
    config = TrainingConfig(epochs=10, learning_rate=0.13, batch_size=100, penalty="l2",
                            alpha=0.01, early_stopping="none")
    r2_two, two = script.train_motor_two_hosts(FATE_DATA, config, 512, True)
    a1, a2 = two.feature_holders
    start = dict(zip([*a1.table.feature_names, *a2.table.feature_names],
                     np.r_[a1.initial_weights_, a2.initial_weights_]))
    single = FeatureHolder.from_csv(FATE_DATA / "motor_hetero_host.csv", id_column="idx",
                                    label_column="motor_speed", seed=0)
    single._initial_weights = lambda d: np.array([start[c] for c in single.table.feature_names])
    # Same B seed as train_motor_two_hosts: same intercept, split and batches.
    b = LabelHolder.from_csv(FATE_DATA / "motor_hetero_guest.csv", id_column="idx",
                             label_column="motor_speed", seed=2)
    one = Federation(Coordinator(key_bits=512, insecure_key=True), b, single,
                     config=config).fit()
    several = {**a1.coef_.to_dict(), **a2.coef_.to_dict()}
    assert set(several) == set(single.table.feature_names)
    for column, weight in single.coef_.items():
        assert several[column] == pytest.approx(weight, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(two.history_["loss"], one.history_["loss"], rtol=1e-9)
    assert r2_two == pytest.approx(one.evaluate()["r2"], rel=1e-9)


@needs_fate
def test_breast_logistic_regression_close_to_scikit_learn():
    script = _compare_fate()
    ours, sklearn, fed = script.train_breast(FATE_DATA, script.BREAST, 512, True)
    assert fed.aligned_rows_ == 569
    # The Taylor loss approximates the log-loss; on this easy data the AUC is
    # within a few thousandths of the exact centralized fit (0.9938-0.9953 for
    # party seeds 0-5, against 0.9974), and the accuracy at threshold 0.5 two to
    # three points below it (0.956-0.968 for those seeds, against 0.988).
    assert ours["auc"] >= sklearn["auc"] - 0.01
    assert ours["accuracy"] >= sklearn["accuracy"] - 0.04
