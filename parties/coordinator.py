"""Party C: owns the Paillier private key, decrypts only masked sums and the loss."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vfl.checkpoint import CheckpointStore
from vfl.crypto import (
    DEFAULT_BACKEND,
    DEFAULT_KEY_BITS,
    FixedPointCodec,
    check_key_bits,
    generate_keypair,
    get_backend,
)
from vfl.crypto.shares import combine_shares
from vfl.errors import CheckpointError, ConfigMismatchError
from vfl.model import sigmoid
from vfl.protocol.channel import Endpoint
from vfl.protocol.messages import (
    ConvergenceVote,
    DecryptedMaskedGradient,
    EncryptedLoss,
    EncryptedValidationLoss,
    MaskedPartialScores,
    EpochEnd,
    MaskedGradient,
    PublicKeyMessage,
    TrainingPlan,
)
from vfl.training import StoppingRule, TrainingConfig, batch_plan, validation_split

from parties.base import Party

__all__ = ["Coordinator"]


class Coordinator(Party):
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
    name : str
        Party name, "C" by default.
    codec : FixedPointCodec, optional
        Fixed-point encoding announced to the parties.
    """

    role = "coordinator"

    def __init__(self, *, key_bits: int = DEFAULT_KEY_BITS, insecure_key: bool = False,
                 backend: str = DEFAULT_BACKEND, name: str = "C",
                 codec: FixedPointCodec | None = None) -> None:
        super().__init__(name)
        check_key_bits(key_bits, insecure=insecure_key, party=name)
        get_backend(backend)  # fail now, not after key generation, on a typo
        self.key_bits = key_bits
        self.insecure_key = insecure_key
        self.backend = backend
        self.codec = codec or FixedPointCodec()
        self.public_key_ = None
        #: Serve the next run with the last run's key pair instead of a fresh
        #: one (contribution coalitions of one federation).
        self.reuse_key = False
        self.losses_: list[float] = []
        self.validation_losses_: list[float] = []
        self.predictions_: np.ndarray | None = None

    def run_training(self, endpoint: Endpoint, config: TrainingConfig, *,
                     label_holder: str = "B", feature_holders: Sequence[str] = ("A1",),
                     checkpoints: CheckpointStore | None = None) -> None:
        """Serve one training run: key, decryptions, convergence decisions.

        With `checkpoints`, C saves its stopping rule and losses after every
        epoch and resumes with the others; it makes a fresh key either way
        (no ciphertext outlives its epoch).
        """
        if self.reuse_key and self.public_key_ is not None:
            public_key, private_key = self.public_key_, self._private_key
        else:
            public_key, private_key = generate_keypair(self.key_bits, insecure=self.insecure_key)
        self.public_key_ = public_key
        # Kept on C's own object so C's operator (and tests) can audit decryptions.
        self._private_key = private_key
        engine_class, decryptor_class = get_backend(self.backend)
        self._engine = engine_class(public_key, engine_class.public_params_for(private_key))
        decryptor = decryptor_class(private_key)
        try:
            self._serve(endpoint, config, label_holder, list(feature_holders), decryptor,
                        checkpoints)
        finally:
            decryptor.close()
            self._close_engine()

    def receive_predictions(self, endpoint: Endpoint, *, label_holder: str = "B",
                            feature_holders: Sequence[str] = ("A1",)) -> np.ndarray:
        """Receive every party's masked shares and return the predictions.

        C sees uniformly masked shares from each party and learns only the
        sums: one prediction per row (P(class 1) for logistic models), in
        the alignment order, with no ID.
        """
        own = endpoint.receive(label_holder, MaskedPartialScores)
        shares = [own.values]
        for name in feature_holders:
            message = endpoint.receive(name, MaskedPartialScores)
            if len(message.values) != len(own.values):
                raise ValueError(f"party {self.name}: {name} sent {len(message.values)} "
                                 f"shares, {label_holder} {len(own.values)}")
            shares.append(message.values)
        total = combine_shares(shares)
        self.predictions_ = sigmoid(total) if own.model == "logistic" else total
        return self.predictions_

    def _serve(self, endpoint: Endpoint, config: TrainingConfig, label_holder: str,
               feature_holders: list[str], decryptor,
               checkpoints: CheckpointStore | None = None) -> None:
        assert self._engine is not None
        n = self._engine.n
        key_message = PublicKeyMessage(n, self.backend, dict(self._engine.public_params),
                                       self.codec.frac_bits, self.codec.value_bits)
        for name in (label_holder, *feature_holders):
            endpoint.send(name, key_message)
        resumed = self._resume_as_follower(endpoint, checkpoints, label_holder, {
            "role": self.role, "config": config.to_dict(), "label_holder": label_holder,
            "feature_holders": feature_holders})

        plan = endpoint.receive(label_holder, TrainingPlan)
        if plan.config != config:
            raise ConfigMismatchError(
                f"{label_holder} runs {plan.config}, the coordinator was configured with "
                f"{config}; start every party with the same training parameters",
                party=self.name)
        if list(plan.feature_holders) != feature_holders:
            raise ConfigMismatchError(
                f"{label_holder} trains with feature holders {list(plan.feature_holders)}, "
                f"the coordinator expected {feature_holders}", party=self.name)
        train, _ = validation_split(plan.n_rows, config.validation_fraction, plan.split_seed)
        batches = len(batch_plan(len(train), config.batch_size, 0))
        owners = [*feature_holders, label_holder]
        data_parties = [*feature_holders, label_holder]
        k = config.residual_factor
        # Mean Taylor loss = S / (2 m k) + log 2 - 1/2 (see EncryptedLoss).
        constant = math.log(2.0) - 0.5 if config.model == "logistic" else 0.0
        rule = StoppingRule(config)
        self.losses_, self.validation_losses_ = [], []
        done, stopped = 0, False
        if resumed is not None:
            if (resumed["n_rows"], resumed["split_seed"]) != (plan.n_rows, plan.split_seed):
                raise CheckpointError(
                    f"{label_holder} trains on {plan.n_rows} rows (split seed "
                    f"{plan.split_seed}), the checkpoint of epoch {resumed['epoch']} on "
                    f"{resumed['n_rows']} (split seed {resumed['split_seed']}); the "
                    "parties' data changed since", party=self.name)
            done, stopped = resumed["epoch"], resumed["stop"]
            self.losses_ = resumed["losses"]
            self.validation_losses_ = resumed["validation_losses"]
            _restore_rule(rule, resumed["rule"])

        def save(epoch: int, stop: bool) -> None:
            if checkpoints is not None:
                checkpoints.save(epoch, {
                    "epoch": epoch, "stop": stop, "n_rows": plan.n_rows,
                    "split_seed": plan.split_seed, "rule": _rule_state(rule),
                    "losses": self.losses_, "validation_losses": self.validation_losses_})

        if resumed is None:
            save(0, False)

        def decrypt_loss(ciphertexts, rows: int) -> float:
            """Mean loss over `rows` rows from [[S]]."""
            if len(ciphertexts) != 1:
                raise ValueError(f"party {self.name}: a loss must be one ciphertext")
            s_value = self.codec.decode(self.codec.to_signed(
                decryptor.decrypt(ciphertexts), n, what="loss", party=self.name),
                scale_power=2)[0]
            return s_value / (2 * rows * k) + constant

        last = done if stopped else config.epochs
        for epoch in range(done + 1, last + 1):
            weighted, rows = 0.0, 0
            for number in range(1, batches + 1):
                at = {"epoch": epoch, "batch": number}
                for owner in owners:
                    masked = self._receive(endpoint, owner, MaskedGradient, **at)
                    endpoint.send(owner, DecryptedMaskedGradient(
                        tuple(decryptor.decrypt(masked.values))), **at)
                loss = self._receive(endpoint, label_holder, EncryptedLoss, **at)
                weighted += decrypt_loss(loss.loss, loss.batch_rows) * loss.batch_rows
                rows += loss.batch_rows
            epoch_loss = weighted / rows
            self.losses_.append(epoch_loss)
            validation_loss = None
            if config.validation_fraction > 0:
                message = self._receive(endpoint, label_holder, EncryptedValidationLoss,
                                        epoch=epoch)
                validation_loss = decrypt_loss(message.loss, message.rows)
                self.validation_losses_.append(validation_loss)
            votes = None
            if config.early_stopping == "weights":
                votes = [endpoint.receive(p, ConvergenceVote, epoch=epoch).converged
                         for p in data_parties]
            stop, best = rule.update(epoch_loss, validation_loss, votes)
            endpoint.send(label_holder, EpochEnd(stop, epoch_loss, validation_loss, best),
                          epoch=epoch)
            for name in feature_holders:
                endpoint.send(name, EpochEnd(stop, None, None, best), epoch=epoch)
            save(epoch, stop)
            if stop:
                break


# StoppingRule (vfl.training) keeps its state in private attributes and has no
# state()/restore() of its own yet; these two read and set exactly them.
def _rule_state(rule: StoppingRule) -> dict:
    return {key: value for key, value in vars(rule).items() if key != "config"}


def _restore_rule(rule: StoppingRule, state: dict) -> None:
    for key, value in state.items():
        if not hasattr(rule, key) or key == "config":
            raise CheckpointError(f"the checkpoint's stopping rule has an unknown field "
                                  f"{key!r}", party=None)
        setattr(rule, key, value)
