"""Party C: owns the Paillier private key, decrypts only masked sums and the loss.

The steps follow ``PROTOCOL.md``, stage 2 (numbers in the method docstrings
refer to its steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import phe

from parties.vertical.messages import (
    ConvergenceVote,
    DecryptedMaskedGradient,
    EncryptedGram,
    EncryptedLoss,
    EncryptedValidationLoss,
    EpochEnd,
    MaskedGradient,
    MaskedPartialScores,
    SearchDirection,
    TrainingPlan,
    TrialVerdict,
)
from parties.vertical.scales import PassScales
from parties.vertical.state import CoordinatorState
from vfl.crypto import (
    DEFAULT_BACKEND,
    DEFAULT_KEY_BITS,
    EncryptedVector,
    FixedPointCodec,
    check_key_bits,
    generate_keypair,
    get_backend,
)
from vfl.crypto.plain_engine import check_plaintext_consent
from vfl.crypto.shares import combine_shares
from vfl.errors import CheckpointError, ConfigMismatchError
from vfl.lbfgs import LbfgsRule, LbfgsState
from vfl.model import mean_prediction
from vfl.protocol.channel import Endpoint
from vfl.protocol.messages import PublicKeyMessage
from vfl.runtime.checkpoint import CheckpointStore
from vfl.runtime.role import Role, expect_length
from vfl.runtime.session import Session
from vfl.training import StoppingRule, StoppingState, TrainingConfig, batch_plan, validation_split

__all__ = ["Coordinator"]


class Coordinator(Role[CoordinatorState]):
    """The coordinator (party C).

    C generates a fresh key pair for every training run, sends only the
    public key, decrypts the loss and the masked gradients, and decides when
    to stop. It never receives an ID, a feature, a label or a weight, and
    every gradient it decrypts is hidden by a mask drawn uniformly from Z_n.

    Parameters
    ----------
    key_bits : int
        Paillier modulus size; 2048 (default) or more.
    insecure_key : bool
        Allow keys below 2048 bits. For tests only: such keys can be factored.
    backend : str
        Paillier engine all parties use (see :func:`vfl.crypto.available_backends`).
    insecure_plaintext : bool
        Allow ``backend="plain"``, which encrypts nothing (debugging only);
        every other party must opt in as well.
    name : str
        Party name, "C" by default.
    codec : FixedPointCodec, optional
        Fixed-point encoding announced to the parties.
    keypair : (phe.PaillierPublicKey, phe.PaillierPrivateKey), optional
        Serve every run with this key pair instead of a fresh one per run
        (several runs of one federation on the same rows, such as the
        contribution coalitions, spare the key generation and the engine's
        tables).
    """

    role = "coordinator"
    state_type = CoordinatorState

    def __init__(self, *, key_bits: int = DEFAULT_KEY_BITS, insecure_key: bool = False,
                 backend: str = DEFAULT_BACKEND, insecure_plaintext: bool = False,
                 name: str = "C", codec: FixedPointCodec | None = None,
                 keypair: tuple[phe.PaillierPublicKey, phe.PaillierPrivateKey] | None = None
                 ) -> None:
        super().__init__(name)
        check_key_bits(key_bits, insecure=insecure_key, party=name)
        get_backend(backend)  # fail now, not after key generation, on a typo
        check_plaintext_consent(backend, insecure_plaintext, party=name)
        self.insecure_plaintext = insecure_plaintext
        self.key_bits = key_bits
        self.insecure_key = insecure_key
        self.backend = backend
        self.codec = codec or FixedPointCodec()
        self.keypair = keypair
        self.public_key_: phe.PaillierPublicKey | None = None
        self.predictions_: np.ndarray | None = None
        self.label_holder = "B"
        self.feature_holders: list[str] = ["A1"]
        self._config = TrainingConfig()
        self._private_key: phe.PaillierPrivateKey | None = None
        self._decryptor: Any = None
        self._plan: TrainingPlan | None = None
        self._scales = PassScales("linear", False, 1)
        self._batches = 0
        self._rule = StoppingRule(self._config)
        self._epoch_loss = (0.0, 0)  # sum of batch losses x rows, rows

    def with_same_key(self) -> Coordinator:
        """A new coordinator like this one that serves this run's key pair.

        For further runs of the same federation on the same rows (contribution
        coalitions): they spare a key generation and the engine's tables.
        """
        if self.public_key_ is None or self._private_key is None:
            raise AttributeError(f"party {self.name} has made no key yet: run it first")
        return Coordinator(key_bits=self.key_bits, insecure_key=self.insecure_key,
                           backend=self.backend, insecure_plaintext=self.insecure_plaintext,
                           name=self.name, codec=self.codec,
                           keypair=(self.public_key_, self._private_key))

    @property
    def losses_(self) -> list[float]:
        """Mean training loss of every epoch of the last run."""
        return [] if self.state is None else list(self.state.losses)

    @property
    def validation_losses_(self) -> list[float]:
        return [] if self.state is None else list(self.state.validation_losses)

    def run_training(self, endpoint: Endpoint, config: TrainingConfig, *,
                     label_holder: str = "B", feature_holders: Sequence[str] = ("A1",),
                     checkpoints: CheckpointStore[CoordinatorState] | None = None) -> None:
        """Serve one training run: key, decryptions, convergence decisions.

        With `checkpoints`, C saves its stopping rule and losses after every
        epoch and resumes with the others; it makes a fresh key either way
        (no ciphertext outlives its epoch).
        """
        self._config, self.label_holder = config, label_holder
        self.feature_holders = list(feature_holders)
        self.state, self._plan = None, None
        Session(self, endpoint, checkpoints=checkpoints).run()

    # --- lifecycle steps ---------------------------------------------------------------

    @property
    def leader(self) -> str:
        return self.label_holder

    @property
    def max_epochs(self) -> int:
        return self._config.epochs

    def open(self, endpoint: Endpoint) -> None:
        """Step 1: a key pair; the public key (and the encoding) to every data party."""
        public_key, private_key = self.keypair or generate_keypair(
            self.key_bits, insecure=self.insecure_key)
        self.public_key_ = public_key
        # Kept on C's own object so C's operator (and tests) can audit decryptions.
        self._private_key = private_key
        engine_class, decryptor_class = get_backend(self.backend)
        self._engine = engine_class(public_key, engine_class.public_params_for(private_key))
        self._decryptor = decryptor_class(private_key)
        message = PublicKeyMessage(public_key.n, self.backend, dict(self._engine.public_params),
                                   self.codec.frac_bits, self.codec.value_bits,
                                   self.codec.data_frac_bits)
        for name in (self.label_holder, *self.feature_holders):
            endpoint.send(name, message)

    def identity(self) -> dict[str, Any]:
        return {"role": self.role, "config": self._config.to_dict(),
                "label_holder": self.label_holder, "feature_holders": self.feature_holders}

    def agree_plan(self, endpoint: Endpoint, resumed: CoordinatorState | None) -> None:
        """B's plan must be the run C was configured for (and, resumed, the same rows)."""
        plan = endpoint.receive(self.label_holder, TrainingPlan)
        if plan.config != self._config:
            raise ConfigMismatchError(
                f"{self.label_holder} runs {plan.config}, the coordinator was configured with "
                f"{self._config}; start every party with the same training parameters",
                party=self.name)
        if list(plan.feature_holders) != self.feature_holders:
            raise ConfigMismatchError(
                f"{self.label_holder} trains with feature holders "
                f"{list(plan.feature_holders)}, the coordinator expected "
                f"{self.feature_holders}", party=self.name)
        if resumed is not None and (resumed.n_rows, resumed.split_seed) != (plan.n_rows,
                                                                            plan.split_seed):
            raise CheckpointError(
                f"{self.label_holder} trains on {plan.n_rows} rows (split seed "
                f"{plan.split_seed}), the checkpoint of epoch {resumed.epoch} on "
                f"{resumed.n_rows} (split seed {resumed.split_seed}); the parties' data "
                "changed since", party=self.name)
        self._plan = plan
        self._scales = PassScales(self._config.model, plan.weighted, len(self.feature_holders))
        train, _ = validation_split(plan.n_rows, self._config.validation_fraction,
                                    plan.split_seed)
        self._batches = len(batch_plan(len(train), self._config.batch_size, 0))

    def fresh_state(self) -> CoordinatorState:
        assert self._plan is not None
        return CoordinatorState(epoch=0, stopped=False, n_rows=self._plan.n_rows,
                                split_seed=self._plan.split_seed, losses=[],
                                validation_losses=[], stopping=StoppingState(),
                                search=(LbfgsState.fresh() if self._config.optimizer == "lbfgs"
                                        else None))

    def start_epoch(self, endpoint: Endpoint, epoch: int) -> int:
        self._rule = StoppingRule(self._config, self.current.stopping)
        self._epoch_loss = (0.0, 0)
        return self._batches

    def batch_step(self, endpoint: Endpoint, epoch: int, batch: int) -> None:
        """Step 6: decrypt each data party's masked gradient and return it; the loss.

        Under L-BFGS the epoch's one batch is an iteration (docs/lbfgs.md).
        """
        if self._config.optimizer == "lbfgs":
            self._lbfgs_iteration(endpoint, epoch)
            return
        loss, batch_rows = self._serve_pass(endpoint, epoch=epoch, batch=batch)
        total, rows = self._epoch_loss
        self._epoch_loss = (total + loss * batch_rows, rows + batch_rows)

    def _serve_pass(self, endpoint: Endpoint, **at: int) -> tuple[float, int]:
        """Step 6 of one pass: the masked gradients back to their owners; (loss, rows)."""
        for owner in (*self.feature_holders, self.label_holder):
            masked = self.receive(endpoint, owner, MaskedGradient, **at)
            endpoint.send(owner, DecryptedMaskedGradient(
                tuple(self._decryptor.decrypt(masked.values))), **at)
        loss = self.receive(endpoint, self.label_holder, EncryptedLoss, **at)
        return self._decrypt_loss(loss.loss, loss.batch_rows), loss.batch_rows

    def _lbfgs_iteration(self, endpoint: Endpoint, epoch: int) -> None:
        """One L-BFGS iteration: judge each trial pass's loss (Armijo), then the next
        direction from the Gram round. The epoch's loss is the accepted point's."""
        state = self.current
        assert state.search is not None, "an L-BFGS run's state holds the search"
        rule, number = LbfgsRule(self._config, state.search), 1
        if state.epoch == 0:
            at = {"epoch": epoch, "batch": number}
            rule.begin(self._serve_pass(endpoint, **at)[0])
            self._direction_round(endpoint, rule, **at)
            number += 1
        step, trial = state.search.step, 1
        while True:
            at = {"epoch": epoch, "batch": number}
            loss = self._serve_pass(endpoint, **at)[0]
            change = (self._decrypt_products(endpoint, 1, **at)[0]
                      if trial == 1 and rule.exact else None)
            accepted, taken = rule.verdict(loss, step, trial, change)
            verdict = TrialVerdict(accepted, None if taken is None else float(taken))
            for owner in (*self.feature_holders, self.label_holder):
                endpoint.send(owner, verdict, **at)
            if accepted:
                self._direction_round(endpoint, rule, **at)
            if accepted or taken is None:
                break
            step, trial, number = taken, trial + 1, number + 1
        self._epoch_loss = (state.search.loss, 1)

    def _direction_round(self, endpoint: Endpoint, rule: LbfgsRule, **at: int) -> None:
        """Decrypt the summed Gram entries (whole vectors' inner products), send c and t."""
        keep, coefficients, step = rule.direction(
            self._decrypt_products(endpoint, rule.expected_entries, **at))
        direction = SearchDirection(keep, tuple(float(c) for c in coefficients), float(step))
        for owner in (*self.feature_holders, self.label_holder):
            endpoint.send(owner, direction, **at)

    def validation_step(self, endpoint: Endpoint, epoch: int) -> None:
        if self._config.validation_fraction > 0:
            message = self.receive(endpoint, self.label_holder, EncryptedValidationLoss,
                                   epoch=epoch)
            self.current.validation_losses.append(self._decrypt_loss(message.loss,
                                                                     message.rows))

    def end_epoch(self, endpoint: Endpoint, epoch: int) -> float:
        """C decides convergence from the loss (and the votes) and tells every party."""
        state = self.current
        total, rows = self._epoch_loss
        epoch_loss = total / rows
        state.losses.append(epoch_loss)
        validation_loss = (state.validation_losses[-1]
                           if self._config.validation_fraction > 0 else None)
        votes = None
        if self._config.early_stopping == "weights":
            votes = [endpoint.receive(p, ConvergenceVote, epoch=epoch).converged
                     for p in (*self.feature_holders, self.label_holder)]
        stop, best = self._rule.update(epoch_loss, validation_loss, votes)
        if state.search is not None:
            stop = stop or LbfgsRule(self._config, state.search).converged
        endpoint.send(self.label_holder, EpochEnd(stop, epoch_loss, validation_loss, best),
                      epoch=epoch)
        # Whether the validation loss improved depends on the labels: a feature
        # holder is told only when it must keep its best weights (README, leakage).
        told = best if self._config.early_stopping == "validation" else False
        for name in self.feature_holders:
            endpoint.send(name, EpochEnd(stop, None, None, told), epoch=epoch)
        state.epoch, state.stopped = epoch, stop
        return epoch_loss

    def _decrypt_products(self, endpoint: Endpoint, count: int, **at: int) -> np.ndarray:
        """B's [[summed inner products]] of whole vectors, decrypted and decoded."""
        message = self.receive(endpoint, self.label_holder, EncryptedGram, **at)
        expect_length(message.values, count, sender=self.label_holder,
                      message="EncryptedGram", what="entries", party=self.name)
        codec = self.codec
        return codec.decode(codec.to_signed(self._decryptor.decrypt(message.values),
                                            self.engine.n, what="L-BFGS inner products",
                                            party=self.name), scale_power=2)

    def close(self) -> None:
        if self._decryptor is not None:
            self._decryptor.close()
            self._decryptor = None
        super().close()

    def _decrypt_loss(self, ciphertexts: EncryptedVector, rows: int) -> float:
        """Mean loss over `rows` rows from [[S]] (see EncryptedLoss)."""
        expect_length(ciphertexts, 1, sender=self.label_holder, message="EncryptedLoss",
                      what="ciphertexts", party=self.name)
        codec, n, scales = self.codec, self.engine.n, self._scales
        s_value = codec.decode(codec.to_signed(self._decryptor.decrypt(ciphertexts), n,
                                               what="loss", party=self.name),
                               scale_power=scales.loss)[0]
        return scales.mean_loss(s_value, rows, self._config.residual_factor)

    # --- prediction -------------------------------------------------------------------

    def receive_predictions(self, endpoint: Endpoint, *, label_holder: str = "B",
                            feature_holders: Sequence[str] = ("A1",)) -> np.ndarray:
        """Receive every party's masked shares and return the predictions.

        C sees uniformly masked shares from each party and learns only the
        sums: one prediction per row (P(class 1) for logistic models, the expected
        count mu for Poisson ones), in
        the alignment order, with no ID.
        """
        own = endpoint.receive(label_holder, MaskedPartialScores)
        shares = [own.values]
        for name in feature_holders:
            message = endpoint.receive(name, MaskedPartialScores)
            expect_length(message.values, len(own.values), sender=name,
                          message="MaskedPartialScores", what="shares", party=self.name)
            shares.append(message.values)
        total = combine_shares(shares)
        self.predictions_ = mean_prediction(own.model or "linear", total)
        return self.predictions_
