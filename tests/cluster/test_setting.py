"""The ``executor`` setting on every surface, and what holds without any cluster installed."""

from __future__ import annotations

import time
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

import phe
import pytest
from cluster_runs import closed_port

from parties import VerticalLinearRegression
from vfl.cli import build_parser, main
from vfl.cluster import ExecutorSetting, compute_on, open_executor, parse_executor
from vfl.crypto import executors, workers
from vfl.crypto.fast_engine import FastDecryptor, FastEngine
from vfl.errors import ConfigError
from vfl.runtime.config import RunConfig


@pytest.mark.parametrize(("text", "setting", "address"), [
    ("local", ExecutorSetting("local"), "auto"),
    ("dask://10.0.0.5:8786", ExecutorSetting("dask", "10.0.0.5", 8786), "tcp://10.0.0.5:8786"),
    ("ray://head.example.org:10001", ExecutorSetting("ray", "head.example.org", 10001),
     "ray://head.example.org:10001"),
    ("ray:auto", ExecutorSetting("ray"), "auto"),
    ("dask://[::1]:8786", ExecutorSetting("dask", "::1", 8786), "tcp://[::1]:8786"),
])
def test_settings_are_read_and_written_back(text, setting, address):
    assert parse_executor(text) == setting
    assert str(setting) == text
    assert setting.address == address or setting.is_local


@pytest.mark.parametrize("text", ["", "Local", "dask", "dask://", "dask://host",
                                  "dask://host:0", "dask://host:70000", "dask://:8786",
                                  "spark://host:7077", "ray:", "ray://host:port",
                                  "tcp://host:8786", "dask://a b:1"])
def test_malformed_settings_are_refused_naming_the_forms(text):
    with pytest.raises(ConfigError, match=r"executor must be .*HOST:PORT"):
        parse_executor(text)
    with pytest.raises(ConfigError, match=r"^executor must be"):
        RunConfig(executor=text)
    with pytest.raises(ConfigError, match=r"^executor must be"):
        VerticalLinearRegression(executor=text)


def test_every_command_takes_the_option_with_the_local_default():
    parser = build_parser()
    common = ["--out", "o", "--force"]
    for argv in (["simulate", "--party-a", "a", "--party-b", "b", "--id-column", "i",
                  "--label-column", "y", *common],
                 ["align", "--party-a", "a", "--party-b", "b", "--id-column", "i", "--out", "o"],
                 ["horizontal", "--client", "a", "--client", "b", "--label-column", "y",
                  *common],
                 ["transfer", "--source", "a", "--target", "b", "--id-column", "i",
                  "--label-column", "y", *common]):
        assert parser.parse_args(argv).executor == "local"
        given = parser.parse_args([*argv, "--executor", "ray:auto"])
        assert given.executor == "ray:auto"


