"""Clients' tables and an in-process horizontal federation (notebooks, tests, the CLI).

:class:`HorizontalClient` is one data holder's checked table;
:class:`HorizontalFederation` runs the server, the key holder and every
client as threads of this process over an in-process network, each with its
own protocol code, sharing nothing but the messages.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np
import pandas as pd

from parties.horizontal.client import Client
from parties.horizontal.config import HorizontalConfig
from parties.horizontal.key_holder import KeyHolder
from parties.horizontal.models import CLASS_MODELS
from parties.horizontal.server import Server
from vfl.crypto import DEFAULT_BACKEND, DEFAULT_KEY_BITS
from vfl.errors import (
    InputDataError,
    InvalidFeatureError,
    InvalidLabelError,
    MissingColumnError,
)
from vfl.protocol.channel import DEFAULT_TIMEOUT_S, Endpoint, InProcessNetwork
from vfl.runtime.checkpoint import CheckpointStore
from vfl.runtime.inprocess import run_parties
from vfl.runtime.role import Role
from vfl.runtime.session import Session

__all__ = ["HorizontalClient", "HorizontalFederation", "check_same_columns"]


class HorizontalClient:
    """One client's rows: numeric feature columns and a label column.

    Parameters
    ----------
    frame : pandas.DataFrame
    label_column : str
    name : str, optional
        Party name; the federation names unnamed clients C1, C2, ... in order.
    feature_columns : sequence of str, optional
        Default: every column but the label (and `drop_columns`).
    drop_columns : sequence of str
        Columns to ignore (an ID, say).
    source : str, optional
        Where the table came from (a file name), for error messages.
    leave_at_round : int, optional
        Simulate a crash of this client in that round (see :class:`Client`).
    miss_rounds : collection of int
        Simulate a client away in these rounds, back in the later ones: when
        sampled in one, its update arrives after the deadline (see :class:`Client`).

    Raises
    ------
    MissingColumnError
        If the label or a named feature column is absent.
    InvalidFeatureError, InvalidLabelError
        If a column is not numeric or holds NaN or infinity.
    """

    def __init__(self, frame: pd.DataFrame, *, label_column: str, name: str | None = None,
                 feature_columns: Sequence[str] | None = None,
                 drop_columns: Sequence[str] = (), source: str | None = None,
                 leave_at_round: int | None = None, miss_rounds: Collection[int] = ()) -> None:
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"data must be a pandas DataFrame, got {type(frame).__name__}")
        self.name = name
        self.source = source or "the DataFrame"
        self.label_column = label_column
        self.leave_at_round = leave_at_round
        self.miss_rounds = frozenset(miss_rounds)
        columns = [str(c) for c in frame.columns]
        frame = frame.set_axis(columns, axis=1)
        who = name or "client"
        if label_column not in columns:
            raise MissingColumnError(
                f"{self.source} has no label column {label_column!r} (columns: "
                f"{', '.join(columns)})", party=who)
        if feature_columns is None:
            feature_columns = [c for c in columns if c != label_column and c not in drop_columns]
        missing = [c for c in feature_columns if c not in columns]
        if missing:
            raise MissingColumnError(f"{self.source} has no feature column(s) "
                                     f"{', '.join(map(repr, missing))}", party=who)
        if not feature_columns:
            raise InvalidFeatureError(f"{self.source} has no feature column", party=who)
        if len(frame) == 0:
            raise InputDataError(f"{self.source} has no rows", party=who)
        self.feature_names = list(feature_columns)
        self.features = np.column_stack([self._numeric(frame, c, InvalidFeatureError)
                                         for c in self.feature_names])
        self.labels = self._numeric(frame, label_column, InvalidLabelError)

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str], *, label_column: str,
                 name: str | None = None, **kwargs: Any) -> HorizontalClient:
        """Read a CSV file (header row, numeric columns)."""
        try:
            frame = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise InputDataError(f"cannot read {path} as CSV: {exc}",
                                 party=name or "client") from None
        return cls(frame, label_column=label_column, name=name, source=str(path), **kwargs)

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return (f"HorizontalClient(name={self.name!r}, rows={len(self)}, "
                f"features={len(self.feature_names)})")

    def _numeric(self, frame: pd.DataFrame, column: str, error: type[InputDataError]
                 ) -> np.ndarray:
        kind = "label" if error is InvalidLabelError else "feature"
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise error(f"{kind} column {column!r} of {self.source} is not numeric or not "
                        f"finite at row {row + 1} ({frame[column].iloc[row]!r})",
                        party=self.name or "client")
        return values


def check_same_columns(clients: Sequence[HorizontalClient]) -> list[str]:
    """The feature columns all clients share (in the first client's order).

    Raises
    ------
    MissingColumnError
        Naming the first client (and its file) whose columns differ from the first's.
    """
    first = clients[0]
    for client in clients[1:]:
        if set(client.feature_names) != set(first.feature_names):
            lacking = sorted(set(first.feature_names) - set(client.feature_names))
            extra = sorted(set(client.feature_names) - set(first.feature_names))
            raise MissingColumnError(
                f"{client.source} has feature columns that differ from {first.name}'s "
                f"({first.source}): " + "; ".join(
                    part for part in (f"missing {', '.join(map(repr, lacking))}" if lacking
                                      else "", f"extra {', '.join(map(repr, extra))}" if extra
                                      else "") if part)
                + "; every client must hold the same columns", party=client.name)
    return list(first.feature_names)


class HorizontalFederation:
    """A server S, a key holder C and K >= 2 clients, run in-process.

    Parameters
    ----------
    clients : sequence of HorizontalClient
    config : HorizontalConfig
    classes : sequence of float, optional
        Softmax or MLP classes (default: the labels seen at any client, sorted; in a
        networked run they are part of the agreed configuration).
    key_bits, insecure_key, backend
        The key holder's key and the engine every party uses.
    round_timeout : float
        Seconds S waits for a sampled client's update (a client that misses it is
        left out of the round and asked again in later rounds).
    timeout : float
        Seconds any party waits for any other message.
    record : bool
        Keep every message in ``network_.transcript``.
    checkpoint_dir : path-like, optional
        Every party saves its state after every round under ``checkpoint_dir/NAME``;
        a run started again with the same folder and `run_id` resumes after the
        last round every party holds (with a fresh key and fresh masks).
    run_id : str
        Names the run whose checkpoints may be resumed.
    """

    def __init__(self, clients: Sequence[HorizontalClient], config: HorizontalConfig, *,
                 classes: Sequence[float] | None = None, key_bits: int = DEFAULT_KEY_BITS,
                 insecure_key: bool = False, backend: str = DEFAULT_BACKEND,
                 round_timeout: float = 600.0, timeout: float = DEFAULT_TIMEOUT_S,
                 record: bool = False, checkpoint_dir: str | os.PathLike[str] | None = None,
                 run_id: str = "horizontal") -> None:
        clients = list(clients)
        if len(clients) < 2:
            raise InputDataError(f"a horizontal federation needs two or more clients, got "
                                 f"{len(clients)}")
        if not all(isinstance(c, HorizontalClient) for c in clients):
            raise TypeError("clients must be HorizontalClient objects")
        for k, client in enumerate(clients, start=1):
            if client.name is None:
                client.name = f"C{k}"
        names = [c.name for c in clients]
        if len(set(names)) != len(names) or {"S", "C"} & set(names):
            raise ValueError(f"client names must be unique and not S or C, got {names}")
        if len({c.label_column for c in clients}) != 1:
            raise MissingColumnError("clients name different label columns: "
                                     + ", ".join(f"{c.name}: {c.label_column!r}"
                                                 for c in clients), party=names[0])
        self.features = check_same_columns(clients)
        if config.model in CLASS_MODELS and classes is None:
            classes = sorted({float(v) for c in clients for v in np.unique(c.labels)})
        self.classes = tuple(float(c) for c in (classes or ()))
        self.clients = clients
        self.config = config
        self.key_bits = key_bits
        self.insecure_key = insecure_key
        self.backend = backend
        self.round_timeout = round_timeout
        self.timeout = timeout
        self.record = record
        self.checkpoint_dir = checkpoint_dir
        self.run_id = run_id
        self.network_: InProcessNetwork | None = None
        self.server_: Server | None = None
        self.key_holder_: KeyHolder | None = None
        self.client_roles_: dict[str, Client] = {}

    def fit(self) -> HorizontalFederation:
        """Run every party to the end; afterwards ``server_`` holds the global model."""
        names = [str(c.name) for c in self.clients]
        config = self.config
        server = Server(config, names, self.features, classes=self.classes,
                        round_timeout=self.round_timeout)
        key_holder = KeyHolder(config, names, key_bits=self.key_bits,
                               insecure_key=self.insecure_key, backend=self.backend)
        roles: dict[str, Client] = {}
        for client in self.clients:
            order = [client.feature_names.index(c) for c in self.features]
            roles[str(client.name)] = Client(
                str(client.name), client.features[:, order], client.labels, config,
                feature_names=self.features, clients=names,
                leave_at_round=client.leave_at_round, miss_rounds=client.miss_rounds)
        network = InProcessNetwork(["S", "C", *names], uuid.uuid4().hex, timeout=self.timeout,
                                   record=self.record)
        # Set before the run, so that a failed run can be inspected.
        self.network_, self.server_, self.key_holder_ = network, server, key_holder
        self.client_roles_ = roles
        everyone: list[Role[Any]] = [server, key_holder, *roles.values()]
        tasks: dict[str, Callable[[Endpoint], Any]] = {r.name: self._task(r) for r in everyone}
        run_parties(network, tasks, prefer="S")
        return self

    def _task(self, role: Role[Any]) -> Callable[[Endpoint], None]:
        store = None
        if self.checkpoint_dir is not None:
            store = CheckpointStore(os.path.join(self.checkpoint_dir, role.name),
                                    party=role.name, run_id=self.run_id,
                                    state_type=role.state_type)
        return lambda endpoint: Session(role, endpoint, checkpoints=store).run()
