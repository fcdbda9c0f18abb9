"""Many signed fixed-point values in one Paillier plaintext, summable without overflow.

A Paillier plaintext lives in Z_n, about 2048 bits; a model update value
needs far fewer. Packing puts ``slots_per_plaintext`` values side by side,
``slot_bits`` apart, so one ciphertext carries them all and adding
ciphertexts adds every slot at once (BatchCrypt, Zhang et al., ATC'20).

Layout of one slot (``w = slot_bits``)::

    value x       ->  v = round(x * 2**frac_bits),  |v| < 2**m,  m = frac_bits + value_bits
    slot content  ->  s = v + 2**m                  (offset: always in [1, 2**(m+1) - 1])
    plaintext     ->  P = sum_j s_j * 2**(w*j)
    w             =   m + 1 + ceil(log2 K)          (K = most plaintexts ever added)

The offset makes every slot non-negative, so a sum of at most K packed
plaintexts carries no bit from one slot into the next: each slot's sum lies
in ``[c, c * (2**(m+1) - 1)] < 2**w`` for ``c <= K`` summands, and the whole
plaintext stays below ``2**(w * slots) <= 2**(bits(n) - 1) < n``, so it
never wraps modulo n either. Unpacking subtracts ``c * 2**m`` from each slot.

Every bound is checked before anything could overflow:
:meth:`PackingLayout.pack` refuses a value with ``|v| >= 2**m`` and
:meth:`PackingLayout.unpack` refuses more than K summands, both with
:class:`~vfl.errors.EncodingOverflowError`; :meth:`PackingLayout.for_modulus`
refuses a key too small for even one slot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vfl.errors import EncodingOverflowError

__all__ = ["PackingLayout"]


@dataclass(frozen=True)
class PackingLayout:
    """Where each value sits in a packed plaintext, for one key and one bound.

    Parameters
    ----------
    frac_bits : int
        Fractional bits: values are rounded to multiples of ``2**-frac_bits``.
    value_bits : int
        Integer bits: every value packed must satisfy ``|x| < 2**value_bits``
        (exactly: ``|round(x * 2**frac_bits)| < 2**(frac_bits + value_bits)``).
    max_summands : int
        K, the most packed plaintexts that will ever be added together.
    plaintext_bits : int
        Bits available per plaintext: ``n.bit_length() - 1`` for modulus n,
        so that every packed plaintext is below n.
    """

    frac_bits: int
    value_bits: int
    max_summands: int
    plaintext_bits: int

    def __post_init__(self) -> None:
        for name in ("frac_bits", "value_bits", "max_summands", "plaintext_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if self.frac_bits < 0 or self.value_bits < 0 or self.frac_bits + self.value_bits == 0:
            raise ValueError("frac_bits and value_bits must be >= 0, and not both 0")
        if self.max_summands < 1:
            raise ValueError(f"max_summands must be >= 1, got {self.max_summands}")
        if self.slots_per_plaintext < 1:
            raise EncodingOverflowError(
                f"a {self.slot_bits}-bit slot ({self.frac_bits} fractional, {self.value_bits} "
                f"integer bits, sums of {self.max_summands}) does not fit a "
                f"{self.plaintext_bits}-bit plaintext; use a larger key or fewer bits")

    @classmethod
    def for_modulus(cls, n: int, *, frac_bits: int, value_bits: int,
                    max_summands: int) -> PackingLayout:
        """The layout for the Paillier modulus `n`: plaintexts use ``bits(n) - 1`` bits."""
        return cls(frac_bits, value_bits, max_summands, int(n).bit_length() - 1)

    # --- geometry -----------------------------------------------------------------------

    @property
    def magnitude_bits(self) -> int:
        """m: every encoded value satisfies ``|v| < 2**m``."""
        return self.frac_bits + self.value_bits

    @property
    def guard_bits(self) -> int:
        """``ceil(log2 K)``: room for the carries of a sum of K slots."""
        return math.ceil(math.log2(self.max_summands)) if self.max_summands > 1 else 0

    @property
    def slot_bits(self) -> int:
        """Width w of one slot: ``m + 1`` (sign, by the offset) ``+ ceil(log2 K)``."""
        return self.magnitude_bits + 1 + self.guard_bits

    @property
    def slots_per_plaintext(self) -> int:
        """Values carried by one plaintext (one ciphertext)."""
        return self.plaintext_bits // self.slot_bits

    @property
    def offset(self) -> int:
        """``2**m``, added to every encoded value so that slots are never negative."""
        return 1 << self.magnitude_bits

    def plaintexts_for(self, count: int) -> int:
        """Plaintexts (ciphertexts) needed for `count` values."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        return -(-count // self.slots_per_plaintext)

    # --- packing ------------------------------------------------------------------------

    def encode(self, values: npt.ArrayLike, *, what: str = "value",
               party: str | None = None) -> list[int]:
        """Signed fixed-point integers ``round(x * 2**frac_bits)``, each checked against 2**m.

        Raises
        ------
        EncodingOverflowError
            If a value is NaN, infinite or too large for a slot.
        """
        arr = np.asarray(values, dtype=np.float64).ravel()
        if arr.size == 0:
            return []
        if not np.all(np.isfinite(arr)):
            raise EncodingOverflowError(f"{what} contains NaN or infinity", party=party)
        integers = [int(v) for v in np.rint(np.ldexp(arr, self.frac_bits))]
        limit = self.offset
        for i, v in enumerate(integers):
            if not -limit < v < limit:
                raise EncodingOverflowError(
                    f"{what}[{i}] = {arr[i]:.6g} does not fit a packing slot: |x| must stay "
                    f"below 2**{self.value_bits} (at {self.frac_bits} fractional bits); "
                    "rescale the data or raise value_bits", party=party)
        return integers

    def pack(self, values: npt.ArrayLike, *, what: str = "value",
             party: str | None = None) -> list[int]:
        """Pack reals into plaintexts in ``[0, 2**plaintext_bits)``, slot 0 lowest.

        Raises
        ------
        EncodingOverflowError
            If a value does not fit a slot (see :meth:`encode`).
        """
        return self.pack_integers(self.encode(values, what=what, party=party))

    def pack_integers(self, integers: Sequence[int]) -> list[int]:
        """Pack signed integers already encoded (``|v| < 2**m``)."""
        per, width, offset = self.slots_per_plaintext, self.slot_bits, self.offset
        plaintexts = []
        for start in range(0, len(integers), per):
            plaintext = 0
            for j, v in enumerate(integers[start:start + per]):
                if not -offset < v < offset:
                    raise EncodingOverflowError(
                        f"integer {start + j} does not fit a {width}-bit slot")
                plaintext |= (int(v) + offset) << (width * j)
            plaintexts.append(plaintext)
        return plaintexts

    def unpack_integers(self, plaintexts: Sequence[int], count: int, *, summands: int,
                        what: str = "sum", party: str | None = None) -> list[int]:
        """Exact signed sums of the `count` values from a sum of `summands` packings.

        Raises
        ------
        EncodingOverflowError
            If `summands` exceeds ``max_summands`` (the slots may have carried),
            or a slot or the plaintext holds what no correct sum can (the
            plaintext was tampered with, or unmasked with a wrong mask).
        ValueError
            If `plaintexts` is not the number that `count` values need.
        """
        if not 1 <= summands <= self.max_summands:
            raise EncodingOverflowError(
                f"{what}: a sum of {summands} packed plaintexts is outside the layout's "
                f"1..{self.max_summands}; its slots could have overflowed", party=party)
        if len(plaintexts) != self.plaintexts_for(count):
            raise ValueError(f"{what}: {len(plaintexts)} plaintexts for {count} values, "
                             f"expected {self.plaintexts_for(count)}")
        per, width = self.slots_per_plaintext, self.slot_bits
        mask = (1 << width) - 1
        low, high = summands, summands * (2 * self.offset - 1)
        shift = summands * self.offset
        out: list[int] = []
        for index, plaintext in enumerate(plaintexts):
            plaintext = int(plaintext)
            used = min(per, count - index * per)
            if plaintext < 0 or plaintext >> (width * used):
                raise EncodingOverflowError(
                    f"{what}: plaintext {index} has bits outside its {used} slots; it is not "
                    f"a sum of {summands} packings (tampered, or a wrong mask)", party=party)
            for j in range(used):
                slot = (plaintext >> (width * j)) & mask
                if not low <= slot <= high:
                    raise EncodingOverflowError(
                        f"{what}: slot {index * per + j} holds a value no sum of {summands} "
                        "packings can (tampered, or a wrong mask)", party=party)
                out.append(slot - shift)
        return out

    def unpack(self, plaintexts: Sequence[int], count: int, *, summands: int,
               what: str = "sum", party: str | None = None) -> npt.NDArray[np.float64]:
        """The sums as floats (see :meth:`unpack_integers`), correctly rounded."""
        denom = 1 << self.frac_bits
        integers = self.unpack_integers(plaintexts, count, summands=summands, what=what,
                                        party=party)
        return np.array([v / denom for v in integers], dtype=np.float64)
