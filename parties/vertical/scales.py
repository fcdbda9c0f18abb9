"""The fixed-point scales of one protocol pass, by model and weighting (``docs/poisson.md``).

Every value a party encrypts carries the scale ``2**f`` (f fractional bits);
each multiplication of a ciphertext by an encoded plaintext adds f to the
exponent, except the data's (the features X), encoded at ``2**f_d``
(``data_frac_bits``, :mod:`vfl.crypto.encoding`). Which multiplications a
pass makes depends on the loss:

======================  ==============  =================  ============
pass                    residual [[r]]  gradient X^T r     loss [[S]]
======================  ==============  =================  ============
squared, unweighted     2^f             2^(f+f_d)          2^2f
squared, weighted       2^2f            2^(2f+f_d)         2^3f
Poisson, K holders      2^(K+1)f        2^((K+1)f+f_d)     2^(K+1)f
======================  ==============  =================  ============

Squared losses are linear regression and the logistic Taylor loss. In the
weighted pass B multiplies [[sum_k u_Ak]] by its weights; in the Poisson
pass each of the K feature holders' factors exp(u_Ak) and B's w' e exp(u_B)
multiply in turn. Every party derives the same scales from the plan, so
each decodes what it receives at the scale it was made with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vfl.crypto import FixedPointCodec

__all__ = ["PassScales"]


@dataclass(frozen=True)
class PassScales:
    """Scale powers (multiples of ``frac_bits``) of a pass, and the loss's meaning.

    Attributes
    ----------
    model : {"linear", "logistic", "poisson"}
    weighted : bool
        The label holder weights the rows (a weight column, or balanced
        classes): told to every party in the plan.
    holders : int
        K, the number of feature holders.
    """

    model: str
    weighted: bool
    holders: int

    @property
    def poisson(self) -> bool:
        return self.model == "poisson"

    @property
    def cross_terms(self) -> bool:
        """The unweighted squared pass of PROTOCOL.md: each A sends sum u_A^2 and the
        feature holders' cross terms complete the loss."""
        return not self.poisson and not self.weighted

    @property
    def loss_terms(self) -> bool:
        """The weighted squared pass: each A returns [[sum_i r_i u_A,i]] for the loss."""
        return not self.poisson and self.weighted

    @property
    def residual(self) -> int:
        if self.poisson:
            return self.holders + 1
        return 2 if self.weighted else 1

    @property
    def loss(self) -> int:
        if self.poisson:
            return self.holders + 1
        return 3 if self.weighted else 2

    @property
    def scheme(self) -> str:
        """The capacity bound that applies (:meth:`FixedPointCodec.check_capacity`)."""
        if self.poisson:
            return "poisson"
        return "weighted" if self.weighted else "squared"

    def penalty_factor(self, rows: int, residual_factor: int) -> float:
        """What each party's penalty is multiplied by in S: 2 m k (squared), m (Poisson)."""
        return float(rows) if self.poisson else 2.0 * rows * residual_factor

    def mean_loss(self, total: float, rows: int, residual_factor: int) -> float:
        """The mean loss from the decrypted S of `rows` rows.

        Squared: S / (2 m k), plus log 2 - 1/2 for the Taylor log-loss.
        Poisson: S / m, S = sum w' (mu - y eta) + m penalty.
        """
        if self.poisson:
            return total / rows
        constant = math.log(2.0) - 0.5 if self.model == "logistic" else 0.0
        return total / (2 * rows * residual_factor) + constant

    def check_capacity(self, codec: FixedPointCodec, n: int, rows: int, *,
                       party: str | None = None) -> None:
        """Refuse, before any ciphertext, a key too small for this pass's largest result."""
        codec.check_capacity(n, rows, holders=self.holders, party=party, scheme=self.scheme)
