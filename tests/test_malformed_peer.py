"""A peer that sends malformed messages: the honest parties stop with one line naming it.

B and C run as real ``vfl party`` processes; A1 runs the real feature
holder over the real transport, but tampers with one message
(tests/peers/hostile_feature_holder.py). B must exit 2 with one line that
names A1 and the message, never a traceback; nothing is written.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from three_parties import ROOT, start, wait_all, write_configs, write_diabetes_csvs

from vfl.net import create_federation_certificates
from vfl.training import TrainingConfig

pytestmark = pytest.mark.slow

HOSTILE = ROOT / "tests" / "peers" / "hostile_feature_holder.py"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("certs")
    create_federation_certificates(folder, ("A1", "B", "C"))
    return folder


@pytest.mark.parametrize("fault, pattern", [
    ("short-scores", r"A1 sent EncryptedPartialScores with (\d+) scores, the protocol "
                     r"expects (\d+)"),
    ("extra-loss", r"A1 sent EncryptedPartialScores with (2) loss ciphertexts, the protocol "
                   r"expects (1)"),
])
def test_a_malformed_message_stops_the_label_holder_with_one_line(tmp_path, certs, fault,
                                                                   pattern):
    data = write_diabetes_csvs(tmp_path)
    configs = write_configs(tmp_path, data, certs, TrainingConfig(epochs=2), timeout=20.0)
    honest = start(configs, names=("C", "B"))
    log = tmp_path / "A1.log"
    with open(log, "wb") as handle:
        hostile = subprocess.Popen(
            [sys.executable, str(HOSTILE), fault, "--config", str(configs["A1"])],
            cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
    codes = wait_all(honest, timeout=90)
    hostile.wait(30)
    b_output = honest["B"].output()
    assert codes["B"] == 2, b_output[-2000:]
    assert "Traceback" not in b_output
    errors = [line for line in b_output.splitlines() if ": error: " in line]
    assert len(errors) == 1 and "MalformedMessageError" not in errors[0], b_output[-2000:]
    found = re.match("vfl party: error: party B: " + pattern, errors[0])
    assert found, errors
    if fault == "short-scores":
        assert int(found.group(1)) == int(found.group(2)) - 1
    assert codes["C"] == 2 and "Traceback" not in honest["C"].output()
    assert not (tmp_path / "output" / "B" / "model_B.json").exists()