def test_a_bad_setting_on_the_command_line_is_one_line(tmp_path, capsys):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("i,x\n1,2\n")
    b.write_text("i,x\n1,2\n")
    code = main(["align", "--party-a", str(a), "--party-b", str(b), "--id-column", "i",
                 "--out", str(tmp_path / "out"), "--executor", "dask:/host:1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "executor must be" in err and "dask:/host:1" in err


def test_open_executor_of_local_is_none_and_compute_on_local_changes_nothing():
    assert open_executor("local") is None
    with compute_on("local") as executor:
        assert executor is None
        assert executors.compute_executor() is executors.default_executor()


class Recording(Executor):
    """Runs tasks in threads and notes each kernel's name; ``remote`` as asked."""

    def __init__(self, remote: bool = False) -> None:
        self.remote = remote
        self.calls: list[str] = []
        self._inner = ThreadPoolExecutor(max_workers=2)

    def worker_count(self) -> int:
        return 2

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.calls.append(fn.__name__)
        return self._inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._inner.shutdown(wait=wait, cancel_futures=cancel_futures)


@pytest.fixture(scope="module")
def small_key() -> tuple[phe.PaillierPublicKey, phe.PaillierPrivateKey]:
    return phe.generate_paillier_keypair(n_length=512)


def test_an_engine_follows_the_run_executor_and_returns_to_the_local_pool(small_key):
    public, private = small_key
    cluster = Recording(remote=True)
    with compute_on(cluster):
        engine = FastEngine(public, FastEngine.public_params_for(private), pool_capacity=0)
        assert executors.executor_workers(engine._executor) == 2
        encrypted = engine.encrypt(list(range(300)))
        engine.matvec_t([[1, -2]] * 300, encrypted)
    assert {"encrypt_chunk", "matvec_chunk"} <= set(cluster.calls)
    # Over a network X^T[[d]] is cut by rows, never sending every ciphertext to every worker.
    assert cluster.calls.count("matvec_chunk") == 2
    done = len(cluster.calls)
    assert engine._executor is executors.default_executor()  # the run is over
    engine.encrypt(list(range(300)))
    assert len(cluster.calls) == done
    cluster.shutdown()


def test_decryption_never_goes_to_a_remote_executor(small_key):
    public, private = small_key
    cluster = Recording(remote=True)
    with pytest.raises(ValueError, match="private key stays"):
        FastDecryptor(private, cluster)
    with compute_on(cluster):
        decryptor = FastDecryptor(private)  # made during a cluster run: the local pool
        engine = FastEngine(public, FastEngine.public_params_for(private), pool_capacity=0)
        assert decryptor.decrypt(engine.encrypt(list(range(50)))) == list(range(50))
    assert not {"decrypt_chunk_cached", "install_and_decrypt", "decrypt_chunk"} & \
        set(cluster.calls)
    assert "encrypt_chunk" in cluster.calls
    cluster.shutdown()


def test_one_executor_per_process_at_a_time():
    first, second = Recording(), Recording()
    with compute_on(first), compute_on(first):  # the same one nests
        with pytest.raises(ConfigError, match="one executor at a time"), compute_on(second):
            pass
        assert executors.compute_executor() is first
    assert executors.compute_executor() is executors.default_executor()
    first.shutdown()
    second.shutdown()


def test_the_background_refill_goes_back_to_the_local_pool_after_the_run(small_key):
    public, private = small_key
    cluster = Recording(remote=True)
    with compute_on(cluster):
        engine = FastEngine(public, FastEngine.public_params_for(private), pool_capacity=64)
        engine.encrypt([1] * 8)  # starts the refill
        deadline = time.monotonic() + 10
        while "obfuscator_chunk" not in cluster.calls and time.monotonic() < deadline:
            time.sleep(0.01)
    cluster.shutdown()  # the cluster is gone (its tasks done): the refill carries on locally
    assert workers.obfuscator_chunk.__name__ in cluster.calls
    submitted = len(cluster.calls)
    # The refill thread adds at most one round of the cluster's results after its
    # shutdown; three rounds taken and refilled mean the local pool made some.
    for _ in range(3):
        engine.pool.take(len(engine.pool))
        deadline = time.monotonic() + 20
        while len(engine.pool) == 0 and time.monotonic() < deadline:
            engine.pool.reserve(64)
            time.sleep(0.02)
        assert len(engine.pool) > 0
    assert len(cluster.calls) == submitted
    engine.close()


def test_a_closed_port_is_a_one_line_error_within_a_second(tmp_path, capsys):
    pytest.importorskip("distributed")
    port = closed_port()
    started = time.monotonic()
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("i,x\n1,2\n")
    b.write_text("i,x\n1,2\n")
    code = main(["align", "--party-a", str(a), "--party-b", str(b), "--id-column", "i",
                 "--out", str(tmp_path / "out"), "--executor", f"dask://127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert code == 2 and time.monotonic() - started < 5
    assert err.count("\n") == 1 and f"dask://127.0.0.1:{port}" in err
    assert "cannot connect" in err
    assert not (tmp_path / "out").exists()
