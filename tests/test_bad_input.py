"""Bad input raises the specific error promised, naming the party and what to fix."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from parties import Coordinator, FeatureHolder, Federation, LabelHolder
from parties.vertical.messages import EncryptedPartialScores
from vfl.crypto import generate_keypair
from vfl.errors import (
    BatchTooSmallError,
    ConfigMismatchError,
    DuplicateIDError,
    EmptyIntersectionError,
    EncodingOverflowError,
    InsecureKeyError,
    InvalidCiphertextError,
    InvalidFeatureError,
    InvalidIDError,
    InvalidLabelError,
    LabelInFeatureHolderError,
    MissingColumnError,
    PeerAbortedError,
)
from vfl.protocol.channel import InProcessNetwork
from vfl.training import TrainingConfig


def a_party(frame, **kw):
    return FeatureHolder(frame, id_column="patient_id", **kw)


def b_party(frame, **kw):
    return LabelHolder(frame, id_column="patient_id", label_column="progression", **kw)


def test_missing_id_column_names_party_and_column(frames):
    with pytest.raises(MissingColumnError, match=r"party A1: .*'patient_id'"):
        a_party(frames[0].rename(columns={"patient_id": "pid"}))


def test_missing_label_column(frames):
    with pytest.raises(MissingColumnError, match=r"party B: .*label column 'progression'"):
        b_party(frames[1].drop(columns="progression"))


def test_duplicate_ids_are_named(frames):
    frame = pd.concat([frames[0], frames[0].iloc[:2]])
    with pytest.raises(DuplicateIDError, match=r"party A1: .*2 duplicated ID\(s\)") as info:
        a_party(frame)
    assert frames[0]["patient_id"].iloc[0] in str(info.value)


def test_missing_id(frames):
    frame = frames[0].copy()
    frame.loc[3, "patient_id"] = None
    with pytest.raises(InvalidIDError, match="row 3"):
        a_party(frame)


@pytest.mark.parametrize("bad", ["abc", np.nan, np.inf])
def test_non_numeric_or_non_finite_feature(frames, bad):
    frame = frames[0].astype({"bmi": object})
    frame.loc[5, "bmi"] = bad
    with pytest.raises(InvalidFeatureError, match=r"party A1: feature column 'bmi'") as info:
        a_party(frame)
    assert frame.loc[5, "patient_id"] in str(info.value)


def test_non_finite_label(frames):
    frame = frames[1].copy()
    frame.loc[0, "progression"] = np.nan
    with pytest.raises(InvalidLabelError, match=r"party B: label column 'progression'"):
        b_party(frame)


def test_label_in_feature_holders_table(frames):
    frame = frames[0].assign(progression=1.0)
    with pytest.raises(LabelInFeatureHolderError, match=r"party A1: .*'progression'"):
        a_party(frame, label_column="progression")
    # Also caught by the federation when A was not told the label's name.
    with pytest.raises(LabelInFeatureHolderError):
        Federation(Coordinator(), b_party(frames[1]), a_party(frame))


def test_constant_feature_is_refused_at_standardisation(frames, coordinator):
    a = a_party(frames[0].assign(sex=1.0))
    with pytest.raises(InvalidFeatureError, match=r"party A1: column\(s\) 'sex'.*constant"):
        Federation(coordinator, b_party(frames[1]), a, config=TrainingConfig(epochs=1)).fit()


def test_empty_intersection(frames, coordinator):
    a_frame = frames[0].assign(patient_id=lambda f: "X" + f["patient_id"])
    with pytest.raises(EmptyIntersectionError, match="no ID is shared"):
        Federation(coordinator, b_party(frames[1]), a_party(a_frame)).fit()


def test_small_key_needs_the_insecure_flag():
    with pytest.raises(InsecureKeyError, match="party C: a 1024-bit Paillier key"):
        Coordinator(key_bits=1024)
    with pytest.raises(InsecureKeyError):
        generate_keypair(512)
    Coordinator(key_bits=1024, insecure_key=True)  # allowed when asked for explicitly


def test_batch_smaller_than_twice_the_features_is_refused(frames, coordinator):
    # B has 6 features: batches must exceed 12 rows (A, with 4, may refuse first
    # when the last batch is 8 rows or fewer).
    config = TrainingConfig(epochs=1, batch_size=12)
    with pytest.raises(BatchTooSmallError,
                       match=r"party (B: with 6|A1: with 4) features .* smallest batch has"):
        Federation(coordinator, b_party(frames[1]), a_party(frames[0]), config=config).fit()


def test_key_too_small_for_the_encoding(frames):
    tiny = Coordinator(key_bits=192, insecure_key=True)
    with pytest.raises(EncodingOverflowError, match="cannot hold sums"):
        Federation(tiny, b_party(frames[1]), a_party(frames[0]),
                   config=TrainingConfig(epochs=1)).fit()


def test_value_too_large_to_encode(frames, coordinator):
    a = a_party(frames[0].assign(bmi=lambda f: f["bmi"] * 1e25))
    with pytest.raises(EncodingOverflowError, match="party A1: features"):
        Federation(coordinator, b_party(frames[1]), a,
                   config=TrainingConfig(epochs=1, standardize=False)).fit()


def test_parties_with_different_configs_refuse_to_start(frames):
    a, b = a_party(frames[0]), b_party(frames[1])
    c = Coordinator(key_bits=512, insecure_key=True)
    network = InProcessNetwork(["A1", "B", "C"], "s")
    errors = {}

    def go(name, fn):
        try:
            fn(network.endpoint(name))
        except Exception as exc:  # noqa: BLE001
            errors[name] = exc
            network.endpoint(name).abort(str(exc))

    threads = [
        threading.Thread(target=go, args=("A1", lambda ep: a.run_training(
            ep, TrainingConfig(epochs=3)))),
        threading.Thread(target=go, args=("B", lambda ep: b.run_training(
            ep, TrainingConfig(epochs=2)))),
        threading.Thread(target=go, args=("C", lambda ep: c.run_training(
            ep, TrainingConfig(epochs=2)))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert isinstance(errors["A1"], ConfigMismatchError)
    assert "party A1" in str(errors["A1"])
    assert isinstance(errors["B"], PeerAbortedError)


@pytest.mark.parametrize("tamper", ["at-least-n-squared", "shares-factor-with-n"])
def test_malformed_ciphertext_is_rejected_naming_the_sender(frames, coordinator, monkeypatch,
                                                            tamper):
    original = InProcessNetwork.endpoint

    def endpoint(self, name):
        ep = original(self, name)
        if name != "A1":
            return ep
        send = ep.send

        def tampering_send(recipient, body, **at):
            if isinstance(body, EncryptedPartialScores):
                key = body.scores.public_key
                bad = key.nsquare if tamper == "at-least-n-squared" else key.n * 7
                body = EncryptedPartialScores(
                    type(body.scores)(key, (bad, *body.scores.ciphertexts[1:])), body.loss_part)
            send(recipient, body, **at)

        ep.send = tampering_send
        return ep

    monkeypatch.setattr(InProcessNetwork, "endpoint", endpoint)
    b = b_party(frames[1])
    with pytest.raises(InvalidCiphertextError,
                       match=r"party B: EncryptedPartialScores.scores from A1: ciphertext 0"):
        Federation(coordinator, b, a_party(frames[0]), config=TrainingConfig(epochs=1)).fit()
    assert b.model_ is None
