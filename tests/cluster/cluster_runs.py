"""Runs for the cluster tests: a training run and an alignment, on any executor.

Each returns what must not depend on where the work ran (the weights, the
intersection), so a test compares a cluster's answer with the local pool's.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import time
from collections.abc import Callable

import numpy as np

from parties import FeatureHolder, LabelHolder, VerticalLinearRegression
from vfl.cluster import compute_on
from vfl.datasets import DIABETES_FEATURE_HOLDER_COLUMNS, load_diabetes, split_vertically
from vfl.protocol.channel import InProcessNetwork
from vfl.psi import EcdhAlignment
from vfl.runtime.inprocess import run_parties

#: Sizes of the alignment test: over 2 chunks per worker, and past the inline cut-off.
ALIGN_SIZE, ALIGN_SHARED, ALIGN_CHUNK = 2400, 900, 400


def fit_weights(executor: str) -> np.ndarray:
    """Two epochs of the estimator (512-bit key, fixed seeds) on `executor`: all weights."""
    a_frame, b_frame = split_vertically(
        load_diabetes(), id_column="patient_id", label_column="progression",
        feature_holder_columns=DIABETES_FEATURE_HOLDER_COLUMNS, seed=1)
    b = LabelHolder(b_frame, id_column="patient_id", label_column="progression", seed=5)
    a = FeatureHolder(a_frame, id_column="patient_id", seed=6)
    model = VerticalLinearRegression(epochs=2, batch_size=100, learning_rate=0.1,
                                     key_bits=512, insecure_key=True,
                                     executor=executor).fit([b, a])
    return np.r_[model.coef_["A1"].to_numpy(), model.coef_["B"].to_numpy(), model.intercept_]


def id_sets() -> tuple[list[str], list[str]]:
    """Two ID sets sharing ALIGN_SHARED IDs, shuffled."""
    rng = random.Random(7)
    shared = [f"s{i}" for i in range(ALIGN_SHARED)]
    a_ids = shared + [f"a{i}" for i in range(ALIGN_SIZE - ALIGN_SHARED)]
    b_ids = shared + [f"b{i}" for i in range(ALIGN_SIZE - ALIGN_SHARED)]
    rng.shuffle(a_ids)
    rng.shuffle(b_ids)
    return a_ids, b_ids


def align(executor: str | None = None) -> list[str]:
    """An ecdh alignment of :func:`id_sets` (every chunk a task): the shared IDs, sorted.

    Both sides must hold them in one order (a secret one, new each run).
    """
    a_ids, b_ids = id_sets()
    method = EcdhAlignment(chunk_size=ALIGN_CHUNK, progress=False, inline_below=0)
    with compute_on(executor):
        out = run_parties(InProcessNetwork(["A", "B"], "cluster-test"), {
            "A": lambda ep: method.run(a_ids, ep, "B", leader=False),
            "B": lambda ep: method.run(b_ids, ep, "A", leader=True),
        })
    shared_a = [a_ids[i] for i in out["A"].positions]
    assert shared_a == [b_ids[i] for i in out["B"].positions]
    return sorted(shared_a)


def closed_port() -> int:
    """A local TCP port nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kill_when(ready: Callable[[], list[int]], *, timeout: float = 30.0) -> int:
    """Wait until `ready()` names worker PIDs busy with a task; SIGKILL the first; its PID."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = ready()
        if busy:
            os.kill(busy[0], signal.SIGKILL)
            return busy[0]
        time.sleep(0.02)
    raise AssertionError("no worker picked up a task in time")
