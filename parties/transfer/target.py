"""Party B, the target: no labels; learns a network and predicts all of its rows.

The steps follow ``docs/transfer.md``, stage 2.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from parties.transfer.messages import (
    DecryptedForSource,
    DecryptedForTarget,
    FinalPhi,
    SourceMaskedGradient,
    SourceTerms,
    TargetAccept,
    TargetMaskedGradient,
    TargetTerms,
    TransferEpochEnd,
    TransferPlan,
)
from parties.transfer.network import DenseNetwork
from parties.transfer.party import MODEL_FORMAT, TransferParty
from parties.transfer.state import TargetState
from vfl.errors import ConfigMismatchError, MalformedMessageError
from vfl.model import sigmoid
from vfl.protocol.channel import Endpoint
from vfl.psi import get_alignment
from vfl.psi.federation import align_as_feature_holder

__all__ = ["LOSS_SCALE", "TransferTarget"]

#: Fixed-point scale of the masked loss A sends (B adds its penalty at it).
LOSS_SCALE = 3


class TransferTarget(TransferParty[TargetState]):
    """The target B: unlabelled rows, its own network, its own key pair.

    Parameters
    ----------
    data : pandas.DataFrame
        IDs and B's feature columns (other columns than A's).
    id_column : str
    name : str
        Party name, "B" by default.
    label_column : str, optional
        The source's label column: if given, a column of that name in `data`
        is refused (the target must not hold it).
    seed : int, optional
        Seed of the secret initial parameters.
    """

    role = "target"
    state_type = TargetState
    is_source = False

    def __init__(self, data: pd.DataFrame, *, id_column: str, name: str = "B",
                 label_column: str | None = None, seed: int | None = None,
                 source: str | None = None) -> None:
        super().__init__(data, id_column=id_column, name=name, label_column=label_column,
                         seed=seed, source=source)
        #: Φ of the source's final network (B's model), after a run.
        self.phi_: np.ndarray | None = None
        self._overlap = np.zeros(0, dtype=np.int64)
        self._source_inputs = 0
        self._peer_h: Any = None
        self._peer_m: Any = None

    @property
    def leader(self) -> str:
        return self.peer

    # --- lifecycle steps --------------------------------------------------------------

    def align(self, endpoint: Endpoint) -> None:
        """Stage 1: PSI with the source; B's overlap rows in the common order."""
        self._overlap = align_as_feature_holder(self.table.ids, endpoint, self.peer,
                                                get_alignment(self.alignment))
        self.overlap_ = self._overlap

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "overlap": [self.table.ids[i] for i in self._overlap]}

    def agree_plan(self, endpoint: Endpoint, resumed: TargetState | None) -> None:
        """B checks A's plan against its own configuration and answers."""
        plan = endpoint.receive(self.peer, TransferPlan)
        if plan.config != self.config:
            raise ConfigMismatchError(f"{self.peer} runs {plan.config}, this party was "
                                      f"configured with {self.config}; start both parties "
                                      "with the same settings", party=self.name)
        if plan.overlap_rows != len(self._overlap):
            raise ConfigMismatchError(f"{self.peer} counts {plan.overlap_rows} shared rows, "
                                      f"this party {len(self._overlap)}", party=self.name)
        if plan.source_inputs < 1:
            raise MalformedMessageError(f"{self.peer} announced {plan.source_inputs} input "
                                        "columns", party=self.name)
        self._source_inputs = plan.source_inputs
        self.check_overlap_floor(len(self._overlap), plan.source_inputs, self.peer)
        self.check_overlap_floor(len(self._overlap), self.network.n_inputs, self.name)
        endpoint.send(self.peer, TargetAccept(self.network.n_inputs))
        self.check_key_capacity(len(self._overlap))

    def fresh_state(self) -> TargetState:
        params = self.network.init_params(self._rng)
        return TargetState(epoch=0, stopped=False, params=params, initial_params=params.copy())

    def start_epoch(self, endpoint: Endpoint, epoch: int) -> int:
        """Step 1: [[u_B]]_B and [[M_B]]_B to A; [[h]]_A and [[M_A]]_A from A."""
        config, d = self.config, self.config.hidden[-1]
        u = self.network.predict(self.current.params, self.x[self._overlap])
        m = 0.25 * config.alpha * u.T @ u
        endpoint.send(self.peer, TargetTerms(self.vault.encrypt(u, 1), self.vault.encrypt(m, 1)),
                      epoch=epoch)
        terms = endpoint.receive(self.peer, SourceTerms, epoch=epoch)
        self._peer_h = self.ops.from_wire(terms.h, len(self._overlap), d, 2, sender=self.peer,
                                          what="SourceTerms.h")
        self._peer_m = self.ops.from_wire(terms.m, d, d, 1, sender=self.peer,
                                          what="SourceTerms.m")
        return config.local_rounds

    def batch_step(self, endpoint: Endpoint, epoch: int, batch: int) -> None:
        """Step 2, one local round: [[g]] = [[h]] + [[M_A]] u_B, back-propagated and masked."""
        state, config, ops, network = self.current, self.config, self.ops, self.network
        at = {"epoch": epoch, "batch": batch}
        cache = network.forward(state.params, self.x[self._overlap])
        g = ops.add(self._peer_h, ops.matmul_left(cache.output, self._peer_m))
        gradient = network.backward(state.params, cache, g, ops)
        masked, masks = ops.mask(gradient)
        endpoint.send(self.peer, TargetMaskedGradient(masked), **at)
        theirs = endpoint.receive(self.peer, SourceMaskedGradient, **at)
        source_params = DenseNetwork(self._source_inputs, config.hidden,
                                     config.activations).n_params
        if len(theirs.values) != source_params:
            raise MalformedMessageError(
                f"{self.peer} sent SourceMaskedGradient with {len(theirs.values)} values, its "
                f"network has {source_params} parameters", party=self.name)
        opened = self.vault.decrypt(theirs.values, sender=self.peer,
                                    what="SourceMaskedGradient.values")
        loss: int | float | None = None
        if batch == 1:
            if theirs.loss is None:
                raise MalformedMessageError(f"{self.peer} sent no masked loss in the epoch's "
                                            "first round", party=self.name)
            masked_loss = self.vault.decrypt(theirs.loss, sender=self.peer,
                                             what="SourceMaskedGradient.loss")
            if len(masked_loss) != 1:
                raise MalformedMessageError(f"{self.peer} sent {len(masked_loss)} loss values",
                                            party=self.name)
            penalty = 0.5 * config.l2 * float(state.params @ state.params)
            loss = self.vault.add_to_residue(masked_loss[0],
                                             ops.encode_residue_addend(penalty, LOSS_SCALE))
        endpoint.send(self.peer, DecryptedForSource(tuple(opened), loss), **at)
        reply = endpoint.receive(self.peer, DecryptedForTarget, **at)
        grad = ops.unmask(reply.values, masks, gradient, sender=self.peer,
                          what="DecryptedForTarget.values")
        state.params = state.params - config.learning_rate * (grad + config.l2 * state.params)

    def end_epoch(self, endpoint: Endpoint, epoch: int) -> None:
        """Step 3: A's stopping decision."""
        end = endpoint.receive(self.peer, TransferEpochEnd, epoch=epoch)
        state = self.current
        state.epoch, state.stopped = epoch, end.stop
        return None

    def finish(self, endpoint: Endpoint) -> None:
        """Step 4: Φ from A; B can now score every one of its rows alone."""
        phi = endpoint.receive(self.peer, FinalPhi).phi
        d = self.config.hidden[-1]
        if len(phi) != d or not np.all(np.isfinite(phi)):
            raise MalformedMessageError(f"{self.peer} sent a final Φ of {len(phi)} values, "
                                        f"expected {d} finite ones", party=self.name)
        self.phi_ = np.asarray(phi, dtype=np.float64)

    # --- prediction ---------------------------------------------------------------------

    def predict_proba(self, data: pd.DataFrame | None = None) -> pd.Series:
        """P(class 1) = sigmoid(Net_B(x_B) · Φ) for every row (B's own data by default).

        Returns
        -------
        pandas.Series
            Indexed by ID, in the rows' order.
        """
        if self.phi_ is None or self.state is None:
            raise AttributeError(f"party {self.name} has not been trained yet")
        if data is None:
            x, ids = self.x, self.table.ids
        else:
            from vfl.data import PartyTable

            table = PartyTable.from_frame(data, party=self.name, id_column=self.id_column,
                                          feature_columns=self.table.feature_names)
            x, ids = self.scaler.transform(table.features), table.ids
        scores = self.network.predict(self.current.params, x) @ self.phi_
        return pd.Series(sigmoid(scores), index=pd.Index(ids, name=self.id_column),
                         name="probability")

    def model_dict(self) -> dict[str, Any]:
        model = super().model_dict()
        model["phi"] = [] if self.phi_ is None else [float(v) for v in self.phi_]
        return model


def target_from_model(model: dict[str, Any]) -> tuple[DenseNetwork, np.ndarray, np.ndarray]:
    """(network, params, Φ) of a target model file's contents (``read_model``)."""
    assert model["format"] == MODEL_FORMAT
    network = DenseNetwork(len(model["features"]), tuple(model["hidden"]),
                           tuple(model["activations"]))
    return network, np.asarray(model["params"]), np.asarray(model["phi"])

