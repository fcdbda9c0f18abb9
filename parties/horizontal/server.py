"""Party S of the horizontal protocol: samples clients, adds their ciphertexts, updates the model.

S never holds the private key. Each round it adds the encrypted, packed
updates of the clients that answered, masks the sum uniformly in Z_n, has C
decrypt the masked sum, removes the mask and unpacks: S learns the sum of
the updates, of the row-weighted losses and of the row counts of that
round's participants, nothing per client.

Clients may come and go: one that misses a round's deadline is asked again
in later rounds (its late update is discarded), one whose process stopped
(over the network) is *departed* until a new process of it rejoins (see
:meth:`Server.start_epoch`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from parties.horizontal.config import HorizontalConfig
from parties.horizontal.messages import (
    Admission,
    ColumnMeans,
    DecryptedAggregate,
    EncryptedStatistics,
    EncryptedUpdate,
    FinalModel,
    HorizontalPlan,
    Join,
    MaskedAggregate,
    RoundStart,
    Standardisation,
)
from parties.horizontal.models import CLASS_MODELS, Architecture
from parties.horizontal.rejoin import readmitting
from parties.horizontal.state import RoundRecord, ServerState
from parties.horizontal.update import UpdateLayout
from vfl.crypto import EncryptedVector, draw_masks, unmask
from vfl.crypto.packing import PackingLayout
from vfl.errors import (
    ChannelTimeoutError,
    InvalidFeatureError,
    PeerAuthenticationError,
    PeerLeftError,
    ProtocolError,
    UnexpectedMessageError,
    WireFormatError,
)
from vfl.protocol.channel import Endpoint
from vfl.protocol.messages import AuditPlan
from vfl.runtime.role import Role, expect_length
from vfl.runtime.state import GeneratorState

__all__ = ["STATISTICS_VALUE_BITS", "Server"]

# Under vfl's logger, which `vfl party` prints.
log = logging.getLogger("vfl.horizontal")

#: Integer bits of a slot of the standardisation sums (sums of squares of raw columns).
STATISTICS_VALUE_BITS = 96


class Server(Role[ServerState]):
    """The aggregation server S.

    Parameters
    ----------
    config : HorizontalConfig
    clients : sequence of str
        Every client of the federation, in a fixed order (the plan's).
    features : sequence of str
        The columns every client holds, in model order.
    classes : sequence of float
        Classes of a softmax or MLP model, in column order (empty for the others).
    key_holder : str
    name : str
    round_timeout : float
        Seconds S waits, from the moment it starts collecting, for the sampled
        clients' updates; a client that misses the deadline is left out of the
        round and asked again in later rounds. Also how long S waits for
        departed clients to rejoin when fewer than ``min_clients`` are present.
    """

    role = "server"
    state_type = ServerState

    def __init__(self, config: HorizontalConfig, clients: Sequence[str],
                 features: Sequence[str], *, classes: Sequence[float] = (),
                 key_holder: str = "C", name: str = "S", round_timeout: float = 600.0) -> None:
        super().__init__(name)
        if len(clients) < 2 or len(set(clients)) != len(clients):
            raise ValueError(f"a horizontal federation needs two or more distinct clients, "
                             f"got {list(clients)}")
        if config.model in CLASS_MODELS and len(classes) < 2:
            raise ValueError(f"a {config.model} model needs two or more classes")
        self.config = config
        self.clients = list(clients)
        self.features = list(features)
        self.classes = (tuple(float(c) for c in classes) if config.model in CLASS_MODELS
                        else ())
        self.key_holder = key_holder
        self.round_timeout = round_timeout
        self.outputs = len(self.classes) if self.classes else 1
        self.architecture = Architecture(config.model, len(self.features), self.outputs,
                                         config.hidden_units)
        self.means_ = np.zeros(len(self.features))
        self.scales_ = np.ones(len(self.features))
        self.total_rows_: int | None = None
        self.weights_: np.ndarray | None = None
        self._layout: UpdateLayout | None = None
        self._plan: HorizontalPlan | None = None
        self._selected: list[str] = []
        #: Rounds whose update each late client still owes (it missed their
        #: deadline): discarded before its next update is taken.
        self._owed: dict[str, list[int]] = {}
        #: Clients readmitted this round: departed in it, present from the next.
        self._joining: list[str] = []

    # --- lifecycle steps ---------------------------------------------------------------

    @property
    def leader(self) -> str:
        return self.name

    def followers(self) -> list[str]:
        # A client's state is only its place in the run, which follows S's (the
        # plan's first round): only C's checkpoints bound where the run resumes.
        return [self.key_holder]

    @property
    def max_epochs(self) -> int:
        return self.config.rounds

    @property
    def parameters(self) -> int:
        """Entries of the model: ``(d + 1) * c``, or the MLP's two layers."""
        return self.architecture.parameters

    def open(self, endpoint: Endpoint) -> None:
        """C's public key; every client says it is here and is told the run starts."""
        self.receive_key(endpoint, self.key_holder)
        self._layout = UpdateLayout.for_run(self.engine.n, self.config, len(self.clients),
                                            self.parameters)
        # Each round S re-randomises one masked sum: made while the clients train.
        self.engine.plan(self._layout.plaintexts * self.config.rounds)
        self.engine.expect(self._layout.plaintexts)
        for name in self.clients:
            endpoint.receive(name, Join)
            endpoint.send(name, Admission(rejoin=False))

    def align(self, endpoint: Endpoint) -> None:
        """Federated standardisation: column means, then variances, from masked sums."""
        if not self.config.standardize:
            return
        d = len(self.features)
        layout = statistics_layout(self.engine.n, self.config, len(self.clients))
        sums = self._sum_of_all(endpoint, layout, d + 1, batch=1)
        total = round(float(sums[d]))
        self.total_rows_ = total
        means = sums[:d] / total
        for name in self.clients:
            endpoint.send(name, ColumnMeans(tuple(float(v) for v in means)), epoch=0, batch=1)
        squares = self._sum_of_all(endpoint, layout, d, batch=2)
        scales = np.sqrt(np.maximum(squares, 0.0) / total)
        for j, scale in enumerate(scales):
            if not scale > 0:
                raise InvalidFeatureError(
                    f"feature {self.features[j]!r} is constant across all clients; drop it",
                    party=self.name)
        self.means_, self.scales_ = means, scales
        for name in self.clients:
            endpoint.send(name, Standardisation(tuple(float(v) for v in means),
                                                tuple(float(v) for v in scales)),
                          epoch=0, batch=2)

    def identity(self) -> dict[str, Any]:
        return {"role": self.role, "config": self.config.to_dict(), "clients": self.clients,
                "features": self.features, "classes": list(self.classes)}

    def agree_plan(self, endpoint: Endpoint, resumed: ServerState | None) -> None:
        if resumed is not None:
            # Every client said it is here (open): none is departed in the resumed run.
            resumed.departed.clear()
        plan = HorizontalPlan(self.config, tuple(self.clients), tuple(self.features),
                              self.classes,
                              first_round=1 if resumed is None else resumed.epoch + 1)
        self._plan = plan
        for name in (*self.clients, self.key_holder):
            endpoint.send(name, plan)

    def fresh_state(self) -> ServerState:
        zeros = np.zeros(self.parameters)
        return ServerState(epoch=0, stopped=False,
                           weights=self.architecture.initial(self.config.seed),
                           first=zeros.copy(), second=zeros.copy(),
                           rng=GeneratorState.of(np.random.default_rng(self.config.seed)),
                           history=[], departed=[])

    def start_epoch(self, endpoint: Endpoint, epoch: int) -> int:
        """Readmit returning clients; sample this round's clients from all of them; send
        each present client the model or a pass.

        Sampling draws from every client, departed or not, so that the draws do
        not depend on who happens to be reachable: a departed client that is
        drawn is a dropout of the round at once.
        """
        state = self.current
        self._admit_returning(endpoint, epoch)
        self._await_enough_clients(endpoint, epoch)
        present = [c for c in self.clients if c not in state.departed]
        rng = state.rng.generator()
        picked = rng.choice(len(self.clients), size=self.config.sampled(len(self.clients)),
                            replace=False)
        state.rng = GeneratorState.of(rng)
        self._selected = [self.clients[i] for i in sorted(int(i) for i in picked)]
        model = tuple(float(v) for v in state.weights)
        for name in present:
            chosen = name in self._selected
            try:
                endpoint.send(name, RoundStart(chosen, model if chosen else ()), epoch=epoch,
                              batch=1)
            except PeerLeftError:
                # Gone since the last round (over the network): departed until it rejoins.
                self._depart(name)
        return 1

    def batch_step(self, endpoint: Endpoint, epoch: int, batch: int) -> None:
        """Add the updates that arrive, mask, have C decrypt, unmask, update ``W``."""
        state, layout = self.current, self._packing
        arrived: list[str] = []
        vectors: list[EncryptedVector] = []
        deadline = time.monotonic() + self.round_timeout
        for name in self._selected:
            if name in state.departed:  # its process stopped: nothing to wait for
                continue
            message = self._receive_in_time(endpoint, name, epoch, deadline)
            if message is None:
                continue
            expect_length(message.values, layout.plaintexts, sender=name,
                          message="EncryptedUpdate", what="ciphertexts", party=self.name)
            arrived.append(name)
            vectors.append(message.values)
        dropped = [name for name in self._selected if name not in arrived]
        if len(arrived) < self.config.min_clients:
            # A sum of fewer updates than min_clients is not decrypted: it would expose them.
            self._decrypt(endpoint, EncryptedVector(self.engine.public_key, ()), epoch, batch)
            state.history.append(RoundRecord(epoch, None, arrived, dropped, 0))
            return
        update, loss_sum, row_sum = layout.unpack(
            self._masked_sum(endpoint, vectors, epoch=epoch, batch=batch),
            summands=len(vectors), party=self.name)
        rows = round(row_sum)
        if rows < len(arrived):  # every client holds a row: a smaller sum is a forged count
            raise ProtocolError(
                f"the row counts of {', '.join(arrived)} sum to {rows}; a client sent a "
                "forged count", party=self.name)
        mean_update = update / rows
        loss = loss_sum / rows
        self._apply(mean_update)
        state.history.append(RoundRecord(epoch, loss, arrived, dropped, rows))

    def end_epoch(self, endpoint: Endpoint, epoch: int) -> float | None:
        state = self.current
        state.epoch = epoch
        # Readmitted this round, C has sent them the key: present from the next round.
        state.departed[:] = [c for c in state.departed if c not in self._joining]
        self._joining = []
        return state.history[-1].loss if state.history else None

    def finish(self, endpoint: Endpoint) -> None:
        state = self.current
        self.weights_ = self.architecture.stored(state.weights)
        final = FinalModel(tuple(float(v) for v in state.weights))
        for name in self.clients:
            if name not in state.departed:
                with contextlib.suppress(PeerLeftError):  # left after its last update
                    endpoint.send(name, final)

    # --- results --------------------------------------------------------------------------

    def raw_model(self) -> tuple[np.ndarray, np.ndarray]:
        """``(coef, intercept)`` in the columns' raw units: coef ``(d, c)``, intercept ``(c,)``.

        For the MLP, the first layer's (see :meth:`raw_layers`).
        """
        first = self.raw_layers()[0]
        return first[:-1], first[-1]

    def raw_layers(self) -> list[np.ndarray]:
        """Every layer in the columns' raw units, intercept row last: ``[W]`` or ``[W1, W2]``."""
        if self.weights_ is None:
            raise AttributeError(f"party {self.name} has not trained yet")
        return self.architecture.raw_units(np.ravel(self.weights_), self.means_, self.scales_)

    # --- tools --------------------------------------------------------------------------

    @property
    def _packing(self) -> UpdateLayout:
        if self._layout is None:
            raise ProtocolError("no public key yet: the key step comes first", party=self.name)
        return self._layout

    def _apply(self, mean_update: np.ndarray) -> None:
        """The server optimiser: averaging (``sgd``) or FedAdam on ``-mean_update``."""
        state, config = self.current, self.config
        if config.server_optimizer == "sgd":
            state.weights = state.weights + config.server_learning_rate * mean_update
            return
        state.first = config.beta1 * state.first + (1 - config.beta1) * mean_update
        state.second = config.beta2 * state.second + (1 - config.beta2) * mean_update**2
        state.weights = state.weights + config.server_learning_rate * state.first / (
            np.sqrt(state.second) + config.tau)

    def _receive_in_time(self, endpoint: Endpoint, sender: str, epoch: int,
                         deadline: float) -> EncryptedUpdate | None:
        """The sender's update, or None if it missed the round's deadline (then it owes
        this round's update, discarded when it arrives) or its process stopped (then
        it is departed)."""
        # One deadline for the whole round, not one per client: K slow clients cost one wait.
        saved = endpoint.timeout
        owed = self._owed.setdefault(sender, [])
        try:
            while owed:  # updates of rounds it missed, in order: not part of any sum
                endpoint.timeout = max(deadline - time.monotonic(), 0.001)
                self.receive(endpoint, sender, EncryptedUpdate, epoch=owed[0], batch=1)
                owed.pop(0)
            endpoint.timeout = max(deadline - time.monotonic(), 0.001)
            return self.receive(endpoint, sender, EncryptedUpdate, epoch=epoch, batch=1)
        except ChannelTimeoutError:
            owed.append(epoch)  # late, not gone: asked again in later rounds
            return None
        except PeerLeftError:  # its process stopped (vfl party)
            self._depart(sender)
            return None
        finally:
            endpoint.timeout = saved

    def _depart(self, name: str) -> None:
        """`name`'s process stopped: sent nothing, and a dropout when drawn, until it rejoins."""
        if name not in self.current.departed:
            self.current.departed.append(name)
            log.info("%s is away: left out of the rounds until it rejoins (started again "
                     "with the same configuration)", name)
        self._owed.pop(name, None)  # a new process of it owes nothing

    def _admit_returning(self, endpoint: Endpoint, epoch: int) -> None:
        """Readmit every client whose new process has asked to rejoin; each takes part
        from the next round (C sends it the key after this round's decryption)."""
        rejoin = readmitting(endpoint)
        if rejoin is None:  # in-process: no client ever leaves
            return
        for name in rejoin.returning():
            if name not in self.clients or name in self._joining:
                continue
            # Its old process may have stopped unnoticed until the new one called.
            self._depart(name)
            first = rejoin.readmit(name)
            saved = endpoint.timeout
            # Bounded: the others wait for this round while S waits for it.
            endpoint.timeout = min(saved, self.round_timeout)
            try:
                if first[:1] == [AuditPlan.__name__]:
                    # `vfl party` agrees auditing with S before its run starts; where
                    # clients may leave, auditing is off (parties/audit_exchange.py).
                    endpoint.receive(name, AuditPlan)
                    endpoint.send(name, AuditPlan(enabled=False))
                endpoint.receive(name, Join)
                endpoint.send(name, Admission(rejoin=True))
                if self.config.standardize:
                    # What every client received at the start; its own sums are in them.
                    endpoint.send(name, Standardisation(tuple(float(v) for v in self.means_),
                                                        tuple(float(v) for v in self.scales_)),
                                  epoch=0, batch=2)
                assert self._plan is not None
                endpoint.send(name, dataclasses.replace(self._plan, first_round=epoch + 1))
            except (PeerLeftError, ChannelTimeoutError, UnexpectedMessageError,
                    WireFormatError, PeerAuthenticationError) as exc:
                # About this client alone: the run goes on without it.
                log.warning("%s did not rejoin: %s", name, exc)
                # Ended again: a message it sends later asks anew.
                rejoin.peer_stopped(name, f"it did not finish rejoining: {exc}")
                continue
            finally:
                endpoint.timeout = saved
            self._joining.append(name)
            log.info("%s rejoins: it takes part from round %d", name, epoch + 1)

    def _await_enough_clients(self, endpoint: Endpoint, epoch: int) -> None:
        """Wait up to the round deadline for departed clients to rejoin while fewer than
        ``min_clients`` are present or joining; then give up."""
        state, rejoin = self.current, readmitting(endpoint)
        deadline = time.monotonic() + self.round_timeout

        def present() -> list[str]:
            return [c for c in self.clients if c not in state.departed or c in self._joining]

        while len(present()) < self.config.min_clients and rejoin is not None:
            remaining = deadline - time.monotonic()
            away = [c for c in state.departed if c not in self._joining]
            if remaining <= 0 or not rejoin.wait_for_return(away, remaining):
                break
            self._admit_returning(endpoint, epoch)
        if len(here := present()) < self.config.min_clients:
            waited = (f"; none of the others rejoined within {self.round_timeout:g} s"
                      if rejoin is not None else "")
            raise ProtocolError(
                f"only {len(here)} client(s) remain ({', '.join(here) or 'none'}); "
                f"a round needs at least min_clients={self.config.min_clients}{waited}",
                party=self.name)

    def _sum_of_all(self, endpoint: Endpoint, layout: PackingLayout, count: int, *,
                    batch: int) -> np.ndarray:
        """Every client's statistics (no deadline: all must answer), summed and unmasked."""
        vectors = []
        for name in self.clients:
            message = self.receive(endpoint, name, EncryptedStatistics, epoch=0, batch=batch)
            expect_length(message.values, layout.plaintexts_for(count), sender=name,
                          message="EncryptedStatistics", what="ciphertexts", party=self.name)
            vectors.append(message.values)
        return self._sum(endpoint, vectors, layout, count, epoch=0, batch=batch)

    def _sum(self, endpoint: Endpoint, vectors: Sequence[EncryptedVector],
             layout: PackingLayout, count: int, *, epoch: int, batch: int) -> np.ndarray:
        """The sum of `count` values, unpacked for len(vectors) summands."""
        plain = self._masked_sum(endpoint, vectors, epoch=epoch, batch=batch)
        return layout.unpack(plain, count, summands=len(vectors), what="aggregate",
                             party=self.name)

    def _masked_sum(self, endpoint: Endpoint, vectors: Sequence[EncryptedVector], *,
                    epoch: int, batch: int) -> list[int]:
        """[[sum]] -> [[sum + R]] to C -> sum + R -> the plaintexts of the sum."""
        engine = self.engine
        total = vectors[0]
        for vector in vectors[1:]:
            total = engine.add(total, vector)
        masks = draw_masks(engine.n, len(total))
        masked = engine.rerandomize(engine.add_plain(total, masks))
        return unmask(self._decrypt(endpoint, masked, epoch, batch), masks, engine.n)

    def _decrypt(self, endpoint: Endpoint, masked: EncryptedVector, epoch: int,
                 batch: int) -> tuple[int, ...]:
        endpoint.send(self.key_holder, MaskedAggregate(masked, tuple(self._joining)),
                      epoch=epoch, batch=batch)
        reply = endpoint.receive(self.key_holder, DecryptedAggregate, epoch=epoch, batch=batch)
        expect_length(reply.values, len(masked), sender=self.key_holder,
                      message="DecryptedAggregate", what="values", party=self.name)
        return reply.values


def statistics_layout(n: int, config: HorizontalConfig, clients: int) -> PackingLayout:
    """Slots of the standardisation sums: wide enough for sums of squares of raw columns."""
    return PackingLayout.for_modulus(n, frac_bits=config.frac_bits,
                                     value_bits=STATISTICS_VALUE_BITS, max_summands=clients)
