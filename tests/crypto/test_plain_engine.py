"""The plaintext engine: the encrypted protocol's results, refused without an opt-in."""

from __future__ import annotations

import numpy as np
import pytest

from parties import (
    Coordinator,
    FeatureHolder,
    Federation,
    LabelHolder,
    VerticalLinearRegression,
)
from vfl.crypto import EncryptedVector, generate_keypair, get_backend
from vfl.crypto.plain_engine import PlainDecryptor, PlainEngine
from vfl.errors import ConfigError, InsecureBackendError, InvalidCiphertextError
from vfl.runtime.config import RunConfig
from vfl.training import TrainingConfig

SMALL = {"key_bits": 512, "insecure_key": True}


@pytest.fixture(scope="module")
def keys():
    return generate_keypair(512, insecure=True)


def test_arithmetic_matches_the_fast_engine(keys) -> None:
    public, private = keys
    fast_class, fast_decryptor_class = get_backend("fast")
    fast = fast_class(public, fast_class.public_params_for(private), parallel=False)
    plain = PlainEngine(public)
    rng = np.random.default_rng(0)
    values = [int(v) for v in rng.integers(-10**12, 10**12, size=6)]
    scalars = [int(v) for v in rng.integers(-10**6, 10**6, size=6)]
    matrix = [[int(v) for v in row] for row in rng.integers(-999, 999, size=(6, 3))]
    results = []
    for engine, decryptor in ((fast, fast_decryptor_class(private, parallel=False)),
                              (plain, PlainDecryptor(private))):
        a, b = engine.encrypt(values), engine.encrypt(scalars)
        outs = [engine.add(a, b), engine.add_plain(a, scalars), engine.mul_plain(a, scalars),
                engine.sum(a), engine.matvec_t(matrix, a), engine.rerandomize(a)]
        results.append([decryptor.decrypt(v) for v in outs])
    fast.close()
    assert results[0] == results[1]


def test_a_value_of_another_engine_is_refused(keys) -> None:
    public, private = keys
    fast_class, _ = get_backend("fast")
    fast = fast_class(public, fast_class.public_params_for(private), parallel=False)
    real = fast.encrypt([5])
    fast.close()
    with pytest.raises(InvalidCiphertextError, match="does not run backend 'plain'"):
        PlainEngine(public).validate(real, sender="A1", what="scores", party="B")
    PlainEngine(public).validate(PlainEngine(public).encrypt([5]), sender="A1", what="x")
    assert isinstance(real, EncryptedVector)


def test_refused_without_the_opt_in() -> None:
    with pytest.raises(ConfigError, match="insecure_plaintext"):
        RunConfig(backend="plain")
    with pytest.raises(InsecureBackendError, match="insecure_plaintext"):
        Coordinator(backend="plain", **SMALL)
    assert RunConfig(backend="plain", insecure_plaintext=True).backend == "plain"


def test_a_party_without_the_opt_in_refuses_the_announcement(frames) -> None:
    a_frame, b_frame = frames
    b = LabelHolder(b_frame, id_column="patient_id", label_column="progression", seed=5)
    a = FeatureHolder(a_frame, id_column="patient_id", seed=6)
    federation = Federation(Coordinator(backend="plain", insecure_plaintext=True, **SMALL),
                            b, a, config=TrainingConfig(epochs=1))
    a.insecure_plaintext = False  # as a networked A that did not opt in
    with pytest.raises(InsecureBackendError, match="C announced the plaintext engine"):
        federation.fit()


def test_a_plain_run_equals_the_encrypted_run(frames) -> None:
    a_frame, b_frame = frames
    models = {}
    for backend in ("fast", "plain"):
        b = LabelHolder(b_frame, id_column="patient_id", label_column="progression", seed=5)
        a = FeatureHolder(a_frame, id_column="patient_id", seed=6)
        model = VerticalLinearRegression(epochs=3, optimizer="adam", learning_rate=0.5,
                                         batch_size=100, backend=backend,
                                         insecure_plaintext=backend == "plain", **SMALL)
        models[backend] = model.fit([b, a])
    fast, plain = models["fast"], models["plain"]
    np.testing.assert_array_equal(plain.coef_["A1"], fast.coef_["A1"])
    np.testing.assert_array_equal(plain.coef_["B"], fast.coef_["B"])
    assert plain.intercept_ == fast.intercept_
    np.testing.assert_array_equal(plain.history_["loss"], fast.history_["loss"])
