"""The notebook surface: predictions in raw units, per-client history, a real 2048-bit run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from parties.horizontal import FederatedAveraging, HorizontalClient, split_by_column

KEY = {"key_bits": 512, "insecure_key": True}


def _table(seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, 3)) * [1.0, 10.0, 0.1] + [0.0, 50.0, -3.0]
    z = x @ np.array([1.0, 0.1, -8.0]) + 0.2 * rng.normal(size=300)
    classes = np.digitize(z - np.median(z), [-1.0, 1.0])
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": classes,
                         "site": rng.integers(0, 3, size=300)})


def test_softmax_predicts_in_raw_units_and_records_each_clients_metrics() -> None:
    parts = split_by_column(_table(), "site")
    clients = [HorizontalClient(p, label_column="y", name=f"H{k}") for k, p in parts.items()]
    model = FederatedAveraging(model="softmax", rounds=15, local_epochs=2, batch_size=16,
                               learning_rate=0.2, **KEY).fit(clients)
    assert model.coef_.shape == (3, 3) and model.intercept_.shape == (3,)
    table = _table()
    x = table[["a", "b", "c"]].to_numpy()
    # Raw-unit weights applied to raw columns give the probabilities directly.
    scores = x @ model.coef_ + model.intercept_
    expected = np.exp(scores - scores.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict_proba(table), expected, rtol=1e-12)
    accuracy = np.mean(model.predict(table) == table["y"].to_numpy())
    assert accuracy > 0.8
    first, last = model.history_[0], model.history_[-1]
    assert last["loss"] < first["loss"]
    assert sorted(first["clients"]) == ["H0", "H1", "H2"]
    assert {k: v["rows"] for k, v in first["clients"].items()} == {
        f"H{k}": len(p) for k, p in parts.items()}
    # Each client's own loss before the round averages (by rows) to the round's loss.
    weighted = sum(v["rows"] * v["loss_before"] for v in first["clients"].values()) / 300
    assert weighted == pytest.approx(first["loss"], rel=1e-6)


def test_fedadam_and_fedprox_train() -> None:
    parts = list(split_by_column(_table(), "site").values())
    for options in ({"server_optimizer": "adam", "server_learning_rate": 0.1},
                    {"algorithm": "fedprox", "mu": 0.1}):
        model = FederatedAveraging(model="softmax", rounds=10, local_epochs=2, batch_size=16,
                                   learning_rate=0.2, **options, **KEY).fit(
            [HorizontalClient(p, label_column="y") for p in parts])
        assert model.history_[-1]["loss"] < 0.7 * model.history_[0]["loss"]


@pytest.mark.slow
def test_a_real_2048_bit_run_equals_the_512_bit_run() -> None:
    parts = list(split_by_column(_table(), "site").values())
    options = {"model": "logistic", "rounds": 2, "local_epochs": 2, "batch_size": 32}
    table = _table()
    binary = [p.assign(y=(p["y"] == 2).astype(float)) for p in parts]
    real = FederatedAveraging(**options).fit([HorizontalClient(p, label_column="y")
                                              for p in binary])
    small = FederatedAveraging(**options, **KEY).fit([HorizontalClient(p, label_column="y")
                                                      for p in binary])
    # The key changes only the masks and the randomness: the model is the same to the bit.
    np.testing.assert_array_equal(real.coef_, small.coef_)
    assert real.predict(table).shape == (300,)
