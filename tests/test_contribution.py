"""Contribution accounting: federated coalitions equal centralized ones; noise earns nothing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from federation_checks import reference_run

from parties import FeatureHolder, Federation, LabelHolder
from parties.vertical.contribution import final_validation_loss
from vfl.errors import ConfigError
from vfl.training import TrainingConfig

CONFIG = TrainingConfig(epochs=8, learning_rate=0.3, validation_fraction=0.25,
                        early_stopping="none")


@pytest.fixture
def three_players(frames):
    """A1: informative clinic columns, A2: pure noise, B: serum columns and the label."""
    a_frame, b_frame = frames
    rng = np.random.default_rng(0)
    noise = a_frame[["patient_id"]].assign(**{f"noise{k}": rng.normal(size=len(a_frame))
                                              for k in range(3)})
    holders = [FeatureHolder(a_frame, id_column="patient_id", name="A1", seed=1),
               FeatureHolder(noise, id_column="patient_id", name="A2", seed=2)]
    b = LabelHolder(b_frame, id_column="patient_id", label_column="progression", seed=3)
    return holders, b, {"A1": a_frame, "A2": noise}, b_frame


@pytest.mark.parametrize("method", ["leave-one-out", "shapley"])
def test_federated_contributions_equal_centralized(three_players, coordinator, method):
    holders, b, frames_by_name, b_frame = three_players
    central: dict[tuple[str, ...], float] = {}

    def check(players, run: Federation) -> None:
        members = run.feature_holders
        ref, *_ = reference_run(members, run.label_holder,
                                [frames_by_name[a.name] for a in members], b_frame, CONFIG)
        assert len(ref.validation_history) == len(run.history_)
        central[players] = ref.validation_history[-1]

    fed = Federation(coordinator, b, holders, config=CONFIG).fit()
    trained = (b.model_, [a.model_ for a in holders], fed.history_.copy())
    report = fed.contributions(method, on_coalition=check)
    # The grand coalition's models and history are what the parties keep.
    assert (b.model_, [a.model_ for a in holders]) == trained[:2]
    assert fed.history_.equals(trained[2])
    assert report.players == ("A1", "A2", "B")
    expected = 4 if method == "leave-one-out" else 6  # coalitions with a feature holder
    assert len(central) == expected
    for coalition, loss in central.items():
        assert report.coalition_losses[coalition] == pytest.approx(loss, rel=1e-6)
    # Contributions from the centralized losses, by an independent formula:
    # leave-one-out directly, Shapley as the mean marginal gain over all orders.
    losses = {**report.coalition_losses, **central}
    players = report.players

    def key(members):
        return tuple(p for p in players if p in members)

    if method == "leave-one-out":
        expected_values = {p: losses[key(set(players) - {p})] - losses[players]
                           for p in players}
    else:
        orders = list(itertools.permutations(players))
        expected_values = dict.fromkeys(players, 0.0)
        for order in orders:
            for k, p in enumerate(order):
                before = key(order[:k])
                expected_values[p] += (losses[before] - losses[key(order[:k + 1])]) / len(orders)
    for p in players:
        assert report.contributions[p] == pytest.approx(expected_values[p], rel=1e-6)
    # The attribution adds up: Shapley values sum to v(all) (efficiency).
    if method == "shapley":
        total = report.coalition_losses[()] - report.coalition_losses[("A1", "A2", "B")]
        assert sum(report.contributions.values()) == pytest.approx(total, rel=1e-9)
    # Noise contributes (close to) nothing; the informative holders a lot.
    assert report.contributions["A2"] < 0.02 * report.contributions["A1"]
    assert report.contributions["A1"] > 0 and report.contributions["B"] > 0
    json = report.to_dict()
    assert json["method"] == method and set(json["contributions"]) == {"A1", "A2", "B"}


def test_contributions_need_a_validation_split(parties, coordinator):
    a, b = parties
    fed = Federation(coordinator, b, a, config=TrainingConfig(epochs=2))
    with pytest.raises(ConfigError, match="validation_fraction"):
        fed.contributions()
    with pytest.raises(ConfigError, match="shapley"):
        Federation(coordinator, b, a, config=CONFIG).contributions("banzhaf")


def test_final_validation_loss_follows_the_kept_weights():
    import pandas as pd
    history = pd.DataFrame({"loss": [5.0, 4.0, 3.0, 2.0],
                            "validation_loss": [3.0, 1.0, 1.5, 2.0]})
    config = TrainingConfig(validation_fraction=0.2, early_stopping="validation", tol=0.1)
    assert final_validation_loss(history, config) == 1.0
    assert final_validation_loss(history, TrainingConfig(validation_fraction=0.2)) == 2.0
