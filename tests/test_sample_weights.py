"""Sample and class weights at the label holder (docs/poisson.md, weights).

Federated weighted training equals centralized weighted training of the same
rule at every epoch; the weights change the result (and reach weighted least
squares); no weight travels; bad weight columns are refused in one line.
"""

from __future__ import annotations

import numpy as np
import pytest
from row_data import count_frames, fit, reference, split_a
from test_party_config import B_CONFIG

from parties import FeatureHolder, LabelHolder
from parties.vertical.messages import (
    DecryptedMaskedGradient,
    EncryptedResidual,
    EpochEnd,
    EpochStart,
    TrainingPlan,
    WeightedLossTerm,
)
from vfl.cli import main
from vfl.crypto import EncryptedVector
from vfl.crypto.encoding import FixedPointCodec
from vfl.errors import ConfigError, ConfigFileError, InvalidWeightError, MissingColumnError
from vfl.party_config import load_party_config
from vfl.training import TrainingConfig, balanced_class_weights, batch_weights

RTOL = 1e-6


@pytest.fixture(scope="module")
def frames():
    return count_frames()


CASES = {
    "linear-adam-minibatch-validation": ("claims", 1, {"weight_column": "w"}, TrainingConfig(
        epochs=6, optimizer="adam", learning_rate=0.05, batch_size=80,
        validation_fraction=0.2, early_stopping="none")),
    "linear-lbfgs-two-holders-l2": ("claims", 2, {"weight_column": "w"}, TrainingConfig(
        epochs=25, optimizer="lbfgs", penalty="l2", alpha=0.01, validation_fraction=0.2)),
    "logistic-balanced-momentum": ("event", 1, {"class_weight": "balanced"}, TrainingConfig(
        model="logistic", epochs=6, optimizer="momentum", learning_rate=0.2,
        early_stopping="none")),
    "logistic-weights-and-balanced-lbfgs-two-holders": (
        "event", 2, {"weight_column": "w", "class_weight": "balanced"},
        TrainingConfig(model="logistic", epochs=25, optimizer="lbfgs",
                       validation_fraction=0.2)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_weighted_federation_equals_weighted_centralized_training(frames, case):
    label, holders, options, config = CASES[case]
    a_frame, b_frame = frames
    a_frames = split_a(a_frame, holders)
    fed, parties, b = fit(a_frames, b_frame, config, label=label, **options)
    ref = reference(parties, b, a_frames, b_frame, config, **options)
    history = fed.history_
    assert len(history) == len(ref.history)
    np.testing.assert_allclose(history["loss"], ref.history, rtol=RTOL)
    if config.validation_fraction:
        np.testing.assert_allclose(history["validation_loss"], ref.validation_history,
                                   rtol=RTOL)
    got = np.r_[np.concatenate([a.coef_.to_numpy() for a in parties]), b.coef_.to_numpy(),
                b.intercept_]
    np.testing.assert_allclose(got, np.r_[ref.weights, ref.intercept], rtol=RTOL, atol=1e-9)
    if config.optimizer == "lbfgs":
        assert len(history) < config.epochs  # converged
    # The weights matter: the same rule without them ends elsewhere.
    unweighted = reference(parties, b, a_frames, b_frame, config)
    assert np.max(np.abs(unweighted.weights - ref.weights)) > 1e-3


def test_weighted_lbfgs_reaches_weighted_least_squares(frames):
    a_frame, b_frame = frames
    config = TrainingConfig(epochs=30, optimizer="lbfgs", gradient_tol=1e-9, tol=1e-14)
    _, (a,), b = fit([a_frame], b_frame, config, label="claims", weight_column="w")
    rows = b_frame.set_index("id").loc[b.aligned_ids_]
    features = np.column_stack([a_frame.set_index("id").loc[b.aligned_ids_].to_numpy(),
                                rows[["b0", "b1"]].to_numpy()])
    root = np.sqrt(rows["w"].to_numpy())

    def least_squares(columns):
        x = np.column_stack([columns, np.ones(len(rows))])
        return np.linalg.lstsq(x * root[:, None], rows["claims"].to_numpy() * root,
                               rcond=None)[0]

    # The data as the parties train on them: standardised, rounded to the data's
    # fixed-point grid (vfl.crypto.encoding), back in raw units.
    mean, scale = features.mean(axis=0), features.std(axis=0)
    rounded = mean + scale * FixedPointCodec().quantize_data((features - mean) / scale)
    got = np.r_[a.coef_.to_numpy(), b.coef_.to_numpy(), b.intercept_]
    np.testing.assert_allclose(got, least_squares(rounded), rtol=1e-6, atol=1e-7)
    # The rounding itself moves the optimum of the unrounded data by little.
    unrounded = least_squares(features)
    assert np.max(np.abs(got - unrounded)) / np.max(np.abs(unrounded)) < 1e-4


def test_batch_weights_are_a_weighted_mean_and_balanced_counts_training_rows():
    weights = np.array([1.0, 3.0, 0.0, 4.0])
    scaled = batch_weights(weights, np.array([0, 1, 3]))
    np.testing.assert_allclose(scaled, [3 / 8, 9 / 8, 12 / 8])  # mean 1 over the batch
    with pytest.raises(InvalidWeightError, match="every row of a batch of 1 rows has "
                                                 "weight 0"):
        batch_weights(weights, np.array([2]))
    y = np.array([1, 0, 0, 0, 1, 1])
    # Training rows 0-3: one of class 1, three of class 0: n / (2 n_c) = 2 and 2/3.
    np.testing.assert_allclose(balanced_class_weights(y, np.arange(4)),
                               [2, 2 / 3, 2 / 3, 2 / 3, 2, 2])


# --- nothing about the weights travels --------------------------------------------------


def test_only_ciphertexts_and_a_yes_no_reach_the_feature_holders_and_the_coordinator(frames):
    a_frame, b_frame = frames
    config = TrainingConfig(epochs=2, optimizer="adam", validation_fraction=0.2,
                            early_stopping="none")
    fed, holders, _ = fit(split_a(a_frame, 2), b_frame, config, label="claims",
                          weight_column="w", record=True)
    plain, _, _ = fit(split_a(a_frame, 2), b_frame, config, label="claims", record=True)
    for a in holders:
        received = fed.network_.received_by(a.name)
        plan = next(e.body for e in received if isinstance(e.body, TrainingPlan))
        assert plan.weighted is True  # the only word about weights
        training = [e.body for e in received if e.epoch > 0]
        assert {type(m) for m in training} <= {EpochStart, EncryptedResidual,
                                               DecryptedMaskedGradient, EpochEnd}
        for message in training:
            if isinstance(message, EncryptedResidual):
                assert isinstance(message.residual, EncryptedVector)
            if isinstance(message, EpochEnd):
                assert message.loss is None and message.validation_loss is None
        # The weighted loss: each A returns one ciphertext per pass (and per validation).
        sent = [e for e in fed.network_.transcript if e.sender == a.name
                and isinstance(e.body, WeightedLossTerm)]
        assert len(sent) == 2 * 2 and all(len(e.body.value) == 1 for e in sent)
    # C receives the same kinds of message as in an unweighted run, no more.
    kinds = {type(e.body) for e in fed.network_.received_by("C")}
    assert kinds == {type(e.body) for e in plain.network_.received_by("C")}


# --- refusals -------------------------------------------------------------------------------


def cli(tmp_path, b_frame, a_frame, *extra):
    a_path, b_path = tmp_path / "A.csv", tmp_path / "B.csv"
    a_frame.to_csv(a_path, index=False)
    b_frame.to_csv(b_path, index=False)
    return main(["simulate", "--party-a", str(a_path), "--party-b", str(b_path),
                 "--id-column", "id", "--label-column", "claims", "--epochs", "2",
                 "--out", str(tmp_path / "out"), "--key-bits", "512", "--insecure-key",
                 "--quiet", *extra]), b_path


@pytest.mark.parametrize("value, words", [
    (-0.5, "holds the negative weight -0.5"),
    (np.nan, "holds NaN or infinity"),
    (0.0, "is zero in every row"),
    ("heavy", "holds a value that is not a number"),
])
def test_bad_weights_are_refused_in_one_line_naming_the_file_and_column(
        frames, tmp_path, capsys, value, words):
    a_frame, b_frame = frames
    b_frame = b_frame.drop(columns=["event"]).astype({"w": object})
    if value == 0.0:
        b_frame["w"] = 0.0
    else:
        b_frame.loc[3, "w"] = value
    code, b_path = cli(tmp_path, b_frame, a_frame, "--weight-column", "w")
    err = capsys.readouterr().err
    assert code == 2, err
    assert words in err and f"weight column 'w' of {b_path}" in err and "party B" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_missing_weight_column_is_refused_in_one_line(frames, tmp_path, capsys):
    a_frame, b_frame = frames
    code, b_path = cli(tmp_path, b_frame.drop(columns=["event"]), a_frame,
                       "--weight-column", "weight")
    err = capsys.readouterr().err
    assert code == 2 and f"{b_path} has no weight column 'weight'" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
    with pytest.raises(MissingColumnError, match="no weight column 'weight'"):
        LabelHolder(b_frame, id_column="id", label_column="claims", weight_column="weight")


def test_weights_the_model_cannot_use_are_refused(frames):
    a_frame, b_frame = frames
    with pytest.raises(ConfigError, match="class_weight='balanced' weights the two classes"):
        fit([a_frame], b_frame, TrainingConfig(epochs=1), label="claims",
            class_weight="balanced")
    with pytest.raises(ConfigError, match="class_weight must be one of balanced"):
        LabelHolder(b_frame, id_column="id", label_column="claims", class_weight="equal")
    with pytest.raises(ConfigError, match=r"an exposure column .* is the offset of Poisson"):
        fit([a_frame], b_frame, TrainingConfig(epochs=1), label="claims",
            exposure_column="exposure")


def test_the_weight_column_is_no_feature_and_travels_with_the_aligned_rows(frames):
    a_frame, b_frame = frames
    b = LabelHolder(b_frame.drop(columns=["event"]), id_column="id", label_column="claims",
                    weight_column="w", exposure_column="exposure")
    assert b.table.feature_names == ["b0", "b1"]
    fed, _, b = fit([a_frame], b_frame, TrainingConfig(epochs=1, model="logistic"),
                    label="event", weight_column="w", class_weight="balanced")
    copy = b.on_aligned_rows()
    assert copy.weight_column == "w" and copy.class_weight == "balanced"
    expected = b_frame.set_index("id").loc[b.aligned_ids_, "w"].to_numpy()
    np.testing.assert_array_equal(copy._sample_weights, expected)
    assert isinstance(fed.feature_holders[0], FeatureHolder)


def test_the_label_holder_file_carries_the_weight_options(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text(B_CONFIG.replace('label_column = "progression"',
                                     'label_column = "progression"\nweight_column = "w"\n'
                                     'class_weight = "balanced"'))
    config = load_party_config(path)
    assert (config.weight_column, config.class_weight) == ("w", "balanced")
    assert config.exposure_column is None
    path.write_text(B_CONFIG.replace('label_column = "progression"',
                                     'label_column = "progression"\nclass_weight = "fair"'))
    with pytest.raises(ConfigFileError, match='class_weight must be "balanced"'):
        load_party_config(path)
    # A feature holder's file may not name them: the weights are B's.
    a_config = (B_CONFIG.replace('role = "label_holder"', 'role = "feature_holder"')
                .replace('name = "B"', 'name = "A1"')
                .replace('A1 = "127.0.0.1:50051"', 'B = "127.0.0.1:50052"')
                .replace('label_column = "progression"',
                         'label_column = "progression"\nweight_column = "w"'))
    path.write_text(a_config)
    with pytest.raises(ConfigFileError, match="weight_column is the label holder's"):
        load_party_config(path)
