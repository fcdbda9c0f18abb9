"""Run the three parties together in one process (notebooks, tests, ``vfl simulate``).

Each party runs its own protocol code in its own thread, over an
:class:`~vfl.protocol.channel.InProcessNetwork`; nothing is shared between
them but the messages. If one party fails, the others are told at once and
the failing party's own error is raised to the caller.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from parties.vertical.contribution import ContributionReport, measure_contributions
from parties.vertical.coordinator import Coordinator
from parties.vertical.data_party import DataParty
from parties.vertical.feature_holder import FeatureHolder
from parties.vertical.label_holder import LabelHolder
from vfl.errors import LabelInFeatureHolderError, MissingColumnError
from vfl.metrics import model_metrics
from vfl.model import check_model_set
from vfl.progress import EpochProgress
from vfl.protocol.channel import DEFAULT_TIMEOUT_S, Endpoint, InProcessNetwork
from vfl.psi import DEFAULT_ALIGNMENT
from vfl.runtime.inprocess import run_parties
from vfl.training import TrainingConfig

__all__ = ["Federation"]


class Federation:
    """A coordinator, a label holder and feature holders, run in-process.

    Parameters
    ----------
    coordinator : Coordinator
    label_holder : LabelHolder
    feature_holders : FeatureHolder or sequence of FeatureHolder
        One or more (A1..Ak); each holds its own columns of the same people.
    config : TrainingConfig, optional
        Hyper-parameters; every party gets the same.
    alignment : str
        Private alignment method ("ecdh", the default, or "hash").
    timeout : float
        Seconds any party waits for a message before giving up.
    record : bool
        Keep every message in ``network_.transcript`` (for audits and tests).
    progress : bool
        Show a progress display and the loss of each epoch on stderr.

    Attributes
    ----------
    network_ : InProcessNetwork
        The network of the last run (training or prediction).
    session_ : str
        Identifier of the last training run: the session its model parts name
        (a later prediction does not change it).

    Examples
    --------
    >>> fed = Federation(Coordinator(), b, a, config=TrainingConfig(epochs=10))  # doctest: +SKIP
    >>> fed.fit().history_                                                       # doctest: +SKIP
    """

    def __init__(self, coordinator: Coordinator, label_holder: LabelHolder,
                 feature_holders: FeatureHolder | Sequence[FeatureHolder], *,
                 config: TrainingConfig | None = None, alignment: str = DEFAULT_ALIGNMENT,
                 timeout: float = DEFAULT_TIMEOUT_S, record: bool = False,
                 progress: bool = False) -> None:
        if isinstance(feature_holders, FeatureHolder):
            feature_holders = [feature_holders]
        feature_holders = list(feature_holders)
        if not isinstance(coordinator, Coordinator):
            raise TypeError(f"coordinator must be a Coordinator, got {type(coordinator).__name__}")
        if not isinstance(label_holder, LabelHolder):
            raise TypeError(f"label_holder must be a LabelHolder, got "
                            f"{type(label_holder).__name__}")
        if not all(isinstance(a, FeatureHolder) for a in feature_holders):
            raise TypeError("feature_holders must be FeatureHolder objects")
        if not feature_holders:
            raise ValueError("a federation needs at least one feature holder")
        names = [coordinator.name, label_holder.name, *(a.name for a in feature_holders)]
        if len(set(names)) != len(names):
            raise ValueError(f"party names must be unique, got {names}")
        for a in feature_holders:
            if label_holder.label_column in a.table.feature_names:
                # Caught at construction when the feature holder was told the
                # label's name; this catches a notebook user who did not.
                raise LabelInFeatureHolderError(
                    f"{a.table.source} contains the label column "
                    f"{label_holder.label_column!r}; remove it from the feature holder's data",
                    party=a.name)
        if coordinator.insecure_plaintext:
            # One user builds every party of an in-process run: C's opt-in is theirs.
            label_holder.insecure_plaintext = True
            for holder in feature_holders:
                holder.insecure_plaintext = True
        self.coordinator = coordinator
        self.label_holder = label_holder
        self.feature_holders = feature_holders
        self.config = config or TrainingConfig()
        self.alignment = alignment
        self.timeout = timeout
        self.record = record
        self.progress = progress
        self.network_: InProcessNetwork | None = None
        self.session_: str | None = None

    # --- training -------------------------------------------------------------

    def fit(self) -> Federation:
        """Align, train and finalise; afterwards every party holds its model part."""
        names = [a.name for a in self.feature_holders]
        b, c = self.label_holder.name, self.coordinator.name
        b_party = self.label_holder
        b_party.progress = EpochProgress(self.config.epochs) if self.progress else None
        tasks: dict[str, Callable[[Endpoint], None]] = {
            c: lambda ep: self.coordinator.run_training(
                ep, self.config, label_holder=b, feature_holders=names),
            b: lambda ep: b_party.run_training(
                ep, self.config, feature_holders=names, coordinator=c,
                alignment=self.alignment),
        }
        for a in self.feature_holders:
            tasks[a.name] = (lambda party: lambda ep: party.run_training(
                ep, self.config, label_holder=b, coordinator=c,
                alignment=self.alignment))(a)
        try:
            self.session_ = self._run(tasks)
        finally:
            b_party.progress = None
        return self

    def with_parties(self, coordinator: Coordinator, label_holder: LabelHolder,
                     feature_holders: Sequence[FeatureHolder]) -> Federation:
        """A new federation of other parties with this one's settings (not fitted)."""
        return Federation(coordinator, label_holder, feature_holders, config=self.config,
                          alignment=self.alignment, timeout=self.timeout, record=self.record)

    @property
    def history_(self) -> pd.DataFrame:
        """Mean training loss per epoch, as the label holder recorded it."""
        return self.label_holder.history

    @property
    def aligned_rows_(self) -> int | None:
        """Number of rows all parties share (after :meth:`fit`)."""
        return self.label_holder.aligned_rows_

    # --- prediction -----------------------------------------------------------

    def predict(self, label_holder_data: pd.DataFrame | None = None,
                feature_holder_data: pd.DataFrame | Mapping[str, pd.DataFrame] | None = None,
                *, deliver_to: str = "B") -> pd.Series:
        """Federated prediction on the rows every party holds.

        Parameters
        ----------
        label_holder_data : pandas.DataFrame, optional
            New rows for B (ID and B's feature columns; a label column is not
            needed). Default: B's training data.
        feature_holder_data : DataFrame or mapping of name to DataFrame, optional
            New rows for each feature holder (a DataFrame alone is for the
            only feature holder). Default: their training data.
        deliver_to : {"B", "C"}
            Who receives the predictions (PROTOCOL.md, prediction). "B": the
            feature holders send B their partial scores in the clear. "C":
            every party sends the coordinator masked shares, so C learns the
            predictions (without IDs) and nobody learns another party's
            partial score. Either party may be named by its actual name.

        Returns
        -------
        pandas.Series
            Predictions (P(class 1) for logistic models, expected counts for
            Poisson ones) indexed by ID, in the label holder's row order.
            With ``deliver_to="C"`` the values are C's; the IDs come from B's
            side of this simulation, as C never sees any.
        """
        return self._predict(self._with_data(self.label_holder, label_holder_data),
                             self._holders_with_data(feature_holder_data), deliver_to)

    def _predict(self, b: LabelHolder, holders: list[FeatureHolder],
                 deliver_to: str) -> pd.Series:
        """Run the prediction protocol between parties already holding the rows."""
        names = [a.name for a in holders]
        c = self.coordinator.name
        target = {"B": b.name, "C": c}.get(deliver_to, deliver_to)
        if target not in (b.name, c):
            raise ValueError(f"deliver_to must be {b.name!r} (label holder) or {c!r} "
                             f"(coordinator), got {deliver_to!r}")
        parts = {}
        members: list[DataParty[Any]] = [*holders, b]
        for party in members:
            if party.model_ is None:
                raise AttributeError(f"party {party.name} has no model: train or load one first")
            parts[party.name] = party.model_
        # A model is a set of parts from one run: never predict with a part missing.
        check_model_set(parts)
        result: dict[str, object] = {}
        tasks: dict[str, Callable[[Endpoint], None]] = {
            b.name: lambda ep: result.__setitem__("B", b.predict_rows(
                ep, feature_holders=names, coordinator=c, deliver_to=target,
                alignment=self.alignment)),
        }
        for a in holders:
            tasks[a.name] = (lambda party: lambda ep: party.serve_prediction(
                ep, label_holder=b.name, coordinator=c, deliver_to=target,
                alignment=self.alignment))(a)
        if target == c:
            tasks[c] = lambda ep: result.__setitem__("C", self.coordinator.receive_predictions(
                ep, label_holder=b.name, feature_holders=names))
        self._run(tasks)
        if target == b.name:
            return result["B"]  # type: ignore[return-value]
        ids = b.prediction_ids_
        assert ids is not None  # set by predict_rows, which ran without error
        positions = {i: k for k, i in enumerate(b.table.ids)}
        order = np.argsort([positions[i] for i in ids])
        return pd.Series(np.asarray(result["C"])[order],
                         index=pd.Index([ids[k] for k in order], name=b.id_column),
                         name=b.label_column)

    def evaluate(self, label_holder_data: pd.DataFrame | None = None,
                 feature_holder_data: pd.DataFrame | Mapping[str, pd.DataFrame] | None = None
                 ) -> dict[str, float]:
        """Federated prediction delivered to B, scored by B against its labels.

        Parameters are those of :meth:`predict`; `label_holder_data` must
        hold the label column. Returns R², RMSE, MSE and MAE for linear
        models; AUC, accuracy and log-loss for logistic ones; deviance, mean
        Poisson deviance, D² and RMSE for Poisson ones.
        """
        if (label_holder_data is not None
                and self.label_holder.label_column not in label_holder_data.columns):
            raise MissingColumnError(
                f"evaluation data has no label column {self.label_holder.label_column!r}; "
                "add it (or call predict instead)", party=self.label_holder.name)
        b = self._with_data(self.label_holder, label_holder_data)
        predictions = self._predict(b, self._holders_with_data(feature_holder_data), "B")
        index = {i: k for k, i in enumerate(b.table.ids)}
        truth = b.table.label[[index[i] for i in predictions.index]]
        model = self.label_holder.model_
        assert model is not None  # _predict refuses a party without a model
        return model_metrics(model.model, truth, predictions.to_numpy())

    def _holders_with_data(self, data: pd.DataFrame | Mapping[str, pd.DataFrame] | None
                           ) -> list[FeatureHolder]:
        if isinstance(data, pd.DataFrame):
            if len(self.feature_holders) != 1:
                raise ValueError("several feature holders: pass a mapping of party name to "
                                 "DataFrame")
            data = {self.feature_holders[0].name: data}
        data = dict(data or {})
        unknown = set(data) - {a.name for a in self.feature_holders}
        if unknown:
            raise ValueError(f"no feature holder named {', '.join(sorted(unknown))}")
        return [self._with_data(a, data.get(a.name)) for a in self.feature_holders]

    def contributions(self, method: str = "leave-one-out", *,
                      on_coalition: Callable[..., None] | None = None) -> ContributionReport:
        """Each party's contribution to the validation loss (see
        :mod:`parties.vertical.contribution`).

        Parameters
        ----------
        method : {"leave-one-out", "shapley"}
        on_coalition : callable, optional
            ``on_coalition(players, federation)`` after each federated coalition run.

        Returns
        -------
        parties.vertical.contribution.ContributionReport
        """
        return measure_contributions(self, method=method, on_coalition=on_coalition)

    @staticmethod
    def _with_data(party, frame: pd.DataFrame | None):
        """The party itself, or a copy with the same model over new rows."""
        if frame is None:
            return party
        if party.model_ is None:
            raise AttributeError(f"party {party.name} has no model: fit first")
        kwargs = {"id_column": party.id_column, "name": party.name,
                  "feature_columns": party.table.feature_names, "model": party.model_}
        if isinstance(party, LabelHolder):
            frame = frame.copy()
            if party.label_name not in frame.columns:
                frame[party.label_name] = 0.0  # prediction rows need no label
            # New rows of a Poisson model with an exposure bring their exposure.
            return LabelHolder(frame, label_column=party.label_name,
                               exposure_column=party.exposure_column, **kwargs)
        return FeatureHolder(frame, **kwargs)

    # --- running the threads ------------------------------------------------------

    def _run(self, tasks: Mapping[str, Callable[[Endpoint], None]]) -> str:
        """Run each party's task in its own thread over a fresh network; raise the root
        cause; return the run's session."""
        session = uuid.uuid4().hex
        names = [self.coordinator.name, self.label_holder.name,
                 *(a.name for a in self.feature_holders)]
        network = InProcessNetwork(names, session, timeout=self.timeout, record=self.record)
        self.network_ = network
        run_parties(network, tasks)
        return session
