"""Party A: holds IDs and features, never sees labels or anyone's plaintext.

The steps follow ``PROTOCOL.md``, stage 2 (numbers in the method docstrings
refer to its steps).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from parties.vertical.data_party import DataParty
from parties.vertical.messages import (
    ChainedExpScores,
    ConvergenceVote,
    CrossTerm,
    CrossTermRequest,
    DecryptedMaskedGradient,
    EncryptedGramPart,
    EncryptedPartialScores,
    EncryptedResidual,
    EncryptedValidationScores,
    EpochEnd,
    EpochStart,
    ExtendExpScores,
    InterceptOffset,
    MaskedGradient,
    MaskedPartialScores,
    PartialScores,
    PredictionMaskSeed,
    TrainingPlan,
    WeightedLossTerm,
)
from parties.vertical.state import FeatureHolderState
from vfl.crypto import draw_masks, expand_masks
from vfl.crypto.shares import share_scores
from vfl.errors import ConfigMismatchError
from vfl.lbfgs import LbfgsBlock
from vfl.model import ModelPart
from vfl.optim import Optimizer, OptimizerState, learning_rate_at
from vfl.protocol.channel import Endpoint
from vfl.psi import DEFAULT_ALIGNMENT, get_alignment
from vfl.psi.federation import align_as_feature_holder
from vfl.runtime.checkpoint import CheckpointStore
from vfl.runtime.role import expect_length
from vfl.runtime.session import Session
from vfl.training import TrainingConfig, batch_plan

__all__ = ["FeatureHolder"]


class FeatureHolder(DataParty[FeatureHolderState]):
    """A feature holder (party A, one of A1..Ak).

    Parameters
    ----------
    data : pandas.DataFrame
        IDs and feature columns. Checked at once: a missing ID column,
        duplicate IDs, non-numeric or non-finite features raise here.
    id_column : str
        Column holding the IDs shared with the label holder.
    name : str
        Party name, "A1" by default.
    label_column : str, optional
        Name of the label column at the label holder. If given, a column of
        that name in `data` is refused (a feature holder must not hold it).
    feature_columns : list of str, optional
        Features to use; default every column except the ID.
    seed : int, optional
        Seed of the secret initial weights; default from the OS CSPRNG.

    Examples
    --------
    >>> a = FeatureHolder(frame_a, id_column="ID")      # doctest: +SKIP
    >>> a.coef_                                        # after Federation.fit  # doctest: +SKIP
    """

    role = "feature_holder"
    state_type = FeatureHolderState

    def __init__(self, data: pd.DataFrame, *, id_column: str, name: str = "A1",
                 label_column: str | None = None, feature_columns: list[str] | None = None,
                 seed: int | None = None, source: str | None = None,
                 model: ModelPart | None = None) -> None:
        super().__init__(data, id_column=id_column, name=name, label_column=label_column,
                         feature_columns=feature_columns, seed=seed, source=source,
                         model=model)
        self.label_holder = "B"
        self.coordinator = "C"
        self._optimizer: Optimizer | None = None
        self._has_cross_term = False
        self._chain_position = 0
        self._members: list[str] = []
        self._before = np.zeros(0)
        self._batches: list[np.ndarray] = []

    @property
    def initial_weights_(self) -> np.ndarray | None:
        """The secret random weights the last run started from (standardised units)."""
        return None if self.state is None else self.state.initial_weights

    def run_training(self, endpoint: Endpoint, config: TrainingConfig, *,
                     label_holder: str = "B", coordinator: str = "C",
                     alignment: str = DEFAULT_ALIGNMENT,
                     checkpoints: CheckpointStore[FeatureHolderState] | None = None) -> None:
        """Take part in alignment and training; afterwards ``model_`` is set.

        Parameters
        ----------
        endpoint : Endpoint
            This party's connection to the others.
        config : TrainingConfig
            Must equal the label holder's; checked.
        label_holder, coordinator : str
            Peer names.
        alignment : str
            Alignment method name, the same as the label holder's.
        checkpoints : CheckpointStore, optional
            Save this party's state after every epoch there and resume from
            it with the others (every party must keep checkpoints, or none).
        """
        self.label_holder, self.coordinator = label_holder, coordinator
        self._begin_run(config, alignment)
        Session(self, endpoint, checkpoints=checkpoints).run()

    # --- lifecycle steps ---------------------------------------------------------------

    @property
    def leader(self) -> str:
        return self.label_holder

    def open(self, endpoint: Endpoint) -> None:
        """Step 1: C's public key."""
        self._receive_codec(endpoint, self.coordinator)

    def align(self, endpoint: Endpoint) -> None:
        """Stage 1: private alignment with the label holder."""
        positions = align_as_feature_holder(self.table.ids, endpoint, self.label_holder,
                                            get_alignment(self._alignment))
        self._take_aligned(positions)

    def identity(self) -> dict[str, Any]:
        return self._data_identity(label_holder=self.label_holder,
                                   coordinator=self.coordinator)

    def agree_plan(self, endpoint: Endpoint, resumed: FeatureHolderState | None) -> None:
        plan = endpoint.receive(self.label_holder, TrainingPlan)
        self._check_plan(plan, self.label_holder)
        if plan.n_rows != len(self.aligned) or self.name not in plan.feature_holders:
            raise ConfigMismatchError(
                f"{self.label_holder}'s training plan does not match this party's alignment "
                f"({plan.n_rows} rows vs {len(self.aligned)}; feature holders "
                f"{list(plan.feature_holders)})", party=self.name)
        # Every feature holder but the last multiplies the sum of the later
        # ones' encrypted scores by its own: the loss's cross terms.
        order = plan.feature_holders
        self._members = [*order, self.label_holder]
        self._has_cross_term = order.index(self.name) < len(order) - 1
        # Poisson: the place of this party's factor exp(u_A) in the product chain.
        self._chain_position = order.index(self.name)
        self._prepare(plan)

    def fresh_state(self) -> FeatureHolderState:
        d = self.rows.n_features
        theta = self._initial_weights(d)
        return FeatureHolderState(epoch=0, stopped=False, theta=theta, best=theta.copy(),
                                  initial_weights=theta.copy(),
                                  optimizer=OptimizerState.zeros(d),
                                  search=(LbfgsBlock.empty(d)
                                          if self._config.optimizer == "lbfgs" else None))

    def start_epoch(self, endpoint: Endpoint, epoch: int) -> int:
        """B's batch seed for the epoch: both sides slice the same rows."""
        start = endpoint.receive(self.label_holder, EpochStart, epoch=epoch)
        state = self.current
        if self._config.optimizer != "lbfgs":
            self._optimizer = Optimizer(self._config, np.ones(len(state.theta), bool),
                                        state.optimizer)
        self._before = state.theta.copy()
        self._batches = batch_plan(len(self.rows.train), self._config.batch_size,
                                   start.batch_seed)
        return len(self._batches)

    def batch_step(self, endpoint: Endpoint, epoch: int, batch: int) -> None:
        """Steps 2, 5 and 7: [[u_A]] and [[L_A]] to B; [[X_A^T d + R_A]] to C; unmask, update.

        Under L-BFGS the epoch's one batch is an iteration (docs/lbfgs.md).
        """
        if self._config.optimizer == "lbfgs":
            self._lbfgs_iteration(endpoint, epoch)
            return
        state, rows = self.current, self.rows.train[self._batches[batch - 1]]
        grad = self._gradient_pass(endpoint, rows, state.theta, epoch=epoch, batch=batch)
        assert self._optimizer is not None
        state.theta = self._optimizer.step(state.theta, grad,
                                           learning_rate_at(self._config, epoch))

    def _gradient_pass(self, endpoint: Endpoint, rows: np.ndarray, params: np.ndarray,
                       **at: int) -> np.ndarray:
        """One pass of steps 2, 5 and 7 at weights `params`; the data loss's gradient."""
        u_encoded = self._send_scores(endpoint, rows, EncryptedPartialScores, params,
                                      penalty=True, **at)
        residual = self.receive(endpoint, self.label_holder, EncryptedResidual, **at).residual
        expect_length(residual, len(rows), sender=self.label_holder,
                      message="EncryptedResidual", what="residuals", party=self.name)
        masks = self._send_masked_gradient(endpoint, rows, residual, **at)
        if self._has_cross_term and self._scales.cross_terms:
            self._answer_cross_term(endpoint, u_encoded, **at)
        if self._scales.loss_terms:
            self._send_loss_term(endpoint, residual, u_encoded, **at)
        reply = endpoint.receive(self.coordinator, DecryptedMaskedGradient, **at)
        return self._unmask_gradient(reply, masks, self._config.residual_factor * len(rows),
                                     self.coordinator)

    def validation_step(self, endpoint: Endpoint, epoch: int) -> None:
        """The held-out rows' encrypted scores, for the validation loss at C."""
        if not len(self.rows.validation):
            return
        at = {"epoch": epoch, "batch": 0}
        u_encoded = self._send_scores(endpoint, self.rows.validation,
                                      EncryptedValidationScores, None, penalty=False, **at)
        if self._has_cross_term and self._scales.cross_terms:
            self._answer_cross_term(endpoint, u_encoded, **at)
        if self._scales.loss_terms:
            residual = self.receive(endpoint, self.label_holder, EncryptedResidual,
                                    **at).residual
            expect_length(residual, len(u_encoded), sender=self.label_holder,
                          message="EncryptedResidual", what="residuals", party=self.name)
            self._send_loss_term(endpoint, residual, u_encoded, **at)

    def end_epoch(self, endpoint: Endpoint, epoch: int) -> None:
        """A yes/no convergence vote if asked for; C's decision."""
        state = self.current
        if self._config.early_stopping == "weights":
            moved = float(np.linalg.norm(state.theta - self._before))
            endpoint.send(self.coordinator, ConvergenceVote(moved <= self._config.tol),
                          epoch=epoch)
        end = endpoint.receive(self.coordinator, EpochEnd, epoch=epoch)
        if end.best:
            state.best = state.theta.copy()
        state.epoch, state.stopped = epoch, end.stop
        return None

    def finish(self, endpoint: Endpoint) -> None:
        """Raw-unit weights; the standardisation's offset folds into B's intercept."""
        state = self.current
        theta = state.best if self._config.early_stopping == "validation" else state.theta
        raw, offset = self.rows.scaler.raw_weights(theta)
        endpoint.send(self.label_holder, InterceptOffset(offset))
        self.model_ = ModelPart(self.name, self.role, list(self.table.feature_names),
                                raw.tolist(), None, endpoint.session, self._config.model,
                                [*self._members])

    # --- pieces of the steps ----------------------------------------------------------

    def _send_scores(self, endpoint: Endpoint, rows: np.ndarray,
                     message: type[EncryptedPartialScores] | type[EncryptedValidationScores],
                     theta: np.ndarray | None = None, *, penalty: bool,
                     **at: int) -> list[int]:
        theta = self.current.theta if theta is None else theta
        u = self.rows.x[rows] @ theta
        u_encoded = self._encode_scores(u, "partial scores", at["epoch"])
        loss_part = self._loss_part(u_encoded, theta, penalty=penalty)
        endpoint.send(self.label_holder, message(self.engine.encrypt(u_encoded),
                                                 self.engine.encrypt([loss_part])), **at)
        if self._scales.poisson:
            self._extend_chain(endpoint, u, **at)
        return u_encoded

    def _extend_chain(self, endpoint: Endpoint, u: np.ndarray, **at: int) -> None:
        """Poisson: this party's factor exp(u_A) into [[prod_k exp(u_Ak)]] (docs/poisson.md).

        The first feature holder encrypts its factor; a later one multiplies
        the product so far (relayed by B) by its own encoded factor, one more
        2^f in the scale, and re-randomises: B, who relayed the ciphertexts,
        cannot test guesses of the factor against them.
        """
        engine = self.engine
        factor = self._encode_scores(np.exp(u), "exp(partial scores)", at["epoch"])
        if self._chain_position == 0:
            chain = engine.encrypt(factor)
        else:
            chain = self.receive(endpoint, self.label_holder, ExtendExpScores, **at).scores
            expect_length(chain, len(factor), sender=self.label_holder,
                          message="ExtendExpScores", what="scores", party=self.name)
            chain = engine.rerandomize(engine.mul_plain(chain, factor))
        endpoint.send(self.label_holder, ChainedExpScores(chain), **at)

    def _send_loss_term(self, endpoint: Endpoint, residual: Any, u_encoded: list[int],
                        **at: int) -> None:
        """Weighted squared losses: [[sum_i r_i u_A,i]] to B, for the weighted loss."""
        engine = self.engine
        endpoint.send(self.label_holder, WeightedLossTerm(
            engine.rerandomize(engine.dot(residual, u_encoded))), **at)

    def _params(self) -> np.ndarray:
        return self.current.theta

    def _set_params(self, params: np.ndarray) -> None:
        self.current.theta = params

    def _penalized(self) -> np.ndarray:
        return np.ones(self.rows.n_features, dtype=bool)

    def _send_gram(self, endpoint: Endpoint, encoded: list[int], **at: int) -> None:
        """L-BFGS: [[this block's Gram entries]] to B, which adds every party's."""
        endpoint.send(self.label_holder, EncryptedGramPart(self.engine.encrypt(encoded)), **at)

    def _send_masked_gradient(self, endpoint: Endpoint, rows: np.ndarray, residual: Any,
                              **at: int) -> list[int]:
        engine = self.engine
        gradient = engine.matvec_t([self.rows.encoded[i] for i in rows], residual)
        masks = draw_masks(engine.n, self.rows.n_features)
        endpoint.send(self.coordinator, MaskedGradient(
            engine.rerandomize(engine.add_plain(gradient, masks))), **at)
        return masks

    def _answer_cross_term(self, endpoint: Endpoint, u_encoded: list[int], **at: int) -> None:
        """[[2 u_Aj . U_j]] for B's loss, from the later feature holders' [[U_j]]."""
        request = self.receive(endpoint, self.label_holder, CrossTermRequest, **at)
        expect_length(request.values, len(u_encoded), sender=self.label_holder,
                      message="CrossTermRequest", what="rows", party=self.name)
        engine = self.engine
        endpoint.send(self.label_holder, CrossTerm(engine.rerandomize(
            engine.dot(request.values, [2 * v for v in u_encoded]))), **at)

    # --- prediction -------------------------------------------------------------------

    def serve_prediction(self, endpoint: Endpoint, *, label_holder: str = "B",
                         coordinator: str = "C", deliver_to: str = "B",
                         alignment: str = DEFAULT_ALIGNMENT) -> None:
        """Send this party's partial scores for the rows shared with the label holder.

        The rows are this party's current data aligned with the label
        holder's prediction rows. With ``deliver_to="B"`` the scores go to B
        in the clear, so B learns u_A for those rows (PROTOCOL.md,
        prediction). With ``deliver_to="C"`` they go to C hidden by masks
        only B can remove in the sum, so C learns the total and no party's
        share, and B learns nothing of u_A.
        """
        if self.model_ is None:
            raise AttributeError(f"party {self.name} has no model: train or load one first")
        positions = align_as_feature_holder(self.table.ids, endpoint, label_holder,
                                            get_alignment(alignment))
        scores = self.model_.score(self.table.features[positions])
        if deliver_to == label_holder:
            endpoint.send(label_holder, PartialScores(tuple(scores.tolist())))
            return
        seed = endpoint.receive(label_holder, PredictionMaskSeed).seed
        endpoint.send(coordinator, MaskedPartialScores(share_scores(
            scores, expand_masks(seed, len(scores)), party=self.name)))
