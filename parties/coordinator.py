"""Party C: owns the Paillier private key, decrypts only masked sums and the loss."""

from __future__ import annotations

from collections.abc import Sequence

from vfl.crypto import (
    DEFAULT_BACKEND,
    DEFAULT_KEY_BITS,
    FixedPointCodec,
    check_key_bits,
    generate_keypair,
    get_backend,
)
from vfl.errors import ConfigMismatchError
from vfl.protocol.channel import Endpoint
from vfl.protocol.messages import (
    DecryptedMaskedGradient,
    EncryptedLoss,
    EpochEnd,
    MaskedGradient,
    PublicKeyMessage,
    TrainingPlan,
)
from vfl.training import TrainingConfig, batch_plan

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
        self.losses_: list[float] = []

    def run_training(self, endpoint: Endpoint, config: TrainingConfig, *,
                     label_holder: str = "B", feature_holders: Sequence[str] = ("A1",)) -> None:
        """Serve one training run: key, decryptions, convergence decisions."""
        public_key, private_key = generate_keypair(self.key_bits, insecure=self.insecure_key)
        self.public_key_ = public_key
        # Kept on C's own object so C's operator (and tests) can audit decryptions.
        self._private_key = private_key
        engine_class, decryptor_class = get_backend(self.backend)
        self._engine = engine_class(public_key, engine_class.public_params_for(private_key))
        decryptor = decryptor_class(private_key)
        try:
            self._serve(endpoint, config, label_holder, list(feature_holders), decryptor)
        finally:
            decryptor.close()
            self._close_engine()

    def _serve(self, endpoint: Endpoint, config: TrainingConfig, label_holder: str,
               feature_holders: list[str], decryptor) -> None:
        assert self._engine is not None
        n = self._engine.n
        key_message = PublicKeyMessage(n, self.backend, dict(self._engine.public_params),
                                       self.codec.frac_bits, self.codec.value_bits)
        for name in (label_holder, *feature_holders):
            endpoint.send(name, key_message)

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
        batches = len(batch_plan(plan.n_rows, config.batch_size, 0))
        owners = [*feature_holders, label_holder]
        self.losses_ = []
        previous = None
        for epoch in range(1, config.epochs + 1):
            weighted, rows = 0.0, 0
            for number in range(1, batches + 1):
                at = {"epoch": epoch, "batch": number}
                loss = self._receive(endpoint, label_holder, EncryptedLoss, **at)
                if len(loss.loss) != 1:
                    raise ValueError(f"party {self.name}: the loss must be one ciphertext")
                two_m_loss = self.codec.decode(self.codec.to_signed(
                    decryptor.decrypt(loss.loss), n, what="loss", party=self.name),
                    scale_power=2)[0]
                weighted += two_m_loss / 2  # = m * L for this batch
                rows += loss.batch_rows
                for owner in owners:
                    masked = self._receive(endpoint, owner, MaskedGradient, **at)
                    endpoint.send(owner, DecryptedMaskedGradient(
                        tuple(decryptor.decrypt(masked.values))), **at)
            epoch_loss = weighted / rows
            self.losses_.append(epoch_loss)
            stop = (config.tol > 0 and previous is not None
                    and abs(previous - epoch_loss) <= config.tol)
            previous = epoch_loss
            endpoint.send(label_holder, EpochEnd(stop, epoch_loss), epoch=epoch)
            for name in feature_holders:
                endpoint.send(name, EpochEnd(stop), epoch=epoch)
            if stop:
                break
