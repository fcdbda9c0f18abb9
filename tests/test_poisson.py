"""Poisson regression across the parties (docs/poisson.md).

The federation against the centralized reference of the same rule at every
epoch (first-order and L-BFGS with Armijo backtracking), the optimum against
statsmodels' GLM, the product chain's scales and what each party receives,
the capacity check, the command line, the estimator and the metrics.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from row_data import COEFFICIENTS, KEY_BITS, count_frames, fit, reference, split_a
from test_lbfgs import holder_params, label_params, recording

from parties import (
    Coordinator,
    FeatureHolder,
    Federation,
    LabelHolder,
    VerticalPoissonRegression,
)
from parties.vertical.messages import (
    ChainedExpScores,
    DecryptedMaskedGradient,
    EncryptedGramPart,
    EncryptedResidual,
    EpochEnd,
    EpochStart,
    ExtendExpScores,
    SearchDirection,
    TrialVerdict,
)
from vfl.cli import main
from vfl.crypto import EncryptedVector, FixedPointCodec
from vfl.errors import EncodingOverflowError, InvalidLabelError, InvalidWeightError
from vfl.metrics import count_metrics, model_metrics
from vfl.model import ModelPart
from vfl.reference import train_centralized
from vfl.training import TrainingConfig

RTOL = 1e-6


@pytest.fixture(scope="module")
def frames():
    return count_frames()


# --- federated == centralized, every epoch ---------------------------------------------------


CASES = {
    "adam-exposure-validation": (1, {"exposure_column": "exposure"}, TrainingConfig(
        model="poisson", epochs=6, optimizer="adam", learning_rate=0.05,
        validation_fraction=0.2, early_stopping="none")),
    "sgd-two-holders-weights-exposure-minibatch": (
        2, {"exposure_column": "exposure", "weight_column": "w"},
        TrainingConfig(model="poisson", epochs=4, learning_rate=0.05, batch_size=80,
                       penalty="l2", alpha=0.01, early_stopping="none")),
    "lbfgs-exposure": (1, {"exposure_column": "exposure"}, TrainingConfig(
        model="poisson", epochs=30, optimizer="lbfgs")),
    "lbfgs-two-holders-l2-memory-3": (2, {}, TrainingConfig(
        model="poisson", epochs=30, optimizer="lbfgs", penalty="l2", alpha=0.01,
        lbfgs_memory=3, validation_fraction=0.2)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_federated_poisson_equals_the_centralized_rule_at_every_epoch(frames, case):
    holders, options, config = CASES[case]
    a_frame, b_frame = frames
    a_frames = split_a(a_frame, holders)
    parties = [recording(FeatureHolder(f, id_column="id", name=f"A{k + 1}", seed=20 + k),
                         holder_params) for k, f in enumerate(a_frames)]
    unused = [c for c in ("event", "w", "exposure") if c not in options.values()]
    b = recording(LabelHolder(b_frame.drop(columns=unused), id_column="id",
                              label_column="claims", seed=29, **options), label_params)
    fed = Federation(Coordinator(key_bits=KEY_BITS, insecure_key=True), b, parties,
                     config=config).fit()
    ref = reference(parties, b, a_frames, b_frame, config, **options)
    losses = fed.history_["loss"].to_numpy()
    assert len(losses) == len(ref.history)
    np.testing.assert_allclose(losses, ref.history, rtol=RTOL)
    if config.validation_fraction:
        np.testing.assert_allclose(fed.history_["validation_loss"], ref.validation_history,
                                   rtol=RTOL)
    for k, expected in enumerate(ref.trajectory):
        got = np.r_[np.concatenate([a.trajectory[k] for a in parties]), b.trajectory[k]]
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=1e-9,
                                   err_msg=f"epoch {k + 1}")
    if config.optimizer == "lbfgs":
        # Armijo's backtracking guarantees decrease; the run converged early.
        assert np.all(np.diff(losses) < 0) and len(losses) < config.epochs


def glm_poisson(x: np.ndarray, y: np.ndarray, exposure: np.ndarray) -> np.ndarray:
    """The maximum-likelihood coefficients (then the intercept): statsmodels' GLM."""
    import statsmodels.api as sm

    design = np.column_stack([x, np.ones(len(y))])
    result = sm.GLM(y, design, family=sm.families.Poisson(), exposure=exposure).fit(
        tol=1e-12)
    return np.asarray(result.params)


def test_lbfgs_reaches_statsmodels_glm_poisson_coefficients(frames):
    pytest.importorskip("statsmodels")
    a_frame, b_frame = frames
    config = TrainingConfig(model="poisson", epochs=40, optimizer="lbfgs",
                            gradient_tol=1e-8, tol=1e-12)
    fed, (a,), b = fit([a_frame], b_frame, config, label="claims",
                       exposure_column="exposure")
    rows = b_frame.set_index("id").loc[b.aligned_ids_]
    x = np.column_stack([a_frame.set_index("id").loc[b.aligned_ids_].to_numpy(),
                         rows[["b0", "b1"]].to_numpy()])
    expected = glm_poisson(x, rows["claims"].to_numpy(), rows["exposure"].to_numpy())
    got = np.r_[a.coef_.to_numpy(), b.coef_.to_numpy(), b.intercept_]
    np.testing.assert_allclose(got, expected, atol=1e-3)
    assert len(fed.history_) <= 20
    # And the estimate is near the truth the counts were drawn from.
    assert np.max(np.abs(got - COEFFICIENTS)) < 0.2


