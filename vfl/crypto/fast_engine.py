"""The default engine: DJN encryption, bucket multi-exponentiation, CRT, process pool.

Same key and ciphertexts as ``phe`` (g = n + 1): a ciphertext of this engine
decrypts with ``phe``'s private key and the reverse. Where the time goes,
and what this engine does about it:

* **Encryption** is DJN style (:mod:`vfl.crypto.djn`): ``(1 + m n) h_s^r``
  with r of n_bits/2 bits, ``h_s^r`` taken from a fixed-base table of
  h_s: one per key in this process, in shared memory read by every worker,
  its window sized to the work the run does and grown if the run proves
  longer (:mod:`vfl.crypto.key_tables`), e.g. 113 multiplications mod n^2
  at 2048 bits for a short run, 78 for a long one, instead of ~2400 for
  ``phe``'s ``r^n``.
* **Obfuscator pool** (:mod:`vfl.crypto.obfuscator_pool`): encryptions of
  zero precomputed in the background while the party waits; when the pool
  is warm an encryption or re-randomisation costs one multiplication.
* **[[X^T d]]** shares the m ciphertexts between all columns: shifted bases
  ``[[d_i]]^(2^k)`` made once, then one multiplication per base serves a
  group of 12 to 14 columns through their bit patterns
  (:mod:`vfl.crypto.column_groups`): ~1.3-1.5 multiplications per product at
  the data's ~15-bit scalars, instead of ~6 for per-column buckets at 44
  bits; narrow blocks (one column, a dot product) take a bucket
  multi-exponentiation per column (:mod:`vfl.crypto.multiexp`).
* **Decryption** uses the CRT: two half-size exponentiations mod p^2, q^2.
* **Parallelism**: the heavy kernels (:mod:`vfl.crypto.workers`) run on a
  ``concurrent.futures.Executor``, by default one process pool shared by
  the process (:mod:`vfl.crypto.executors`); cheap operations stay inline.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, wait
from typing import Any, TypeVar

import gmpy2
import numpy as np
import phe
from gmpy2 import mpz

from vfl.crypto import column_groups, executors, key_tables, workers
from vfl.crypto.ciphertext import EncryptedVector
from vfl.crypto.djn import check_h_s, djn_public_params, randomness_bits
from vfl.crypto.engine import PaillierDecryptor, PaillierEngine, validate_ciphertexts
from vfl.crypto.multiexp import signed_residue
from vfl.crypto.obfuscator_pool import ObfuscatorPool

__all__ = ["FastDecryptor", "FastEngine"]

_T = TypeVar("_T")

_MPZ = type(mpz(0))

#: Below these sizes a task is done inline: shipping it to a worker costs
#: more than the work (a 4096-bit multiplication is ~5-10 us; a task
#: round trip ~1 ms).
_INLINE_EXPONENTIATIONS = 4
#: Fewest obfuscators per task when cutting a batch finer than one per worker.
_CHUNK_OBFUSCATORS = 64
_INLINE_MULTIPLICATIONS = 4096


class FastEngine(PaillierEngine):
    """Paillier vector engine on gmpy2 with DJN encryption and a process pool.

    Parameters
    ----------
    public_key : phe.PaillierPublicKey
    public_params : mapping
        Must hold ``"h_s"`` from :meth:`public_params_for` (the key owner
        publishes it with the key); it must equal the value every party
        derives from n (:func:`~vfl.crypto.djn.derive_h_s`).
    executor : concurrent.futures.Executor, optional
        Where heavy kernels run. Default: the executor of the run in
        progress (:func:`~vfl.crypto.executors.compute_executor`: a cluster
        installed by :func:`vfl.cluster.compute_on`, else the process pool
        shared by all engines of this process, one worker per core), asked
        at every operation. Pass any executor to fix it; the engine never
        shuts down an executor it did not create.
    pool_capacity : int
        Initial size of the background obfuscator pool (it grows with
        demand); it starts filling at the first encryption or
        re-randomisation. 0 disables background precomputation.
    window : int, optional
        Fix the window of the fixed-base table of h_s, each worker building
        its own (tests, benchmarks). Default: sized to the work
        (:mod:`vfl.crypto.key_tables`): on this machine's worker pool one
        table per key in shared memory, from a few MB for a short run up to
        ~360 MB (13 bits at 2048-bit keys) for a long one; on a cluster one
        per worker, sized the same way.
    parallel : bool
        False runs everything inline in the calling thread (no processes).

    Raises
    ------
    vfl.crypto.djn.InvalidPublicParameterError
        (a ``MalformedMessageError`` and ``ValueError``) if ``public_params``
        lacks ``h_s`` or holds another value than the one derived from n.
    """

    name = "fast"

    def __init__(self, public_key: phe.PaillierPublicKey,
                 public_params: Mapping[str, int] | None = None,
                 executor: Executor | None = None, *, pool_capacity: int = 256,
                 window: int | None = None, parallel: bool = True) -> None:
        super().__init__(public_key, public_params, executor)
        self.h_s = check_h_s(self.public_params, public_key)
        self._n = mpz(self.n)
        self._n2 = mpz(self.n_square)
        self.r_bits = randomness_bits(self.n)
        self._window = window
        self._parallel = parallel
        self._given = executor
        # The key's table in this process, shared with every other engine of the key.
        self._table = key_tables.acquire(int(self.n), self.h_s, self.r_bits) \
            if window is None else None
        self.pool = ObfuscatorPool(self._source, (lambda: self._executor) if parallel else None,
                                   capacity=pool_capacity)
        self._closed = False
        current = self._executor
        if current is not None and pool_capacity:
            # Start the table now, in the background (while the party aligns),
            # not in the middle of the first round.
            with contextlib.suppress(RuntimeError):  # an executor already shut down
                if self._table is not None and not executors.is_remote(current):
                    self._table.prepare(current)
                else:
                    executors.on_each_worker(current, workers.obfuscator_chunk,
                                             self._spec_for(current), 1)

    @property
    def spec(self) -> workers.DjnSpec:
        """The key and the window of a table a worker builds for itself (a cluster's
        worker, or this process when the engine runs inline)."""
        return self._spec_for(self._executor)

    def _spec_for(self, executor: Executor | None) -> workers.DjnSpec:
        window = self._window
        if window is None:
            assert self._table is not None
            window = self._table.worker_window(executor)
        return (int(self.n), self.h_s, self.r_bits, window)

    def _source(self, executor: Executor | None) -> workers.ObfuscatorSource:
        """Where `executor`'s workers take powers from: the shared table on this
        machine's pool, a table of their own elsewhere (or with a fixed window)."""
        if self._table is None or executor is None or executors.is_remote(executor):
            return self._spec_for(executor)
        return self._table.source(executor)

    def plan(self, powers: int) -> None:
        """Hint: the run will make about `powers` more encryptions and re-randomisations.

        Sizes the fixed-base table for them now (a larger one is built in
        the background if it pays off); without the hint the table grows
        as the work shows itself.
        """
        if self._table is not None:
            self._table.plan(powers, self._executor)

    def _served(self, count: int) -> None:
        if self._table is not None and count:
            self._table.served(count, self._executor)

    @property
    def _executor(self) -> Executor | None:
        """Where heavy kernels run now: the given executor, else the run's
        (:func:`~vfl.crypto.executors.compute_executor`); None inline."""
        if not self._parallel:
            return None
        return self._given if self._given is not None else executors.compute_executor()

    @property
    def _workers(self) -> int:
        return executors.executor_workers(self._executor)

    @classmethod
    def public_params_for(cls, private_key: phe.PaillierPrivateKey) -> dict[str, int]:
        """``{"h_s": h^n mod n^2}``, h derived from n by a hash (see :mod:`vfl.crypto.djn`)."""
        return djn_public_params(private_key)

    @classmethod
    def check_public_params(cls, public_key: phe.PaillierPublicKey,
                            public_params: Mapping[str, int], *, sender: str | None = None,
                            party: str | None = None) -> None:
        """Refuse an ``h_s`` other than the one derived from n (:func:`.djn.check_h_s`)."""
        check_h_s(public_params, public_key, sender=sender, party=party)

    def close(self) -> None:
        """Stop the background pool and let go of the key's table (the last engine of
        the key unlinks it). The shared process pool stays for other engines."""
        if not self._closed:
            self._closed = True
            self.pool.close()
            if self._table is not None:
                key_tables.release(self._table)

    def __enter__(self) -> FastEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- helpers -----------------------------------------------------------

    def _vector(self, values: Sequence[int]) -> EncryptedVector:
        return EncryptedVector(self.public_key, tuple(values))

    def _check_key(self, *vectors: EncryptedVector) -> None:
        for v in vectors:
            if v.public_key != self.public_key:
                raise ValueError("ciphertexts are under a different public key than this engine's")

    def _chunks(self, items: Sequence[_T], per_task_min: int) -> list[Sequence[_T]]:
        """Split into one chunk per worker, or one chunk if too small to share."""
        parts = min(self._workers, max(1, len(items) // max(1, per_task_min)))
        return executors.split(items, parts)

    def _inline_cold(self, count: int) -> bool:
        """Whether `count` obfuscators are best computed here, without a table.

        A parallel engine keeps its fixed-base table in the workers only;
        a handful of encryptions (a party's one-value loss term) is cheaper
        as plain exponentiations here than as tasks queued behind others.
        """
        executor = self._executor
        if executor is None or count >= _INLINE_EXPONENTIATIONS:
            return False
        if self._table is not None and not executors.is_remote(executor):
            return not self._table.has_table
        return not workers.has_table(self._spec_for(executor))

    def _map_balanced(self, fn: Callable[[workers.ObfuscatorSource, Sequence[int]], list[int]],
                      items: Sequence[int]) -> list[int]:
        """`fn(source, chunk)` over `items`: inline, or in several chunks per worker.

        Obfuscator work splits into equal pieces at no cost, so it is cut
        finer than one chunk per worker: a worker slowed by another
        process then holds up at most a small piece.
        """
        executor = self._executor
        if executor is None:
            return fn(self._spec_for(None), items)
        workers_ = executors.executor_workers(executor)
        # A multiple of the worker count, so that no worker gets an extra piece.
        per_worker = min(4, max(1, len(items) // (workers_ * _CHUNK_OBFUSCATORS)))
        parts = workers_ * per_worker
        out: list[int] = []
        for part in executors.run_chunks(executor, fn, executors.split(items, parts),
                                         self._source(executor)):
            out.extend(part)
        return out

    def _map(self, fn: Callable[..., list[int]], items: Sequence[Any], per_task_min: int,
             *args: Any) -> list[int]:
        """Concatenated results of `fn(*args, chunk)` over chunks of `items`."""
        executor = self._executor
        if executor is None or len(items) < per_task_min:
            return fn(*args, items) if items else []
        out: list[int] = []
        for part in executors.run_chunks(executor, fn, self._chunks(items, per_task_min),
                                         *args):
            out.extend(part)
        return out

    def validate(self, vector: EncryptedVector, *, sender: str, what: str,
                 party: str | None = None) -> None:
        """Reject anything that is not a ciphertext under this key (fast path).

        Checks types and ranges per element and coprimality with n for all
        of them at once: ``gcd(prod_i c_i mod n, n) = 1`` exactly when every
        ``gcd(c_i, n) = 1``, since n's prime factors are prime. On any
        failure, :func:`~vfl.crypto.engine.validate_ciphertexts` runs to
        raise its precise error.
        """
        cts = vector.ciphertexts
        ok = vector.public_key == self.public_key
        if ok:
            n2 = self.n_square
            ok = all((type(c) is int or type(c) is _MPZ) and 0 < c < n2 for c in cts)
        if ok and cts:
            n = self._n
            acc = mpz(1)
            for c in cts:
                acc = acc * c % n
            ok = gmpy2.gcd(acc, n) == 1
        if not ok:
            validate_ciphertexts(vector, self.public_key, sender=sender, what=what, party=party)

    # --- encryption ----------------------------------------------------------

    def encrypt(self, plaintexts: Sequence[int]) -> EncryptedVector:
        ms = [int(p) for p in plaintexts]
        self._served(len(ms))
        obfs = self.pool.take(len(ms))
        cold = ms[len(obfs):]
        n, n2 = self._n, self._n2
        # Warm part: one multiplication each, here; (1 + m n) o = o + n (m o mod n).
        out = [int((o + n * (m * o % n)) % n2) for m, o in zip(ms, obfs)]
        if cold:
            if self._inline_cold(len(cold)):
                o_cold = workers.obfuscators_without_table(self.spec, len(cold))
                out.extend(int((o + n * (m * o % n)) % n2) for m, o in zip(cold, o_cold))
            else:
                out.extend(self._map_balanced(workers.encrypt_chunk, cold))
        return self._vector(out)

    def rerandomize(self, vector: EncryptedVector) -> EncryptedVector:
        self._check_key(vector)
        cts = vector.ciphertexts
        self._served(len(cts))
        obfs = self.pool.take(len(cts))
        n2 = self._n2
        out = [int(o * c % n2) for c, o in zip(cts, obfs)]
        cold = cts[len(obfs):]
        if cold:
            if self._inline_cold(len(cold)):
                o_cold = workers.obfuscators_without_table(self.spec, len(cold))
                out.extend(int(o * c % n2) for c, o in zip(cold, o_cold))
            else:
                out.extend(self._map_balanced(workers.rerandomize_chunk, cold))
        return self._vector(out)

    def warm_up(self, count: int) -> None:
        """Precompute obfuscators now, on all workers, until the pool holds `count`
        (blocking; those the background refill already made count).

        For a party that knows how many encryptions or re-randomisations it
        is about to do; the background refill does the same unasked. A larger
        table the run's plan called for is finished first, so that these
        powers are made with it (:meth:`KeyTable.settle
        <vfl.crypto.key_tables.KeyTable.settle>`).
        """
        if self._table is not None:
            self._table.settle(self._executor)
        self.pool.fill(min(count, self.pool.max_capacity))

    def expect(self, count: int) -> None:
        """Hint: about `count` encryptions / re-randomisations per round are coming.

        Raises the background pool's target to `count` and starts filling it
        now, without blocking; call it when a party learns its batch size and
        is about to wait (e.g. on receiving the public key, before alignment).
        """
        self.pool.reserve(count)

    # --- arithmetic ------------------------------------------------------------

    def add(self, a: EncryptedVector, b: EncryptedVector) -> EncryptedVector:
        if len(a) != len(b):
            raise ValueError(f"cannot add vectors of lengths {len(a)} and {len(b)}")
        self._check_key(a, b)
        pairs = list(zip(a.ciphertexts, b.ciphertexts))
        return self._vector(self._map(workers.add_chunk, pairs, _INLINE_MULTIPLICATIONS,
                                      self.n_square))

    def add_plain(self, a: EncryptedVector, plaintexts: Sequence[int]) -> EncryptedVector:
        if len(a) != len(plaintexts):
            raise ValueError(f"{len(plaintexts)} plaintexts for {len(a)} ciphertexts")
        self._check_key(a)
        n, n2 = self._n, self._n2
        # c (1 + p n) = c + n (p c mod n)  (mod n^2); Python's % is non-negative.
        return self._vector([
            int((c + n * (int(p) * c % n)) % n2)
            for c, p in zip(map(mpz, a.ciphertexts), plaintexts)
        ])

    def mul_plain(self, a: EncryptedVector, scalars: Sequence[int]) -> EncryptedVector:
        if len(a) != len(scalars):
            raise ValueError(f"{len(scalars)} scalars for {len(a)} ciphertexts")
        self._check_key(a)
        pairs = [(c, int(k)) for c, k in zip(a.ciphertexts, scalars)]
        return self._vector(self._map(workers.mul_chunk, pairs, _INLINE_EXPONENTIATIONS,
                                      int(self.n)))

    def sum(self, a: EncryptedVector) -> EncryptedVector:
        self._check_key(a)
        cts = a.ciphertexts
        executor = self._executor
        if executor is None or len(cts) < _INLINE_MULTIPLICATIONS:
            return self._vector([workers.product_chunk(self.n_square, cts)])
        partials = executors.run_chunks(executor, workers.product_chunk,
                                        self._chunks(cts, _INLINE_MULTIPLICATIONS),
                                        self.n_square)
        return self._vector([workers.product_chunk(self.n_square, partials)])

    def matvec_t(self, matrix: Sequence[Sequence[int]], a: EncryptedVector) -> EncryptedVector:
        """[[X^T a]]: column groups over shared shifted bases, or per-column buckets
        (:func:`vfl.crypto.column_groups.matvec`), shared out among the workers."""
        self._check_matrix(matrix, a)
        self._check_key(a)
        d = len(matrix[0])
        if d == 0 or any(len(r) != d for r in matrix):
            raise ValueError("matrix rows must all have the same, non-zero length")
        cts = a.ciphertexts
        n = int(self.n)
        method = column_groups.default_method
        # int64 scalars when they fit (every product of the protocol's gradients):
        # cheap to slice and to ship; lists of Python ints otherwise.
        scalars = column_groups.as_scalar_matrix(matrix, n) if method == "auto" else None
        rows: Any = scalars if scalars is not None else [list(r) for r in matrix]
        executor = self._executor
        if executor is None or len(rows) * d < 64:
            return self._vector(workers.matvec_chunk(n, (cts, rows, method)))
        m, parts = len(rows), executors.executor_workers(executor)
        if scalars is not None:
            bits = int(column_groups.shifted_bits(scalars).max())
            magnitude = column_groups.magnitude_bits(scalars)
        else:
            half = n // 2
            bits = magnitude = max(
                abs(k if -half <= k <= half else signed_residue(k, n)).bit_length()
                for r in rows for k in r)
        # Share the work out by columns (every task sees all rows: bigger groups
        # and multi-exponentiations, but each task makes all the shifted bases or
        # inverses) or by rows (partial products multiplied here), whichever
        # leaves the least work per task. Over a network, by rows only: by
        # columns sends every ciphertext to every worker.
        by_rows = column_groups.matvec_best_cost(-(-m // parts), d, bits, method, magnitude)
        by_cols = column_groups.matvec_best_cost(m, -(-d // parts), bits, method, magnitude)
        if d >= 2 and by_cols <= by_rows and not executors.is_remote(executor):
            groups = executors.split(range(d), min(parts, d))
            blocks: list[tuple[Any, ...]] = [
                (cts, np.ascontiguousarray(scalars[:, g.start:g.stop]), method)
                if scalars is not None else (cts, [r[g.start:g.stop] for r in rows], method)
                for g in groups]
            out = []
            for part in executors.run_chunks(executor, workers.matvec_chunk, blocks, n):
                out.extend(part)
            return self._vector(out)
        bounds = executors.split(range(m), parts)
        blocks = [(cts[r.start:r.stop], rows[r.start:r.stop], method) for r in bounds]
        partials = executors.run_chunks(executor, workers.matvec_chunk, blocks, n)
        n2 = self._n2
        out = []
        for j in range(d):
            acc = mpz(1)
            for part in partials:
                acc = acc * part[j] % n2
            out.append(int(acc))
        return self._vector(out)


class FastDecryptor(PaillierDecryptor):
    """CRT decryption spread over the executor (default: the shared process pool).

    The private values p, q, hp, hq go to each worker once: a task carries
    only the public key's fingerprint, and a worker that does not hold the
    key yet hands its chunk back undone, which is then sent again with the
    key for the worker to keep (:func:`~vfl.crypto.workers.install_and_decrypt`).
    The workers keep the key until they exit: pass an executor whose workers
    you trust with it (the default pool is local, and its workers end with
    this process).

    Parameters
    ----------
    private_key : phe.PaillierPrivateKey
    executor : concurrent.futures.Executor, optional
    parallel : bool
        False decrypts inline in the calling thread.
    """

    name = "fast"

    def __init__(self, private_key: phe.PaillierPrivateKey,
                 executor: Executor | None = None, *, parallel: bool = True) -> None:
        super().__init__(private_key, executor)
        if parallel and executors.is_remote(executor):
            raise ValueError("the private key stays in the key holder's own processes: "
                             "decrypt on the local pool (executor=None), not on a cluster")
        if parallel and executor is None:
            # The local pool even during a cluster run: never compute_executor().
            executor = executors.default_executor()
        self._executor = executor if parallel else None
        self._workers = executors.executor_workers(self._executor)
        k = private_key
        self._spec: workers.CrtSpec = (int(k.p), int(k.q), int(k.hp), int(k.hq))
        self._fingerprint = workers.key_fingerprint(int(self.public_key.n))

    def decrypt(self, vector: EncryptedVector) -> list[int]:
        if vector.public_key != self.public_key:
            raise ValueError("ciphertexts are under a different public key than this decryptor's")
        cts = vector.ciphertexts
        if self._executor is None or len(cts) < 2:
            return workers.decrypt_chunk(self._spec, cts) if cts else []
        chunks = executors.split(cts, self._workers)
        with executors.foreground():
            pending = {self._executor.submit(workers.decrypt_chunk_cached, self._fingerprint,
                                             chunk): i for i, chunk in enumerate(chunks)}
            parts: list[list[int] | None] = [None] * len(chunks)
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        i = pending.pop(future)
                        part = future.result()
                        if part is None:
                            # That worker had not got the key yet: it keeps it from now
                            # on. Resent at once, so the other chunks run meanwhile
                            # (waiting for all first would serialise the redone ones).
                            pending[self._executor.submit(
                                workers.install_and_decrypt,
                                (self._fingerprint, self._spec), chunks[i])] = i
                        else:
                            parts[i] = part
            finally:
                for future in pending:
                    future.cancel()
        out: list[int] = []
        for part in parts:
            assert part is not None
            out.extend(part)
        return out
