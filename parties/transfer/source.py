"""Party A, the source: holds the labels; leads the run and alone learns the loss.

The steps follow ``docs/transfer.md``, stage 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
from parties.transfer.network import DenseNetwork, ForwardCache
from parties.transfer.objective import LOG2
from parties.transfer.party import TransferParty, take_cache
from parties.transfer.state import SourceState
from vfl.errors import InvalidLabelError, MalformedMessageError
from vfl.protocol.channel import Endpoint
from vfl.psi import get_alignment
from vfl.psi.federation import align_as_label_holder

__all__ = ["TransferSource"]


class TransferSource(TransferParty[SourceState]):
    """The source A: labelled rows, its own network, its own key pair.

    Parameters
    ----------
    data : pandas.DataFrame
        IDs, the label (0/1 or -1/+1) and A's feature columns.
    id_column, label_column : str
    name : str
        Party name, "A" by default.
    seed : int, optional
        Seed of the secret initial parameters.
    """

    role = "source"
    state_type = SourceState
    is_source = True

    def __init__(self, data: pd.DataFrame, *, id_column: str, label_column: str,
                 name: str = "A", seed: int | None = None, source: str | None = None) -> None:
        super().__init__(data, id_column=id_column, name=name, label_column=label_column,
                         seed=seed, source=source)
        assert self.table.label is not None
        labels = self.table.label
        values = set(np.unique(labels).tolist())
        if len(values) != 2 or (not values <= {0.0, 1.0} and not values <= {-1.0, 1.0}):
            raise InvalidLabelError(
                f"label column {label_column!r} of {self.table.source} holds "
                f"{sorted(values)[:5]}; transfer learning needs two classes coded 0/1 or "
                "-1/+1", party=name)
        self.y = np.where(labels > 0, 1.0, -1.0)
        #: Called as ``on_epoch(epoch, loss)`` after each epoch.
        self.on_epoch: Callable[[int, float], None] | None = None
        #: Φ of the final network (what B receives), after a run.
        self.phi_: np.ndarray | None = None
        self._overlap = np.zeros(0, dtype=np.int64)
        self._target_inputs = 0
        self._peer_u: Any = None
        self._peer_m: Any = None
        self._loss = math.nan

    @property
    def history_(self) -> list[dict[str, float]]:
        """One dict per epoch: ``epoch`` and ``loss``."""
        if self.state is None:
            return []
        return [{"epoch": k + 1, "loss": v} for k, v in enumerate(self.state.history)]

    @property
    def leader(self) -> str:
        return self.name

    def followers(self) -> list[str]:
        return [self.peer]

    # --- lifecycle steps --------------------------------------------------------------

    def align(self, endpoint: Endpoint) -> None:
        """Stage 1: PSI with the target (A leads); the overlap rows in the common order."""
        self._overlap = align_as_label_holder(self.table.ids, endpoint, [self.peer],
                                              get_alignment(self.alignment))
        self.overlap_ = self._overlap

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "overlap": [self.table.ids[i] for i in self._overlap]}

    def agree_plan(self, endpoint: Endpoint, resumed: SourceState | None) -> None:
        """A sends the plan; B answers with its input columns; both floors are checked."""
        overlap = len(self._overlap)
        self.check_overlap_floor(overlap, self.network.n_inputs, self.name)
        endpoint.send(self.peer, TransferPlan(self.config, overlap, self.network.n_inputs))
        accept = endpoint.receive(self.peer, TargetAccept)
        if accept.target_inputs < 1:
            raise MalformedMessageError(f"{self.peer} announced {accept.target_inputs} input "
                                        "columns", party=self.name)
        self._target_inputs = accept.target_inputs
        self.check_overlap_floor(overlap, accept.target_inputs, self.peer)
        self.check_key_capacity(overlap)

    def fresh_state(self) -> SourceState:
        params = self.network.init_params(self._rng)
        return SourceState(epoch=0, stopped=False, params=params, initial_params=params.copy(),
                           history=[])

    def start_epoch(self, endpoint: Endpoint, epoch: int) -> int:
        """Step 1: [[h]]_A and [[M_A]]_A to B; [[u_B]]_B and [[M_B]]_B from B."""
        config, d = self.config, self.config.hidden[-1]
        cache, phi = self._forward()
        u_overlap = cache.output[self._overlap]
        h = -0.5 * config.alpha * self.y[self._overlap, None] * phi[None, :] - u_overlap / d
        m = 0.25 * config.alpha * np.outer(phi, phi)
        endpoint.send(self.peer, SourceTerms(self.vault.encrypt(h, 2), self.vault.encrypt(m, 1)),
                      epoch=epoch)
        terms = endpoint.receive(self.peer, TargetTerms, epoch=epoch)
        rows = len(self._overlap)
        self._peer_u = self.ops.from_wire(terms.u, rows, d, 1, sender=self.peer,
                                          what="TargetTerms.u")
        self._peer_m = self.ops.from_wire(terms.m, d, d, 1, sender=self.peer,
                                          what="TargetTerms.m")
        return config.local_rounds

    def batch_step(self, endpoint: Endpoint, epoch: int, batch: int) -> None:
        """Step 2, one local round: masked gradients both ways, decryption, update."""
        state, config, ops = self.current, self.config, self.ops
        at = {"epoch": epoch, "batch": batch}
        cache, phi = self._forward()
        gradient, loss = self._encrypted_gradient(cache, phi, with_loss=batch == 1)
        masked, masks = ops.mask(gradient)
        masked_loss, loss_masks = ops.mask(loss) if loss is not None else (None, None)
        endpoint.send(self.peer, SourceMaskedGradient(masked, masked_loss), **at)
        theirs = endpoint.receive(self.peer, TargetMaskedGradient, **at)
        if len(theirs.values) != self._target_params():
            raise MalformedMessageError(
                f"{self.peer} sent TargetMaskedGradient with {len(theirs.values)} values, its "
                f"network has {self._target_params()} parameters", party=self.name)
        opened = self.vault.decrypt(theirs.values, sender=self.peer,
                                    what="TargetMaskedGradient")
        endpoint.send(self.peer, DecryptedForTarget(tuple(opened)), **at)
        reply = endpoint.receive(self.peer, DecryptedForSource, **at)
        grad = ops.unmask(reply.values, masks, gradient, sender=self.peer,
                          what="DecryptedForSource.values")
        if loss is not None:
            if reply.loss is None:
                raise MalformedMessageError(f"{self.peer} sent no loss in the epoch's first "
                                            "round", party=self.name)
            self._loss = float(ops.unmask([reply.loss], loss_masks, loss, sender=self.peer,
                                          what="DecryptedForSource.loss")[0])
        state.params = state.params - config.learning_rate * (grad + config.l2 * state.params)

    def end_epoch(self, endpoint: Endpoint, epoch: int) -> float:
        """Step 3: A records the loss, applies the stopping rule and tells B."""
        state = self.current
        previous = state.history[-1] if state.history else None
        state.history.append(self._loss)
        stop = bool(self.config.tol > 0 and previous is not None
                    and abs(previous - self._loss) <= self.config.tol * max(1.0, abs(previous)))
        endpoint.send(self.peer, TransferEpochEnd(stop), epoch=epoch)
        state.epoch, state.stopped = epoch, stop
        if self.on_epoch is not None:
            self.on_epoch(epoch, self._loss)
        return self._loss

    def finish(self, endpoint: Endpoint) -> None:
        """Step 4: Φ of the final network to B (B's model)."""
        _, phi = self._forward()
        self.phi_ = phi
        endpoint.send(self.peer, FinalPhi(tuple(float(v) for v in phi)))

    # --- pieces of the steps ----------------------------------------------------------

    def _target_params(self) -> int:
        return DenseNetwork(self._target_inputs, self.config.hidden,
                            self.config.activations).n_params

    def _forward(self) -> tuple[ForwardCache, np.ndarray]:
        cache = self.network.forward(self.current.params, self.x)
        phi = (self.y[:, None] * cache.output).mean(axis=0)
        return cache, phi

    def _encrypted_gradient(self, cache: ForwardCache, phi: np.ndarray, *,
                            with_loss: bool) -> tuple[Any, Any]:
        """[[∂L/∂θ_A - λθ_A]]_B and, if asked, [[L_AB + λ/2‖θ_A‖²]]_B (scale 3)."""
        config, ops, network, params = self.config, self.ops, self.network, self.current.params
        d, n_a, rows = config.hidden[-1], len(self.y), len(self._overlap)
        y_overlap = self.y[self._overlap]
        # c = -(alpha/2) Σ y_i u_i^B and Φᵀ M_B: both 1 x d at scale 2; G = c + Φᵀ M_B.
        c = ops.t_matmul((-0.5 * config.alpha * y_overlap)[:, None], self._peer_u)
        phi_m = ops.t_matmul(phi[:, None], self._peer_m)
        g = ops.add(c, phi_m)
        jacobian = network.weighted_jacobian(params, cache, self.y / n_a)
        from_phi = ops.matmul_right(g, jacobian)
        overlap = network.backward(params, take_cache(cache, self._overlap), self._peer_u, ops,
                                   factor=-1.0 / d)
        gradient = ops.add(from_phi, overlap)
        if not with_loss:
            return gradient, None
        u_a = cache.output[self._overlap]
        loss = ops.add(ops.add(ops.matmul_right(c, phi[:, None]),
                               ops.matmul_right(phi_m, 0.5 * phi[:, None])),
                       ops.matmul_right(ops.flatten(self._peer_u),
                                        (-u_a / d).reshape(rows * d, 1)))
        constant = config.alpha * rows * LOG2 + 0.5 * config.l2 * float(params @ params)
        return gradient, ops.add_plain(loss, np.array([[constant]]))
