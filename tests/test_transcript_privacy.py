"""What each party receives: no plaintext it must not see.

Every message of a run is recorded; the checks below decrypt with the
coordinator's private key where needed, which no party other than C holds.
"""

from __future__ import annotations

import pickle

import pytest

from parties import FeatureHolder, Federation, LabelHolder
from parties.vertical.messages import (
    DecryptedMaskedGradient,
    EncryptedLoss,
    EncryptedPartialScores,
    EncryptedResidual,
    EpochEnd,
    EpochStart,
    InterceptOffset,
    MaskedGradient,
    TrainingPlan,
)
from vfl.protocol.messages import PublicKeyMessage
from vfl.psi.ecdh import EcdhHello, EcdhPoints, EcdhTags
from vfl.psi.federation import AlignmentHello, AlignmentSelection
from vfl.psi.keyed_hash import AlignmentKey, AlignmentTags
from vfl.training import TrainingConfig

#: Messages of either alignment method (keyed hash, ECDH PSI).
#: AlignmentHello carries only the method's name ("ecdh"), a setting every party has.
ALIGNMENT = {AlignmentHello, AlignmentKey, AlignmentTags, EcdhHello, EcdhPoints, EcdhTags}


@pytest.fixture(scope="module")
def run(request):
    from parties import Coordinator
    from vfl.datasets import DIABETES_FEATURE_HOLDER_COLUMNS, load_diabetes, split_vertically

    frame = load_diabetes()
    # Long, distinctive IDs so a search of the transcript cannot hit by chance.
    frame["patient_id"] = [f"patient-{i:05d}-confidential" for i in range(len(frame))]
    a_frame, b_frame = split_vertically(frame, id_column="patient_id",
                                        label_column="progression",
                                        feature_holder_columns=DIABETES_FEATURE_HOLDER_COLUMNS)
    a = FeatureHolder(a_frame, id_column="patient_id", seed=1)
    b = LabelHolder(b_frame, id_column="patient_id", label_column="progression", seed=2)
    c = Coordinator(key_bits=512, insecure_key=True)
    config = TrainingConfig(epochs=2, batch_size=100, penalty="l2", alpha=0.01)
    fed = Federation(c, b, a, config=config, record=True).fit()
    return fed, a, b, c, frame


def test_feature_holder_receives_only_ciphertexts_and_its_own_gradient(run):
    fed, _a, _b, c, _ = run
    received = fed.network_.received_by("A1")
    allowed = {PublicKeyMessage, *ALIGNMENT, AlignmentSelection, TrainingPlan,
               EpochStart, EncryptedResidual, DecryptedMaskedGradient, EpochEnd}
    assert {type(e.body) for e in received} <= allowed
    assert {e.sender for e in received if isinstance(e.body, EpochEnd)} == {"C"}
    # A is never told the loss, which is a function of y.
    assert all(e.body.loss is None for e in received if isinstance(e.body, EpochEnd))
    # What C returns to A is exactly what A sent masked: C answers A's own
    # gradient and nothing else.
    sent = [e.body for e in fed.network_.transcript
            if e.sender == "A1" and isinstance(e.body, MaskedGradient)]
    answers = [e.body for e in received if isinstance(e.body, DecryptedMaskedGradient)]
    assert len(sent) == len(answers) > 0
    for masked, answer in zip(sent, answers):
        assert list(answer.values) == [c._private_key.raw_decrypt(x)
                                       for x in masked.values.ciphertexts]


def test_residual_is_rerandomised(run):
    fed, *_, c, _ = run
    n, n2 = c.public_key_.n, c.public_key_.nsquare
    scores = [e.body for e in fed.network_.transcript
              if e.recipient == "B" and isinstance(e.body, EncryptedPartialScores)]
    residuals = [e.body for e in fed.network_.received_by("A1")
                 if isinstance(e.body, EncryptedResidual)]
    assert len(scores) == len(residuals) > 0
    key = c._private_key
    for s, r in zip(scores, residuals):
        for cu, cd in zip(s.scores.ciphertexts, r.residual.ciphertexts):
            v = (key.raw_decrypt(cd) - key.raw_decrypt(cu)) % n
            # [[u_A]] (+) v without fresh randomness, which A could divide out:
            assert cd != cu * (1 + v * n) % n2


def test_coordinator_receives_only_loss_and_uniformly_masked_values(run):
    fed, *_, c, _ = run
    received = fed.network_.received_by("C")
    assert {type(e.body) for e in received} == {TrainingPlan, EncryptedLoss, MaskedGradient}
    n = c.public_key_.n
    values = [c._private_key.raw_decrypt(x) for e in received
              if isinstance(e.body, MaskedGradient) for x in e.body.values.ciphertexts]
    assert len(values) > 20
    # Unmasked gradients are at most ~2**120 in absolute value (|x| < 2**64 at
    # 2**-40 steps, summed); a uniform value in Z_n is that close to 0 or n
    # with probability ~2**-390 at this key size.
    assert all(min(z, n - z) > 2**200 for z in values)
    # And the values spread over all of Z_n: both halves are hit.
    assert any(z < n // 2 for z in values) and any(z > n // 2 for z in values)


def test_no_raw_id_leaves_a_data_party(run):
    fed, _a, _b, _c, frame = run
    blobs = [pickle.dumps(e.body) for e in fed.network_.transcript]
    assert blobs
    for raw_id in frame["patient_id"]:
        token = raw_id.encode()
        assert not any(token in blob for blob in blobs), raw_id


def test_label_holder_receives_only_documented_plaintext(run):
    fed, *_ = run
    received = fed.network_.received_by("B")
    allowed = {PublicKeyMessage, *ALIGNMENT, EncryptedPartialScores,
               DecryptedMaskedGradient, EpochEnd, InterceptOffset}
    assert {type(e.body) for e in received} <= allowed
    # B's only plaintext from A is the single intercept offset at the end.
    from_a = [type(e.body) for e in received if e.sender == "A1"]
    assert from_a.count(InterceptOffset) == 1 and from_a[-1] is InterceptOffset
