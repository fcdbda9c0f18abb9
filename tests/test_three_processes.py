"""A, B and C as three ``vfl party`` processes on loopback, with mutual TLS.

They train to the weights of the in-process federation; killed with
SIGKILL in the middle of an epoch, the others stop with an error naming it
within their timeout, and restarted, training resumes and ends with the
weights of an uninterrupted run.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from three_parties import (
    KEY_BITS,
    SEEDS,
    checkpoint_epochs,
    kill9,
    models,
    parameters,
    start,
    wait_all,
    wait_for_checkpoint,
    write_configs,
    write_diabetes_csvs,
)

from parties import Coordinator, FeatureHolder, Federation, LabelHolder
from vfl.net import create_federation_certificates
from vfl.training import TrainingConfig

#: Three mini-batches per epoch, so that a kill lands inside an epoch.
CONFIG = TrainingConfig(epochs=4, learning_rate=0.1, batch_size=100, optimizer="adam")
RTOL = 1e-9


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("certs")
    create_federation_certificates(folder, ("A1", "B", "C"))
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("data")
    return write_diabetes_csvs(folder)


def in_process(data, config: TrainingConfig) -> np.ndarray:
    """The same parties, seeds and data in one process over queues."""
    a = FeatureHolder.from_csv(data["A1"], id_column="patient_id", name="A1",
                               label_column="progression", seed=SEEDS["A1"])
    b = LabelHolder.from_csv(data["B"], id_column="patient_id", label_column="progression",
                             seed=SEEDS["B"])
    Federation(Coordinator(key_bits=KEY_BITS, insecure_key=True), b, a, config=config).fit()
    return np.r_[a.model_.weights, b.model_.weights, b.model_.intercept]


@pytest.fixture(scope="module")
def expected(data) -> np.ndarray:
    return in_process(data, CONFIG)


def test_three_processes_train_to_the_in_process_weights(tmp_path, data, certs, expected):
    configs = write_configs(tmp_path, data, certs, CONFIG)
    running = start(configs)
    codes = wait_all(running, timeout=120)
    assert codes == {"C": 0, "B": 0, "A1": 0}, {n: r.output()[-2000:] for n, r in running.items()}
    np.testing.assert_allclose(parameters(models(tmp_path)), expected, rtol=RTOL, atol=0)
    history = (tmp_path / "output" / "B" / "history_B.json").read_text()
    assert '"epoch": 4' in history


#: Enough epochs that a kill after the second lands inside a later one.
CRASH_CONFIG = TrainingConfig(epochs=7, learning_rate=0.1, batch_size=100, optimizer="adam")
TIMEOUT, CONNECT_TIMEOUT = 6.0, 6.0


@pytest.mark.parametrize("victim", ["B", "A1", "C"])
def test_a_killed_party_stops_the_others_and_training_resumes(tmp_path, data, certs, victim):
    configs = write_configs(tmp_path, data, certs, CRASH_CONFIG, timeout=TIMEOUT,
                            connect_timeout=CONNECT_TIMEOUT)
    running = start(configs)
    # Right after its epoch-2 checkpoint the victim is inside epoch 3.
    wait_for_checkpoint(tmp_path, victim, 2, running)
    kill9(running[victim])
    killed_at = time.monotonic()
    survivors = {n: r for n, r in running.items() if n != victim}
    codes = wait_all(survivors, timeout=TIMEOUT + CONNECT_TIMEOUT + 30)
    stopped_after = time.monotonic() - killed_at
    assert set(codes.values()) == {2}, {n: r.output()[-2000:] for n, r in survivors.items()}
    # A closed port is noticed in about a second, a send to the dead party
    # fails after its connect timeout, silence after the timeout. The slack
    # is process exit on a loaded machine.
    assert stopped_after < max(TIMEOUT, CONNECT_TIMEOUT) + 3
    for run in survivors.values():
        text = run.output()
        assert "vfl party: error:" in text
        assert any(words in text for words in (f"{victim} stopped", f"{victim} (127.0.0.1:",
                                               f"reach {victim} at")), text[-2000:]
    epochs = {name: checkpoint_epochs(tmp_path, name) for name in configs}
    assert all(2 <= max(e) < CRASH_CONFIG.epochs for e in epochs.values()), epochs

    restarted = start(configs, attempt=1)
    codes = wait_all(restarted, timeout=120)
    assert codes == {"C": 0, "B": 0, "A1": 0}, \
        {n: r.output()[-2000:] for n, r in restarted.items()}
    assert all("resuming after epoch" in r.output() for r in restarted.values())
    np.testing.assert_allclose(parameters(models(tmp_path)), in_process(data, CRASH_CONFIG),
                               rtol=RTOL, atol=0)
    history = (tmp_path / "output" / "B" / "history_B.json").read_text()
    assert f'"epoch": {CRASH_CONFIG.epochs}' in history


def test_nothing_private_travels_on_the_wire(tmp_path, data, certs):
    """Every frame each party hands to gRPC (inside TLS), searched for its data.

    The parties run as threads here so that the transport's capture hook
    sees their frames; the code path is the one ``vfl party`` runs.
    """
    import struct
    import threading

    import pandas as pd

    from vfl.cli.party import run_party
    from vfl.party_config import load_party_config

    # Values with full 52-bit mantissas: the float64 bytes of a small integer
    # (the raw ages, labels) are mostly zeros and turn up in any framing.
    rng = np.random.default_rng(5)
    data = dict(data)
    for name in ("A1", "B"):
        frame = pd.read_csv(data[name])
        values = frame.columns.drop("patient_id")
        frame[values] = frame[values] + rng.uniform(0.01, 0.99, size=frame[values].shape)
        data[name] = tmp_path / f"noisy-{name}.csv"
        frame.to_csv(data[name], index=False, float_format="%.17g")
    config = TrainingConfig(epochs=2, learning_rate=0.1, batch_size=100)
    configs = write_configs(tmp_path, data, certs, config)
    frames: list[bytes] = []
    lock = threading.Lock()

    def capture(direction, peer, frame):
        if direction == "sent":
            with lock:
                frames.append(bytes(frame))

    results, errors = {}, {}

    def run(name):
        try:
            results[name] = run_party(load_party_config(configs[name]), quiet=True,
                                      capture=capture)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors[name] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in configs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    wire = b"\x00".join(frames)
    assert len(frames) > 20 and len(wire) > 100_000

    a_frame, b_frame = pd.read_csv(data["A1"]), pd.read_csv(data["B"])
    a, b = results["A1"], results["B"]
    numbers = [*a_frame.drop(columns="patient_id").to_numpy().ravel(),
               *b_frame.drop(columns="patient_id").to_numpy().ravel(),
               *a.model_.weights, *b.model_.weights, b.model_.intercept,
               *a.initial_weights_, *b.initial_weights_, b.initial_intercept_]
    needles = set()
    for value in map(float, numbers):
        needles.add(struct.pack("<d", value))
        needles.add(struct.pack(">d", value))
        if len(repr(value)) >= 6:  # shorter decimal text turns up in any binary by chance
            needles.add(repr(value).encode())
    ids = [*a_frame["patient_id"], *b_frame["patient_id"]]
    needles.update(str(i).encode("utf-8") for i in ids)
    found = [n for n in needles if n in wire]
    assert not found, f"{len(found)} private values on the wire, e.g. {found[:5]}"
    # The search works: the frames do hold what is public, e.g. the run id.
    assert b"test-run" in wire


def test_checkpoints_of_other_settings_are_refused_not_used(tmp_path, data, certs):
    config = TrainingConfig(epochs=2, learning_rate=0.1, batch_size=100)
    codes = wait_all(start(write_configs(tmp_path, data, certs, config)), timeout=120)
    assert codes == {"C": 0, "B": 0, "A1": 0}
    # The first run's result files would be refused at start-up (no --force);
    # its checkpoints stay, and they are what this test is about.
    for name in ("A1", "B", "C"):
        for result in (tmp_path / "output" / name).glob("*_*.json"):
            result.unlink()
    changed = TrainingConfig(epochs=2, learning_rate=0.2, batch_size=100)
    running = start(write_configs(tmp_path, data, certs, changed, timeout=10), attempt=1)
    codes = wait_all(running, timeout=60)
    assert set(codes.values()) == {2}
    logs = {name: run.output() for name, run in running.items()}
    assert any("checkpoint" in text and "learning_rate 0.1 -> 0.2" in text
               and "run_id" in text for text in logs.values()), logs
