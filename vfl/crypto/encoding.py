"""Fixed-point encoding of real numbers into Z_n.

Every value a party encrypts or masks is encoded with one scale agreed for
the whole protocol, ``2**frac_bits``; the scale is public and identical for
all values, so unlike ``phe``'s per-value exponent it says nothing about any
value's magnitude. Signed integers map to Z_n as ``x mod n``; residues in
the middle third of Z_n are never produced by a correct run and decode to an
error rather than a wrong number.

A product of two encoded values carries scale ``2**(2*frac_bits)`` and a sum
of m products grows by ``log2(m)`` bits.

The data (each party's standardised feature columns) have a scale of their
own, ``2**data_frac_bits`` (:data:`DATA_FRAC_BITS` = 12 by default, against 40
for the values that change every round): the data are fixed for the run,
and they are the scalars of the ciphertext x scalar products [[X^T d]],
whose cost grows with the scalars' width (:mod:`vfl.crypto.column_groups`:
~15-bit scalars instead of ~44). The data are rounded to that grid once,
before training (:meth:`FixedPointCodec.quantize_data`), and every party
computes with the rounded values, scores included; the centralised
reference (:func:`vfl.reference.train_centralized`) rounds them the same
way, so the federation still equals it to the precision of the 40-bit
encoding. The rounding moves a standardised value by at most
``2**-(data_frac_bits + 1)``: 1.2e-4 standard deviations at 12 bits.
Against the unrounded data, at 12 bits, on FATE's examples: the same AUC
to 1e-6 (breast, logistic by Adam and by L-BFGS) and R² within 2e-6
(motor, linear by gradient descent and by L-BFGS); weights within 5e-4
(relative; 2.9e-5 for the weighted least squares of
``tests/test_sample_weights.py``), most where the columns are nearly
collinear (breast's least squares: 4.7e-4 at 12 bits, 1e-2 at 10).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from vfl.errors import EncodingOverflowError

__all__ = ["DATA_FRAC_BITS", "FixedPointCodec"]

#: Default fractional bits of the data (:attr:`FixedPointCodec.data_frac_bits`).
DATA_FRAC_BITS = 12


@dataclass(frozen=True)
class FixedPointCodec:
    """Encoder between floats and signed integers at one fixed scale.

    Parameters
    ----------
    frac_bits : int
        Fractional bits: values are rounded to multiples of ``2**-frac_bits``.
        A multiple of 4 so that the scale is a power of 16 and ciphertexts
        convert to ``phe.EncryptedNumber`` with exponent ``-frac_bits // 4``.
    value_bits : int
        Largest magnitude allowed for an encoded value: ``|x| < 2**value_bits``.
        Features, partial scores, residuals and weights must all fit.
    data_frac_bits : int, optional
        Fractional bits of the data (the standardised features), at most
        `frac_bits` (default :data:`DATA_FRAC_BITS`, or `frac_bits` if
        smaller): the features are rounded to multiples of
        ``2**-data_frac_bits`` before training (:meth:`quantize_data`) and
        encoded at that scale (:meth:`encode_data`), so a gradient ``X^T d``
        carries ``2**data_frac_bits`` times the residual's scale.
    """

    frac_bits: int = 40
    value_bits: int = 64
    data_frac_bits: int = None  # type: ignore[assignment]  # set in __post_init__

    def __post_init__(self) -> None:
        if self.data_frac_bits is None:
            object.__setattr__(self, "data_frac_bits", min(DATA_FRAC_BITS, self.frac_bits))
        if self.frac_bits <= 0 or self.frac_bits % 4:
            raise ValueError(f"frac_bits must be a positive multiple of 4, got {self.frac_bits}")
        if self.value_bits <= 0:
            raise ValueError(f"value_bits must be positive, got {self.value_bits}")
        if not 0 < self.data_frac_bits <= self.frac_bits:
            raise ValueError(f"data_frac_bits must be in [1, frac_bits = {self.frac_bits}], "
                             f"got {self.data_frac_bits}")

    @property
    def phe_exponent(self) -> int:
        """``phe`` exponent (base 16) of a value at scale 1."""
        return -(self.frac_bits // 4)

    @property
    def max_encoded_bits(self) -> int:
        """Bit bound of one encoded value: ``|round(x * 2**f)| <= 2**this``.

        (Equality is possible: a value just below ``2**value_bits`` may round up.)
        """
        return self.frac_bits + self.value_bits

    def max_encoded(self, scale_power: int = 1) -> int:
        """Largest magnitude :meth:`encode` can return, exactly.

        The encoding of the largest float64 below ``2**value_bits``: at most
        ``2**(value_bits + scale_power * frac_bits)``, equal to it when the
        rounding goes up (few value bits), a little below otherwise.
        """
        top = (np.nextafter(np.float64(2.0**self.value_bits), 0.0)
               if self.value_bits < 1024 else np.finfo(np.float64).max)
        # Exact, whatever the size; round() on a Fraction rounds half to even, as np.rint.
        return round(Fraction(float(top)) * (1 << (scale_power * self.frac_bits)))

    def encode(self, values: Iterable[float] | np.ndarray, *, what: str = "value",
               party: str | None = None, scale_power: int = 1) -> list[int]:
        """Encode reals as signed integers ``round(x * 2**(scale_power * frac_bits))``.

        Parameters
        ----------
        values : array_like of float
            Finite reals with ``|x| < 2**value_bits``.
        what : str
            What the values are, for the error message ("feature 'age'").
        party : str, optional
            Party named in the error message.
        scale_power : int
            1 for ordinary values; 2 for a value that will be added to
            products of two encoded values (e.g. a loss term).

        Returns
        -------
        list of int
            Python integers (arbitrary precision), one per value.

        Raises
        ------
        EncodingOverflowError
            If a value is NaN, infinite or too large to encode.
        """
        return self._encode(values, scale_power * self.frac_bits, what=what, party=party)

    def _encode(self, values: Iterable[float] | np.ndarray, shift: int, *, what: str,
                party: str | None) -> list[int]:
        """``round(x * 2**shift)`` for each value, after the range checks."""
        arr = np.asarray(values, dtype=np.float64).ravel()
        if arr.size == 0:
            return []
        if not np.all(np.isfinite(arr)):
            raise EncodingOverflowError(f"{what} contains NaN or infinity", party=party)
        biggest = float(np.max(np.abs(arr)))
        if biggest >= 2.0**self.value_bits:
            raise EncodingOverflowError(
                f"{what} has magnitude {biggest:.3g} >= 2**{self.value_bits}, the largest the "
                "fixed-point encoding allows; rescale the data",
                party=party,
            )
        # ldexp is exact; rint rounds half to even; int() of a float64 is exact.
        return [int(v) for v in np.rint(np.ldexp(arr, shift))]

    def encode_matrix(self, matrix: np.ndarray, *, what: str = "matrix",
                      party: str | None = None) -> list[list[int]]:
        """Encode a 2-D array row by row (see :meth:`encode`)."""
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2:
            raise ValueError(f"{what} must be 2-D, got shape {matrix.shape}")
        flat = self.encode(matrix, what=what, party=party)
        cols = matrix.shape[1]
        return [flat[i * cols:(i + 1) * cols] for i in range(matrix.shape[0])]

    def quantize_data(self, matrix: np.ndarray) -> np.ndarray:
        """The data as training uses them: rounded to multiples of ``2**-data_frac_bits``.

        Exact floats (``round(x * 2**f_d) / 2**f_d``, half to even), so that
        :meth:`encode_data` of the result is exact and any party or reference
        rounding the same values gets the same numbers.
        """
        matrix = np.asarray(matrix, dtype=np.float64)
        rounded: np.ndarray = np.ldexp(np.rint(np.ldexp(matrix, self.data_frac_bits)),
                                       -self.data_frac_bits)
        return rounded

    def encode_data(self, matrix: np.ndarray, *, what: str = "features",
                    party: str | None = None) -> list[list[int]]:
        """Encode a 2-D array of data at ``2**data_frac_bits``, row by row.

        Raises
        ------
        EncodingOverflowError
            If a value is NaN, infinite or ``2**value_bits`` or more in magnitude.
        """
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2:
            raise ValueError(f"{what} must be 2-D, got shape {matrix.shape}")
        flat = self._encode(matrix, self.data_frac_bits, what=what, party=party)
        cols = matrix.shape[1]
        return [flat[i * cols:(i + 1) * cols] for i in range(matrix.shape[0])]

    def decode(self, integers: Sequence[int], *, scale_power: int = 1,
               data_factors: int = 0) -> np.ndarray:
        """Decode signed integers carrying scale
        ``2**(scale_power * frac_bits + data_factors * data_frac_bits)``.

        Parameters
        ----------
        integers : sequence of int
            Signed integers, e.g. from :meth:`to_signed`.
        scale_power : int
            1 for encoded values, 2 for products of two encoded values.
        data_factors : int
            How many factors of encoded data (:meth:`encode_data`) the
            values carry: 1 for a gradient ``X^T d``.
        """
        denom = 1 << (scale_power * self.frac_bits + data_factors * self.data_frac_bits)
        # int / int is correctly rounded in Python, whatever the size.
        return np.array([int(z) / denom for z in integers], dtype=np.float64)

    @staticmethod
    def to_signed(residues: Sequence[int], n: int, *, what: str = "value",
                  party: str | None = None) -> list[int]:
        """Map residues in Z_n back to signed integers.

        ``[0, n/3]`` is positive, ``[2n/3, n)`` negative; anything between can
        only come from an overflow (or a wrong mask) and raises.

        Raises
        ------
        EncodingOverflowError
            If a residue lies in the middle third of Z_n.
        """
        third = n // 3
        out = []
        for z in residues:
            z = int(z)
            if not 0 <= z < n:
                raise ValueError(f"{what}: residue outside [0, n)")
            if z <= third:
                out.append(z)
            elif z >= n - third:
                out.append(z - n)
            else:
                raise EncodingOverflowError(
                    f"{what} decrypted to a residue in the middle third of Z_n: the value "
                    "overflowed the encoding or was masked with a different mask",
                    party=party,
                )
        return out

    def product_sum_bits(self, terms: int) -> int:
        """Bit bound of a sum of `terms` products of two encoded values."""
        return 2 * self.max_encoded_bits + max(1, math.ceil(math.log2(max(terms, 1))))

    def max_result(self, max_terms: int, holders: int = 1) -> int:
        """Largest magnitude of any result a vertical run can decrypt, exactly.

        With K = `holders` feature holders and batches of at most m =
        `max_terms` rows, each encoded value is at most ``E =``
        :meth:`max_encoded` in magnitude (``<= 2**(frac_bits + value_bits)``),
        and:

        * a residual ``d_i = u_B_i - y_i + sum_k u_Ak_i`` is a sum of K + 1
          encoded values: ``|d_i| <= (K + 1) E``;
        * a gradient entry ``sum_i x_ij d_i`` (and the label holder's
          ``2**data_frac_bits sum_i d_i``) is at most ``m (K + 1) E^2``
          (the data, at ``data_frac_bits <= frac_bits``, are within E too);
        * the loss ``S = sum_i d_i^2`` plus each of the K + 1 parties'
          penalty term, encoded at scale ``2**(2 frac_bits)`` with magnitude
          below ``2**value_bits`` (so at most ``P = max_encoded(2)``), is at
          most ``m (K + 1)^2 E^2 + (K + 1) P``.

        The loss bound is the larger, and it is reached when every value is
        at the encoding's limit; it grows with (K + 1)^2.
        """
        terms, k = _count(max_terms, "max_terms"), _count(holders, "holders")
        e, penalty = self.max_encoded(), self.max_encoded(2)
        return max(terms * (k + 1) ** 2 * e * e + (k + 1) * penalty, terms * (k + 1) * e * e)

    def max_weighted_result(self, max_terms: int, holders: int = 1) -> int:
        """Largest result of a weighted run of the squared losses (linear, logistic).

        The label holder multiplies [[sum_k u_Ak]] by its encoded weights
        w': the residual ``r = w' (sum_k u_Ak) + w' v`` carries scale
        ``2**(2 frac_bits)``, ``|r_i| <= K E^2 + P2 =: R`` (``P2 =
        max_encoded(2)``). A gradient entry is at most ``m E R``; the loss
        ``sum_i r_i (sum_k u_Ak,i + v_i)`` plus K + 1 penalty terms at scale
        ``2**(3 frac_bits)``, at most ``m (K + 1) E R + (K + 1) P3``, is the
        larger.
        """
        terms, k = _count(max_terms, "max_terms"), _count(holders, "holders")
        e = self.max_encoded()
        residual = k * e * e + self.max_encoded(2)
        return max(terms * e * residual,
                   terms * (k + 1) * e * residual + (k + 1) * self.max_encoded(3))

    def max_poisson_result(self, max_terms: int, holders: int = 1) -> int:
        """Largest result of a Poisson run (``docs/poisson.md``) with K = `holders`.

        The product of the K + 1 encoded factors exp(u_Ak) and the label
        holder's w' e exp(u_B), each at most E, carries scale
        ``2**((K + 1) frac_bits)``; with ``w' y`` at that scale (at most
        ``PK1 = max_encoded(K + 1)``) subtracted, ``|r_i| <= E^(K+1) + PK1 =:
        R``. A gradient entry is at most ``m E R``; the loss ``sum r_i + sum w'
        y - sum_k sum_i u_Ak,i w'_i y_i - sum w' y eta_B`` plus K + 1 penalties
        is at most ``m R + m K E PK + (K + 4) PK1``.
        """
        terms, k = _count(max_terms, "max_terms"), _count(holders, "holders")
        e, top = self.max_encoded(), self.max_encoded(k + 1)
        residual: int = e ** (k + 1) + top
        return max(terms * e * residual,
                   terms * residual + terms * k * e * self.max_encoded(k) + (k + 4) * top)

    def check_capacity(self, n: int, max_terms: int, *, holders: int = 1,
                       party: str | None = None, scheme: str = "squared") -> None:
        """Check that every result the protocol can produce decodes exactly mod n.

        A result decodes exactly when its magnitude is at most ``n // 3``
        (:meth:`to_signed`); beyond it a positive result lands in the middle
        third (refused) or, past ``2n/3``, wraps to a negative one. The check
        compares :meth:`max_result` with ``n // 3``: a configuration passes
        exactly when its worst case fits.

        Parameters
        ----------
        n : int
            The Paillier modulus.
        max_terms : int
            Most rows in one batch (training or validation).
        holders : int
            Number K of feature holders besides the label holder (default 1);
            the loss grows with (K + 1)^2.
        party : str, optional
            Party named in the error message.
        scheme : {"squared", "weighted", "poisson"}
            Which pass: the unweighted squared losses (:meth:`max_result`),
            a weighted one (:meth:`max_weighted_result`) or Poisson
            regression's product chain (:meth:`max_poisson_result`).

        Raises
        ------
        EncodingOverflowError
            If the key is too small for this encoding, row count and number
            of feature holders.
        """
        bound = {"squared": self.max_result, "weighted": self.max_weighted_result,
                 "poisson": self.max_poisson_result}.get(scheme)
        if bound is None:
            raise ValueError(f"unknown scheme {scheme!r}")
        needed = bound(max_terms, holders)
        available = n // 3
        if needed > available:
            raise EncodingOverflowError(
                f"a {n.bit_length()}-bit key cannot hold sums of {max_terms} products at "
                f"{self.frac_bits} fractional and {self.value_bits} integer bits with "
                f"{holders} feature holder(s)"
                + ("" if scheme == "squared" else f" in a {scheme} run")
                + f" (results up to {needed.bit_length()} bits, "
                f"n/3 has {available.bit_length()}); use a larger key, smaller batches or "
                "fewer value bits",
                party=party,
            )


def _count(value: int, name: str) -> int:
    """`value` as a non-negative int (numpy integers accepted, bools not)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value
