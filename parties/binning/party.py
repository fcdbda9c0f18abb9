"""What the feature holders and the label holder of a binning run share.

Binning has no epochs: the session runs the key step, the alignment, the
plan and then :meth:`finish`, where the protocol's steps are
(``docs/binning.md``). Nothing is checkpointed: a run takes seconds to
minutes and is simply run again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd

from parties.binning.config import BinningConfig
from parties.binning.result import BinningResult, FeatureBinning, binning_report
from parties.binning.table import BinningTable
from vfl.data import read_party_csv
from vfl.files import atomic_write_text
from vfl.protocol.channel import Endpoint
from vfl.psi import DEFAULT_ALIGNMENT
from vfl.risk.binning import Bins, chimerge_groups, make_bins
from vfl.runtime.role import Role
from vfl.runtime.state import RoleState

__all__ = ["BinningParty", "BinningState", "final_groups", "regroup"]

P = TypeVar("P", bound="BinningParty")


@dataclass
class BinningState(RoleState):
    """A binning role's place in the run (no epochs, nothing more to keep)."""

    LAYOUT: ClassVar[str] = "binning.party/1"


def final_groups(counts: Sequence[int] | np.ndarray, events: Sequence[int] | np.ndarray,
                 missing_apart: bool,
                 config: BinningConfig) -> list[int]:
    """For every bin of a column, its final bin.

    ChiMerge (``config.method == "chimerge"``) merges the value bins down to
    ``config.bins`` by their counts alone; a missing bin of its own stays
    apart, last. Other methods keep the owner's bins.
    """
    k = len(counts) - int(missing_apart)
    if config.method == "chimerge" and k > 0:
        groups = chimerge_groups(list(counts[:k]), list(events[:k]), config.bins)
    else:
        groups = list(range(k))
    if missing_apart:
        groups.append(groups[-1] + 1 if groups else 0)
    return groups


def regroup(values: Sequence[int] | np.ndarray, groups: Sequence[int]) -> np.ndarray:
    """Per-bin integers summed into their final bins."""
    return np.bincount(np.asarray(groups, dtype=np.int64),
                       weights=np.asarray(values, dtype=np.float64)).round().astype(np.int64)


class BinningParty(Role[BinningState]):
    """A party with rows: a feature holder or the label holder.

    Learned attributes: ``result_`` (a list of
    :class:`~parties.binning.result.FeatureBinning`, this party's view of
    every column it learns about), ``bins_`` (its own columns' final
    :class:`~vfl.risk.binning.Bins`, by name), ``aligned_rows_`` and
    ``session_`` (the run's name, the same at every party). :attr:`binning`
    is all of it as this party's file holds it.
    """

    role: ClassVar[str]
    state_type = BinningState
    is_label_holder: ClassVar[bool] = False

    def __init__(self, data: pd.DataFrame, *, id_column: str, name: str,
                 label_column: str | None = None, source: str | None = None) -> None:
        super().__init__(name)
        self.id_column = id_column
        self.label_column = label_column
        self.table = BinningTable.from_frame(data, party=name, id_column=id_column,
                                             label_column=label_column,
                                             is_label_holder=self.is_label_holder,
                                             source=source)
        self.config = BinningConfig()
        self.alignment = DEFAULT_ALIGNMENT
        self.label_holder = "B"
        self.coordinator = "C"
        self.result_: list[FeatureBinning] | None = None
        self.bins_: dict[str, Bins] | None = None
        self.aligned_rows_: int | None = None
        self.session_: str | None = None
        self._aligned: BinningTable | None = None

    @classmethod
    def from_csv(cls: type[P], path: str | os.PathLike[str], *, id_column: str,
                 **kwargs: Any) -> P:
        """Read the party's CSV file (empty cells and ``NA`` are missing values)."""
        name = str(kwargs.get("name", "B" if cls.is_label_holder else "A1"))
        frame = read_party_csv(path, party=name, id_column=id_column)
        return cls(frame, id_column=id_column, source=os.fspath(path), **kwargs)

    def begin_run(self, config: BinningConfig, *, alignment: str = DEFAULT_ALIGNMENT,
                  label_holder: str = "B", coordinator: str = "C") -> None:
        """Forget the last run; the settings of the next."""
        self.config, self.alignment = config, alignment
        self.label_holder, self.coordinator = label_holder, coordinator
        self.result_, self.bins_, self.state, self._aligned = None, None, None, None
        self.session_ = None

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def leader(self) -> str:
        return self.label_holder

    @property
    def max_epochs(self) -> int:
        return 0

    def open(self, endpoint: Endpoint) -> None:
        """The coordinator's public key."""
        self.session_ = endpoint.session
        self.receive_key(endpoint, self.coordinator)

    def fresh_state(self) -> BinningState:
        return BinningState(epoch=0, stopped=False)

    def end_epoch(self, endpoint: Endpoint, epoch: int) -> float | None:
        raise RuntimeError("binning has no epochs")

    @property
    def aligned(self) -> BinningTable:
        if self._aligned is None:
            raise RuntimeError(f"party {self.name}: not aligned yet")
        return self._aligned

    def _take_aligned(self, positions: np.ndarray) -> None:
        self._aligned = self.table.take(positions)
        self.aligned_rows_ = len(positions)

    def _first_bins(self) -> list[Bins]:
        """This party's columns cut as the plan says, small bins merged."""
        method, bins = self.config.first_bins
        return [make_bins(self.aligned.values[:, j], method=method, bins=bins,
                          min_rows=self.config.min_bin_rows)
                for j in range(self.aligned.values.shape[1])]

    # --- the result ------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """The content of this party's ``binning_<party>.json``."""
        if self.result_ is None or self.aligned_rows_ is None:
            raise AttributeError(f"party {self.name} has not binned yet")
        return binning_report(self.name, self.role, self.config.to_dict(),
                              self.aligned_rows_, self.result_, session=self.session_,
                              id_column=self.id_column,
                              label_column=self.label_column if self.is_label_holder else None)

    @property
    def binning(self) -> BinningResult:
        """This party's result as its ``binning_<party>.json`` holds it (for
        :func:`~parties.binning.woe_encode`)."""
        return BinningResult.from_report(self.report(), source=f"party {self.name}'s binning")

    def save_report(self, path: str | os.PathLike[str]) -> None:
        atomic_write_text(path, json.dumps(self.report(), indent=2, allow_nan=False) + "\n")
