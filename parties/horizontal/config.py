"""The training options of a horizontal run: one frozen dataclass every party checks.

The server sends it in the plan (:class:`~parties.horizontal.messages.HorizontalPlan`);
the clients and the key holder compare it with their own and refuse to start
on any difference.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from parties.horizontal.models import HORIZONTAL_MODELS, LocalTraining
from vfl.errors import ConfigError

__all__ = ["ALGORITHMS", "SERVER_OPTIMIZERS", "HorizontalConfig"]

ALGORITHMS = ("fedsgd", "fedavg", "fedprox")
SERVER_OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class HorizontalConfig:
    """Hyper-parameters of one horizontal run.

    Parameters
    ----------
    model : {"linear", "logistic", "softmax", "mlp"}
        ``mlp``: one hidden layer of `hidden_units` tanh units and a softmax
        output over the classes, from Glorot-uniform weights drawn from `seed`.
    algorithm : {"fedsgd", "fedavg", "fedprox"}
        FedSGD: one full-batch gradient step per client per round (it needs
        ``local_epochs=1`` and ``batch_size=None``). FedAvg: `local_epochs` passes
        of mini-batch SGD. FedProx: FedAvg plus the proximal term `mu`.
    rounds : int
        Rounds of the federation.
    local_epochs : int
        E, a client's local passes over its rows in a round.
    batch_size : int or None
        B, rows per local step; None: the full batch.
    learning_rate : float
        Clients' local step size.
    mu : float
        FedProx's proximal weight (used only by "fedprox", where it must be > 0).
    server_optimizer : {"sgd", "adam"}
        "sgd": ``W += server_learning_rate * mean update`` (1.0 is plain FedAvg);
        "adam": FedAdam (Reddi et al., 2021) on the pseudo-gradient ``-mean update``.
    server_learning_rate, beta1, beta2, tau : float
        The server optimiser's step, moment decays and FedAdam's adaptivity.
    fraction : float
        Share of the clients sampled each round (at least `min_clients`).
    min_clients : int
        Fewest updates a round's sum may hold; a round with fewer arrivals is
        not decrypted (one client's update would be exposed) and changes nothing.
    seed : int
        Seed of the client sampling and of the clients' local batch orders.
    standardize : bool
        Standardise the columns with federated means and variances.
    hidden_units : int
        The MLP's hidden units (ignored by the other models).
    frac_bits, value_bits : int
        Fixed-point slot of an update value: multiples of ``2**-frac_bits``,
        ``|x| < 2**value_bits`` (x being a value of the row-count-weighted update;
        the row-weighted loss and the row count have slots of their own,
        :mod:`parties.horizontal.update`).
    """

    model: str = "linear"
    algorithm: str = "fedavg"
    rounds: int = 10
    local_epochs: int = 1
    batch_size: int | None = None
    learning_rate: float = 0.1
    mu: float = 0.01
    server_optimizer: str = "sgd"
    server_learning_rate: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3
    fraction: float = 1.0
    min_clients: int = 2
    seed: int = 0
    standardize: bool = True
    hidden_units: int = 16
    frac_bits: int = 32
    value_bits: int = 32

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        need(self.model in HORIZONTAL_MODELS,
             f"model must be one of {', '.join(HORIZONTAL_MODELS)}, got {self.model!r}")
        need(self.algorithm in ALGORITHMS,
             f"algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        need(self.server_optimizer in SERVER_OPTIMIZERS,
             f"server_optimizer must be one of {', '.join(SERVER_OPTIMIZERS)}, got "
             f"{self.server_optimizer!r}")
        for name in ("rounds", "local_epochs", "min_clients", "seed", "hidden_units",
                     "frac_bits", "value_bits"):
            value = getattr(self, name)
            need(isinstance(value, int) and not isinstance(value, bool),
                 f"{name} must be an integer, got {value!r}")
        need(self.rounds >= 1, f"rounds must be >= 1, got {self.rounds}")
        need(self.hidden_units >= 1, f"hidden_units must be >= 1, got {self.hidden_units}")
        need(self.local_epochs >= 1, f"local_epochs must be >= 1, got {self.local_epochs}")
        need(self.batch_size is None or (isinstance(self.batch_size, int)
                                         and not isinstance(self.batch_size, bool)
                                         and self.batch_size >= 1),
             f"batch_size must be a positive integer or None (full batch), got "
             f"{self.batch_size!r}")
        need(self.min_clients >= 2,
             f"min_clients must be >= 2 (a sum of one update is that update), got "
             f"{self.min_clients}")
        need(0 < self.fraction <= 1, f"fraction must be in (0, 1], got {self.fraction}")
        for name in ("learning_rate", "server_learning_rate", "tau"):
            value = getattr(self, name)
            need(math.isfinite(value) and value > 0, f"{name} must be > 0, got {value}")
        need(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "beta1 and beta2 must be in [0, 1)")
        need(math.isfinite(self.mu) and self.mu >= 0, f"mu must be >= 0, got {self.mu}")
        need(self.frac_bits >= 8, f"frac_bits must be at least 8, got {self.frac_bits}")
        need(self.value_bits >= 1, f"value_bits must be at least 1, got {self.value_bits}")
        if self.algorithm == "fedsgd":
            need(self.local_epochs == 1 and self.batch_size is None,
                 "fedsgd takes one full-batch gradient step per round: use local_epochs=1 "
                 "and batch_size=None (full), or algorithm='fedavg'")
        if self.algorithm == "fedprox":
            need(self.mu > 0, "fedprox needs mu > 0 (mu = 0 is fedavg)")

    @property
    def local(self) -> LocalTraining:
        """What each client does in a round."""
        return LocalTraining(self.local_epochs, self.batch_size, self.learning_rate,
                             self.mu if self.algorithm == "fedprox" else 0.0)

    def sampled(self, clients: int) -> int:
        """Clients sampled per round out of `clients` available."""
        return min(clients, max(self.min_clients, math.ceil(self.fraction * clients - 1e-9)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
