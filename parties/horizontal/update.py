"""How a client's round update is packed: the update at the run's precision, its tally apart.

A client sends ``[n_k (W_k - W), n_k L_k(W), n_k]``. The first part, one value
per parameter, is what the run's ``frac_bits`` and ``value_bits`` are chosen
for (:class:`~vfl.crypto.packing.PackingLayout`): the fewer bits a slot needs,
the more values per ciphertext and the fewer ciphertexts the key holder
decrypts. The tally, the row-weighted loss and the row count, is two values
whose size depends on the client's rows, not on the model: packed with the
update they would set every slot's width (a client of 500 rows needs 9
integer bits for its count, where its update may need 5). So the tally has a
ciphertext of its own, with :data:`TALLY_VALUE_BITS` integer bits, and
``value_bits`` bounds only the update.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from parties.horizontal.config import HorizontalConfig
from vfl.crypto.packing import PackingLayout

__all__ = ["TALLY_VALUE_BITS", "UpdateLayout"]

#: Integer bits of the tally's slots: a row-weighted loss and a row count below 2^64.
TALLY_VALUE_BITS = 64


@dataclass(frozen=True)
class UpdateLayout:
    """The plaintexts of one client update: the parameters' slots, then the tally's.

    Attributes
    ----------
    values : PackingLayout
        The update's slots (the run's ``frac_bits`` and ``value_bits``).
    tally : PackingLayout
        The loss and row count's slots (``frac_bits``, :data:`TALLY_VALUE_BITS`).
    parameters : int
        Values in the update.
    """

    values: PackingLayout
    tally: PackingLayout
    parameters: int

    @classmethod
    def for_run(cls, n: int, config: HorizontalConfig, clients: int,
                parameters: int) -> UpdateLayout:
        """The layout of a run with `clients` clients (the most updates ever summed)."""
        def layout(value_bits: int) -> PackingLayout:
            return PackingLayout.for_modulus(n, frac_bits=config.frac_bits,
                                             value_bits=value_bits, max_summands=clients)
        return cls(layout(config.value_bits), layout(TALLY_VALUE_BITS), parameters)

    @property
    def _split(self) -> int:
        return self.values.plaintexts_for(self.parameters)

    @property
    def plaintexts(self) -> int:
        """Ciphertexts per update."""
        return self._split + self.tally.plaintexts_for(2)

    def pack(self, update: npt.ArrayLike, loss: float, rows: float, *,
             party: str | None = None) -> list[int]:
        """The plaintexts of ``[update..., loss, rows]``.

        Raises
        ------
        EncodingOverflowError
            Naming `party`, if an update value needs more than ``value_bits``
            integer bits (or the tally more than :data:`TALLY_VALUE_BITS`).
        """
        return [*self.values.pack(update, what="update", party=party),
                *self.tally.pack([loss, rows], what="loss and row count", party=party)]

    def unpack(self, plaintexts: Sequence[int], *, summands: int,
               party: str | None = None) -> tuple[npt.NDArray[np.float64], float, float]:
        """``(update sum, loss sum, row sum)`` from a sum of `summands` packings."""
        split = self._split
        update = self.values.unpack(plaintexts[:split], self.parameters, summands=summands,
                                    what="aggregate", party=party)
        loss, rows = self.tally.unpack(plaintexts[split:], 2, summands=summands,
                                       what="aggregate's loss and row count", party=party)
        return update, float(loss), float(rows)
