"""``vfl party`` with ``[compute]`` on a Dask cluster that dies mid-run.

A1 sends its heavy work to a Dask scheduler; the scheduler is killed after
A1's epoch-2 checkpoint. A1 stops with one line naming the executor, the
others stop too, every checkpoint is intact, and the same files with A1 on
its local pool resume and end with the weights of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from three_parties import (
    KEY_BITS,
    SEEDS,
    checkpoint_epochs,
    models,
    parameters,
    start,
    wait_all,
    wait_for_checkpoint,
    write_configs,
    write_diabetes_csvs,
)

from parties import Coordinator, FeatureHolder, Federation, LabelHolder
from vfl.training import TrainingConfig

pytest.importorskip("distributed")

pytestmark = pytest.mark.slow

#: Enough epochs that the scheduler dies well before the end.
CONFIG = TrainingConfig(epochs=8, learning_rate=0.1, batch_size=100, optimizer="adam")


def in_process(data) -> np.ndarray:
    a = FeatureHolder.from_csv(data["A1"], id_column="patient_id", name="A1",
                               label_column="progression", seed=SEEDS["A1"])
    b = LabelHolder.from_csv(data["B"], id_column="patient_id", label_column="progression",
                             seed=SEEDS["B"])
    Federation(Coordinator(key_bits=KEY_BITS, insecure_key=True), b, a, config=CONFIG).fit()
    return np.r_[a.model_.weights, b.model_.weights, b.model_.intercept]


def start_dask(folder: Path) -> tuple[subprocess.Popen, subprocess.Popen, str]:
    """A scheduler and one single-threaded worker, as processes: (scheduler, worker, address)."""
    dask = shutil.which("dask", path=os.path.dirname(sys.executable)) or "dask"
    file = folder / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                  "--dashboard-address", ":0", "--scheduler-file", str(file)],
                                 **quiet)
    deadline = time.monotonic() + 60
    while not file.exists():
        assert time.monotonic() < deadline and scheduler.poll() is None, "no scheduler"
        time.sleep(0.05)
    address = json.loads(file.read_text())["address"]
    worker = subprocess.Popen([dask, "worker", address, "--nworkers", "1", "--nthreads", "1",
                               "--no-dashboard", "--death-timeout", "10"], **quiet)
    return scheduler, worker, address


def test_a_cluster_lost_mid_run_stops_cleanly_and_the_run_resumes_locally(tmp_path):
    data = write_diabetes_csvs(tmp_path)
    configs = write_configs(tmp_path, data, None, CONFIG, timeout=6.0, connect_timeout=6.0)
    scheduler, worker, address = start_dask(tmp_path)
    setting = address.replace("tcp://", "dask://")
    local_file = configs["A1"].read_text()
    assert '[compute]\nexecutor = "local"' in local_file
    configs["A1"].write_text(local_file.replace('executor = "local"', f'executor = "{setting}"'))
    try:
        running = start(configs)
        wait_for_checkpoint(tmp_path, "A1", 2, running, limit=120)
        scheduler.kill()
        scheduler.wait()
        codes = wait_all(running, timeout=60)
    finally:
        for process in (scheduler, worker):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
    output = running["A1"].output()
    assert codes == {"C": 2, "B": 2, "A1": 2}, {n: r.output()[-1500:] for n, r in running.items()}
    errors = [line for line in output.splitlines() if "error:" in line]
    assert len(errors) == 1 and f"executor {setting}" in errors[0], output[-2000:]
    assert "Traceback" not in output
    # Every party's checkpoints are whole, and of the same epochs or one apart.
    epochs = {name: checkpoint_epochs(tmp_path, name) for name in configs}
    assert all(2 <= max(e) < CONFIG.epochs for e in epochs.values()), epochs
    for name in configs:
        assert not any(tmp_path.glob(f"output/{name}/checkpoints/*.tmp*"))
        for path in (tmp_path / "output" / name / "checkpoints").glob("*.json"):
            json.loads(path.read_text())  # complete, parseable files

    configs["A1"].write_text(local_file)  # the cluster is gone: A1 back on its own pool
    restarted = start(configs, attempt=1)
    codes = wait_all(restarted, timeout=120)
    assert codes == {"C": 0, "B": 0, "A1": 0}, \
        {n: r.output()[-1500:] for n, r in restarted.items()}
    assert all("resuming after epoch" in r.output() for r in restarted.values())
    np.testing.assert_allclose(parameters(models(tmp_path)), in_process(data), rtol=1e-9,
                               atol=0)
