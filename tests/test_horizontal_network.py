"""A horizontal federation (S, C, three clients) as ``vfl party`` processes with mutual TLS.

The networked run trains to the in-process :class:`FederatedAveraging` model
with the same settings and seeds; a server killed with SIGKILL mid-run stops
the others with an error naming it, and restarted, every party resumes and
ends with the uninterrupted model; a bad file of each horizontal role is one
error line naming the file and the key.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from three_parties import checkpoint_epochs, kill9, start, wait_all, wait_for_checkpoint, write_csvs

from parties.horizontal import FederatedAveraging, HorizontalClient, HorizontalConfig
from vfl.cli import main
from vfl.errors import ConfigFileError
from vfl.net import create_federation_certificates
from vfl.party_config import load_party_config
from vfl.runtime.loopback import free_loopback_ports, write_horizontal_loopback_configs

CLIENTS = ("C1", "C2", "C3")
NAMES = ("S", "C", *CLIENTS)
KEY_BITS = 512
RTOL = 1e-9
#: FedAvg with mini-batches and server-side Adam: every piece of state a resume must restore.
CONFIG = HorizontalConfig(model="logistic", algorithm="fedavg", rounds=3, local_epochs=2,
                          batch_size=8, learning_rate=0.2, server_optimizer="adam",
                          server_learning_rate=0.1, seed=5)
CRASH_CONFIG = HorizontalConfig(**{**CONFIG.to_dict(), "rounds": 6})
TIMEOUT = CONNECT_TIMEOUT = 6.0


def _frames(rows=(31, 43, 37), seed=8) -> list[pd.DataFrame]:
    rng = np.random.default_rng(seed)
    out = []
    for k, n in enumerate(rows):
        x = rng.normal(size=(n, 2)) + k
        y = (x @ np.array([1.0, -0.7]) + 0.4 * rng.normal(size=n) > 0.3 * k).astype(float)
        out.append(pd.DataFrame({"id": np.arange(n) + 1000 * k, "a": x[:, 0], "b": x[:, 1],
                                 "y": y}))
    return out


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("certs")
    create_federation_certificates(folder, NAMES)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    return write_csvs(tmp_path_factory.mktemp("data"), dict(zip(CLIENTS, _frames())))


def in_process(data, config: HorizontalConfig) -> FederatedAveraging:
    clients = [HorizontalClient(pd.read_csv(data[n]), label_column="y", name=n,
                                feature_columns=["a", "b"]) for n in CLIENTS]
    return FederatedAveraging(**config.to_dict(), key_bits=KEY_BITS,
                              insecure_key=True).fit(clients)


def write_configs(folder, data, certs, config, **kwargs):
    return write_horizontal_loopback_configs(
        folder, run_id="hfl-test", ports=free_loopback_ports(NAMES),
        clients=[(n, data[n]) for n in CLIENTS], label_column="y", features=["a", "b"],
        config=config, certs=certs, key_bits=KEY_BITS, insecure_key=True, **kwargs)


def server_model(folder) -> tuple[np.ndarray, float, list]:
    out = folder / "output" / "S"
    model = json.loads((out / "model_S.json").read_text())
    history = json.loads((out / "history_S.json").read_text())["history"]
    return np.asarray(model["weights"]), model["intercept"], history


def assert_same_model(folder, expected: FederatedAveraging) -> None:
    weights, intercept, history = server_model(folder)
    np.testing.assert_allclose(weights, expected.coef_, rtol=RTOL, atol=0)
    np.testing.assert_allclose(intercept, expected.intercept_, rtol=RTOL, atol=0)
    np.testing.assert_allclose([h["loss"] for h in history],
                               [h["loss"] for h in expected.history_], rtol=RTOL, atol=0)
    assert [h["participants"] for h in history] == [list(CLIENTS)] * len(expected.history_)


@pytest.mark.slow
def test_networked_horizontal_run_equals_the_in_process_run(tmp_path, data, certs):
    running = start(write_configs(tmp_path, data, certs, CONFIG), names=NAMES)
    codes = wait_all(running, timeout=90)
    assert set(codes.values()) == {0}, {n: r.output()[-2000:] for n, r in running.items()}
    assert_same_model(tmp_path, in_process(data, CONFIG))
    summary = json.loads((tmp_path / "output" / "C2" / "summary_C2.json").read_text())
    assert summary["rows"] == 43 and summary["rounds_joined"] == [1, 2, 3]
    assert summary["received_final_model"]
    # The key holder keeps nothing about the data: the run id and rounds served.
    keys = json.loads((tmp_path / "output" / "C" / "summary_C.json").read_text())
    assert set(keys) == {"run_id", "rounds"}


@pytest.mark.slow
def test_a_killed_server_stops_the_others_and_a_restart_resumes(tmp_path, data, certs):
    configs = write_configs(tmp_path, data, certs, CRASH_CONFIG, timeout=TIMEOUT,
                            connect_timeout=CONNECT_TIMEOUT)
    running = start(configs, names=NAMES)
    wait_for_checkpoint(tmp_path, "S", 2, running)
    kill9(running["S"])
    survivors = {n: r for n, r in running.items() if n != "S"}
    codes = wait_all(survivors, timeout=TIMEOUT + CONNECT_TIMEOUT + 30)
    assert set(codes.values()) == {2}, {n: r.output()[-2000:] for n, r in survivors.items()}
    for run in survivors.values():
        text = run.output()
        assert "vfl party: error:" in text
        assert any(words in text for words in ("S stopped", "S (127.0.0.1:", "reach S at")), \
            text[-2000:]
    assert max(checkpoint_epochs(tmp_path, "S")) < CRASH_CONFIG.rounds

    restarted = start(configs, names=NAMES, attempt=1)
    codes = wait_all(restarted, timeout=90)
    assert set(codes.values()) == {0}, {n: r.output()[-2000:] for n, r in restarted.items()}
    assert all("resuming after epoch" in r.output() for r in restarted.values())
    assert_same_model(tmp_path, in_process(data, CRASH_CONFIG))


@pytest.mark.parametrize("name, edit, words", [
    ("S", ("[horizontal]", "[horizontal]\nround = 3"), "horizontal.round is not a horizontal "
                                                      "parameter"),
    ("S", ('model = "logistic"', 'model = "tree"'), r"\[horizontal\]: model must be"),
    ("C", ("key_bits = 512", "key_bits = 100"), "keys.key_bits"),
    ("C1", ("[data]", "[data]\nid_column = \"id\""), "data.id_column is not a known setting"),
    ("C1", ('kind = "horizontal"', 'kind = "vertical"'), "federation.kind is 'vertical' but "
                                                         "role 'client'"),
    ("C2", ("[federation]", "[audit]\nlog = \"a.jsonl\"\n\n[federation]"), "audit.key"),
])
def test_a_bad_horizontal_party_file_is_one_line_naming_file_and_key(tmp_path, data, certs,
                                                                      capsys, name, edit,
                                                                      words):
    path = write_configs(tmp_path, data, certs, CONFIG)[name]
    text = path.read_text()
    assert edit[0] in text, text
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(ConfigFileError, match=words) as error:
        load_party_config(path)
    assert str(path) in str(error.value)
    assert main(["party", "--config", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0], lines


def test_the_family_follows_from_the_role(tmp_path, data, certs):
    """``[federation] kind`` may be left out; the role says it."""
    path = write_configs(tmp_path, data, certs, CONFIG)["C1"]
    path.write_text(path.read_text().replace('kind = "horizontal"\n', ""))
    config = load_party_config(path)
    assert (config.kind, config.role, config.epochs) == ("horizontal", "client", CONFIG.rounds)
    assert config.horizontal.clients == CLIENTS and config.horizontal.config == CONFIG
    assert set(config.peers) == {"S", "C"} and config.data_file == data["C1"].resolve()


@pytest.mark.slow
def test_a_killed_client_is_a_dropout_and_the_run_completes_without_it(tmp_path, data, certs):
    """Over the network as in-process: a client whose process stops (and is not
    started again) is a dropout of the round it misses and of every later one it is
    sampled in; the others finish normally."""
    configs = write_configs(tmp_path, data, certs, CRASH_CONFIG, timeout=30.0,
                            connect_timeout=CONNECT_TIMEOUT)
    running = start(configs, names=NAMES)
    wait_for_checkpoint(tmp_path, "S", 2, running)
    kill9(running["C2"])
    others = {n: r for n, r in running.items() if n != "C2"}
    codes = wait_all(others, timeout=90)
    assert set(codes.values()) == {0}, {n: r.output()[-2000:] for n, r in others.items()}
    _, _, history = server_model(tmp_path)
    left = next(h["round"] for h in history if "C2" not in h["participants"])
    assert left >= 3
    assert all(h["participants"] == ["C1", "C3"] and h["dropped"] == ["C2"]
               for h in history[left - 1:])
    assert all(h["participants"] == list(CLIENTS) for h in history[:left - 1])
    # The same run in-process, C2 leaving at that round, gives the same model (there
    # S waits for it in every later round: in-process a stopped client looks late).
    clients = [HorizontalClient(pd.read_csv(data[n]), label_column="y", name=n,
                                feature_columns=["a", "b"],
                                leave_at_round=left if n == "C2" else None) for n in CLIENTS]
    expected = FederatedAveraging(**CRASH_CONFIG.to_dict(), key_bits=KEY_BITS,
                                  insecure_key=True, round_timeout=1.0).fit(clients)
    assert [(h["participants"], h["dropped"]) for h in expected.history_] == \
        [(h["participants"], h["dropped"]) for h in history]
    weights, intercept, _ = server_model(tmp_path)
    np.testing.assert_allclose(weights, expected.coef_, rtol=RTOL, atol=0)
    np.testing.assert_allclose(intercept, expected.intercept_, rtol=RTOL, atol=0)
    assert "C2 left" in running["S"].output() or "C2 stopped" in running["S"].output()
