"""The plaintext engine: the same protocol with no encryption, for debugging only.

Every "ciphertext" is ``1 + m*n mod n^2``: Paillier's encryption of m with
randomness 1, which anyone can read as ``m = (c - 1) / n``. So the messages
keep their types, sizes and checks (each value is a valid element of
Z*_{n^2}), the arithmetic is the same arithmetic modulo n that the real
engines perform, and the decrypted values, hence the trained model, equal
those of an encrypted run. Nothing is hidden from anyone who sees a message:
a party, the network, a log.

That is why this engine is refused unless every party that runs it says
``insecure_plaintext`` (``--insecure-plaintext``, ``[keys] insecure_plaintext
= true``): the key holder will not announce it and a party will not accept
an announcement of it otherwise (see :func:`check_plaintext_consent`).
It is for iterating on data and options quickly (FATE issues #3131 and
#4388 ask for such a mode).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gmpy2 import mpz

from vfl.crypto.ciphertext import EncryptedVector
from vfl.crypto.engine import PaillierDecryptor, PaillierEngine
from vfl.errors import InsecureBackendError, InvalidCiphertextError

__all__ = ["PLAIN_BACKEND", "PlainDecryptor", "PlainEngine", "check_plaintext_consent"]

#: The backend name of this engine (``--backend plain``).
PLAIN_BACKEND = "plain"


def check_plaintext_consent(backend: str, insecure_plaintext: bool, *, party: str | None = None,
                            announced_by: str | None = None) -> None:
    """Refuse the plaintext engine unless this party opted in.

    Parameters
    ----------
    backend : str
        The engine to be used (one's own setting, or the key holder's announcement).
    insecure_plaintext : bool
        This party's opt-in.
    party : str, optional
        The party that checks (named in the error).
    announced_by : str, optional
        The key holder, when the backend came in its public-key message.

    Raises
    ------
    vfl.errors.InsecureBackendError
    """
    if backend != PLAIN_BACKEND or insecure_plaintext:
        return
    where = f"{announced_by} announced" if announced_by else "this run asks for"
    raise InsecureBackendError(
        f"{where} the plaintext engine (backend 'plain'): nothing would be encrypted. Use it "
        "only to debug, by setting insecure_plaintext (--insecure-plaintext, [keys] "
        "insecure_plaintext = true) at every party; otherwise choose another backend",
        party=party)


class PlainEngine(PaillierEngine):
    """Paillier's arithmetic on ``1 + m n`` ciphertexts: values in the clear.

    Each operation reads the plaintexts, computes modulo n and writes
    ``1 + m n`` again, so it costs a few big-integer operations instead of
    modular exponentiations.
    """

    name = PLAIN_BACKEND

    def _read(self, vector: EncryptedVector) -> list[mpz]:
        n = mpz(self.n)
        return [(mpz(c) - 1) // n for c in vector.ciphertexts]

    def _write(self, values: Iterable[int]) -> EncryptedVector:
        n = mpz(self.n)
        return EncryptedVector(self.public_key,
                               tuple(int(1 + (mpz(v) % n) * n) for v in values))

    def validate(self, vector: EncryptedVector, *, sender: str, what: str,
                 party: str | None = None) -> None:
        """Also refuse a real ciphertext: a peer on another engine would be misread."""
        super().validate(vector, sender=sender, what=what, party=party)
        n = self.n
        for i, c in enumerate(vector.ciphertexts):
            if (c - 1) % n:
                raise InvalidCiphertextError(
                    f"{what} from {sender}: value {i} is not a plaintext-engine value "
                    "(1 + m n); that party does not run backend 'plain'", party=party)

    def encrypt(self, plaintexts: Sequence[int]) -> EncryptedVector:
        return self._write(plaintexts)

    def rerandomize(self, vector: EncryptedVector) -> EncryptedVector:
        # There is no randomness to refresh: the value is in the clear anyway.
        return vector

    def add(self, a: EncryptedVector, b: EncryptedVector) -> EncryptedVector:
        if len(a) != len(b):
            raise ValueError(f"cannot add vectors of lengths {len(a)} and {len(b)}")
        return self._write(x + y for x, y in zip(self._read(a), self._read(b)))

    def add_plain(self, a: EncryptedVector, plaintexts: Sequence[int]) -> EncryptedVector:
        if len(a) != len(plaintexts):
            raise ValueError(f"{len(plaintexts)} plaintexts for {len(a)} ciphertexts")
        return self._write(x + int(p) for x, p in zip(self._read(a), plaintexts))

    def mul_plain(self, a: EncryptedVector, scalars: Sequence[int]) -> EncryptedVector:
        if len(a) != len(scalars):
            raise ValueError(f"{len(scalars)} scalars for {len(a)} ciphertexts")
        return self._write(x * int(k) for x, k in zip(self._read(a), scalars))

    def sum(self, a: EncryptedVector) -> EncryptedVector:
        return self._write([sum(self._read(a), mpz(0))])

    def matvec_t(self, matrix: Sequence[Sequence[int]], a: EncryptedVector) -> EncryptedVector:
        self._check_matrix(matrix, a)
        values = self._read(a)
        width = len(matrix[0])
        totals = [mpz(0)] * width
        for row, x in zip(matrix, values):
            for j in range(width):
                totals[j] += int(row[j]) * x
        return self._write(totals)


class PlainDecryptor(PaillierDecryptor):
    """Reads ``m = (c - 1) / n``; the private key is not even needed."""

    name = PLAIN_BACKEND

    def decrypt(self, vector: EncryptedVector) -> list[int]:
        if vector.public_key != self.public_key:
            raise ValueError("ciphertexts are under a different public key than this decryptor's")
        n = mpz(self.public_key.n)
        return [int(((mpz(c) - 1) // n) % n) for c in vector.ciphertexts]
