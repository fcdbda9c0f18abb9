"""A ``vfl party`` that cannot start tells its peers at once, and they stop with its reason.

Each party opens its endpoint before it loads its data and its audit log
copy; on a start-up error it sends the abort notice to its peers before
exiting 2. The peers then stop within seconds, naming it and its reason,
instead of waiting for it until their connect timeout or timeout.
"""

from __future__ import annotations

import time

import pandas as pd
import pytest
from three_parties import start, wait_all, write_configs, write_diabetes_csvs

from vfl.cli import main
from vfl.net import create_federation_certificates
from vfl.training import TrainingConfig

pytestmark = pytest.mark.slow

NAMES = ("C", "B", "A1")
#: Long enough that a peer waiting for them would fail the time bound below.
TIMEOUT, CONNECT_TIMEOUT = 120.0, 60.0


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("start-failure")
    create_federation_certificates(folder / "certs", NAMES)
    keys = folder / "keys"
    for name in NAMES:
        assert main(["audit", "keygen", "--party", name, "--out", str(keys)]) == 0
    return folder / "certs", keys


def poll_exits(running, limit: float) -> dict[str, float]:
    """Seconds after the start at which each process exited (all within `limit`)."""
    started = time.monotonic()
    exited: dict[str, float] = {}
    while len(exited) < len(running) and time.monotonic() - started < limit:
        for name, run in running.items():
            if name not in exited and run.process.poll() is not None:
                exited[name] = time.monotonic() - started
        time.sleep(0.05)
    return exited


@pytest.mark.parametrize("fault", ["bad column", "bad audit copy"])
def test_a_party_that_cannot_start_stops_its_peers_within_seconds(tmp_path, setup, fault):
    certs, keys = setup
    data = write_diabetes_csvs(tmp_path)
    audit = None
    if fault == "bad column":
        frame = pd.read_csv(data["A1"])
        frame["age"] = frame["age"].astype(str)
        frame.loc[12, "age"] = "abc"
        frame.to_csv(data["A1"], index=False)
        expected = "A1 stopped: InvalidFeatureError: party A1: feature column 'age'"
    else:
        audit = {n: (tmp_path / "logs" / f"{n}.jsonl", keys / f"{n}.key") for n in NAMES}
        audit["A1"][0].parent.mkdir()
        audit["A1"][0].write_text('{"index": 0, "not": "a record"\n')
        expected = "A1 stopped: MalformedRecordError"
    configs = write_configs(tmp_path, data, certs, TrainingConfig(epochs=2), timeout=TIMEOUT,
                            connect_timeout=CONNECT_TIMEOUT, audit=audit)
    running = start(configs)
    exited = poll_exits(running, limit=CONNECT_TIMEOUT - 10)
    codes = wait_all(running, timeout=5)
    logs = {n: r.output() for n, r in running.items()}
    assert codes == {"C": 2, "B": 2, "A1": 2}, {n: text[-2000:] for n, text in logs.items()}
    # The peers stop a few seconds after A1 (process start-up on a loaded
    # machine included), far from their 60 s connect timeout.
    assert max(exited["B"], exited["C"]) < exited["A1"] + 15, exited
    for name in ("B", "C"):
        errors = [line for line in logs[name].splitlines() if ": error: " in line]
        assert len(errors) == 1, logs[name][-2000:]
        assert errors[0].startswith(f"vfl party: error: party {name}: {expected}"), errors
        assert "Traceback" not in logs[name]
    assert "vfl party: error: " in logs["A1"] and "Traceback" not in logs["A1"]
    assert not (tmp_path / "output" / "B" / "model_B.json").exists()
