"""The decryptor gives its private key to each worker once, not with every task."""

from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import pytest

from vfl.crypto import workers
from vfl.crypto.fast_engine import FastDecryptor


class RecordingExecutor(Executor):
    """Delegates to `inner`, keeping each task exactly as it is pickled to a worker."""

    def __init__(self, inner: Executor, max_workers: int) -> None:
        self.inner = inner
        self._max_workers = max_workers  # read by executors.executor_workers
        self.tasks: list[tuple[Any, bytes]] = []

    def submit(self, fn, /, *args, **kwargs) -> Future:
        self.tasks.append((fn, pickle.dumps((fn, args, kwargs))))
        return self.inner.submit(fn, *args, **kwargs)


def _secrets(private_key) -> list[bytes]:
    """Little-endian magnitudes of p, q, hp, hq: how pickle writes those ints."""
    return [int(v).to_bytes((int(v).bit_length() + 7) // 8, "little")
            for v in (private_key.p, private_key.q, private_key.hp, private_key.hq)]


def _carries_key(payload: bytes, private_key) -> bool:
    return any(s in payload for s in _secrets(private_key))


@pytest.fixture
def no_installed_keys():
    saved = dict(workers._private_keys)
    workers._private_keys.clear()
    yield
    workers._private_keys.clear()
    workers._private_keys.update(saved)


def test_tasks_after_the_first_carry_no_key(keypair, fast, no_installed_keys):
    pub, priv = keypair
    with ThreadPoolExecutor(max_workers=1) as inner:
        executor = RecordingExecutor(inner, max_workers=1)
        decryptor = FastDecryptor(priv, executor)
        for round_ in range(5):
            xs = list(range(round_, round_ + 20))
            assert decryptor.decrypt(fast.encrypt(xs)) == xs
    keyed = [i for i, (_, payload) in enumerate(executor.tasks) if _carries_key(payload, priv)]
    # The first task asks for the key's fingerprint and is handed back undone;
    # the second installs the key; none of the 4 decryptions after it carries it.
    assert [fn for fn, _ in executor.tasks[:2]] == [workers.decrypt_chunk_cached,
                                                   workers.install_and_decrypt]
    assert keyed == [1]
    assert all(fn is workers.decrypt_chunk_cached for fn, _ in executor.tasks[2:])
    assert len(executor.tasks) == 6
    # A key-free task is as small as its ciphertexts plus a 64-digit fingerprint.
    fingerprint = workers.key_fingerprint(pub.n)
    assert fingerprint.encode() in executor.tasks[-1][1]
    assert len(executor.tasks[-1][1]) < len(executor.tasks[1][1])


def test_each_worker_process_gets_the_key_at_most_once(keypair, fast):
    _, priv = keypair
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as inner:
        executor = RecordingExecutor(inner, max_workers=2)
        decryptor = FastDecryptor(priv, executor)
        for round_ in range(8):
            xs = [round_ * 100 + i for i in range(30)]
            assert decryptor.decrypt(fast.encrypt(xs)) == xs
        # The pool starts its processes on demand: count those it started.
        started = len(inner._processes)
    keyed = [fn for fn, payload in executor.tasks if _carries_key(payload, priv)]
    decryptions = [fn for fn in (f for f, _ in executor.tasks)
                   if fn is workers.decrypt_chunk_cached]
    assert len(decryptions) == 16                  # 8 rounds, 2 chunks each
    # The key goes out only while some worker lacks it: the chunks of the round
    # that finds a worker without it carry it (at most both chunks per worker).
    assert 1 <= len(keyed) <= 2 * started <= 4
    assert all(fn is workers.install_and_decrypt for fn in keyed)


def test_the_key_must_match_its_fingerprint(keypair, no_installed_keys):
    _, priv = keypair
    spec = (int(priv.p), int(priv.q), int(priv.hp), int(priv.hq))
    with pytest.raises(ValueError, match="fingerprint"):
        workers.install_and_decrypt(("0" * 64, spec), [1])
    assert not workers.has_private_key("0" * 64)
    assert workers.decrypt_chunk_cached(workers.key_fingerprint(priv.p * priv.q), [1]) is None
