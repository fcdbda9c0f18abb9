"""A vector of Paillier ciphertexts under one public key.

Ciphertexts are raw integers in Z*_{n^2}, the same numbers ``phe`` holds
inside an ``EncryptedNumber``; :meth:`EncryptedVector.to_phe` and
:meth:`EncryptedVector.from_phe` convert without re-encryption.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import phe

__all__ = ["EncryptedVector"]


@dataclass(frozen=True)
class EncryptedVector:
    """Ciphertexts of one vector of encoded values.

    Parameters
    ----------
    public_key : phe.PaillierPublicKey
        Key the values are encrypted under.
    ciphertexts : tuple of int
        Raw ciphertexts ``c`` with ``0 < c < n**2``.
    """

    public_key: phe.PaillierPublicKey
    ciphertexts: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.ciphertexts, tuple):
            object.__setattr__(self, "ciphertexts", tuple(self.ciphertexts))

    def __len__(self) -> int:
        return len(self.ciphertexts)

    def __getitem__(self, index: slice) -> EncryptedVector:
        if not isinstance(index, slice):
            raise TypeError("index an EncryptedVector with a slice; it stays a vector")
        return EncryptedVector(self.public_key, self.ciphertexts[index])

    @classmethod
    def concat(cls, parts: Sequence[EncryptedVector]) -> EncryptedVector:
        """Join vectors under the same key into one."""
        if not parts:
            raise ValueError("nothing to concatenate")
        key = parts[0].public_key
        if any(p.public_key != key for p in parts):
            raise ValueError("cannot concatenate ciphertexts under different keys")
        return cls(key, tuple(c for p in parts for c in p.ciphertexts))

    # --- phe interoperability --------------------------------------------

    def to_phe(self, exponent: int = 0) -> list[phe.EncryptedNumber]:
        """Wrap as ``phe.EncryptedNumber`` objects.

        Parameters
        ----------
        exponent : int
            ``phe`` exponent (base 16) of the encoding; a value encoded with
            :class:`~vfl.crypto.encoding.FixedPointCodec` at scale 1 has
            exponent ``codec.phe_exponent``, so that
            ``private_key.decrypt(number)`` returns the real value.
        """
        return [phe.EncryptedNumber(self.public_key, int(c), exponent) for c in self.ciphertexts]

    @classmethod
    def from_phe(cls, numbers: Iterable[phe.EncryptedNumber]) -> EncryptedVector:
        """Take the raw ciphertexts out of ``phe.EncryptedNumber`` objects.

        The exponents are dropped: the caller must know the scale (the
        protocol never sends per-value exponents).
        """
        numbers = list(numbers)
        if not numbers:
            raise ValueError("need at least one EncryptedNumber")
        key = numbers[0].public_key
        return cls(key, tuple(n.ciphertext(be_secure=False) for n in numbers))

    # --- compact serialisation ---------------------------------------------

    @staticmethod
    def byte_width(public_key: phe.PaillierPublicKey) -> int:
        """Bytes per serialised ciphertext: enough for any value below n**2."""
        nsquare: int = public_key.nsquare
        return (nsquare.bit_length() + 7) // 8

    def to_bytes(self) -> bytes:
        """Fixed-width big-endian bytes, one ciphertext after another."""
        width = self.byte_width(self.public_key)
        return b"".join(int(c).to_bytes(width, "big") for c in self.ciphertexts)

    @classmethod
    def from_bytes(cls, public_key: phe.PaillierPublicKey,
                   data: bytes | bytearray | memoryview) -> EncryptedVector:
        """Inverse of :meth:`to_bytes`; the result still needs validation."""
        width = cls.byte_width(public_key)
        if len(data) % width:
            raise ValueError(
                f"{len(data)} bytes is not a whole number of {width}-byte ciphertexts"
            )
        return cls(public_key, tuple(
            int.from_bytes(data[i:i + width], "big") for i in range(0, len(data), width)
        ))
