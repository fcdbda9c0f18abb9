"""The two-party protocol: plain = centralised formulas, encrypted = plain, local rounds,
the transcript (who receives what), and the refusals."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from transfer_frames import KEY_BITS, make_frames

from parties.transfer import TransferConfig, TransferSource, TransferTarget, run_transfer
from parties.transfer.messages import (
    DecryptedForSource,
    DecryptedForTarget,
    FinalPhi,
    SourceMaskedGradient,
    SourceTerms,
    TargetAccept,
    TargetMaskedGradient,
    TargetTerms,
    TransferEpochEnd,
    TransferOpen,
    TransferPlan,
)
from parties.transfer.objective import objective, train_reference
from parties.transfer.ops import PaillierVault
from vfl.crypto import EncryptedVector, generate_keypair
from vfl.errors import (
    ConfigMismatchError,
    EmptyIntersectionError,
    InvalidLabelError,
    LabelInFeatureHolderError,
)
from vfl.protocol.channel import Envelope
from vfl.protocol.messages import PublicKeyMessage
from vfl.protocol.wire import decode_envelope, encode_envelope

SETTINGS = {"hidden": (3,), "epochs": 3, "learning_rate": 0.05, "alpha": 2.0, "l2": 0.01,
            "insecure": True, "key_bits": KEY_BITS}


def fit(frames, record=False, **overrides):
    frame_a, frame_b = frames
    source = TransferSource(frame_a, id_column="ID", label_column="y", seed=1)
    target = TransferTarget(frame_b, id_column="ID", seed=2)
    config = TransferConfig(**{**SETTINGS, **overrides})
    network = run_transfer(source, target, config, parallel=False, record=record)
    return source, target, network


def relative(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def test_plain_mode_equals_the_centralised_computation(frames):
    source, target, _ = fit(frames, mode="plain")
    assert len(source.overlap_) == 15
    theta_a, theta_b, history = train_reference(
        source.network, source.current.initial_params, source.x, source.y, source.overlap_,
        target.network, target.current.initial_params, target.x[target.overlap_], alpha=2.0,
        l2=0.01, learning_rate=0.05, epochs=3)
    np.testing.assert_allclose([h["loss"] for h in source.history_], history, rtol=1e-12)
    np.testing.assert_allclose(source.current.params, theta_a, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(target.current.params, theta_b, rtol=1e-12, atol=1e-14)
    # predictions for every target row: sigmoid(u_B . Φ) with Φ of the final source network
    phi = (source.y[:, None] * source.network.predict(theta_a, source.x)).mean(axis=0)
    expected = 1 / (1 + np.exp(-target.network.predict(theta_b, target.x) @ phi))
    predictions = target.predict_proba()
    assert len(predictions) == len(target.table) == 30
    np.testing.assert_allclose(predictions.to_numpy(), expected, rtol=1e-12)


def test_encrypted_mode_equals_plain_mode(frames):
    plain_a, plain_b, _ = fit(frames, mode="plain")
    enc_a, enc_b, _ = fit(frames, mode="encrypted")
    assert relative([h["loss"] for h in enc_a.history_],
                    [h["loss"] for h in plain_a.history_]) <= 1e-6
    assert relative(enc_a.current.params, plain_a.current.params) <= 1e-6
    assert relative(enc_b.current.params, plain_b.current.params) <= 1e-6
    assert relative(enc_b.predict_proba(), plain_b.predict_proba()) <= 1e-6


def test_two_layer_networks_encrypted_equal_plain(frames):
    settings = {"hidden": (3, 2), "activations": ("tanh", "sigmoid"), "epochs": 2,
                "key_bits": 1024, "min_overlap_factor": 1.0}
    plain_a, plain_b, _ = fit(frames, mode="plain", **settings)
    enc_a, enc_b, _ = fit(frames, mode="encrypted", **settings)
    assert relative(enc_a.current.params, plain_a.current.params) <= 1e-6
    assert relative(enc_b.current.params, plain_b.current.params) <= 1e-6


def communication_efficient_reference(source, target, rounds, epochs):
    """Each party steps `rounds` times on the other's terms of the epoch's exchange."""
    theta_a, theta_b = source.current.initial_params.copy(), target.current.initial_params.copy()
    args = (source.network, source.x, source.y, source.overlap_, target.network,
            target.x[target.overlap_])

    def value(ta, tb):
        net_a, x_a, y, overlap, net_b, x_b = args
        return objective(net_a, ta, x_a, y, overlap, net_b, tb, x_b, alpha=2.0, l2=0.01)

    history = []
    for _ in range(epochs):
        fixed_a, fixed_b = theta_a.copy(), theta_b.copy()
        history.append(value(fixed_a, fixed_b).loss)
        for _ in range(rounds):
            step_a = value(theta_a, fixed_b).grad_source
            step_b = value(fixed_a, theta_b).grad_target
            theta_a, theta_b = theta_a - 0.05 * step_a, theta_b - 0.05 * step_b
    return theta_a, theta_b, history


@pytest.mark.parametrize("mode", ["plain", "encrypted"])
def test_communication_efficient_mode(frames, mode):
    source, target, _ = fit(frames, mode=mode, local_rounds=3, epochs=2)
    theta_a, theta_b, history = communication_efficient_reference(source, target, 3, 2)
    assert relative(source.current.params, theta_a) <= 1e-6
    assert relative(target.current.params, theta_b) <= 1e-6
    assert relative([h["loss"] for h in source.history_], history) <= 1e-6


def test_one_local_round_equals_the_normal_mode(frames):
    source, target, _ = fit(frames, mode="plain", local_rounds=1)
    theta_a, theta_b, _ = communication_efficient_reference(source, target, 1, 3)
    ref_a, ref_b, _ = train_reference(
        source.network, source.current.initial_params, source.x, source.y, source.overlap_,
        target.network, target.current.initial_params, target.x[target.overlap_], alpha=2.0,
        l2=0.01, learning_rate=0.05, epochs=3)
    np.testing.assert_allclose(source.current.params, ref_a, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(theta_a, ref_a, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(theta_b, ref_b, rtol=1e-12, atol=1e-14)


def _scalars(value) -> list:
    """Every plaintext number inside a message body (ciphertexts excluded)."""
    if isinstance(value, EncryptedVector):
        return []
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [value]
    if isinstance(value, (tuple, list)):
        return [v for item in value for v in _scalars(item)]
    if dataclasses.is_dataclass(value):
        return [v for f in dataclasses.fields(value) for v in _scalars(getattr(value, f.name))]
    return []


def test_transcript_source_never_sees_target_representations_nor_target_a_label(
        frames, monkeypatch):
    decrypted: dict[str, list[tuple[int, int]]] = {"A": [], "B": []}
    original = PaillierVault.decrypt

    def recording(self, value, *, sender, what):
        plain = original(self, value, sender=sender, what=what)
        decrypted[self.party].extend((int(v), self.n) for v in plain)
        return plain

    monkeypatch.setattr(PaillierVault, "decrypt", recording)
    source, target, network = fit(frames, record=True, mode="encrypted", local_rounds=2)
    keys = {}
    for envelope in network.transcript:
        if isinstance(envelope.body, TransferOpen):
            keys[envelope.sender] = envelope.body.key.n
    rows, d = len(source.overlap_), 3

    for envelope in network.received_by("A"):
        body = envelope.body
        for field in dataclasses.fields(body):
            value = getattr(body, field.name)
            if isinstance(value, EncryptedVector):
                # A only ever holds ciphertexts it cannot open: under B's key, or its own
                # key for B's masked gradient (which it decrypts for B and returns).
                assert value.public_key.n in (keys["B"], keys["A"])
                if value.public_key.n == keys["A"]:
                    assert type(body).__name__ == "TargetMaskedGradient"
        if isinstance(body, TargetTerms):
            assert body.u.public_key.n == keys["B"]  # u_B only encrypted under B's key
        # no message carries a per-row vector in the clear
        assert len(_scalars(body)) != rows * d or isinstance(body, TransferOpen)
    # what A obtains in the clear: residues masked by B, i.e. its own P_A-dimensional
    # parameter gradient and the loss; FATE's per-row gradient never travels
    replies = [e.body for e in network.received_by("A") if isinstance(e.body,
                                                                      DecryptedForSource)]
    assert replies and all(len(r.values) == source.network.n_params for r in replies)
    for reply in replies:
        for value in reply.values:
            assert min(value, keys["B"] - value) > keys["B"] >> 64  # masked: not small

    u_b = target.network.predict(target.current.params, target.x[target.overlap_])
    seen_by_a = [v for e in network.received_by("A") for v in _scalars(e.body)]
    assert not np.isin(np.round(u_b.ravel(), 9), np.round(np.asarray(seen_by_a, float), 9)).any()

    labels = source.y[source.overlap_]
    for envelope in network.received_by("B"):
        body = envelope.body
        if type(body).__module__ != "parties.transfer.messages":
            continue  # the PSI's own messages (docs/psi.md)
        if isinstance(body, SourceTerms):
            assert body.h.public_key.n == keys["A"] and body.m.public_key.n == keys["A"]
        if isinstance(body, SourceMaskedGradient):
            assert body.values.public_key.n == keys["B"]
        scalars = np.asarray(_scalars(body), dtype=object)
        if isinstance(body, (DecryptedForTarget,)):
            assert all(min(v, keys["A"] - v) > keys["A"] >> 64 for v in body.values)
        elif isinstance(body, FinalPhi):
            assert len(body.phi) == d
        elif isinstance(body, TransferPlan):
            pass
        else:
            # nothing else B receives holds a row-by-row value in the clear
            assert len(scalars) < len(labels), type(body).__name__

    # every value either party decrypted was masked uniformly in Z_n
    assert decrypted["A"] and decrypted["B"]
    for party in ("A", "B"):
        for value, n in decrypted[party]:
            assert min(value, n - value) > n >> 64, party


def test_messages_survive_the_wire_codec():
    public_key, _ = generate_keypair(KEY_BITS, insecure=True)
    vector = EncryptedVector(public_key, (5, 7, 11))
    for body in (SourceTerms(vector, (1.5, -2.0)), DecryptedForSource((1 << 300, 3), None),
                 DecryptedForSource((0.5,), 1 << 200), SourceMaskedGradient(vector, vector),
                 TransferPlan(TransferConfig(hidden=(4, 2), mode="plain", insecure=True), 12, 3),
                 FinalPhi((0.1, 0.2)), TargetTerms(vector, vector), TargetAccept(4),
                 TransferOpen("encrypted", PublicKeyMessage(public_key.n, "fast", {"h_s": 5})),
                 TransferOpen("plain"), TransferEpochEnd(True), DecryptedForTarget((1, 2)),
                 TargetMaskedGradient((0.5, -1.0))):
        envelope = Envelope("s", "A", "B", 0, 1, 1, type(body).__name__, body)
        assert decode_envelope(encode_envelope(envelope)).body == body


def test_a_small_overlap_is_refused(frames):
    frame_a, frame_b = make_frames(first_b=36)  # 4 shared rows
    with pytest.raises(EmptyIntersectionError, match="at least"):
        fit((frame_a, frame_b), mode="plain")


def test_mode_mismatch_is_refused(frames):
    frame_a, frame_b = frames
    source = TransferSource(frame_a, id_column="ID", label_column="y", seed=1)
    target = TransferTarget(frame_b, id_column="ID", seed=2)
    source.begin_run(TransferConfig(**SETTINGS, mode="plain"), peer="B", alignment="ecdh",
                     parallel=False)
    target.begin_run(TransferConfig(**SETTINGS), peer="A", alignment="ecdh", parallel=False)
    from vfl.protocol.channel import InProcessNetwork
    from vfl.runtime.inprocess import run_parties
    from vfl.runtime.session import Session

    network = InProcessNetwork(["A", "B"], "s", timeout=30)
    with pytest.raises(ConfigMismatchError, match="mode"):
        run_parties(network, {"A": lambda ep: Session(source, ep).run(),
                              "B": lambda ep: Session(target, ep).run()})


def test_bad_inputs_name_party_and_column(frames):
    frame_a, frame_b = frames
    with pytest.raises(InvalidLabelError, match=r"party A: .*'y'"):
        TransferSource(frame_a.assign(y=frame_a["y"] + 2), id_column="ID", label_column="y")
    with pytest.raises(InvalidLabelError, match="two classes"):
        TransferSource(frame_a.assign(y=1), id_column="ID", label_column="y")
    with pytest.raises(LabelInFeatureHolderError, match="party B"):
        TransferTarget(frame_b.assign(y=1.0), id_column="ID", label_column="y")
    with pytest.raises(Exception, match=r"party B: .*'b1'"):
        TransferTarget(frame_b.assign(b1="x"), id_column="ID")


def test_estimator_api(frames):
    from parties.transfer import FederatedTransferLearning

    frame_a, frame_b = frames
    model = FederatedTransferLearning(hidden=(3,), epochs=4, learning_rate=0.05, alpha=2.0,
                                      mode="plain", insecure=True, parallel=False)
    model.fit(TransferSource(frame_a, id_column="ID", label_column="y", seed=1),
              TransferTarget(frame_b, id_column="ID", seed=2))
    assert list(model.history_["epoch"]) == [1, 2, 3, 4]
    assert model.history_["loss"].is_monotonic_decreasing
    assert model.overlap_rows_ == 15
    proba = model.predict_proba()
    assert isinstance(proba, pd.Series) and len(proba) == len(frame_b)
    assert list(proba.index) == list(frame_b["ID"])
    assert ((proba > 0) & (proba < 1)).all()
    np.testing.assert_allclose(model.predict_proba(frame_b.iloc[[4, 0]]).to_numpy(),
                               proba.iloc[[4, 0]].to_numpy(), rtol=1e-12)
    with pytest.raises(TypeError, match="unknown"):
        FederatedTransferLearning(hiden=3)


@pytest.mark.slow
def test_encrypted_equals_plain_with_real_keys(frames):
    settings = {"key_bits": 2048, "insecure": False, "epochs": 1}
    plain_a, plain_b, _ = fit(frames, mode="plain", insecure=True, epochs=1)
    enc_a, enc_b, _ = fit(frames, mode="encrypted", **{**SETTINGS, **settings})
    assert relative(enc_a.current.params, plain_a.current.params) <= 1e-6
    assert relative(enc_b.predict_proba(), plain_b.predict_proba()) <= 1e-6


def test_checkpoints_resume_to_the_uninterrupted_result(frames, tmp_path, monkeypatch):
    from parties.transfer.state import SourceState, TargetState
    from vfl.runtime.checkpoint import CheckpointStore

    whole_a, whole_b, _ = fit(frames, mode="plain", epochs=4)
    frame_a, frame_b = frames

    def run():
        source = TransferSource(frame_a, id_column="ID", label_column="y", seed=1)
        target = TransferTarget(frame_b, id_column="ID", seed=2)
        stores = (CheckpointStore(tmp_path / "A", party="A", run_id="run",
                                  state_type=SourceState),
                  CheckpointStore(tmp_path / "B", party="B", run_id="run",
                                  state_type=TargetState))
        run_transfer(source, target, TransferConfig(**{**SETTINGS, "mode": "plain",
                                                       "epochs": 4}),
                     parallel=False, checkpoints=stores, timeout=30)
        return source, target

    original = TransferTarget.batch_step

    def crash(self, endpoint, epoch, batch):
        if epoch == 3:
            raise RuntimeError("the target's machine died")
        original(self, endpoint, epoch, batch)

    monkeypatch.setattr(TransferTarget, "batch_step", crash)
    with pytest.raises(RuntimeError, match="died"):
        run()
    epochs_run = []

    def counting(self, endpoint, epoch, batch):
        epochs_run.append(epoch)
        original(self, endpoint, epoch, batch)

    monkeypatch.setattr(TransferTarget, "batch_step", counting)
    resumed_a, resumed_b = run()
    assert epochs_run == [3, 4]  # resumed after epoch 2, the last one both parties saved
    np.testing.assert_allclose(resumed_a.current.params, whole_a.current.params, rtol=1e-12)
    np.testing.assert_allclose(resumed_b.current.params, whole_b.current.params, rtol=1e-12)
    assert [h["loss"] for h in resumed_a.history_] == pytest.approx(
        [h["loss"] for h in whole_a.history_], rel=1e-12)


@pytest.mark.parametrize("tamper,error,message", [
    (lambda b: dataclasses.replace(b, u=b.u[1:]) if isinstance(b, TargetTerms) else b,
     "MalformedMessageError", "party A: B sent TargetTerms.u with 44 values"),
    (lambda b: dataclasses.replace(b, values=b.values[:-1])
     if type(b).__name__ == "DecryptedForTarget" else b,
     "MalformedMessageError", "party B: A sent DecryptedForTarget.values"),
    (lambda b: dataclasses.replace(b, m=EncryptedVector(b.m.public_key, (0,) * len(b.m)))
     if isinstance(b, SourceTerms) else b, "InvalidCiphertextError", "party B: SourceTerms.m"),
])
def test_a_faulty_peer_is_named(frames, monkeypatch, tamper, error, message):
    from vfl.protocol import channel

    original = channel._QueueEndpoint._transmit

    def transmit(self, envelope):
        original(self, dataclasses.replace(envelope, body=tamper(envelope.body)))

    monkeypatch.setattr(channel._QueueEndpoint, "_transmit", transmit)
    with pytest.raises(Exception, match=message) as caught:
        fit(frames, mode="encrypted", epochs=1)
    assert type(caught.value).__name__ == error


def _determined_entries(network, params, x, y, overlap, d):
    """Which u_B entries A's parameter gradient fixes, even if A also knew G = dL/dPhi.

    A's gradient is J_Phi^T G - kappa sum_i J_i^T u_i: linear in (G, u_B). An entry u_ij is
    a function of the gradient iff its unit vector lies in the row space of that map.
    """
    from parties.transfer.party import take_cache

    cache = network.forward(params, x)
    columns = list(network.weighted_jacobian(params, cache, y / len(y)))  # G's columns
    rows = take_cache(cache, overlap)
    for i in range(len(overlap)):
        for j in range(d):
            upstream = np.zeros((len(overlap), d))
            upstream[i, j] = -1.0 / d
            columns.append(network.plain_backward(params, rows, upstream))
    matrix = np.array(columns).T  # parameters x (d + rows*d) unknowns
    _, singular, vt = np.linalg.svd(matrix)
    rank = int((singular > 1e-10 * singular[0]).sum())
    kernel = vt[rank:]
    # unit vector e_k is determined iff it has no component in the kernel
    free = np.linalg.norm(kernel[:, d:], axis=0)
    return int((free < 1e-8).sum())


def test_source_gradient_determines_no_target_representation_above_the_floor(frames):
    source, _, _ = fit(frames, mode="plain", epochs=1)
    d = 3
    assert _determined_entries(source.network, source.current.params, source.x, source.y,
                               source.overlap_, d) == 0
    # below the floor (2 shared rows for a layer of 3 inputs) the gradient gives them away:
    # what the floor exists for (and what FATE's per-row gradients give at any size)
    assert _determined_entries(source.network, source.current.params, source.x, source.y,
                               source.overlap_[:2], d) == 2 * d


def test_target_gradient_determines_no_per_row_term_above_the_floor(frames):
    """B's gradient sum_i J_i^T g_i is linear in the per-row g_i = dL/du_i^B (which hold
    y_i Phi and u_i^A): above the floor no g_i entry follows from it."""
    _, target, _ = fit(frames, mode="plain", epochs=1)
    network, params = target.network, target.current.params

    def determined(rows):
        cache = network.forward(params, target.x[rows])
        columns = []
        for i in range(len(rows)):
            for j in range(3):
                upstream = np.zeros((len(rows), 3))
                upstream[i, j] = 1.0
                columns.append(network.plain_backward(params, cache, upstream))
        matrix = np.array(columns).T
        _, singular, vt = np.linalg.svd(matrix)
        kernel = vt[int((singular > 1e-10 * singular[0]).sum()):]
        return int((np.linalg.norm(kernel, axis=0) < 1e-8).sum()) if len(kernel) else \
            matrix.shape[1]

    assert determined(target.overlap_) == 0
    assert determined(target.overlap_[:2]) == 2 * 3


def test_a_peer_announcing_the_plaintext_engine_is_refused(frames, monkeypatch):
    from vfl.protocol import channel

    original = channel._QueueEndpoint._transmit

    def transmit(self, envelope):
        body = envelope.body
        if type(body).__name__ == "TransferOpen" and body.key is not None:
            body = dataclasses.replace(body, key=dataclasses.replace(body.key, backend="plain"))
        original(self, dataclasses.replace(envelope, body=body))

    monkeypatch.setattr(channel._QueueEndpoint, "_transmit", transmit)
    with pytest.raises(Exception, match="announced the plaintext engine") as caught:
        fit(frames, mode="encrypted", epochs=1)
    assert type(caught.value).__name__ == "InsecureBackendError"