def test_adam_reaches_them_too_given_enough_epochs(frames):
    pytest.importorskip("statsmodels")
    a_frame, b_frame = frames
    config = TrainingConfig(model="poisson", epochs=600, optimizer="adam",
                            learning_rate=0.05, early_stopping="none")
    ref_parties = fit([a_frame], b_frame, TrainingConfig(model="poisson", epochs=1),
                      label="claims")
    _, (a,), b = ref_parties
    rows = b_frame.set_index("id").loc[b.aligned_ids_]
    x = np.column_stack([a_frame.set_index("id").loc[b.aligned_ids_].to_numpy(),
                         rows[["b0", "b1"]].to_numpy()])
    # The centralized rule the federation equals (tested above), run long from the
    # parties' secret start (full batch: the batch seeds play no part).
    ref = train_centralized(x, rows["claims"].to_numpy(), config,
                            initial_weights=np.r_[a.initial_weights_, b.initial_weights_],
                            initial_intercept=b.initial_intercept_,
                            batch_seeds=[0] * config.epochs)
    expected = glm_poisson(x, rows["claims"].to_numpy(), np.ones(len(rows)))
    np.testing.assert_allclose(np.r_[ref.weights, ref.intercept], expected, atol=1e-3)


# --- the chain, its scales, and what each party receives --------------------------------------


@pytest.fixture(scope="module")
def chain_run(frames):
    a_frame, b_frame = frames
    config = TrainingConfig(model="poisson", epochs=3, optimizer="lbfgs",
                            early_stopping="none")
    fed, holders, b = fit(split_a(a_frame, 2), b_frame, config, label="claims", seed=30,
                          record=True, exposure_column="exposure")
    return fed, holders, b


def test_feature_holders_receive_only_ciphertexts_and_the_optimiser_s_public_scalars(
        chain_run):
    fed, holders, _ = chain_run
    allowed = {EpochStart, EncryptedResidual, ExtendExpScores, DecryptedMaskedGradient,
               EpochEnd, SearchDirection, TrialVerdict}
    for k, a in enumerate(holders):
        received = [e.body for e in fed.network_.received_by(a.name) if e.epoch > 0]
        assert {type(m) for m in received} <= allowed
        for message in received:
            if isinstance(message, (EncryptedResidual, ExtendExpScores)):
                assert isinstance(getattr(message, "residual", None) or message.scores,
                                  EncryptedVector)
            if isinstance(message, EpochEnd):
                assert message.loss is None and message.validation_loss is None
        # Only the second holder extends a product: A1 starts it.
        assert any(isinstance(m, ExtendExpScores) for m in received) == (k == 1)
    # No curvature entry under Armijo: one Gram round per iteration (two in the first).
    parts = [e for e in fed.network_.received_by("B") if isinstance(e.body, EncryptedGramPart)]
    counts = {}
    for e in parts:
        counts[(e.sender, e.epoch)] = counts.get((e.sender, e.epoch), 0) + 1
    assert counts == {(a.name, epoch): 2 if epoch == 1 else 1
                      for a in holders for epoch in (1, 2, 3)}


def test_the_chain_carries_the_product_at_the_documented_scales(chain_run):
    fed, holders, _ = chain_run
    c = fed.coordinator
    codec, n = c.codec, c.public_key_.n
    chain = [e for e in fed.network_.transcript if isinstance(e.body, ChainedExpScores)
             and e.epoch == 1 and e.batch == 1]
    relayed = [e for e in fed.network_.transcript if isinstance(e.body, ExtendExpScores)
               and e.epoch == 1 and e.batch == 1]
    assert [(e.sender, e.recipient) for e in chain] == [("A1", "B"), ("A2", "B")]
    assert [(e.sender, e.recipient) for e in relayed] == [("B", "A2")]

    def decrypted(envelope, power):
        values = envelope.body.scores.ciphertexts
        raw = [c._private_key.raw_decrypt(v) for v in values]
        return codec.decode(codec.to_signed(raw, n), scale_power=power)

    # The first pass is at the secret initial weights: u_Ak = x_Ak theta_Ak.
    u = [a.rows.x[a.rows.train] @ a.initial_weights_ for a in holders]
    np.testing.assert_allclose(decrypted(chain[0], 1), np.exp(u[0]), rtol=1e-9)
    np.testing.assert_allclose(decrypted(chain[1], 2), np.exp(u[0] + u[1]), rtol=1e-9)
    # A2 re-randomised its product: none of its ciphertexts is one B relayed.
    assert not set(chain[1].body.scores.ciphertexts) & set(relayed[0].body.scores.ciphertexts)


