"""A client of the horizontal protocol: trains on its own rows, sends only ciphertexts.

Each round a sampled client trains locally from the global model and sends
S one packed encryption of ``[n_k (W_k - W), n_k L_k(W), n_k]``: its
row-weighted update, its row-weighted loss at the global model, and its row
count. Nothing leaves it in the clear.

Every client process first tells S that it is there (:class:`Join`); S
answers whether the run is starting or under way. A client whose process
was stopped is started again with the same settings and rejoins the run
under way: C sends it the key, S the federation's standardisation and the
plan, and it takes part from the plan's first round on.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from parties.horizontal.config import HorizontalConfig
from parties.horizontal.messages import (
    Admission,
    ColumnMeans,
    EncryptedStatistics,
    EncryptedUpdate,
    FinalModel,
    HorizontalPlan,
    Join,
    RoundStart,
    Standardisation,
)
from parties.horizontal.models import CLASS_MODELS, Architecture, local_update, targets
from parties.horizontal.server import statistics_layout
from parties.horizontal.state import ClientState
from parties.horizontal.update import UpdateLayout
from vfl.crypto.packing import PackingLayout
from vfl.errors import ConfigMismatchError, InvalidLabelError, MalformedMessageError
from vfl.protocol.channel import Endpoint
from vfl.runtime.role import Role, expect_length

__all__ = ["Client", "client_rng"]

log = logging.getLogger("vfl.horizontal")


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
    miss_rounds : collection of int
        Simulate a client that is away in these rounds (slow, or killed and
        started again): when sampled in one, it sends its update only once S
        has closed the round, so S leaves it out of that round's sum and
        discards the late update; in the rounds after, it takes part again.
        In-process, this is what a networked client killed in round t and
        rejoining from round r is to S when ``miss_rounds`` holds the rounds
        t..r-1 in which it was sampled.
    """

    role = "client"
    state_type = ClientState

    def __init__(self, name: str, features: np.ndarray, labels: np.ndarray,
                 config: HorizontalConfig, *, feature_names: Sequence[str],
                 clients: Sequence[str], server: str = "S", key_holder: str = "C",
                 leave_at_round: int | None = None, miss_rounds: Collection[int] = ()) -> None:
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
        self.miss_rounds = frozenset(miss_rounds)
        self.features = self.raw_features
        self.rounds_: list[dict[str, float]] = []  # its own metrics, never sent
        self.weights_: np.ndarray | None = None
        self._plan: HorizontalPlan | None = None
        self._target = np.zeros((0, 1))
        self._layout: UpdateLayout | None = None
        self._round: RoundStart | None = None
        #: S's message after a round this client answered late (see miss_rounds).
        self._ahead: RoundStart | FinalModel | None = None
        self._leaving = False
        #: The run was under way when this process started (S's Admission).
        self.rejoined_ = False
        self._first_round = 1

    @property
    def leader(self) -> str:
        # Its own: a client's state is only its place in the run, which follows S's
        # (the plan's first round), so no client bounds the epoch the run resumes after.
        return self.name

    @property
    def max_epochs(self) -> int:
        return self.config.rounds

    @property
    def rows(self) -> int:
        return len(self.labels)

    def open(self, endpoint: Endpoint) -> None:
        """Tell S this client is here; S says whether the run starts or is under way; the
        public key from C (which, in a run under way, sends it once S has readmitted it)."""
        endpoint.send(self.server, Join())
        self.rejoined_ = endpoint.receive(self.server, Admission).rejoin
        self.receive_key(endpoint, self.key_holder)

    def align(self, endpoint: Endpoint) -> None:
        """Federated standardisation: encrypted column sums and row count, then squares.

        A client that rejoins receives the federation's means and deviations as
        computed at the start (its own sums are in them).
        """
        if not self.config.standardize:
            return
        if self.rejoined_:
            self._standardise(endpoint)
            return
        layout = statistics_layout(self.engine.n, self.config, len(self.clients))
        x = self.raw_features
        self._send_statistics(endpoint, layout, [*x.sum(axis=0), float(self.rows)], batch=1)
        means = np.asarray(endpoint.receive(self.server, ColumnMeans, epoch=0, batch=1).means)
        expect_length(means, x.shape[1], sender=self.server, message="ColumnMeans",
                      what="means", party=self.name)
        self._send_statistics(endpoint, layout, ((x - means) ** 2).sum(axis=0), batch=2)
        self._standardise(endpoint)

    def _standardise(self, endpoint: Endpoint) -> None:
        final = endpoint.receive(self.server, Standardisation, epoch=0, batch=2)
        for what, values in (("means", final.means), ("scales", final.scales)):
            expect_length(values, self.raw_features.shape[1], sender=self.server,
                          message="Standardisation", what=what, party=self.name)
        self.features = (self.raw_features - np.asarray(final.means)) / np.asarray(final.scales)

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
        self._layout = UpdateLayout.for_run(self.engine.n, self.config, len(plan.clients),
                                            self.architecture.parameters)
        # One packed update per round: its encryptions of zero are made while the
        # client waits for the round's model, not after its local training.
        self.engine.plan(self._layout.plaintexts * self.config.rounds)
        self.engine.expect(self._layout.plaintexts)
        if plan.first_round < 1:
            raise MalformedMessageError(f"{self.server} sent a plan whose first round is "
                                        f"{plan.first_round}", party=self.name)
        self._first_round = first = plan.first_round
        done = 0 if resumed is None else resumed.epoch
        if resumed is not None and done >= first:
            # This client finished rounds S had not checkpointed: it follows S, which
            # runs them again. (The Session makes `resumed` this party's state.)
            resumed.epoch = first - 1
            resumed.rounds_joined = [r for r in resumed.rounds_joined if r < first]
            log.info("the run goes on from round %d: this client runs it again", first)
        elif first > done + 1:
            log.info("the run is at round %d: this client takes part from there", first)

    def fresh_state(self) -> ClientState:
        return ClientState(epoch=self._first_round - 1, stopped=False, rounds_joined=[])

    def start_epoch(self, endpoint: Endpoint, epoch: int) -> int:
        if epoch < self._first_round:
            return 0  # a round it missed: its checkpoint is older than the run's place
        if isinstance(self._ahead, RoundStart):  # received while answering late
            self._round, self._ahead = self._ahead, None
        else:
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
        packed = self._layout.pack(rows * delta, rows * before, rows, party=self.name)
        update = EncryptedUpdate(self.engine.encrypt(packed))
        if epoch in self.miss_rounds:
            # Late: only once S has closed the round (its next message is here).
            self._ahead = (endpoint.receive(self.server, RoundStart, epoch=epoch + 1, batch=1)
                           if epoch < self.max_epochs else
                           endpoint.receive(self.server, FinalModel))
            endpoint.send(self.server, update, epoch=epoch, batch=1)
            return
        endpoint.send(self.server, update, epoch=epoch, batch=1)
        self.current.rounds_joined.append(epoch)
        self.rounds_.append({"round": epoch, "rows": self.rows, "loss_before": before,
                             "loss_after": after})

    def end_epoch(self, endpoint: Endpoint, epoch: int) -> None:
        self.current.epoch = epoch
        self.current.stopped = self._leaving
        return None

    def finish(self, endpoint: Endpoint) -> None:
        if self._leaving or self.current.stopped:  # it left the run
            return
        final = (self._ahead if isinstance(self._ahead, FinalModel)
                 else endpoint.receive(self.server, FinalModel))
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
