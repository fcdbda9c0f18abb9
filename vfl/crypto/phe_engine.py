"""Reference engine on ``phe``: one call per ciphertext, simple and slow.

Used to cross-check faster engines and selectable with ``backend="phe"``.
Encryption is ``phe``'s own ``raw_encrypt`` (r^n with a fresh r each time);
arithmetic uses ``phe.util``'s modular helpers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import phe
from phe.util import invert, mulmod, powmod

from vfl.crypto.ciphertext import EncryptedVector
from vfl.crypto.engine import PaillierDecryptor, PaillierEngine

__all__ = ["PheDecryptor", "PheEngine", "raw_encrypt_chunk"]


class PheEngine(PaillierEngine):
    """Paillier vector operations delegated to ``phe``, element by element."""

    name = "phe"

    def _vector(self, values: Iterable[int]) -> EncryptedVector:
        return EncryptedVector(self.public_key, tuple(int(v) for v in values))

    def _scalar_mul(self, c: int, k: int) -> int:
        # A negative scalar is applied to the inverse ciphertext so the
        # exponent stays small instead of becoming n - |k|.
        if k < 0:
            c, k = invert(c, self.n_square), -k
        result: int = powmod(c, k, self.n_square)
        return result

    def encrypt(self, plaintexts: Sequence[int]) -> EncryptedVector:
        n = self.n
        return self._vector(self.public_key.raw_encrypt(int(p) % n) for p in plaintexts)

    def rerandomize(self, vector: EncryptedVector) -> EncryptedVector:
        return self._vector(
            mulmod(c, self.public_key.raw_encrypt(0), self.n_square) for c in vector.ciphertexts
        )

    def add(self, a: EncryptedVector, b: EncryptedVector) -> EncryptedVector:
        if len(a) != len(b):
            raise ValueError(f"cannot add vectors of lengths {len(a)} and {len(b)}")
        return self._vector(mulmod(x, y, self.n_square)
                            for x, y in zip(a.ciphertexts, b.ciphertexts))

    def add_plain(self, a: EncryptedVector, plaintexts: Sequence[int]) -> EncryptedVector:
        if len(a) != len(plaintexts):
            raise ValueError(f"{len(plaintexts)} plaintexts for {len(a)} ciphertexts")
        n, n2 = self.n, self.n_square
        # g = n + 1, so g^p = 1 + p*n (mod n^2): no exponentiation needed.
        return self._vector(
            mulmod(c, (1 + (int(p) % n) * n) % n2, n2) for c, p in zip(a.ciphertexts, plaintexts)
        )

    def mul_plain(self, a: EncryptedVector, scalars: Sequence[int]) -> EncryptedVector:
        if len(a) != len(scalars):
            raise ValueError(f"{len(scalars)} scalars for {len(a)} ciphertexts")
        return self._vector(self._scalar_mul(c, int(k)) for c, k in zip(a.ciphertexts, scalars))

    def sum(self, a: EncryptedVector) -> EncryptedVector:
        total = 1
        for c in a.ciphertexts:
            total = mulmod(total, c, self.n_square)
        return self._vector([total])

    def dot(self, a: EncryptedVector, scalars: Sequence[int]) -> EncryptedVector:
        return self.sum(self.mul_plain(a, scalars))

    def matvec_t(self, matrix: Sequence[Sequence[int]], a: EncryptedVector) -> EncryptedVector:
        self._check_matrix(matrix, a)
        columns = list(zip(*matrix))
        return EncryptedVector.concat([self.dot(a, column) for column in columns])


class PheDecryptor(PaillierDecryptor):
    """Decryption through ``phe``'s CRT ``raw_decrypt``."""

    name = "phe"

    def decrypt(self, vector: EncryptedVector) -> list[int]:
        return [self.private_key.raw_decrypt(int(c)) for c in vector.ciphertexts]


def raw_encrypt_chunk(n: int, plaintexts: list[int]) -> list[int]:
    """``phe``'s own ``raw_encrypt`` of each plaintext, as a picklable task.

    Lets a benchmark run the reference encryption on every core through
    the same executor as the fast engine (``phe`` itself is single-threaded).
    """
    key = phe.PaillierPublicKey(n)
    return [key.raw_encrypt(int(p) % n) for p in plaintexts]
