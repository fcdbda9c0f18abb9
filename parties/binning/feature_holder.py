"""Party A_k of a binning run: bins its own columns, sums B's encrypted labels per bin.

A never sees a label, an event count or B's columns: it receives [[y]]
under C's key, and at the end the WOE and IV of its own columns (which,
with its own counts, tell it its bins' event counts: the leakage stated in
``docs/binning.md``).
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np

from parties.binning.messages import BinningPlan, BinSums, BinWoe, EncryptedLabels
from parties.binning.party import BinningParty, BinningState, regroup
from parties.binning.result import FeatureBinning
from vfl.crypto import EncryptedVector
from vfl.errors import ConfigMismatchError, MalformedMessageError
from vfl.protocol.channel import Endpoint
from vfl.psi import get_alignment
from vfl.psi.federation import align_as_feature_holder
from vfl.risk.binning import Bins
from vfl.runtime.role import expect_length

__all__ = ["BinningFeatureHolder"]


class BinningFeatureHolder(BinningParty):
    """A feature holder (party A_k) of a binning run.

    Parameters
    ----------
    data : pandas.DataFrame
        IDs and numeric columns (missing values allowed); never the label.
    id_column : str
    name : str
        "A1" by default.
    label_column : str, optional
        The federation's label column name, to refuse data that holds it.
    source : str, optional
        Where the data came from, for messages.
    """

    role = "feature_holder"

    def __init__(self, data: Any, *, id_column: str, name: str = "A1",
                 label_column: str | None = None, source: str | None = None) -> None:
        super().__init__(data, id_column=id_column, name=name, label_column=label_column,
                         source=source)

    def align(self, endpoint: Endpoint) -> None:
        positions = align_as_feature_holder(self.table.ids, endpoint, self.label_holder,
                                            get_alignment(self.alignment))
        self._take_aligned(positions)

    def identity(self) -> dict[str, Any]:
        return {"role": self.role, "config": self.config.to_dict()}

    def agree_plan(self, endpoint: Endpoint, resumed: BinningState | None) -> None:
        plan = endpoint.receive(self.label_holder, BinningPlan)
        if plan.config != self.config:
            raise ConfigMismatchError(
                f"{self.label_holder} bins with {plan.config}, this party was configured with "
                f"{self.config}; start every party with the same binning settings",
                party=self.name)
        if plan.n_rows != len(self.aligned.ids) or self.name not in plan.feature_holders:
            raise ConfigMismatchError(
                f"{self.label_holder}'s plan does not match this party's alignment "
                f"({plan.n_rows} rows vs {len(self.aligned.ids)}; feature holders "
                f"{list(plan.feature_holders)})", party=self.name)

    def finish(self, endpoint: Endpoint) -> None:
        """Sum [[y]] per bin of every column (columns in a secret order), then take the WOE."""
        bins = self._first_bins()
        # B names A's columns by position: a secret order hides which is which.
        order = [int(j) for j in np.random.default_rng(secrets.randbits(128)).permutation(
            len(bins))]
        labels = self.receive(endpoint, self.label_holder, EncryptedLabels).labels
        expect_length(labels, len(self.aligned.ids), sender=self.label_holder,
                      message="EncryptedLabels", what="ciphertexts", party=self.name)
        counts: list[int] = []
        sums: list[EncryptedVector] = []
        for j in order:
            index = bins[j].assign(self.aligned.values[:, j])
            for b in range(bins[j].n_bins):
                rows = np.flatnonzero(index == b)
                counts.append(len(rows))
                sums.append(self._encrypted_sum(labels, rows))
        # B made every [[y_i]]: without fresh randomness it could test which
        # rows' ciphertexts multiply to a bin's sum.
        events = self.engine.rerandomize(EncryptedVector.concat(sums))
        endpoint.send(self.label_holder, BinSums(
            tuple(bins[j].n_bins for j in order), tuple(bins[j].missing_apart for j in order),
            tuple(counts), events))
        reply = endpoint.receive(self.label_holder, BinWoe)
        self._take_woe(reply, bins, order, counts)

    def _encrypted_sum(self, labels: EncryptedVector, rows: np.ndarray) -> EncryptedVector:
        if not len(rows):
            return self.engine.encrypt([0])
        return self.engine.sum(EncryptedVector(labels.public_key,
                                               tuple(labels.ciphertexts[i] for i in rows)))

    def _take_woe(self, reply: BinWoe, bins: list[Bins], order: list[int],
                  counts: list[int]) -> None:
        sender = self.label_holder
        expect_length(reply.groups, len(counts), sender=sender, message="BinWoe",
                      what="bin groups", party=self.name)
        for field in ("iv", "selected"):
            expect_length(getattr(reply, field), len(order), sender=sender, message="BinWoe",
                          what=field, party=self.name)
        result: dict[int, FeatureBinning] = {}
        final: dict[int, Bins] = {}
        start = woe_start = 0
        for k, j in enumerate(order):
            size = bins[j].n_bins
            groups = list(reply.groups[start:start + size])
            try:
                final[j] = bins[j].merged(groups[:bins[j].value_bins])
            except ValueError as exc:
                raise MalformedMessageError(f"{sender} sent BinWoe with an impossible merge of "
                                            f"{size} bins: {exc}", party=self.name) from None
            merged = final[j].n_bins
            if merged != max(groups) + 1:
                raise MalformedMessageError(f"{sender} sent BinWoe whose merge of {size} bins "
                                            "mixes missing and present values",
                                            party=self.name)
            woe = reply.woe[woe_start:woe_start + merged]
            expect_length(woe, merged, sender=sender, message="BinWoe", what="WOE values",
                          party=self.name)
            result[j] = FeatureBinning(
                name=self.aligned.names[j], owner=self.name, edges=final[j].edges,
                missing_bin=final[j].missing_bin,
                counts=tuple(int(c) for c in regroup(counts[start:start + size], groups)),
                events=None, woe=tuple(float(w) for w in woe), iv=float(reply.iv[k]),
                selected=bool(reply.selected[k]))
            start += size
            woe_start += merged
        expect_length(reply.woe, woe_start, sender=sender, message="BinWoe",
                      what="WOE values", party=self.name)
        self.result_ = [result[j] for j in range(len(order))]
        self.bins_ = {self.aligned.names[j]: final[j] for j in range(len(order))}