def test_a_key_too_small_for_the_chain_is_refused_before_any_ciphertext(frames):
    a_frame, b_frame = frames
    three = [a_frame[["id", "a0"]], a_frame[["id", "a1"]], a_frame[["id", "a2"]]]
    config = TrainingConfig(model="poisson", epochs=1)
    # K = 3 factors of 104 bits and the features' 104 more pass n/3 of a 512-bit key.
    with pytest.raises(EncodingOverflowError, match="in a poisson run"):
        fit(three, b_frame, config, label="claims")
    codec = FixedPointCodec()
    assert codec.max_poisson_result(200, 2).bit_length() < 510 < codec.max_poisson_result(
        200, 3).bit_length()
    # The bound is the gradient's: m E (E^(K+1) + E_(K+1)).
    e = codec.max_encoded()
    assert codec.max_poisson_result(200, 2) == 200 * e * (e ** 3 + codec.max_encoded(3))


def test_negative_counts_and_bad_exposures_are_refused(frames):
    a_frame, b_frame = frames
    bad = b_frame.copy()
    bad.loc[5, "claims"] = -1
    with pytest.raises(InvalidLabelError, match=r"needs counts .*non-negative"):
        fit([a_frame], bad, TrainingConfig(model="poisson", epochs=1), label="claims")
    bad = b_frame.copy()
    bad.loc[7, "exposure"] = 0.0
    with pytest.raises(InvalidWeightError, match=r"exposure column 'exposure' .* holds 0"):
        LabelHolder(bad, id_column="id", label_column="claims", exposure_column="exposure")


# --- the surfaces ------------------------------------------------------------------------------


def test_simulate_and_predict_give_expected_counts_with_the_exposure(frames, tmp_path):
    a_frame, b_frame = frames
    a_path, b_path = tmp_path / "A.csv", tmp_path / "B.csv"
    a_frame.to_csv(a_path, index=False)
    b_frame.drop(columns=["event", "w"]).to_csv(b_path, index=False)
    common = ["--party-a", str(a_path), "--party-b", str(b_path), "--id-column", "id"]
    code = main(["simulate", *common, "--label-column", "claims", "--model", "poisson",
                 "--exposure-column", "exposure", "--optimizer", "lbfgs", "--epochs", "30",
                 "--out", str(tmp_path / "model"), "--key-bits", "512", "--insecure-key",
                 "--seed", "5", "--quiet"])
    assert code == 0
    report = json.loads((tmp_path / "model" / "report.json").read_text())
    assert report["model"] == "poisson" and report["parties"]["B"]["features"] == ["b0", "b1"]
    assert set(report["metrics"]) == {"deviance", "mean_poisson_deviance", "d2", "rmse"}
    code = main(["predict", *common, "--model", str(tmp_path / "model"), "--exposure-column",
                 "exposure", "--out", str(tmp_path / "counts.csv")])
    assert code == 0
    predicted = pd.read_csv(tmp_path / "counts.csv").set_index("id")["prediction"]
    parts = {p: ModelPart.load(tmp_path / "model" / f"model_{p}.json") for p in ("A1", "B")}
    rows = b_frame.set_index("id").loc[predicted.index]
    score = (parts["A1"].score(a_frame.set_index("id").loc[predicted.index].to_numpy())
             + parts["B"].score(rows[["b0", "b1"]].to_numpy()))
    expected = rows["exposure"].to_numpy() * np.exp(score)
    np.testing.assert_allclose(predicted.to_numpy(), expected, rtol=1e-9)
    # The report's metrics are those of these counts (training rows: all aligned rows).
    np.testing.assert_allclose(report["metrics"]["deviance"],
                               count_metrics(rows["claims"].to_numpy(), expected)["deviance"],
                               rtol=1e-6)


def test_the_estimator_predicts_counts_and_scores_d2(frames):
    from sklearn.metrics import d2_tweedie_score, mean_poisson_deviance

    a_frame, b_frame = frames
    a = FeatureHolder(a_frame, id_column="id", seed=41)
    b = LabelHolder(b_frame.drop(columns=["event", "w"]), id_column="id",
                    label_column="claims", seed=42, exposure_column="exposure")
    model = VerticalPoissonRegression(optimizer="lbfgs", epochs=30, key_bits=KEY_BITS,
                                      insecure_key=True).fit([b, a])
    mu = model.predict()
    y = b_frame.set_index("id").loc[mu.index, "claims"].to_numpy()
    assert np.all(mu > 0)
    assert model.score() == pytest.approx(d2_tweedie_score(y, mu, power=1), rel=1e-9)
    metrics = model.evaluate()
    assert metrics["mean_poisson_deviance"] == pytest.approx(mean_poisson_deviance(y, mu),
                                                             rel=1e-9)
    assert metrics == model_metrics("poisson", y, mu.to_numpy())
    # Delivered to C: the same counts, C learning them without IDs.
    np.testing.assert_allclose(model.predict(deliver_to="C"), mu, rtol=1e-9)
