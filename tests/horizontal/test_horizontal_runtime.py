"""The horizontal roles on the shared runtime: wire format, checkpoints, resume, min_clients."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from parties.horizontal import FederatedAveraging, HorizontalClient, HorizontalConfig
from parties.horizontal.client import Client
from parties.horizontal.federation import HorizontalFederation
from parties.horizontal.messages import EncryptedUpdate, HorizontalPlan, RoundStart
from parties.horizontal.server import Server
from parties.horizontal.state import RoundRecord, ServerState
from vfl.crypto import EncryptedVector, generate_keypair, get_backend
from vfl.crypto.packing import PackingLayout
from vfl.errors import MalformedMessageError, ProtocolError
from vfl.protocol.channel import Envelope
from vfl.protocol.wire import decode_envelope, encode_envelope
from vfl.runtime.state import GeneratorState, state_from_json, state_to_json

KEY = {"key_bits": 512, "insecure_key": True}


def _frames(rows=(31, 43, 37, 29), seed=8):
    rng = np.random.default_rng(seed)
    out = []
    for k, n in enumerate(rows):
        x = rng.normal(size=(n, 2)) + k
        y = (x @ np.array([1.0, -0.7]) + 0.4 * rng.normal(size=n) > 0.3 * k).astype(float)
        out.append(pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": y}))
    return out


def _clients(frames):
    return [HorizontalClient(f, label_column="y") for f in frames]


def test_messages_cross_the_wire_codec_unchanged() -> None:
    public, _ = generate_keypair(512, insecure=True)
    engine = get_backend("phe")[0](public)
    config = HorizontalConfig(model="softmax", batch_size=None, fraction=0.5)
    for body in (HorizontalPlan(config, ("C1", "C2"), ("a", "b"), (0.0, 1.0, 2.0)),
                 RoundStart(True, (0.5, -1.25)),
                 EncryptedUpdate(engine.encrypt([1, 2, 3]))):
        envelope = Envelope("run", "S", "C1", 0, 1, 1, type(body).__name__, body)
        assert decode_envelope(encode_envelope(envelope)).body == body


def test_server_state_round_trips_through_a_checkpoint() -> None:
    state = ServerState(epoch=3, stopped=False, weights=np.array([0.1, -2.5, 1e-300]),
                        first=np.zeros(3), second=np.ones(3),
                        rng=GeneratorState.of(np.random.default_rng(4)),
                        history=[RoundRecord(1, 0.5, ["C1", "C2"], ["C3"], 70),
                                 RoundRecord(2, None, ["C1"], [], 0)],
                        departed=["C3"])
    again = state_from_json(ServerState, state_to_json(state))
    np.testing.assert_array_equal(again.weights, state.weights)
    assert again.history == state.history and again.departed == ["C3"]
    assert again.rng.generator().integers(1 << 60) == state.rng.generator().integers(1 << 60)


def test_a_crashed_server_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch) -> None:
    options = {"model": "logistic", "rounds": 4, "local_epochs": 2, "batch_size": 8,
               "learning_rate": 0.3, "fraction": 0.75, "seed": 9, **KEY}
    reference = FederatedAveraging(**options).fit(_clients(_frames()))

    original = Server.batch_step

    def crash_in_round_3(self, endpoint, epoch, batch):
        if epoch == 3:
            raise RuntimeError("server killed")
        return original(self, endpoint, epoch, batch)

    monkeypatch.setattr(Server, "batch_step", crash_in_round_3)
    with pytest.raises(RuntimeError, match="server killed"):
        FederatedAveraging(**options, checkpoint_dir=str(tmp_path)).fit(_clients(_frames()))
    monkeypatch.setattr(Server, "batch_step", original)
    resumed = FederatedAveraging(**options, checkpoint_dir=str(tmp_path)).fit(
        _clients(_frames()))
    # Only rounds 3 and 4 ran again (with a fresh key); the result is the same.
    assert [r["round"] for r in resumed.history_] == [1, 2, 3, 4]
    assert len(reference.federation_.key_holder_.decrypted_) == 2 + 4  # statistics, rounds
    assert len(resumed.federation_.key_holder_.decrypted_) == 2 + 2
    np.testing.assert_allclose(resumed.weights_standardised_, reference.weights_standardised_,
                               rtol=1e-12)
    assert [r["participants"] for r in resumed.history_] == \
        [r["participants"] for r in reference.history_]


def test_a_sum_of_fewer_than_min_clients_is_never_decrypted() -> None:
    clients = _clients(_frames())
    clients[2].leave_at_round = 2
    clients[3].leave_at_round = 2
    config = HorizontalConfig(model="logistic", rounds=3, min_clients=3)
    federation = HorizontalFederation(clients, config, round_timeout=1.5, **KEY).fit()
    history = federation.server_.current.history
    # C3 and C4 are asked again in round 3 (in-process, a stopped client looks late).
    assert [(h.round, h.participants, h.dropped) for h in history] == [
        (1, ["C1", "C2", "C3", "C4"], []), (2, ["C1", "C2"], ["C3", "C4"]),
        (3, ["C1", "C2"], ["C3", "C4"])]
    assert all(h.loss is None and h.rows == 0 for h in history[1:])
    # C decrypted the two statistics sums and round 1, and nothing for rounds 2 and 3.
    decrypted = federation.key_holder_.decrypted_
    assert len(decrypted) == 5 and decrypted[-2:] == [(), ()] and all(decrypted[:3])
    # The model is round 1's.
    one = HorizontalFederation(_clients(_frames()), HorizontalConfig(
        model="logistic", rounds=1, min_clients=3), **KEY).fit()
    np.testing.assert_array_equal(federation.server_.weights_, one.server_.weights_)


def test_too_few_clients_for_min_clients_stop_the_run_before_a_round() -> None:
    federation = HorizontalFederation(_clients(_frames()[:2]), HorizontalConfig(
        model="logistic", rounds=2, min_clients=3), **KEY)
    with pytest.raises(ProtocolError, match=r"only 2 client\(s\) remain \(C1, C2\); a round "
                                            r"needs at least min_clients=3$"):
        federation.fit()


def test_a_client_sending_the_wrong_number_of_ciphertexts_is_named(monkeypatch) -> None:
    original = Client.batch_step

    def tampered(self, endpoint, epoch, batch):
        if self.name != "C2":
            return original(self, endpoint, epoch, batch)
        send = endpoint.send

        def doubled(recipient, body, **where):
            if isinstance(body, EncryptedUpdate):
                body = EncryptedUpdate(EncryptedVector.concat([body.values, body.values]))
            send(recipient, body, **where)

        endpoint.send = doubled
        try:
            return original(self, endpoint, epoch, batch)
        finally:
            endpoint.send = send

    monkeypatch.setattr(Client, "batch_step", tampered)
    with pytest.raises(MalformedMessageError,
                       match=r"party S: C2 sent EncryptedUpdate with 4 ciphertexts, the "
                             r"protocol expects 2"):
        FederatedAveraging(model="logistic", rounds=1, **KEY).fit(_clients(_frames()))


def test_a_forged_row_count_stops_the_round(monkeypatch) -> None:
    original = PackingLayout.pack

    def forged(self, values, *, what="value", party=None):
        values = np.array(values, dtype=float)
        if party == "C3" and what == "loss and row count":
            values[-1] = -1000.0  # its count slot
        return original(self, values, what=what, party=party)

    monkeypatch.setattr(PackingLayout, "pack", forged)
    with pytest.raises(ProtocolError, match="forged count"):
        FederatedAveraging(model="logistic", rounds=1, **KEY).fit(_clients(_frames()))
