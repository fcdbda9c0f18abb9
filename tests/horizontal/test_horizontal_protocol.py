"""The horizontal protocol against independent numpy computations (the issue's Proof)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hfl_reference import central_gd, fedavg, mean_loss, standardise, target

from parties.horizontal import (
    FederatedAveraging,
    HorizontalClient,
    dirichlet_label_skew,
)
from parties.horizontal.messages import (
    EncryptedStatistics,
    EncryptedUpdate,
    HorizontalPlan,
    Join,
    MaskedAggregate,
)
from vfl.crypto import EncryptedVector
from vfl.errors import ConfigError, EncodingOverflowError, MissingColumnError

KEY = {"key_bits": 512, "insecure_key": True}
ROWS = (37, 53, 61)  # odd sizes: no count can be mistaken for another number in a message


def _data(model: str, rows=ROWS, seed: int = 3, shift: bool = True):
    """Clients with different feature distributions (non-IID in x)."""
    rng = np.random.default_rng(seed)
    frames = []
    for k, n in enumerate(rows):
        x = rng.normal(size=(n, 3)) * (1 + k) + (2 * k if shift else 0)
        z = x @ np.array([0.8, -1.1, 0.4]) + 0.3 * rng.normal(size=n)
        if model == "linear":
            y = z + 5.0
        elif model == "logistic":
            y = (z > np.median(z)).astype(float)
        else:
            y = np.digitize(z, np.quantile(z, [0.33, 0.66])).astype(float)
        frames.append(pd.DataFrame({"f1": x[:, 0], "f2": x[:, 1], "f3": x[:, 2], "y": y}))
    return frames


def _arrays(model: str, frames: list[pd.DataFrame]):
    xs = standardise([f[["f1", "f2", "f3"]].to_numpy() for f in frames])
    classes = sorted({float(v) for f in frames for v in f["y"]})
    ts = [target(model, f["y"].to_numpy(), classes) for f in frames]
    return xs, ts


def _std_weights(model: FederatedAveraging) -> np.ndarray:
    return model.weights_standardised_


def _clients(frames, **kwargs):
    return [HorizontalClient(f, label_column="y", **kwargs) for f in frames]


@pytest.mark.parametrize("model", ["linear", "logistic", "softmax"])
def test_fedsgd_with_every_client_equals_central_gradient_descent(model: str) -> None:
    frames = _data(model)
    fitted = FederatedAveraging(model=model, algorithm="fedsgd", rounds=8, learning_rate=0.4,
                                **KEY).fit(_clients(frames))
    xs, ts = _arrays(model, frames)
    w, losses = central_gd(model, np.vstack(xs), np.vstack(ts), 8, 0.4)
    np.testing.assert_allclose(_std_weights(fitted), w, rtol=1e-6, atol=0)
    np.testing.assert_allclose([h["loss"] for h in fitted.history_], losses, rtol=1e-6, atol=0)
    # Raw units: the model predicts the raw union like the central model on standardised rows.
    union = pd.concat(frames)
    if model == "linear":
        expected = np.vstack(xs) @ w[:-1, 0] + w[-1, 0]
        np.testing.assert_allclose(fitted.predict(union), expected, rtol=1e-6)
    assert all(h["rows"] == sum(ROWS) for h in fitted.history_)


@pytest.mark.parametrize(("algorithm", "server", "fraction"), [
    ("fedavg", "sgd", 1.0), ("fedprox", "sgd", 1.0), ("fedavg", "adam", 1.0),
    ("fedavg", "sgd", 0.6)])
def test_fedavg_equals_a_plain_numpy_simulation(algorithm, server, fraction) -> None:
    frames = _data("logistic", rows=(37, 53, 61, 29))
    options = {"rounds": 4, "local_epochs": 3, "batch_size": 8, "learning_rate": 0.3,
               "seed": 5, "fraction": fraction, "server_optimizer": server,
               "server_learning_rate": 0.05 if server == "adam" else 1.0}
    if algorithm == "fedprox":
        options["mu"] = 0.5
    fitted = FederatedAveraging(model="logistic", algorithm=algorithm, **options,
                                **KEY).fit(_clients(frames))
    xs, ts = _arrays("logistic", frames)
    w, losses = fedavg("logistic", xs, ts, rounds=4, epochs=3, batch=8, lr=0.3, seed=5,
                       mu=options.get("mu", 0.0) if algorithm == "fedprox" else 0.0,
                       fraction=fraction, server=server,
                       server_lr=options["server_learning_rate"])
    np.testing.assert_allclose(_std_weights(fitted), w, rtol=1e-6, atol=0)
    np.testing.assert_allclose([h["loss"] for h in fitted.history_], losses, rtol=1e-6)
    if fraction < 1:
        assert {len(h["participants"]) for h in fitted.history_} == {3}
        assert len({tuple(h["participants"]) for h in fitted.history_}) > 1


def test_fedavg_differs_from_central_on_a_non_iid_split() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 3))
    y = (x @ np.array([1.0, -1.0, 0.5]) + 0.5 * rng.normal(size=240) > 0).astype(float)
    table = pd.DataFrame({"f1": x[:, 0], "f2": x[:, 1], "f3": x[:, 2], "y": y})
    frames = dirichlet_label_skew(table, "y", 3, alpha=0.3, seed=1)
    shares = [f["y"].mean() for f in frames]
    assert max(shares) - min(shares) > 0.3  # the split is skewed
    epochs, lr, rounds = 5, 0.5, 3
    fitted = FederatedAveraging(model="logistic", rounds=rounds, local_epochs=epochs,
                                learning_rate=lr, **KEY).fit(_clients(frames))
    xs, ts = _arrays("logistic", frames)
    # Same number of full-batch steps on the union, central: FedAvg drifts away from it.
    central, _ = central_gd("logistic", np.vstack(xs), np.vstack(ts), rounds * epochs, lr)
    simulated, _ = fedavg("logistic", xs, ts, rounds=rounds, epochs=epochs, batch=None,
                          lr=lr, seed=0)
    np.testing.assert_allclose(_std_weights(fitted), simulated, rtol=1e-6, atol=0)
    gap = np.abs(_std_weights(fitted) - central).max() / np.abs(central).max()
    assert gap > 0.01


def _plain_values(body: object) -> list[float]:
    """Every number in a message outside its ciphertexts."""
    found: list[float] = []

    def walk(value: object) -> None:
        if isinstance(value, EncryptedVector):
            return
        if isinstance(value, bool):
            return
        if isinstance(value, (int, float)):
            found.append(float(value))
        elif dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                walk(getattr(value, f.name))
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)

    walk(body)
    return found


def test_transcript_ciphertexts_to_s_masked_values_to_c_no_counts_in_clear() -> None:
    frames = _data("linear")
    fitted = FederatedAveraging(model="linear", rounds=3, local_epochs=2, batch_size=10,
                                learning_rate=0.1, record=True, **KEY).fit(_clients(frames))
    federation = fitted.federation_
    network = federation.network_
    clients = ["C1", "C2", "C3"]
    to_server = [e for e in network.transcript if e.recipient == "S" and e.sender in clients]
    # Besides the field-less Join (each client process says it is there), ciphertexts only.
    assert {type(e.body) for e in to_server} == {Join, EncryptedStatistics, EncryptedUpdate}
    assert dataclasses.fields(Join) == ()
    for envelope in to_server:  # every field of every client message is a ciphertext vector
        fields = dataclasses.fields(envelope.body)
        assert all(isinstance(getattr(envelope.body, f.name), EncryptedVector) for f in fields)
    to_c = [e for e in network.transcript if e.recipient == "C"]
    # Besides the run's plan (options, column names), C receives only masked aggregates.
    assert {type(e.body) for e in to_c} == {HorizontalPlan, MaskedAggregate}
    assert {e.sender for e in to_c} == {"S"}
    # What C decrypted is uniform in Z_n: nowhere near the small packed sums.
    n = federation.key_holder_.public_key_.n
    seen = [v for values in federation.key_holder_.decrypted_ for v in values]
    assert len(seen) >= 2 + 3  # two statistics sums and at least one per round
    server_layout = federation.server_._packing  # the update's slots, then the tally's
    used_bits = max(layout.slot_bits * layout.slots_per_plaintext
                    for layout in (server_layout.values, server_layout.tally))
    assert all(v.bit_length() > used_bits for v in seen)  # P(false alarm) < 2**-40 each
    assert len(set(seen)) == len(seen)
    assert min(seen) > n >> 48 and max(seen) < n
    # No client's row count travels in the clear, in any message between any parties.
    for envelope in network.transcript:
        plain = set(_plain_values(envelope.body))
        assert not plain & {float(r) for r in ROWS}, (envelope.sender, envelope.step)
    assert fitted.history_[0]["rows"] == sum(ROWS)  # S learns only the total


def test_a_client_that_drops_out_leaves_the_round_complete_without_it() -> None:
    frames = _data("logistic", rows=(37, 53, 61, 29))
    clients = _clients(frames)
    clients[2].leave_at_round = 2  # C3 receives round 2's model and dies
    fitted = FederatedAveraging(model="logistic", rounds=3, local_epochs=2, batch_size=10,
                                learning_rate=0.3, seed=2, round_timeout=2.0,
                                **KEY).fit(clients)
    history = fitted.history_
    assert [h["participants"] for h in history] == [["C1", "C2", "C3", "C4"],
                                                   ["C1", "C2", "C4"], ["C1", "C2", "C4"]]
    # In-process S cannot tell a dead client from a slow one: C3 is asked again, in vain.
    assert history[1]["dropped"] == ["C3"] and history[2]["dropped"] == ["C3"]
    assert history[1]["rows"] == 37 + 53 + 29
    assert fitted.federation_.server_.current.departed == []
    xs, ts = _arrays("logistic", frames)
    w, losses = fedavg("logistic", xs, ts, rounds=3, epochs=2, batch=10, lr=0.3, seed=2,
                       absent={2: {2}, 3: {2}})
    np.testing.assert_allclose(_std_weights(fitted), w, rtol=1e-6, atol=0)
    np.testing.assert_allclose([h["loss"] for h in history], losses, rtol=1e-6)
    # Round 2's loss is over the three remaining clients' rows only.
    before = next(h for h in history if h["round"] == 2)["loss"]
    rows = [0, 1, 3]
    w1, _ = fedavg("logistic", xs, ts, rounds=1, epochs=2, batch=10, lr=0.3, seed=2)
    expected = sum(len(xs[k]) * mean_loss("logistic", w1, xs[k], ts[k]) for k in rows) / sum(
        len(xs[k]) for k in rows)
    assert before == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("fraction", [1.0, 0.75])
def test_a_client_that_misses_rounds_is_asked_again_and_takes_part_when_back(fraction) -> None:
    """A late client is no dropout for good: S leaves it out of the rounds whose
    deadline it missed, discards its late updates and takes its next ones."""
    frames = _data("logistic", rows=(37, 53, 61, 29))
    clients = _clients(frames)
    clients[1].miss_rounds = {2, 3}  # C2 answers rounds 2 and 3 only after their deadline
    options = {"rounds": 6, "local_epochs": 2, "batch_size": 10, "learning_rate": 0.3,
               "seed": 7, "fraction": fraction}
    fitted = FederatedAveraging(model="logistic", **options, round_timeout=1.5,
                                **KEY).fit(clients)
    history = fitted.history_
    sampled = [sorted(h["participants"] + h["dropped"]) for h in history]
    # The draws do not depend on who answers: the same as in a run where all answer.
    everyone = FederatedAveraging(model="logistic", **options, **KEY).fit(_clients(frames))
    assert sampled == [h["participants"] for h in everyone.history_]
    for h in history:
        away = h["round"] in (2, 3) and "C2" in h["participants"] + h["dropped"]
        assert ("C2" in h["dropped"]) == away
        assert h["dropped"] == (["C2"] if away else [])
    # C2 was drawn in a round it missed and in a later one, where it took part again.
    assert any("C2" in h["dropped"] for h in history)
    assert any("C2" in h["participants"] for h in history if h["round"] > 3)
    xs, ts = _arrays("logistic", frames)
    w, losses = fedavg("logistic", xs, ts, rounds=6, epochs=2, batch=10, lr=0.3, seed=7,
                       fraction=fraction, absent={2: {1}, 3: {1}})
    np.testing.assert_allclose(_std_weights(fitted), w, rtol=1e-6, atol=0)
    np.testing.assert_allclose([h["loss"] for h in history], losses, rtol=1e-6)
    c2 = fitted.federation_.client_roles_["C2"]
    assert c2.current.rounds_joined == [h["round"] for h in history
                                        if "C2" in h["participants"]]
    assert c2.weights_ is not None  # it received the final model


def test_an_update_too_large_for_its_slot_raises_naming_the_client() -> None:
    frames = _data("linear")
    frames[1]["y"] = frames[1]["y"] * 1e9  # its loss times its rows exceeds 2**32
    with pytest.raises(EncodingOverflowError, match="party C2: update"):
        FederatedAveraging(model="linear", rounds=1, **KEY).fit(_clients(frames))


def test_clients_whose_columns_differ_are_refused_by_name() -> None:
    frames = _data("linear")
    frames[2] = frames[2].rename(columns={"f3": "f4"})
    clients = [HorizontalClient(f, label_column="y", source=f"C{k}.csv")
               for k, f in enumerate(frames, start=1)]
    with pytest.raises(MissingColumnError, match=r"party C3: C3.csv .*missing 'f3'.*extra 'f4'"):
        FederatedAveraging(**KEY).fit(clients)
    with pytest.raises(MissingColumnError, match="party client: the DataFrame has no label"):
        HorizontalClient(frames[0], label_column="target")


@pytest.mark.parametrize(("options", "message"), [
    ({"algorithm": "fedsgd", "local_epochs": 2}, "fedsgd takes one full-batch"),
    ({"algorithm": "fedprox", "mu": 0.0}, "fedprox needs mu > 0"),
    ({"min_clients": 1}, "min_clients must be >= 2"),
    ({"model": "poisson"}, "model must be one of"),
])
def test_bad_options_raise_config_error(options, message) -> None:
    with pytest.raises(ConfigError, match=message):
        FederatedAveraging(**options)


def test_mlp_gradient_matches_finite_differences() -> None:
    from parties.horizontal.models import Architecture

    rng = np.random.default_rng(4)
    net = Architecture("mlp", 3, 3, hidden=4)
    w = net.initial(seed=2) + 0.1 * rng.normal(size=net.parameters)
    x = rng.normal(size=(9, 3))
    t = np.eye(3)[rng.integers(0, 3, size=9)]
    numeric = np.array([(net.loss(w + e, x, t) - net.loss(w - e, x, t)) / 2e-6
                        for e in np.eye(net.parameters) * 1e-6])
    np.testing.assert_allclose(net.gradient(w, x, t), numeric, rtol=1e-5, atol=1e-8)


def test_mlp_fedsgd_equals_central_gradient_descent_and_fedavg_a_numpy_simulation() -> None:
    from hfl_reference import Mlp

    frames = _data("softmax")
    xs, ts = _arrays("mlp", frames)
    net = Mlp(3, 5, 3)
    w = net.initial(seed=7)
    union_x, union_t = np.vstack(xs), np.vstack(ts)
    losses = []
    for _ in range(6):
        losses.append(net.loss(w, union_x, union_t))
        w = w - 0.5 * net.grad(w, union_x, union_t)
    fitted = FederatedAveraging(model="mlp", hidden_units=5, algorithm="fedsgd", rounds=6,
                                learning_rate=0.5, seed=7, **KEY).fit(_clients(frames))
    np.testing.assert_allclose(_std_weights(fitted), w, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose([h["loss"] for h in fitted.history_], losses, rtol=1e-6)
    assert losses[-1] < losses[0]

    fedavg_fit = FederatedAveraging(model="mlp", hidden_units=5, algorithm="fedavg", rounds=3,
                                    local_epochs=2, batch_size=8, learning_rate=0.3, seed=7,
                                    **KEY).fit(_clients(frames))
    w_avg, avg_losses = fedavg("mlp", xs, ts, rounds=3, epochs=2, batch=8, lr=0.3, seed=7,
                               hidden=5)
    np.testing.assert_allclose(_std_weights(fedavg_fit), w_avg, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose([h["loss"] for h in fedavg_fit.history_], avg_losses, rtol=1e-6)
    # Raw units: the model on raw rows predicts what the network does on standardised rows.
    union = pd.concat(frames)
    _, proba = net.forward(w_avg, union_x)
    np.testing.assert_allclose(fedavg_fit.predict_proba(union), proba, rtol=1e-6, atol=1e-9)
    assert [layer.shape for layer in fedavg_fit.layers_] == [(4, 5), (6, 3)]


def test_value_bits_bound_the_update_only_the_tally_has_its_own_slots() -> None:
    """Rows 37-61 (a count needs 6 integer bits), updates below 2^4: value_bits=4 is
    enough, because the loss and row count travel in slots of their own; the model
    equals the default precision's to the resolution both share."""
    frames = _data("linear")
    options = dict(model="linear", rounds=2, local_epochs=1, batch_size=10,
                   learning_rate=0.001, frac_bits=32, **KEY)
    narrow = FederatedAveraging(value_bits=4, **options).fit(_clients(frames))
    wide = FederatedAveraging(**options).fit(_clients(frames))
    np.testing.assert_allclose(narrow.coef_, wide.coef_, rtol=0, atol=1e-8)
    assert [h["rows"] for h in narrow.history_] == [sum(ROWS)] * 2
    layout = narrow.federation_.server_._packing
    assert layout.values.value_bits == 4 and layout.tally.value_bits == 64
    # Narrow slots: the update's values pack more than twice as densely as the tally's.
    assert layout.values.slots_per_plaintext > 2 * layout.tally.slots_per_plaintext
