"""A transfer pair (source A, target B) as ``vfl party`` processes with mutual TLS.

The networked run trains to the in-process :func:`run_transfer` models and
predictions with the same settings and seeds; a target killed with SIGKILL
mid-run stops the source with an error naming it, and restarted, both resume
and end with the uninterrupted result; a bad file of either role is one
error line naming the file and the key.

(Named ``*_processes`` because ``tests/transfer/test_transfer_network.py``,
the dense network's tests, already holds the module name.)
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from three_parties import checkpoint_epochs, kill9, start, wait_all, wait_for_checkpoint, write_csvs

from parties.transfer import TransferConfig, TransferSource, TransferTarget, run_transfer
from vfl.cli import main
from vfl.errors import ConfigFileError
from vfl.net import create_federation_certificates
from vfl.party_config import load_party_config
from vfl.runtime.loopback import free_loopback_ports, write_transfer_loopback_configs

NAMES = ("A", "B")
SEEDS = {"A": 1, "B": 2}
RTOL = 1e-9
CONFIG = TransferConfig(hidden=(3,), epochs=3, learning_rate=0.05, alpha=2.0, l2=0.01,
                        insecure=True, key_bits=512)
CRASH_CONFIG = TransferConfig(**{**CONFIG.to_dict(), "epochs": 6})
TIMEOUT = CONNECT_TIMEOUT = 6.0


def _frames(seed: int = 0, n_a: int = 40, n_b: int = 30, first_b: int = 25):
    """A source with labels and a target with other columns; 15 rows overlap."""
    rng = np.random.default_rng(seed)
    frame_a = pd.DataFrame(rng.normal(size=(n_a, 3)), columns=["a1", "a2", "a3"])
    frame_a.insert(0, "ID", [f"id{i}" for i in range(n_a)])
    frame_a["y"] = rng.integers(0, 2, n_a)
    frame_b = pd.DataFrame(rng.normal(size=(n_b, 2)), columns=["b1", "b2"])
    frame_b.insert(0, "ID", [f"id{i}" for i in range(first_b, first_b + n_b)])
    return frame_a, frame_b


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("certs")
    create_federation_certificates(folder, NAMES)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    return write_csvs(tmp_path_factory.mktemp("data"), dict(zip(NAMES, _frames())))


def in_process(data, config: TransferConfig) -> dict:
    source = TransferSource.from_csv(data["A"], id_column="ID", label_column="y",
                                     seed=SEEDS["A"])
    target = TransferTarget.from_csv(data["B"], id_column="ID", label_column="y",
                                     seed=SEEDS["B"])
    run_transfer(source, target, config)
    return {"A": source.model_dict()["params"], "B": target.model_dict()["params"],
            "phi": list(target.phi_), "predictions": target.predict_proba().to_numpy(),
            "ids": list(target.table.ids)}


def write_configs(folder, data, certs, config, **kwargs):
    return write_transfer_loopback_configs(
        folder, run_id="transfer-test", ports=free_loopback_ports(NAMES), source=("A", data["A"]),
        target=("B", data["B"]), id_column="ID", label_column="y", config=config, certs=certs,
        seeds=SEEDS, **kwargs)


def assert_same_result(folder, expected: dict) -> None:
    out = folder / "output"
    models = {n: json.loads((out / n / f"model_{n}.json").read_text()) for n in NAMES}
    for name in NAMES:
        np.testing.assert_allclose(models[name]["params"], expected[name], rtol=RTOL, atol=0)
    np.testing.assert_allclose(models["B"]["phi"], expected["phi"], rtol=RTOL, atol=0)
    predictions = pd.read_csv(out / "B" / "predictions_B.csv", dtype={"ID": str})
    assert list(predictions["ID"]) == expected["ids"]  # every target row, in its order
    np.testing.assert_allclose(predictions["probability"], expected["predictions"], rtol=RTOL,
                               atol=0)


@pytest.mark.slow
def test_networked_transfer_run_equals_run_transfer(tmp_path, data, certs):
    running = start(write_configs(tmp_path, data, certs, CONFIG), names=NAMES)
    codes = wait_all(running, timeout=90)
    assert set(codes.values()) == {0}, {n: r.output()[-2000:] for n, r in running.items()}
    assert_same_result(tmp_path, in_process(data, CONFIG))
    history = json.loads((tmp_path / "output" / "A" / "history_A.json").read_text())
    assert [h["epoch"] for h in history["history"]] == [1, 2, 3]


@pytest.mark.slow
def test_a_killed_target_stops_the_source_and_a_restart_resumes(tmp_path, data, certs):
    configs = write_configs(tmp_path, data, certs, CRASH_CONFIG, timeout=TIMEOUT,
                            connect_timeout=CONNECT_TIMEOUT)
    running = start(configs, names=NAMES)
    wait_for_checkpoint(tmp_path, "B", 2, running)
    kill9(running["B"])
    codes = wait_all({"A": running["A"]}, timeout=TIMEOUT + CONNECT_TIMEOUT + 30)
    text = running["A"].output()
    assert codes == {"A": 2}, text[-2000:]
    assert "vfl party: error:" in text
    assert any(words in text for words in ("B stopped", "B (127.0.0.1:", "reach B at")), \
        text[-2000:]
    assert max(checkpoint_epochs(tmp_path, "B")) < CRASH_CONFIG.epochs

    restarted = start(configs, names=NAMES, attempt=1)
    codes = wait_all(restarted, timeout=90)
    assert set(codes.values()) == {0}, {n: r.output()[-2000:] for n, r in restarted.items()}
    assert all("resuming after epoch" in r.output() for r in restarted.values())
    assert_same_result(tmp_path, in_process(data, CRASH_CONFIG))


@pytest.mark.parametrize("name, edit, words", [
    ("A", ("[transfer]", "[transfer]\nepoch = 3"), "transfer.epoch is not a transfer parameter"),
    ("B", ("key_bits = 512", "key_bits = 2048\nkey_bitz = 1"), "transfer.key_bitz"),
    ("A", ("insecure = true", "insecure = false"), r"\[transfer\]: key_bits is 512"),
    ("B", ('source = "A"', 'source = "A"\nlabel_holder = "A"'),
     "federation.label_holder is not a known setting"),
    ("A", ('[data]', '[keys]\nkey_bits = 2048\n\n[data]'), "keys is not used by a transfer"),
    ("B", ('role = "target"', 'role = "source"'), "federation.source does not name it"),
])
def test_a_bad_transfer_party_file_is_one_line_naming_file_and_key(tmp_path, data, certs,
                                                                    capsys, name, edit, words):
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
