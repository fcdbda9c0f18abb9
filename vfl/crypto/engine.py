"""The vector interface every Paillier engine implements.

The protocol code calls only these methods; which engine runs them is a
parameter (``backend``). An engine is built from the public key (plus any
public parameters the key owner published with it) and performs
encryption and ciphertext arithmetic; a decryptor is built from the private
key and only decrypts. Plaintexts and scalars are signed Python integers
already encoded by :class:`~vfl.crypto.encoding.FixedPointCodec`; they are
reduced mod n on the way in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from typing import ClassVar

import gmpy2
import phe

from vfl.crypto.ciphertext import EncryptedVector
from vfl.errors import InvalidCiphertextError

__all__ = ["PaillierDecryptor", "PaillierEngine", "validate_ciphertexts"]


def validate_ciphertexts(vector: EncryptedVector, public_key: phe.PaillierPublicKey, *,
                         sender: str, what: str, party: str | None = None) -> None:
    """Check that every ciphertext is an element of Z*_{n^2}.

    A value outside (0, n^2) or sharing a factor with n is not a Paillier
    ciphertext; one that shares a factor with n would even hand its sender
    a way to probe the key owner's decryption.

    Raises
    ------
    InvalidCiphertextError
        Naming the sender, the message and the first bad position.
    """
    n = public_key.n
    if vector.public_key != public_key:
        raise InvalidCiphertextError(
            f"{what} from {sender} is encrypted under a different public key", party=party)
    n_square = public_key.nsquare
    for i, c in enumerate(vector.ciphertexts):
        if not isinstance(c, int) and not isinstance(c, type(gmpy2.mpz(0))):
            raise InvalidCiphertextError(
                f"{what} from {sender}: element {i} is a {type(c).__name__}, not an integer",
                party=party)
        if not 0 < c < n_square:
            raise InvalidCiphertextError(
                f"{what} from {sender}: ciphertext {i} is outside (0, n^2); the message is "
                "malformed or was tampered with", party=party)
        if gmpy2.gcd(c, n) != 1:
            raise InvalidCiphertextError(
                f"{what} from {sender}: ciphertext {i} shares a factor with n, so it is not "
                "a valid Paillier ciphertext", party=party)


class PaillierEngine(ABC):
    """Encryption and homomorphic arithmetic on vectors, public key only.

    Parameters
    ----------
    public_key : phe.PaillierPublicKey
        The coordinator's public key (g = n + 1).
    public_params : mapping of str to int, optional
        Extra public values the key owner published for this engine (see
        :meth:`public_params_for`); empty for engines that need none.
    executor : concurrent.futures.Executor, optional
        Where to run parallel work; engines that do not parallelise ignore it.
    """

    #: Name used by ``backend=`` and ``--backend``.
    name: ClassVar[str]

    def __init__(self, public_key: phe.PaillierPublicKey,
                 public_params: Mapping[str, int] | None = None,
                 executor: Executor | None = None) -> None:
        self.public_key = public_key
        self.n = public_key.n
        self.n_square = public_key.nsquare
        self.public_params = dict(public_params or {})
        self.executor = executor

    @classmethod
    def public_params_for(cls, private_key: phe.PaillierPrivateKey) -> dict[str, int]:
        """Public values the key owner computes once and sends with the key."""
        return {}

    @classmethod  # noqa: B027 - optional: most engines take no parameters
    def check_public_params(cls, public_key: phe.PaillierPublicKey,
                            public_params: Mapping[str, int], *, sender: str | None = None,
                            party: str | None = None) -> None:
        """Refuse a key owner's public parameters that this engine must not use.

        The constructor runs the same check; call this first, on receiving
        the public-key message, for an error that names its sender.

        Raises
        ------
        vfl.errors.MalformedMessageError
            If the parameters are missing, malformed or not the expected
            ones (see :func:`vfl.crypto.djn.check_h_s`). Engines that need
            none accept anything.
        """

    def validate(self, vector: EncryptedVector, *, sender: str, what: str,
                 party: str | None = None) -> None:
        """Reject anything that is not a ciphertext under this engine's key."""
        validate_ciphertexts(vector, self.public_key, sender=sender, what=what, party=party)

    def close(self) -> None:  # noqa: B027 - optional: most engines hold nothing to release
        """Release background resources (pools, threads); idempotent."""

    def plan(self, powers: int) -> None:  # noqa: B027 - a hint engines may ignore
        """Hint: the run will make about `powers` more encryptions and re-randomisations
        (an engine with precomputed tables sizes them for it)."""

    def expect(self, count: int) -> None:  # noqa: B027 - a hint engines may ignore
        """Hint: about `count` encryptions / re-randomisations per round are coming
        (an engine that precomputes them starts now)."""

    def warm_up(self, count: int) -> None:  # noqa: B027 - a hint engines may ignore
        """Have about `count` encryptions of zero ready now (blocking), for a party
        about to encrypt or re-randomise that many (an engine that precomputes
        them computes the missing ones on all its workers)."""

    # --- encryption ------------------------------------------------------

    @abstractmethod
    def encrypt(self, plaintexts: Sequence[int]) -> EncryptedVector:
        """Encrypt each integer (mod n) with fresh randomness."""

    @abstractmethod
    def rerandomize(self, vector: EncryptedVector) -> EncryptedVector:
        """Multiply each ciphertext by a fresh encryption of zero.

        The result decrypts to the same values but cannot be linked to the
        input by anyone without the private key.
        """

    # --- arithmetic --------------------------------------------------------

    @abstractmethod
    def add(self, a: EncryptedVector, b: EncryptedVector) -> EncryptedVector:
        """Elementwise [[a + b]]."""

    @abstractmethod
    def add_plain(self, a: EncryptedVector, plaintexts: Sequence[int]) -> EncryptedVector:
        """Elementwise [[a + p]] for plaintext integers p."""

    @abstractmethod
    def mul_plain(self, a: EncryptedVector, scalars: Sequence[int]) -> EncryptedVector:
        """Elementwise [[a * k]] for plaintext integers k."""

    @abstractmethod
    def sum(self, a: EncryptedVector) -> EncryptedVector:
        """[[sum_i a_i]] as a vector of length 1."""

    def dot(self, a: EncryptedVector, scalars: Sequence[int]) -> EncryptedVector:
        """[[sum_i k_i * a_i]] as a vector of length 1 (a one-column :meth:`matvec_t`)."""
        if len(a) != len(scalars):
            raise ValueError(f"{len(scalars)} scalars for {len(a)} ciphertexts")
        return self.matvec_t([[k] for k in scalars], a)

    @staticmethod
    def _check_matrix(matrix: Sequence[Sequence[int]], a: EncryptedVector) -> None:
        """Shape checks shared by every :meth:`matvec_t`."""
        if len(matrix) != len(a):
            raise ValueError(f"matrix has {len(matrix)} rows for {len(a)} ciphertexts")
        if not matrix:
            raise ValueError("empty matrix")

    @abstractmethod
    def matvec_t(self, matrix: Sequence[Sequence[int]], a: EncryptedVector) -> EncryptedVector:
        """[[X^T a]] for a plaintext m x d integer matrix X (given row by row).

        Returns d ciphertexts, the j-th being ``sum_i X[i][j] * a_i``.
        """


class PaillierDecryptor(ABC):
    """Decryption with the private key, for the coordinator only.

    Parameters
    ----------
    private_key : phe.PaillierPrivateKey
    executor : concurrent.futures.Executor, optional
    """

    name: ClassVar[str]

    def __init__(self, private_key: phe.PaillierPrivateKey,
                 executor: Executor | None = None) -> None:
        self.private_key = private_key
        self.public_key = private_key.public_key
        self.executor = executor

    @abstractmethod
    def decrypt(self, vector: EncryptedVector) -> list[int]:
        """Raw plaintexts in [0, n), one per ciphertext."""

    def close(self) -> None:  # noqa: B027 - optional: most decryptors hold nothing to release
        """Release background resources; idempotent."""
