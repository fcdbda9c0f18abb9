"""A real local Dask cluster (a scheduler and two worker processes) as a party's executor."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import phe
import pytest
from cluster_runs import align, closed_port, fit_weights, kill_when

from vfl.cli import main
from vfl.cluster import compute_on, open_executor
from vfl.crypto import workers
from vfl.crypto.fast_engine import FastDecryptor, FastEngine
from vfl.errors import ClusterError, ClusterUnreachableError

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def cluster():
    """(LocalCluster, a Client of the test's own, the ``dask://`` setting)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as local, \
            distributed.Client(local.scheduler_address, set_as_default=False) as client:
        yield local, client, local.scheduler_address.replace("tcp://", "dask://")


def kernels(stream) -> set[str]:
    """Names of the functions the scheduler ran (keys are ``name-uuid``)."""
    return {task["key"].split("-")[0] for task in stream}


def test_training_on_the_cluster_gives_the_local_weights(cluster, local_weights):
    _, client, setting = cluster
    with distributed.get_task_stream(client) as stream:
        weights = fit_weights(setting)
    np.testing.assert_allclose(weights, local_weights, rtol=0, atol=1e-12)
    ran = kernels(stream.data)
    # Encryptions as tasks of their own, or as encryptions of zero made ahead.
    assert "matvec_chunk" in ran and ran & {"encrypt_chunk", "obfuscator_chunk"}
    assert not {"decrypt_chunk", "decrypt_chunk_cached", "install_and_decrypt"} & ran
    assert len({task["worker"] for task in stream.data}) == 2
    # The run is over: no worker keeps a fixed-base table (nor ever held a key).
    held = client.run(lambda: (len(workers._tables), len(workers._private_keys)))
    assert set(held.values()) == {(0, 0)}


def test_alignment_on_the_cluster_gives_the_local_intersection(cluster, local_alignment):
    _, client, setting = cluster
    with distributed.get_task_stream(client) as stream:
        result = align(setting)
    assert result == local_alignment
    assert result == sorted(f"s{i}" for i in range(900))
    assert {"blind_ids", "blind_points"} <= kernels(stream.data)


def test_obfuscators_are_never_shared_between_tasks(cluster):
    # Dask computes equal-looking tasks once unless told otherwise (pure=False):
    # reused randomness would link ciphertexts.
    _, _, setting = cluster
    public, private = phe.generate_paillier_keypair(n_length=512)
    engine = FastEngine(public, FastEngine.public_params_for(private), pool_capacity=0)
    executor = open_executor(setting)
    assert executor is not None
    try:
        futures = [executor.submit(workers.obfuscator_chunk, engine.spec, 4) for _ in range(8)]
        values = [o for f in futures for o in f.result()]
    finally:
        executor.close()
    assert len(set(values)) == 32


def test_every_dask_logger_that_prints_by_itself_is_quiet_while_the_executor_is_open(cluster):
    # distributed's logging config gives tornado.application its own level (ERROR) and
    # stderr handler: tornado's "Exception in callback" tracebacks of a lost scheduler
    # printed through it while only its parent "tornado" was quieted.
    import logging
    _, _, setting = cluster
    printing = [logging.getLogger(name) for name in ("distributed", "distributed.client",
                                                     "tornado", "tornado.application",
                                                     "asyncio")]
    before = [logger.level for logger in printing]
    executor = open_executor(setting)
    assert executor is not None
    try:
        for logger in printing:
            assert not logger.isEnabledFor(logging.ERROR), logger.name
    finally:
        executor.close()
    assert [logger.level for logger in printing] == before


def test_a_worker_killed_mid_task_is_replaced_and_the_result_is_exact(cluster):
    local, client, setting = cluster
    public, private = phe.generate_paillier_keypair(n_length=1024)
    n, n2 = public.n, public.nsquare
    plain = list(range(1, 1201))
    scalars = [pow(7, i, n) for i in range(1, 1201)]  # full-size exponents: slow tasks
    # (1 + m n) is an encryption of m (r = 1): no encryption cost in the test.
    from vfl.crypto.ciphertext import EncryptedVector
    vector = EncryptedVector(public, tuple((1 + m * n) % n2 for m in plain))
    killed: list[int] = []

    def busy_pids() -> list[int]:
        processing = client.processing()
        pids = client.run(os.getpid)
        return [pids[w] for w, keys in processing.items() if keys and w in pids]

    with compute_on(setting):
        engine = FastEngine(public, FastEngine.public_params_for(private), pool_capacity=0)
        killer = threading.Thread(target=lambda: killed.append(kill_when(busy_pids)))
        killer.start()
        product = engine.mul_plain(vector, scalars)
        killer.join()
    assert killed, "no worker was killed"
    assert FastDecryptor(private).decrypt(product) == [m * k % n for m, k in zip(plain,
                                                                              scalars)]
    local.wait_for_workers(2)


def test_a_cluster_left_without_workers_fails_clearly_instead_of_hanging():
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as local:
        setting = local.scheduler_address.replace("tcp://", "dask://")
        executor = open_executor(setting, lost_after=2)
        assert executor is not None
        try:
            local.scale(0)
            deadline = time.monotonic() + 20
            while executor._count_workers() and time.monotonic() < deadline:
                time.sleep(0.1)
            started = time.monotonic()
            future = executor.submit(workers.kernel_version)
            with pytest.raises(ClusterError, match=f"executor {setting}: the cluster has no "
                                                   "worker for 2 s"):
                future.result(timeout=30)
            assert time.monotonic() - started < 10
        finally:
            executor.close()


def test_a_scheduler_without_workers_is_refused_at_the_start():
    with distributed.LocalCluster(n_workers=0, dashboard_address=":0") as local:
        setting = local.scheduler_address.replace("tcp://", "dask://")
        started = time.monotonic()
        with pytest.raises(ClusterUnreachableError, match="has no worker after 1 s"):
            open_executor(setting, connect_timeout=1)
        assert time.monotonic() - started < 10


def test_simulate_with_an_unreachable_scheduler_is_one_line_and_writes_nothing(
        tmp_path, frames, capsys):
    a_path, b_path = tmp_path / "A.csv", tmp_path / "B.csv"
    frames[0].to_csv(a_path, index=False)
    frames[1].to_csv(b_path, index=False)
    setting = f"dask://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    code = main(["simulate", "--party-a", str(a_path), "--party-b", str(b_path),
                 "--id-column", "patient_id", "--label-column", "progression",
                 "--key-bits", "512", "--insecure-key", "--quiet",
                 "--out", str(tmp_path / "out"), "--executor", setting])
    err = capsys.readouterr().err
    assert code == 2 and time.monotonic() - started < 10
    assert err.startswith(f"vfl simulate: error: executor {setting}: cannot connect")
    assert err.count("\n") == 1
    assert not (tmp_path / "out").exists()
