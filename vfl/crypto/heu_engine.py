"""Optional engine on SecretFlow HEU's ZPaillier (``sf-heu``), for comparisons.

HEU is the fastest peer Paillier library we know of (C++, Montgomery
arithmetic, DJN encryption with a fixed-base table, all cores). This engine
runs the protocol's operations on it so that a whole epoch can be timed on
identical work (``--backend heu``); it is not meant for production.

Same key, same ciphertexts. HEU's ZPaillier is Paillier with g = n + 1 and
DJN randomness ``h_s^r`` (exactly :mod:`vfl.crypto.djn`), so we hand it our
key, with the ``h_s`` every party derives from n, instead of letting it draw
its own: the public key ``(n, h_s)`` and the secret key ``(lambda, mu, p, q)``
are written in HEU's serialised form (msgpack arrays of signed little-endian
integers, then an 8-byte schema tag) and loaded with ``PublicKey.load_from``
/ ``SecretKey.load_from``. HEU keeps ciphertexts in Montgomery form, ``c R mod n^2`` with
``R = 2^(60 k)`` (k 60-bit digits of n^2, libtommath); conversion to and
from the plain ints of :class:`~vfl.crypto.ciphertext.EncryptedVector` costs
one modular multiplication per ciphertext at each engine call, which is
counted in HEU's time (small next to its exponentiations, but it doubles
the cost of a ciphertext addition).

The serialised layout is HEU's internal format (checked with sf-heu 0.5.x);
:func:`heu_kit` verifies the round trip on every key and raises if a future
version changes it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from typing import TypeAlias

import gmpy2
import numpy as np
import phe
from heu import numpy as hnp
from heu import phe as hphe

from vfl.crypto.ciphertext import EncryptedVector
from vfl.crypto.djn import check_h_s, djn_public_params
from vfl.crypto.engine import PaillierDecryptor, PaillierEngine
from vfl.crypto.multiexp import signed_residue

__all__ = ["HeuDecryptor", "HeuEngine", "heu_kit"]

_SCHEMA_TAG = int(hphe.SchemaType.ZPaillier.value).to_bytes(8, "little")
_DIGIT_BITS = 60  # libtommath digit size in HEU's build


# --- a minimal msgpack writer/reader for HEU's layout ----------------------------


def _str(data: bytes) -> bytes:
    size = len(data)
    if size < 1 << 8:
        return b"\xd9" + bytes([size]) + data
    if size < 1 << 16:
        return b"\xda" + size.to_bytes(2, "big") + data
    return b"\xdb" + size.to_bytes(4, "big") + data


def _array_header(size: int) -> bytes:
    if size < 16:
        return bytes([0x90 + size])
    if size < 1 << 16:
        return b"\xdc" + size.to_bytes(2, "big")
    return b"\xdd" + size.to_bytes(4, "big")


def _uint(value: int) -> bytes:
    if value < 128:
        return bytes([value])
    if value < 1 << 16:
        return b"\xcd" + value.to_bytes(2, "big")
    return b"\xce" + value.to_bytes(4, "big")


def _mpint(value: int) -> bytes:
    value = int(value)
    return _str(value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True))


#: A decoded msgpack value: the layout uses unsigned ints, byte strings and arrays.
_Value: TypeAlias = "int | bytes | list[_Value]"


def _array(value: _Value) -> list[_Value]:
    if not isinstance(value, list):
        raise ValueError("unexpected HEU data: a msgpack array was expected")
    return value


def _bytes(value: _Value) -> bytes:
    if not isinstance(value, bytes):
        raise ValueError("unexpected HEU data: a msgpack string was expected")
    return value


def _read(data: bytes, i: int) -> tuple[_Value, int]:
    t = data[i]
    if t < 0x80:
        return t, i + 1
    if 0x90 <= t <= 0x9F or t in (0xDC, 0xDD):
        if t <= 0x9F:
            size, i = t - 0x90, i + 1
        else:
            width = 2 if t == 0xDC else 4
            size, i = int.from_bytes(data[i + 1:i + 1 + width], "big"), i + 1 + width
        out: list[_Value] = []
        for _ in range(size):
            item, i = _read(data, i)
            out.append(item)
        return out, i
    widths = {0xD9: 1, 0xDA: 2, 0xDB: 4, 0xC4: 1, 0xC5: 2, 0xC6: 4, 0xCC: 1, 0xCD: 2, 0xCE: 4}
    if t in widths:
        width = widths[t]
        value = int.from_bytes(data[i + 1:i + 1 + width], "big")
        if t in (0xCC, 0xCD, 0xCE):
            return value, i + 1 + width
        start = i + 1 + width
        return data[start:start + value], start + value
    raise ValueError(f"unexpected msgpack type 0x{t:02x} in HEU data")


class _Kit:
    """HEU objects for one key, plus the Montgomery conversion constants."""

    def __init__(self, public_key: phe.PaillierPublicKey, h_s: int,
                 private_key: phe.PaillierPrivateKey | None) -> None:
        n = public_key.n
        self.n = n
        self.n2 = gmpy2.mpz(public_key.nsquare)
        digits = -(-self.n2.bit_length() // _DIGIT_BITS)
        self.r = gmpy2.powmod(2, digits * _DIGIT_BITS, self.n2)
        self.r_inv = gmpy2.invert(self.r, self.n2)
        pk = hphe.PublicKey.load_from(
            _array_header(2) + _mpint(n) + _mpint(h_s) + _SCHEMA_TAG)
        if private_key is not None:
            p, q = private_key.p, private_key.q
            lam = (p - 1) * (q - 1) // gmpy2.gcd(p - 1, q - 1)
            mu = gmpy2.invert(lam, n)
            sk = hphe.SecretKey.load_from(
                _array_header(4) + _mpint(lam) + _mpint(mu) + _mpint(p) + _mpint(q)
                + _SCHEMA_TAG)
            self.kit = hnp.HeKit(hphe.setup(pk, sk))
            self.decryptor = self.kit.decryptor()
        else:
            self.kit = hnp.setup(pk)
            self.decryptor = None
        self.encryptor = self.kit.encryptor()
        self.evaluator = self.kit.evaluator()
        self.encoder = self.kit.bigint_encoder()

    # conversions ---------------------------------------------------------------

    def plain(self, values: Sequence[int],
              shape: tuple[int, int] | None = None) -> hnp.PlaintextArray:
        # HEU takes plaintexts in (-n/2, n/2].
        n = self.n
        arr = np.array([signed_residue(v, n) for v in values], dtype=object)
        arr = arr.reshape(shape if shape else (len(arr), 1))
        return self.kit.array(arr, self.encoder)

    def to_heu(self, ciphertexts: Sequence[int]) -> hnp.CiphertextArray:
        n2, r = self.n2, self.r
        inner = [_str(b"\x91" + _mpint(c * r % n2) + _SCHEMA_TAG) for c in ciphertexts]
        data = (_array_header(4) + _uint(len(inner)) + _uint(1) + _uint(2)
                + _array_header(len(inner)) + b"".join(inner) + _SCHEMA_TAG)
        return hnp.CiphertextArray.load_from(data)

    def from_heu(self, array: hnp.CiphertextArray) -> list[int]:
        data = array.serialize()
        _rows, _cols, _ndim, items = _array(_read(data, 0)[0])
        n2, r_inv = self.n2, self.r_inv
        out = []
        for item in _array(items):
            (raw,) = _array(_read(_bytes(item), 0)[0])
            out.append(int(int.from_bytes(_bytes(raw), "little", signed=True) * r_inv % n2))
        return out


_kits: dict[tuple[int, int, bool], _Kit] = {}
_kits_lock = threading.Lock()


def heu_kit(public_key: phe.PaillierPublicKey, h_s: int,
            private_key: phe.PaillierPrivateKey | None = None) -> _Kit:
    """HEU objects for our key, cached; checks that HEU reads our key correctly.

    Raises
    ------
    RuntimeError
        If HEU's serialised key or ciphertext layout is not the one this
        module writes (another sf-heu version).
    """
    key = (public_key.n, int(h_s), private_key is not None)
    with _kits_lock:
        kit = _kits.get(key)
        if kit is None:
            kit = _Kit(public_key, int(h_s), private_key)
            # Round trip: HEU must encrypt under our n and keep our h_s.
            probe = kit.from_heu(kit.encryptor.encrypt(kit.plain([12345])))[0]
            if not 0 < probe < public_key.nsquare or (
                    private_key is not None and private_key.raw_decrypt(probe) != 12345):
                raise RuntimeError("sf-heu's key or ciphertext layout is not the expected one; "
                                   "the heu backend does not support this sf-heu version")
            _kits[key] = kit
        return kit


class HeuEngine(PaillierEngine):
    """Paillier vector operations on HEU's ZPaillier (numpy API, all cores).

    Uses the same ``h_s`` public parameter as the fast engine. The
    `executor` is ignored: HEU runs its own C++ thread pool.
    """

    name = "heu"

    def __init__(self, public_key: phe.PaillierPublicKey,
                 public_params: Mapping[str, int] | None = None,
                 executor: Executor | None = None) -> None:
        super().__init__(public_key, public_params, executor)
        self._kit = heu_kit(public_key, check_h_s(self.public_params, public_key))

    @classmethod
    def public_params_for(cls, private_key: phe.PaillierPrivateKey) -> dict[str, int]:
        return djn_public_params(private_key)

    @classmethod
    def check_public_params(cls, public_key: phe.PaillierPublicKey,
                            public_params: Mapping[str, int], *, sender: str | None = None,
                            party: str | None = None) -> None:
        check_h_s(public_params, public_key, sender=sender, party=party)

    def _vector(self, array: hnp.CiphertextArray) -> EncryptedVector:
        return EncryptedVector(self.public_key, tuple(self._kit.from_heu(array)))

    def encrypt(self, plaintexts: Sequence[int]) -> EncryptedVector:
        return self._vector(self._kit.encryptor.encrypt(self._kit.plain(plaintexts)))

    def rerandomize(self, vector: EncryptedVector) -> EncryptedVector:
        kit = self._kit
        zeros = kit.encryptor.encrypt(kit.plain([0] * len(vector)))
        return self._vector(kit.evaluator.add(kit.to_heu(vector.ciphertexts), zeros))

    def add(self, a: EncryptedVector, b: EncryptedVector) -> EncryptedVector:
        if len(a) != len(b):
            raise ValueError(f"cannot add vectors of lengths {len(a)} and {len(b)}")
        kit = self._kit
        return self._vector(kit.evaluator.add(kit.to_heu(a.ciphertexts), kit.to_heu(b.ciphertexts)))

    def add_plain(self, a: EncryptedVector, plaintexts: Sequence[int]) -> EncryptedVector:
        if len(a) != len(plaintexts):
            raise ValueError(f"{len(plaintexts)} plaintexts for {len(a)} ciphertexts")
        kit = self._kit
        return self._vector(kit.evaluator.add(kit.to_heu(a.ciphertexts),
                                              kit.plain(plaintexts)))

    def mul_plain(self, a: EncryptedVector, scalars: Sequence[int]) -> EncryptedVector:
        if len(a) != len(scalars):
            raise ValueError(f"{len(scalars)} scalars for {len(a)} ciphertexts")
        kit = self._kit
        return self._vector(kit.evaluator.mul(kit.to_heu(a.ciphertexts), kit.plain(scalars)))

    def sum(self, a: EncryptedVector) -> EncryptedVector:
        kit = self._kit
        total = kit.evaluator.sum(kit.to_heu(a.ciphertexts))
        # sum returns a scalar ciphertext; wrap it back into a 1x1 array.
        if isinstance(total, hphe.Ciphertext):
            return EncryptedVector(self.public_key, (self._scalar_from_heu(total),))
        return self._vector(total)

    def _scalar_from_heu(self, ciphertext: hphe.Ciphertext) -> int:
        (raw,) = _array(_read(ciphertext.serialize(), 0)[0])
        return int(int.from_bytes(_bytes(raw), "little", signed=True) * self._kit.r_inv
                   % self._kit.n2)

    def matvec_t(self, matrix: Sequence[Sequence[int]], a: EncryptedVector) -> EncryptedVector:
        self._check_matrix(matrix, a)
        kit = self._kit
        d = len(matrix[0])
        xt = kit.plain([row[j] for j in range(d) for row in matrix], shape=(d, len(matrix)))
        return self._vector(kit.evaluator.matmul(xt, kit.to_heu(a.ciphertexts)))


class HeuDecryptor(PaillierDecryptor):
    """Decryption with HEU's ZPaillier secret key built from ours."""

    name = "heu"

    def __init__(self, private_key: phe.PaillierPrivateKey,
                 executor: Executor | None = None) -> None:
        super().__init__(private_key, executor)
        self._kit: _Kit | None = None

    def decrypt(self, vector: EncryptedVector) -> list[int]:
        if self._kit is None:
            # Any h_s works for decryption; 1 is never used to encrypt here.
            self._kit = _Kit(self.public_key, 1, self.private_key)
        kit = self._kit
        plain = kit.decryptor.decrypt(kit.to_heu(vector.ciphertexts))
        n = self.public_key.n
        return [int(v) % n for v in plain.to_numpy(kit.encoder).ravel()]
