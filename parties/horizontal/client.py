"""A client of the horizontal protocol: trains on its own rows, sends only ciphertexts.

Each round a sampled client trains locally from the global model and sends
S one packed encryption of ``[n_k (W_k - W), n_k L_k(W), n_k]``: its
row-weighted update, its row-weighted loss at the global model, and its row
count. Nothing leaves it in the clear.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from parties.horizontal.config import HorizontalConfig
from parties.horizontal.messages import (
    ColumnMeans,
    EncryptedStatistics,
    EncryptedUpdate,
    FinalModel,
    HorizontalPlan,
    RoundStart,
    Standardisation,
)
from parties.horizontal.models import CLASS_MODELS, Architecture, local_update, targets
from parties.horizontal.server import statistics_layout
from parties.horizontal.state import ClientState
from vfl.crypto.packing import PackingLayout
from vfl.errors import ConfigMismatchError, InvalidLabelError
from vfl.protocol.channel import Endpoint
from vfl.runtime.role import Role, expect_length

__all__ = ["Client", "client_rng"]


def client_rng(seed: int, round_number: int, index: int) -> np.random.Generator:
    """The stream of client `index` (its place in the plan) in a round: its batch orders."""
    return np.random.default_rng([seed, round_number, index])


class Client(Role[ClientState]):
    """One data holder of a horizontal federation.

    Parameters
    ----------
    name : str
    features : numpy.ndarray
        Its rows, ``(n_k, d)``, columns in the order of `feature_names`.
    labels : numpy.ndarray
        Its labels, ``(n_k,)``.
    config : HorizontalConfig
        The run it agrees to (checked against the server's plan).
    feature_names : sequence of str
    clients : sequence of str
        Every client of the federation, itself included, in the plan's order.
    server, key_holder : str
    leave_at_round : int, optional
        Simulate a crash: in this round the client receives the model and then
        stops without answering (tests and demonstrations of dropout).
    """

    role = "client"
    state_type = ClientState

    def __init__(self, name: str, features: np.ndarray, labels: np.ndarray,
                 config: HorizontalConfig, *, feature_names: Sequence[str],
                 clients: Sequence[str], server: str = "S", key_holder: str = "C",
                 leave_at_round: int | None = None) -> None:
        super().__init__(name)
        self.raw_features = np.asarray(features, dtype=np.float64)
        self.labels = np.asarray(labels, dtype=np.float64)
        if self.raw_features.ndim != 2 or len(self.labels) != len(self.raw_features):
            raise ValueError(f"party {name}: features must be (rows, d) with one label per row")
        if config.model == "logistic" and not set(np.unique(self.labels)) <= {0.0, 1.0}:
            raise InvalidLabelError("a logistic model needs labels 0 and 1", party=name)
        self.config = config
        self.feature_names = list(feature_names)
        self.clients = list(clients)
        if name not in self.clients:
            raise ValueError(f"party {name}: not among the federation's clients {self.clients}")
        self.server = server
        self.key_holder = key_holder
        self.leave_at_round = leave_at_round
        self.features = self.raw_features
        self.rounds_: list[dict[str, float]] = []  # its own metrics, never sent
        self.weights_: np.ndarray | None = None
        self._plan: HorizontalPlan | None = None
        self._target = np.zeros((0, 1))
        self._layout: PackingLayout | None = None
        self._round: RoundStart | None = None
        self._leaving = False

    @property
    def leader(self) -> str:
        return self.server

    @property
    def max_epochs(self) -> int:
        return self.config.rounds

    @property
    def rows(self) -> int:
        return len(self.labels)

    def open(self, endpoint: Endpoint) -> None:
        self.receive_key(endpoint, self.key_holder)

    def align(self, endpoint: Endpoint) -> None:
        """Federated standardisation: encrypted column sums and row count, then squares."""
        if not self.config.standardize:
            return
        layout = statistics_layout(self.engine.n, self.config, len(self.clients))
        x = self.raw_features
        self._send_statistics(endpoint, layout, [*x.sum(axis=0), float(self.rows)], batch=1)
        means = np.asarray(endpoint.receive(self.server, ColumnMeans, epoch=0, batch=1).means)
        expect_length(means, x.shape[1], sender=self.server, message="ColumnMeans",
                      what="means", party=self.name)
        self._send_statistics(endpoint, layout, ((x - means) ** 2).sum(axis=0), batch=2)
        final = endpoint.receive(self.server, Standardisation, epoch=0, batch=2)
        expect_length(final.scales, x.shape[1], sender=self.server, message="Standardisation",
                      what="scales", party=self.name)
        self.features = (x - np.asarray(final.means)) / np.asarray(final.scales)

    def identity(self) -> dict[str, Any]:
        digest = hashlib.sha256(self.raw_features.tobytes() + self.labels.tobytes()).hexdigest()
        return {"role": self.role, "config": self.config.to_dict(),
                "features": self.feature_names, "data": digest}

    def agree_plan(self, endpoint: Endpoint, resumed: ClientState | None) -> None:
        plan = endpoint.receive(self.server, HorizontalPlan)
        if plan.config != self.config:
            raise ConfigMismatchError(
                f"{self.server} runs {plan.config}, this client was configured with "
                f"{self.config}; start every party with the same options", party=self.name)
        if list(plan.features) != self.feature_names:
            raise ConfigMismatchError(
                f"{self.server} trains on columns {list(plan.features)}, this client holds "
                f"{self.feature_names}", party=self.name)
        if list(plan.clients) != self.clients:
            raise ConfigMismatchError(
                f"{self.server} runs clients {list(plan.clients)}, this client expected "
                f"{self.clients}", party=self.name)
        if self.config.model in CLASS_MODELS:
            unknown = set(np.unique(self.labels)) - set(plan.classes)
            if unknown:
                raise InvalidLabelError(
                    f"labels {sorted(unknown)} are not among the run's classes "
                    f"{list(plan.classes)}", party=self.name)
        self._plan = plan
        self._target = targets(self.config.model, self.labels, plan.classes)
        self.architecture = Architecture(self.config.model, len(self.feature_names),
                                         self._target.shape[1], self.config.hidden_units)
        self._layout = PackingLayout.for_modulus(
            self.engine.n, frac_bits=self.config.frac_bits, value_bits=self.config.value_bits,
            max_summands=len(plan.clients))

    def fresh_state(self) -> ClientState:
        return ClientState(epoch=0, stopped=False, rounds_joined=[])

    def start_epoch(self, endpoint: Endpoint, epoch: int) -> int:
        self._round = endpoint.receive(self.server, RoundStart, epoch=epoch, batch=1)
        return 1

    def batch_step(self, endpoint: Endpoint, epoch: int, batch: int) -> None:
        """Train locally from the global model; send the packed, encrypted update."""
        assert self._round is not None and self._plan is not None and self._layout is not None
        if epoch == self.leave_at_round:
            self._leaving = True
            return
        if not self._round.selected:
            return
        model, rows = self.architecture, float(self.rows)
        expect_length(self._round.weights, model.parameters, sender=self.server,
                      message="RoundStart", what="weights", party=self.name)
        weights = np.asarray(self._round.weights, dtype=np.float64)
        before = model.loss(weights, self.features, self._target)
        index = self.clients.index(self.name)
        delta = local_update(model, weights, self.features, self._target, self.config.local,
                             client_rng(self.config.seed, epoch, index))
        after = model.loss(weights + delta, self.features, self._target)
        values = np.concatenate([rows * delta, [rows * before, rows]])
        packed = self._layout.pack(values, what="update", party=self.name)
        endpoint.send(self.server, EncryptedUpdate(self.engine.encrypt(packed)), epoch=epoch,
                      batch=1)
        self.current.rounds_joined.append(epoch)
        self.rounds_.append({"round": epoch, "rows": self.rows, "loss_before": before,
                             "loss_after": after})

    def end_epoch(self, endpoint: Endpoint, epoch: int) -> None:
        self.current.epoch = epoch
        self.current.stopped = self._leaving
        return None

    def finish(self, endpoint: Endpoint) -> None:
        if self._leaving or self.current.stopped:  # it left the run: S sends it nothing
            return
        final = endpoint.receive(self.server, FinalModel)
        expect_length(final.weights, self.architecture.parameters, sender=self.server,
                      message="FinalModel", what="weights", party=self.name)
        self.weights_ = self.architecture.stored(np.asarray(final.weights))

    # --- tools ----------------------------------------------------------------------------

    def _send_statistics(self, endpoint: Endpoint, layout: PackingLayout,
                         values: Sequence[float] | np.ndarray, *, batch: int) -> None:
        packed = layout.pack(np.asarray(values, dtype=np.float64), what="column statistics",
                             party=self.name)
        endpoint.send(self.server, EncryptedStatistics(self.engine.encrypt(packed)), epoch=0,
                      batch=batch)
