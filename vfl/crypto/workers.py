"""Kernels of the fast engine, run in worker processes (or inline).

Every function here is a picklable top-level function that takes plain
ints and returns plain ints, so that any ``concurrent.futures.Executor``
can run it. The public values a kernel needs travel with each task (a few
hundred bytes); what is expensive to rebuild (the fixed-base table of
h_s, :mod:`vfl.crypto.fixed_base`, a few hundred MB and seconds at 2048
bits) is cached per process, keyed by the public values it depends on, so
each worker builds it once.

The private key is not sent with every task. A decryption task carries
only the public key's fingerprint (:func:`key_fingerprint`, a hash of n);
a worker that does not hold that key yet answers ``None``
(:func:`decrypt_chunk_cached`), and the caller sends that chunk again
with the key (:func:`install_and_decrypt`), which the worker keeps. So each
worker receives a private key at most once per pool (once per process),
whatever the number of decryptions.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import gmpy2
from gmpy2 import mpz

from vfl.crypto import column_groups, shared_table
from vfl.crypto.fixed_base import FixedBaseTable
from vfl.crypto.multiexp import signed_residue
from vfl.crypto.shared_table import SharedSource

__all__ = [
    "CrtSpec",
    "DjnSpec",
    "ObfuscatorSource",
    "add_chunk",
    "decrypt_chunk",
    "decrypt_chunk_cached",
    "drop_caches",
    "encrypt_chunk",
    "has_private_key",
    "has_table",
    "install_and_decrypt",
    "kernel_version",
    "key_fingerprint",
    "matvec_chunk",
    "mul_chunk",
    "obfuscator_chunk",
    "obfuscator_table",
    "obfuscators_without_table",
    "product_chunk",
    "rerandomize_chunk",
    "watch_owner",
]

#: (n, h_s, randomness bits, window): everything a worker needs to encrypt with a
#: fixed-base table of its own (built once per process).
DjnSpec = tuple[int, int, int, int]

#: Where a worker takes its obfuscators from: a table of its own (DjnSpec), or the
#: party's one table in shared memory (:class:`~vfl.crypto.shared_table.SharedSource`).
ObfuscatorSource = DjnSpec | SharedSource

#: (p, q, hp, hq): the private CRT values a worker needs to decrypt.
CrtSpec = tuple[int, int, int, int]

# Keys cached per process: one, since a table may take up to the whole
# budget of fixed_base.table_budget() (a new key evicts the old table).
_MAX_TABLES = 1
_tables: OrderedDict[DjnSpec, FixedBaseTable] = OrderedDict()
_tables_lock = threading.Lock()


def obfuscator_table(spec: DjnSpec) -> FixedBaseTable:
    """The fixed-base table of h_s mod n^2 for `spec`, built once per process."""
    with _tables_lock:
        table = _tables.get(spec)
        if table is not None:
            _tables.move_to_end(spec)
            return table
        while len(_tables) >= _MAX_TABLES:  # free the old table before building
            _tables.popitem(last=False)
        n, h_s, r_bits, window = spec
        table = FixedBaseTable(h_s, mpz(n) * n, r_bits, window)
        _tables[spec] = table
        return table


def _obfuscators(source: ObfuscatorSource, count: int) -> list[gmpy2.mpz]:
    if isinstance(source, SharedSource):
        return shared_table.random_pows(source.layout, count)
    return obfuscator_table(source).random_pows(count)


def _modulus(source: ObfuscatorSource) -> int:
    return source.n if isinstance(source, SharedSource) else source[0]


def obfuscators_without_table(spec: DjnSpec, count: int) -> list[gmpy2.mpz]:
    """``h_s^r mod n^2`` by plain exponentiation, for a process that holds no table.

    ~1200 multiplications each instead of ~80, but no table to build
    (seconds, hundreds of MB): for the occasional single encryption in a
    process whose heavy work runs elsewhere.
    """
    n, h_s, r_bits, _ = spec
    n2 = mpz(n) * n
    return [gmpy2.powmod(h_s, secrets.randbits(r_bits), n2) for _ in range(count)]


def has_table(spec: DjnSpec) -> bool:
    """Whether this process already holds the fixed-base table of `spec`."""
    return spec in _tables


def obfuscator_chunk(source: ObfuscatorSource, count: int) -> list[int]:
    """`count` fresh encryptions of zero, ``h_s^r mod n^2``."""
    return [int(o) for o in _obfuscators(source, count)]


def encrypt_chunk(source: ObfuscatorSource, plaintexts: Sequence[int]) -> list[int]:
    """DJN encryptions ``(1 + m n) h_s^r mod n^2`` of the plaintexts."""
    n = mpz(_modulus(source))
    n2 = n * n
    obfs = _obfuscators(source, len(plaintexts))
    # (1 + m n) o = o + n (m o mod n)  (mod n^2): no full-size product needed.
    return [int((o + n * (m * o % n)) % n2) for m, o in zip(map(int, plaintexts), obfs)]


def rerandomize_chunk(source: ObfuscatorSource, ciphertexts: Sequence[int]) -> list[int]:
    """Each ciphertext times a fresh encryption of zero."""
    n = mpz(_modulus(source))
    n2 = n * n
    obfs = _obfuscators(source, len(ciphertexts))
    return [int(c * o % n2) for c, o in zip(ciphertexts, obfs)]


def add_chunk(n_square: int, pairs: Sequence[tuple[int, int]]) -> list[int]:
    """``[a b mod n^2]`` for pairs of ciphertexts."""
    n2 = mpz(n_square)
    return [int(mpz(a) * b % n2) for a, b in pairs]


def product_chunk(n_square: int, ciphertexts: Sequence[int]) -> int:
    """Product of the ciphertexts mod n^2 (an encrypted sum)."""
    n2 = mpz(n_square)
    acc = mpz(1)
    for c in ciphertexts:
        acc = acc * c % n2
    return int(acc)


def mul_chunk(n: int, pairs: Sequence[tuple[int, int]]) -> list[int]:
    """``[c^k mod n^2]`` for (ciphertext, signed scalar) pairs.

    A negative scalar (after taking the smallest-magnitude residue mod n)
    raises the inverse of c to ``|k|``, keeping the exponent short.
    """
    n = mpz(n)
    n2 = n * n
    out = []
    for c, k in pairs:
        k = signed_residue(k, n)
        c = mpz(c)
        if k < 0:
            c, k = gmpy2.invert(c, n2), -k
        out.append(int(gmpy2.powmod(c, k, n2)))
    return out


def matvec_chunk(n: int, block: tuple[Any, ...]) -> list[int]:
    """Partial ``[[X^T a]]`` over a block ``(ciphertexts, rows[, method])`` (rows as
    lists or an int64 array), by :func:`vfl.crypto.column_groups.matvec`."""
    ciphertexts, rows = block[0], block[1]
    method = block[2] if len(block) > 2 else "auto"
    return column_groups.matvec(ciphertexts, rows, n, method=method)


def decrypt_chunk(spec: CrtSpec, ciphertexts: Sequence[int]) -> list[int]:
    """Paillier decryption by CRT: plaintexts in [0, n).

    ``m_p = L_p(c^(p-1) mod p^2) * hp mod p`` and the same mod q, joined by
    the CRT; the exponent is common to all ciphertexts, so
    ``gmpy2.powmod_base_list`` does them all outside the GIL.
    """
    p, q, hp, hq = (mpz(v) for v in spec)
    p2, q2 = p * p, q * q
    q_inv = gmpy2.invert(q, p)
    xs = gmpy2.powmod_base_list([mpz(c) % p2 for c in ciphertexts], p - 1, p2)
    ys = gmpy2.powmod_base_list([mpz(c) % q2 for c in ciphertexts], q - 1, q2)
    out = []
    for x, y in zip(xs, ys):
        mp = (x - 1) // p * hp % p
        mq = (y - 1) // q * hq % q
        out.append(int(mq + q * ((mp - mq) * q_inv % p)))
    return out


# Private keys installed in this process, by public-key fingerprint; a few
# at most (a process decrypts for one key owner, or a test for several).
_MAX_PRIVATE_KEYS = 4
_private_keys: OrderedDict[str, CrtSpec] = OrderedDict()
_private_keys_lock = threading.Lock()


def key_fingerprint(n: int) -> str:
    """Public name of a key for the worker caches: SHA-256 of n, hex."""
    size = (int(n).bit_length() + 7) // 8
    return hashlib.sha256(b"vfl/paillier-key/v1" + int(n).to_bytes(size, "big")).hexdigest()


def has_private_key(fingerprint: str) -> bool:
    """Whether this process holds the private key of that fingerprint."""
    with _private_keys_lock:
        return fingerprint in _private_keys


def decrypt_chunk_cached(fingerprint: str, ciphertexts: Sequence[int]) -> list[int] | None:
    """:func:`decrypt_chunk` with the key this process holds; None if it holds none.

    The task carries no private value: on None the caller sends the chunk
    again through :func:`install_and_decrypt`.
    """
    with _private_keys_lock:
        spec = _private_keys.get(fingerprint)
        if spec is not None:
            _private_keys.move_to_end(fingerprint)
    if spec is None:
        return None
    return decrypt_chunk(spec, ciphertexts)


def install_and_decrypt(keyed: tuple[str, CrtSpec], ciphertexts: Sequence[int]) -> list[int]:
    """Keep the private key `keyed` = (fingerprint, spec) in this process, then decrypt.

    Raises
    ------
    ValueError
        If the fingerprint is not that of ``n = p q``.
    """
    fingerprint, spec = keyed
    if key_fingerprint(spec[0] * spec[1]) != fingerprint:
        raise ValueError("private key does not match the fingerprint it was sent with")
    with _private_keys_lock:
        _private_keys[fingerprint] = spec
        _private_keys.move_to_end(fingerprint)
        while len(_private_keys) > _MAX_PRIVATE_KEYS:
            _private_keys.popitem(last=False)
    return decrypt_chunk(spec, ciphertexts)


def drop_caches(hold: float = 0.0) -> int:
    """Forget every fixed-base table and private key this process holds; how many.

    A cluster's worker processes outlive a run: the run ends by calling
    this on each of them, so a table (hundreds of MB) does not stay behind.
    `hold` keeps the worker busy that many seconds first, so that as many
    concurrent calls as there are workers land on distinct workers of a
    scheduler that cannot aim at one (Ray's).
    """
    if hold > 0:
        time.sleep(hold)
    with _tables_lock:
        dropped = len(_tables)
        _tables.clear()
    dropped += shared_table.detach_all()
    with _private_keys_lock:
        dropped += len(_private_keys)
        _private_keys.clear()
    return dropped


def kernel_version() -> str:
    """The version of these kernels: a cluster's workers must run the party's own.

    A worker with another release could compute something else under the
    same name; the party checks this before sending any work.
    """
    from vfl import __version__

    return __version__


def watch_owner(owner: int, interval: float = 1.0) -> None:
    """Pool initializer: end this worker soon after process `owner` is gone.

    A worker blocks on its task queue, whose write end it holds itself, so it
    never sees its owner die; a killed party would leave its workers (and
    their tables) behind. A daemon thread checks the owner every `interval`
    seconds and exits the worker when it no longer exists.
    """
    def watch() -> None:
        while True:
            time.sleep(interval)
            try:
                os.kill(owner, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:  # the PID now belongs to another user's process
                os._exit(0)

    threading.Thread(target=watch, name="vfl-owner-watch", daemon=True).start()
