"""Helpers of the network tests: a federation of ``vfl party`` processes on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vfl.datasets import DIABETES_FEATURE_HOLDER_COLUMNS, load_diabetes, split_vertically
from vfl.model import ModelPart
from vfl.runtime.loopback import free_loopback_ports, write_loopback_configs
from vfl.training import TrainingConfig

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("C", "B", "A1")
SEEDS = {"A1": 31, "B": 32}
KEY_BITS = 512


def write_diabetes_csvs(folder: Path) -> dict[str, Path]:
    """A1's and B's halves of the bundled diabetes data as CSV files in `folder`."""
    a_frame, b_frame = split_vertically(
        load_diabetes(), id_column="patient_id", label_column="progression",
        feature_holder_columns=DIABETES_FEATURE_HOLDER_COLUMNS, seed=1)
    paths = {"A1": folder / "A1.csv", "B": folder / "B.csv"}
    a_frame.to_csv(paths["A1"], index=False)
    b_frame.to_csv(paths["B"], index=False)
    return paths


def write_configs(folder: Path, data: dict[str, Path], certs: Path | None,
                  config: TrainingConfig, *, timeout: float = 30.0,
                  connect_timeout: float = 20.0, run_id: str = "test-run",
                  audit: dict[str, tuple[Path, Path]] | None = None) -> dict[str, Path]:
    return write_loopback_configs(
        folder, run_id=run_id, ports=free_loopback_ports(NAMES), label_holder=("B", data["B"]),
        feature_holders=[("A1", data["A1"])], id_column="patient_id",
        label_column="progression", training=config, certs=certs, key_bits=KEY_BITS,
        insecure_key=True, seeds=SEEDS, timeout=timeout, connect_timeout=connect_timeout,
        audit=audit)


@dataclass
class Running:
    name: str
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def start(configs: dict[str, Path], names=NAMES, *, attempt: int = 0) -> dict[str, Running]:
    """Start `names` as ``python -m vfl party`` processes; logs next to the configs."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    running = {}
    for name in names:
        log = configs[name].with_name(f"{name}-{attempt}.log")
        with open(log, "wb") as handle:
            process = subprocess.Popen(
                [sys.executable, "-m", "vfl", "party", "--config", str(configs[name])],
                cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
        running[name] = Running(name, process, log)
    return running


def wait_all(running: dict[str, Running], timeout: float) -> dict[str, int]:
    """Exit codes of every process (each killed if it outlives `timeout`)."""
    deadline = time.monotonic() + timeout
    codes = {}
    for name, run in running.items():
        try:
            codes[name] = run.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            run.process.kill()
            run.process.wait()
            codes[name] = None
    return codes


def kill9(run: Running) -> None:
    os.kill(run.process.pid, signal.SIGKILL)
    run.process.wait()


def models(folder: Path) -> dict[str, ModelPart]:
    out = folder / "output"
    return {name: ModelPart.load(out / name / f"model_{name}.json", party=name)
            for name in ("A1", "B")}


def parameters(parts: dict[str, ModelPart]) -> np.ndarray:
    """A1's weights, B's weights, the intercept."""
    return np.r_[parts["A1"].weights, parts["B"].weights, parts["B"].intercept]


def checkpoint_epochs(folder: Path, name: str) -> list[int]:
    where = folder / "output" / name / "checkpoints"
    if not where.is_dir():
        return []
    return sorted(int(p.stem.rsplit("-", 1)[1]) for p in where.glob(f"{name}-epoch-*.json"))


def wait_for_checkpoint(folder, name: str, epoch: int, running, limit: float = 60.0) -> None:
    """Wait until `name` checkpointed `epoch`, failing at once if any process ended."""
    deadline = time.monotonic() + limit
    while max(checkpoint_epochs(folder, name), default=-1) < epoch:
        assert time.monotonic() < deadline, running[name].output()[-2000:]
        assert all(r.process.poll() is None for r in running.values()), \
            {n: r.output()[-1500:] for n, r in running.items()}
        time.sleep(0.01)


def write_csvs(folder: Path, frames) -> dict[str, Path]:
    """Each party's frame as ``folder/NAME.csv``, floats written exactly (17 digits)."""
    paths = {}
    for name, frame in frames.items():
        paths[name] = folder / f"{name}.csv"
        frame.to_csv(paths[name], index=False, float_format="%.17g")
    return paths
