"""Party B of a binning run: holds the labels, learns per-bin event counts, computes WOE/IV.

For its own columns B bins and counts in the clear. For a feature holder's
columns it learns, per bin and without edges or names, the rows and the
events: A sums B's encrypted labels per bin, B masks the sums uniformly in
Z_n, C decrypts the masked values, B removes its masks (``docs/binning.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from parties.binning.config import BinningConfig
from parties.binning.messages import (
    BinningPlan,
    BinSums,
    BinWoe,
    DecryptedEventSums,
    EncryptedLabels,
    MaskedEventSums,
)
from parties.binning.party import BinningParty, BinningState, final_groups, regroup
from parties.binning.result import FeatureBinning
from vfl.crypto import draw_masks, unmask
from vfl.errors import ConfigError, MalformedMessageError
from vfl.protocol.channel import Endpoint
from vfl.psi import get_alignment
from vfl.psi.federation import align_as_label_holder
from vfl.risk.binning import Bins
from vfl.risk.woe import select_by_iv, woe_table
from vfl.runtime.role import expect_length

__all__ = ["BinningLabelHolder"]


class BinningLabelHolder(BinningParty):
    """The label holder (party B) of a binning run.

    Parameters
    ----------
    data : pandas.DataFrame
        IDs, the label (0/1 or -1/+1; 1 is the event) and maybe its own columns.
    id_column, label_column : str
    name : str
        "B" by default.
    source : str, optional
        Where the data came from, for messages.
    """

    role = "label_holder"
    is_label_holder = True

    def __init__(self, data: Any, *, id_column: str, label_column: str, name: str = "B",
                 source: str | None = None) -> None:
        super().__init__(data, id_column=id_column, name=name, label_column=label_column,
                         source=source)
        self.feature_holders: list[str] = ["A1"]

    def begin_run(self, config: BinningConfig, *, feature_holders: Sequence[str] = ("A1",),
                  **kwargs: Any) -> None:
        super().begin_run(config, label_holder=self.name, **kwargs)
        self.feature_holders = list(feature_holders)

    @property
    def y(self) -> np.ndarray:
        assert self.aligned.label is not None  # the label holder's table has one
        return self.aligned.label

    def align(self, endpoint: Endpoint) -> None:
        positions = align_as_label_holder(self.table.ids, endpoint, self.feature_holders,
                                          get_alignment(self.alignment))
        self._take_aligned(positions)

    def identity(self) -> dict[str, Any]:
        return {"role": self.role, "config": self.config.to_dict(),
                "feature_holders": self.feature_holders}

    def agree_plan(self, endpoint: Endpoint, resumed: BinningState | None) -> None:
        rows = len(self.aligned.ids)
        if rows < self.config.min_bin_rows:
            raise ConfigError(f"only {rows} rows are shared by every party, fewer than the "
                              f"minimum of {self.config.min_bin_rows} rows per bin",
                              party=self.name)
        if self.y.min() == self.y.max():
            raise ConfigError("the shared rows hold one class only; WOE needs events and "
                              "non-events", party=self.name)
        plan = BinningPlan(self.config, rows, tuple(self.feature_holders))
        for name in (*self.feature_holders, self.coordinator):
            endpoint.send(name, plan)

    def finish(self, endpoint: Endpoint) -> None:
        """[[y]] to every A; B's own columns; each A's bin sums through C; WOE/IV; selection."""
        y = [int(v) for v in self.y]
        for name in self.feature_holders:
            endpoint.send(name, EncryptedLabels(self.engine.encrypt(y)))
        own = self._own_columns()
        theirs = {name: self._their_columns(endpoint, name) for name in self.feature_holders}
        every = own + [f for columns in theirs.values() for f, _ in columns]
        kept = select_by_iv({f.name: f.iv for f in every}, threshold=self.config.select_iv,
                            top=self.config.select_top)
        self.result_ = [_with_selected(f, f.name in kept) for f in every]
        for name, columns in theirs.items():
            endpoint.send(name, BinWoe(
                groups=tuple(g for _, groups in columns for g in groups),
                woe=tuple(w for f, _ in columns for w in f.woe),
                iv=tuple(f.iv for f, _ in columns),
                selected=tuple(f.name in kept for f, _ in columns)))

    def _own_columns(self) -> list[FeatureBinning]:
        y, columns = self.y, []
        final: dict[str, Bins] = {}
        for j, bins in enumerate(self._first_bins()):
            values = self.aligned.values[:, j]
            index = bins.assign(values)
            counts = np.bincount(index, minlength=bins.n_bins)
            events = np.bincount(index, weights=y, minlength=bins.n_bins).round().astype(int)
            groups = final_groups(counts, events, bins.missing_apart, self.config)
            merged = bins.merged(groups[:bins.value_bins])
            counts, events = regroup(counts, groups), regroup(events, groups)
            table = woe_table(counts, events)
            name = self.aligned.names[j]
            final[name] = merged
            columns.append(FeatureBinning(
                name=name, owner=self.name, edges=merged.edges, missing_bin=merged.missing_bin,
                counts=tuple(int(c) for c in counts), events=tuple(int(e) for e in events),
                woe=tuple(float(w) for w in table.woe), iv=table.iv, selected=True))
        self.bins_ = final
        return columns

    def _their_columns(self, endpoint: Endpoint,
                       sender: str) -> list[tuple[FeatureBinning, list[int]]]:
        """One feature holder's columns, anonymous: (result, groups of its bins) each."""
        sums = self.receive(endpoint, sender, BinSums)
        total = sum(sums.bins)
        expect_length(sums.missing_apart, len(sums.bins), sender=sender, message="BinSums",
                      what="missing flags", party=self.name)
        for field, values in (("counts", sums.counts), ("events", sums.events)):
            expect_length(values, total, sender=sender, message="BinSums", what=field,
                          party=self.name)
        if any(size < 1 + int(apart) for size, apart in zip(sums.bins, sums.missing_apart)):
            raise MalformedMessageError(f"{sender} sent BinSums with a column of no value bin",
                                        party=self.name)
        masks = draw_masks(self.engine.n, total)
        endpoint.send(self.coordinator,
                      MaskedEventSums(self.engine.add_plain(sums.events, masks)))
        reply = endpoint.receive(self.coordinator, DecryptedEventSums)
        expect_length(reply.values, total, sender=self.coordinator,
                      message="DecryptedEventSums", what="values", party=self.name)
        events = unmask(reply.values, masks, self.engine.n)
        counts = [int(c) for c in sums.counts]
        rows = len(self.aligned.ids)
        if any(not 0 <= e <= c for e, c in zip(events, counts)) or any(
                c < 0 for c in counts):
            raise MalformedMessageError(f"{sender}'s bin sums are not counts of its bins "
                                        f"(events outside 0..rows); {sender} is faulty",
                                        party=self.name)
        columns: list[tuple[FeatureBinning, list[int]]] = []
        start = 0
        for k, (size, apart) in enumerate(zip(sums.bins, sums.missing_apart)):
            n_bins, e_bins = counts[start:start + size], events[start:start + size]
            if sum(n_bins) != rows:
                raise MalformedMessageError(f"{sender}'s column {k} has {sum(n_bins)} rows in "
                                            f"its bins, {rows} are shared", party=self.name)
            groups = final_groups(n_bins, e_bins, apart, self.config)
            merged_n, merged_e = regroup(n_bins, groups), regroup(e_bins, groups)
            table = woe_table(merged_n, merged_e)
            columns.append((FeatureBinning(
                name=f"{sender}#{k}", owner=sender, edges=None, missing_bin=None,
                counts=tuple(int(c) for c in merged_n), events=tuple(int(e) for e in merged_e),
                woe=tuple(float(w) for w in table.woe), iv=table.iv, selected=True), groups))
            start += size
        return columns


def _with_selected(feature: FeatureBinning, selected: bool) -> FeatureBinning:
    return replace(feature, selected=selected)
