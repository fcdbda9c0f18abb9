"""The arithmetic of the transfer protocol, once in float64 and once under Paillier.

The roles write every computation on the *other* party's terms as operations
of a :class:`TensorOps` on 2-D tensors with plaintext coefficients:

- :class:`PlainOps`: numpy arrays (plain mode, and the reference);
- :class:`PaillierOps`: :class:`EncTensor`, ciphertexts under the peer's key,
  each at a fixed-point scale ``2**(scale * frac_bits)`` that every product
  with an encoded plaintext raises by one.

Each party's own key is a :class:`Vault` (it encrypts the party's terms and
decrypts only what the peer masked); plain mode uses :class:`PlainVault`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import phe

from vfl.crypto import (
    EncryptedVector,
    FixedPointCodec,
    PaillierDecryptor,
    PaillierEngine,
    draw_masks,
    get_backend,
    unmask,
)
from vfl.errors import EncodingOverflowError, MalformedMessageError

__all__ = [
    "EncTensor",
    "PaillierOps",
    "PaillierVault",
    "PlainOps",
    "PlainVault",
    "TensorOps",
    "Vault",
    "Wire",
    "make_engine",
]

#: What a tensor is on the wire: ciphertexts, or floats in plain mode.
Wire = EncryptedVector | tuple[float, ...]


def make_engine(backend: str, public_key: phe.PaillierPublicKey, params: dict[str, int],
                parallel: bool) -> PaillierEngine:
    """An engine for `public_key`; the ``fast`` one inline unless `parallel`."""
    engine_class, _ = get_backend(backend)
    if backend == "fast":
        return engine_class(public_key, params, parallel=parallel)  # type: ignore[call-arg]
    return engine_class(public_key, params)


@dataclass(frozen=True)
class EncTensor:
    """A rows x cols matrix of ciphertexts (row-major) at one fixed-point scale."""

    vector: EncryptedVector
    rows: int
    cols: int
    scale: int

    def column(self, j: int) -> EncryptedVector:
        return self.vector[j::self.cols]

    def row(self, i: int) -> EncryptedVector:
        return self.vector[i * self.cols:(i + 1) * self.cols]


class TensorOps(Protocol):
    """Linear maps with plaintext coefficients on the peer's tensors."""

    def mul_elementwise(self, t: Any, p: np.ndarray) -> Any: ...
    def t_matmul(self, p: np.ndarray, t: Any) -> Any: ...
    def matmul_right(self, t: Any, q: np.ndarray) -> Any: ...
    def matmul_left(self, p: np.ndarray, t: Any) -> Any: ...
    def add(self, a: Any, b: Any) -> Any: ...
    def add_plain(self, t: Any, p: np.ndarray) -> Any: ...
    def concat_flat(self, parts: Sequence[Any]) -> Any: ...
    def flatten(self, t: Any) -> Any: ...
    def from_wire(self, value: Wire, rows: int, cols: int, scale: int, *, sender: str,
                  what: str) -> Any: ...
    def mask(self, t: Any) -> tuple[Wire, Any]: ...
    def unmask(self, residues: Sequence[int | float], masks: Any, t: Any, *, sender: str,
               what: str) -> np.ndarray: ...
    def encode_residue_addend(self, value: float, scale: int) -> int | float: ...


