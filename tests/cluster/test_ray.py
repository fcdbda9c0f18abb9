"""A real local Ray instance (two CPUs) as a party's executor."""

from __future__ import annotations

import os
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import phe
import pytest
from cluster_runs import align, closed_port, fit_weights, kill_when

from vfl.cli import main
from vfl.cluster import compute_on, open_executor
from vfl.crypto import workers
from vfl.crypto.ciphertext import EncryptedVector
from vfl.crypto.fast_engine import FastDecryptor, FastEngine
from vfl.psi.x25519_ops import PointError, blind_points

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for the module (starting one takes seconds)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # Ray's start-up tips
        # address="local": a new instance, whatever other Ray clusters run here.
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level="warning")
    yield
    ray.shutdown()


def running_task_pids() -> list[int]:
    """PIDs of Ray worker processes running one of our tasks (titled ``ray::_call``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if title.startswith(b"ray::_call"):
                pids.append(int(entry.name))
    return pids


def test_an_unreachable_ray_address_is_a_one_line_error(tmp_path, capsys):
    # First in the module: before ray_instance connects this process (a process
    # connected to Ray uses that connection whatever the address).
    assert not ray.is_initialized()
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("i,x\n1,2\n")
    b.write_text("i,x\n1,2\n")
    setting = f"ray://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    code = main(["align", "--party-a", str(a), "--party-b", str(b), "--id-column", "i",
                 "--out", str(tmp_path / "out"), "--executor", setting])
    err = capsys.readouterr().err
    assert code == 2 and time.monotonic() - started < 5
    assert err.startswith(f"vfl align: error: executor {setting}: cannot connect")
    assert err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_training_on_ray_gives_the_local_weights(local_weights, ray_instance):
    weights = fit_weights("ray:auto")
    np.testing.assert_allclose(weights, local_weights, rtol=0, atol=1e-12)
    assert ray.is_initialized()  # a connection the caller made is left open


def test_alignment_on_ray_gives_the_local_intersection(local_alignment, ray_instance):
    assert align("ray:auto") == local_alignment


def test_a_kernel_error_arrives_as_itself_not_wrapped(ray_instance):
    executor = open_executor("ray:auto")
    assert executor is not None
    try:
        with pytest.raises(PointError) as caught:
            executor.submit(blind_points, b"\xff" * 64, os.urandom(32), 16).result()
        assert caught.value.index == 0 and type(caught.value) is PointError
    finally:
        executor.close()


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_a_worker_killed_mid_task_is_rerun_and_the_result_is_exact(ray_instance):
    public, private = phe.generate_paillier_keypair(n_length=1024)
    n, n2 = public.n, public.nsquare
    plain = list(range(1, 1201))
    scalars = [pow(7, i, n) for i in range(1, 1201)]
    vector = EncryptedVector(public, tuple((1 + m * n) % n2 for m in plain))
    killed: list[int] = []
    with compute_on("ray:auto"):
        engine = FastEngine(public, FastEngine.public_params_for(private), pool_capacity=0)
        killer = threading.Thread(target=lambda: killed.append(kill_when(running_task_pids)))
        killer.start()
        product = engine.mul_plain(vector, scalars)
        killer.join()
    assert killed
    assert FastDecryptor(private).decrypt(product) == [m * k % n for m, k in zip(plain,
                                                                              scalars)]


def test_the_workers_drop_their_tables_when_the_run_ends(ray_instance):
    public, private = phe.generate_paillier_keypair(n_length=512)
    engine = FastEngine(public, FastEngine.public_params_for(private), pool_capacity=0)
    with compute_on("ray:auto") as executor:
        assert executor is not None
        held = [executor.submit(workers.obfuscator_chunk, engine.spec, 1) for _ in range(4)]
        [f.result() for f in held]
        tables = [executor.submit(workers.has_table, engine.spec) for _ in range(4)]
        assert any(f.result() for f in tables)
    # Dropping again finds nothing on either worker (the calls hold their
    # workers, so the two land on distinct ones).
    check = open_executor("ray:auto")
    assert check is not None
    try:
        again = [check.submit(workers.drop_caches, 0.3) for _ in range(2)]
        assert [f.result() for f in again] == [0, 0]
    finally:
        check.close()