class PlainOps:
    """float64 numpy arrays: plain mode and the reference."""

    def __init__(self, party: str) -> None:
        self.party = party

    def mul_elementwise(self, t: np.ndarray, p: np.ndarray) -> np.ndarray:
        return t * p

    def t_matmul(self, p: np.ndarray, t: np.ndarray) -> np.ndarray:
        return p.T @ t

    def matmul_right(self, t: np.ndarray, q: np.ndarray) -> np.ndarray:
        return t @ q

    def matmul_left(self, p: np.ndarray, t: np.ndarray) -> np.ndarray:
        return p @ t

    def add(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a + b

    def add_plain(self, t: np.ndarray, p: np.ndarray) -> np.ndarray:
        return t + p

    def concat_flat(self, parts: Sequence[np.ndarray]) -> np.ndarray:
        return np.concatenate([p.ravel() for p in parts])[None, :]

    def flatten(self, t: np.ndarray) -> np.ndarray:
        return t.reshape(1, -1)

    def from_wire(self, value: Wire, rows: int, cols: int, scale: int, *, sender: str,
                  what: str) -> np.ndarray:
        if isinstance(value, EncryptedVector):
            raise MalformedMessageError(f"{sender} sent ciphertexts as {what} in plain mode",
                                        party=self.party)
        _check_length(value, rows * cols, sender=sender, what=what, party=self.party)
        return np.asarray(value, dtype=np.float64).reshape(rows, cols)

    def mask(self, t: np.ndarray) -> tuple[Wire, Any]:
        return tuple(float(v) for v in t.ravel()), None

    def unmask(self, residues: Sequence[int | float], masks: Any, t: np.ndarray, *,
               sender: str, what: str) -> np.ndarray:
        _check_length(residues, t.size, sender=sender, what=what, party=self.party)
        return np.asarray(residues, dtype=np.float64)

    def encode_residue_addend(self, value: float, scale: int) -> float:
        return float(value)


class PaillierOps:
    """Homomorphic arithmetic on ciphertexts under the peer's public key.

    Parameters
    ----------
    engine : PaillierEngine
        The peer's public key.
    codec : FixedPointCodec
        The encoding both parties agreed.
    party : str
        This party's name, for errors.
    """

    def __init__(self, engine: PaillierEngine, codec: FixedPointCodec, party: str) -> None:
        self.engine = engine
        self.codec = codec
        self.party = party

    def _encode(self, p: np.ndarray, what: str = "coefficients", scale: int = 1) -> list[int]:
        return self.codec.encode(np.asarray(p, dtype=np.float64).ravel(), what=what,
                                 party=self.party, scale_power=scale)

    def _rows(self, p: np.ndarray) -> list[list[int]]:
        p = np.asarray(p, dtype=np.float64)
        flat = self._encode(p)
        cols = p.shape[1]
        return [flat[i * cols:(i + 1) * cols] for i in range(p.shape[0])]

    def _lift(self, t: EncTensor, scale: int) -> EncTensor:
        if scale == t.scale:
            return t
        factor = 1 << (self.codec.frac_bits * (scale - t.scale))
        return EncTensor(self.engine.mul_plain(t.vector, [factor] * len(t.vector)),
                         t.rows, t.cols, scale)

    def mul_elementwise(self, t: EncTensor, p: np.ndarray) -> EncTensor:
        if p.shape != (t.rows, t.cols):
            raise ValueError(f"shape {p.shape} against a {t.rows} x {t.cols} tensor")
        return EncTensor(self.engine.mul_plain(t.vector, self._encode(p)), t.rows, t.cols,
                         t.scale + 1)

    def t_matmul(self, p: np.ndarray, t: EncTensor) -> EncTensor:
        """pᵀ t for plaintext p (rows x a): one multi-exponentiation per column of t."""
        if p.shape[0] != t.rows:
            raise ValueError(f"{p.shape[0]} plaintext rows against {t.rows}")
        matrix = self._rows(p)
        columns = [self.engine.matvec_t(matrix, t.column(j)).ciphertexts for j in range(t.cols)]
        a = p.shape[1]
        flat = [columns[j][k] for k in range(a) for j in range(t.cols)]
        return EncTensor(EncryptedVector(self.engine.public_key, tuple(flat)), a, t.cols,
                         t.scale + 1)

    def matmul_right(self, t: EncTensor, q: np.ndarray) -> EncTensor:
        """t q for plaintext q (cols x e): one multi-exponentiation per row of t."""
        if q.shape[0] != t.cols:
            raise ValueError(f"{q.shape[0]} plaintext rows against {t.cols} columns")
        matrix = self._rows(q)
        parts = [self.engine.matvec_t(matrix, t.row(i)) for i in range(t.rows)]
        return EncTensor(EncryptedVector.concat(parts), t.rows, q.shape[1], t.scale + 1)

    def matmul_left(self, p: np.ndarray, t: EncTensor) -> EncTensor:
        return self.t_matmul(np.ascontiguousarray(p.T), t)

    def add(self, a: EncTensor, b: EncTensor) -> EncTensor:
        if (a.rows, a.cols) != (b.rows, b.cols):
            raise ValueError(f"adding {a.rows} x {a.cols} to {b.rows} x {b.cols}")
        scale = max(a.scale, b.scale)
        a, b = self._lift(a, scale), self._lift(b, scale)
        return EncTensor(self.engine.add(a.vector, b.vector), a.rows, a.cols, scale)

    def add_plain(self, t: EncTensor, p: np.ndarray) -> EncTensor:
        return EncTensor(self.engine.add_plain(t.vector, self._encode(p, "plain terms",
                                                                     t.scale)),
                         t.rows, t.cols, t.scale)

    def concat_flat(self, parts: Sequence[EncTensor]) -> EncTensor:
        scale = max(p.scale for p in parts)
        lifted = [self._lift(p, scale) for p in parts]
        vector = EncryptedVector.concat([p.vector for p in lifted])
        return EncTensor(vector, 1, len(vector), scale)

    def flatten(self, t: EncTensor) -> EncTensor:
        return EncTensor(t.vector, 1, t.rows * t.cols, t.scale)

    def from_wire(self, value: Wire, rows: int, cols: int, scale: int, *, sender: str,
                  what: str) -> EncTensor:
        if not isinstance(value, EncryptedVector):
            raise MalformedMessageError(f"{sender} sent plaintext as {what} in encrypted mode",
                                        party=self.party)
        _check_length(value, rows * cols, sender=sender, what=what, party=self.party)
        self.engine.validate(value, sender=sender, what=what, party=self.party)
        return EncTensor(value, rows, cols, scale)

    def mask(self, t: EncTensor) -> tuple[Wire, list[int]]:
        """[[t + R]], R uniform in Z_n, re-randomised: what the key owner may decrypt."""
        masks = draw_masks(self.engine.n, len(t.vector))
        masked = self.engine.rerandomize(self.engine.add_plain(t.vector, masks))
        return masked, masks

    def unmask(self, residues: Sequence[int | float], masks: list[int], t: EncTensor, *,
               sender: str, what: str) -> np.ndarray:
        _check_length(residues, len(masks), sender=sender, what=what, party=self.party)
        n = self.engine.n
        if any(not isinstance(r, int) or isinstance(r, bool) or not 0 <= r < n
               for r in residues):
            raise MalformedMessageError(f"{sender} sent {what} values outside Z_n",
                                        party=self.party)
        signed = self.codec.to_signed(unmask([int(r) for r in residues], masks, n), n,
                                      what=what, party=self.party)
        return self.codec.decode(signed, scale_power=t.scale)

    def encode_residue_addend(self, value: float, scale: int) -> int:
        return self._encode(np.array([value]), "penalty", scale)[0]


class Vault(Protocol):
    """A party's own key: encrypts its terms, decrypts what the peer masked."""

    def encrypt(self, values: np.ndarray, scale: int) -> Wire: ...
    def decrypt(self, value: Wire, *, sender: str, what: str) -> list[int | float]: ...
    def add_to_residue(self, residue: int | float, addend: int | float) -> int | float: ...
    def close(self) -> None: ...


class PlainVault:
    """Plain mode: nothing to encrypt or decrypt."""

    def __init__(self, party: str) -> None:
        self.party = party

    def encrypt(self, values: np.ndarray, scale: int) -> Wire:
        return tuple(float(v) for v in np.asarray(values, dtype=np.float64).ravel())

    def decrypt(self, value: Wire, *, sender: str, what: str) -> list[int | float]:
        if isinstance(value, EncryptedVector):
            raise MalformedMessageError(f"{sender} sent ciphertexts as {what} in plain mode",
                                        party=self.party)
        return [float(v) for v in value]

    def add_to_residue(self, residue: int | float, addend: int | float) -> int | float:
        return float(residue) + float(addend)

    def close(self) -> None:
        pass


class PaillierVault:
    """A key pair: its engine encrypts this party's terms, its decryptor opens masked sums.

    Parameters
    ----------
    engine : PaillierEngine
        Engine for this party's own public key (with its public parameters).
    decryptor : PaillierDecryptor
        Decryptor of this party's own private key, which never leaves it.
    codec : FixedPointCodec
    party : str
    """

    def __init__(self, engine: PaillierEngine, decryptor: PaillierDecryptor,
                 codec: FixedPointCodec, party: str) -> None:
        self.engine = engine
        self.decryptor = decryptor
        self.codec = codec
        self.party = party

    @property
    def n(self) -> int:
        return self.engine.n

    def encrypt(self, values: np.ndarray, scale: int) -> Wire:
        encoded = self.codec.encode(np.asarray(values, dtype=np.float64).ravel(),
                                    what="terms", party=self.party, scale_power=scale)
        return self.engine.encrypt(encoded)

    def decrypt(self, value: Wire, *, sender: str, what: str) -> list[int | float]:
        if not isinstance(value, EncryptedVector):
            raise MalformedMessageError(f"{sender} sent plaintext as {what} in encrypted mode",
                                        party=self.party)
        self.engine.validate(value, sender=sender, what=what, party=self.party)
        return [int(v) for v in self.decryptor.decrypt(value)]  # plain ints for the wire

    def add_to_residue(self, residue: int | float, addend: int | float) -> int:
        return (int(residue) + int(addend)) % self.n

    def close(self) -> None:
        self.engine.close()
        self.decryptor.close()


def check_capacity(n: int, codec: FixedPointCodec, scale: int, terms: int, *,
                   party: str) -> None:
    """Refuse a key too small for sums of `terms` products at `scale` encoded factors."""
    needed = scale * codec.max_encoded_bits + math.ceil(math.log2(max(terms, 2))) + 4
    available = (n // 3).bit_length() - 1
    if needed > available:
        raise EncodingOverflowError(
            f"a {n.bit_length()}-bit key cannot hold this network's gradients ({scale} "
            f"fixed-point factors, {needed} bits needed, {available} available); use a larger "
            "key or fewer layers", party=party)


def _check_length(values: Sequence[Any] | EncryptedVector, expected: int, *, sender: str,
                  what: str, party: str) -> None:
    if len(values) != expected:
        raise MalformedMessageError(
            f"{sender} sent {what} with {len(values)} values, the protocol expects {expected}; "
            f"{sender} is faulty or runs another version", party=party)
