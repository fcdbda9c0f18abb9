"""scikit-learn-style estimators over in-process parties, for notebooks.

>>> model = VerticalLinearRegression(epochs=30, optimizer="adam", learning_rate=0.05)
>>> model.fit([label_holder, feature_holder])            # doctest: +SKIP
>>> model.history_.plot(x="epoch")                       # doctest: +SKIP
>>> model.coef_["A1"]                                    # doctest: +SKIP

The estimator builds a :class:`~parties.federation.Federation` of the
parties it is given (and a coordinator, unless one is given), runs the
encrypted protocol and exposes the result. Every party still holds its own
data and model part: the estimator only reads what the notebook user could
read from the party objects anyway, because in a notebook one person plays
every role. In a real deployment each organisation runs only its own party.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from parties.params import ConfigEstimator
from parties.vertical.coordinator import Coordinator
from parties.vertical.data_party import DataParty
from parties.vertical.feature_holder import FeatureHolder
from parties.vertical.federation import Federation
from parties.vertical.label_holder import LabelHolder
from vfl.cluster import compute_on
from vfl.runtime.config import RunConfig, run_settings
from vfl.training import TrainingConfig

__all__ = ["VerticalLinearRegression", "VerticalLogisticRegression",
           "VerticalPoissonRegression"]

# The keywords: the training options (the class gives `model`), the run
# settings the estimator surface carries, with RunConfig's defaults, and
# `progress`, which is about this notebook, not the run.
_SETTINGS = {f.name: f.default for f in run_settings("estimator") if f.name != "training"}
_RUNTIME = {**_SETTINGS, "progress": False}


class _VerticalEstimator(ConfigEstimator):
    """Shared machinery; use :class:`VerticalLinearRegression`,
    :class:`VerticalLogisticRegression` or :class:`VerticalPoissonRegression`."""

    _config_type = TrainingConfig
    _runtime = _RUNTIME
    _model: str
    progress: bool  # set in __init__, with every other keyword

    @classmethod
    def _fixed(cls) -> dict[str, Any]:
        return {"model": cls._model}

    def _check(self) -> None:
        self.run_config  # noqa: B018 - validate now, not at fit time

    @property
    def config(self) -> TrainingConfig:
        """The :class:`~vfl.training.TrainingConfig` every party receives."""
        config: TrainingConfig = super().config
        return config

    @property
    def run_config(self) -> RunConfig:
        """The :class:`~vfl.runtime.config.RunConfig` of :meth:`fit`: `config` and the
        run settings (``key_bits``, ``insecure_key``, ``backend``, ``alignment``,
        ``timeout``)."""
        return RunConfig(training=self.config,
                         **{name: getattr(self, name) for name in _SETTINGS})

    # --- fitting ----------------------------------------------------------------

    def fit(self, parties: Sequence[LabelHolder | FeatureHolder | Coordinator]
            ) -> _VerticalEstimator:
        """Align the parties' rows privately and train on encrypted messages.

        Parameters
        ----------
        parties : sequence of party objects
            Exactly one :class:`~parties.LabelHolder`, one or more
            :class:`~parties.FeatureHolder` (trained in the order given) and,
            optionally, a :class:`~parties.Coordinator`; without one, a
            coordinator with this estimator's ``key_bits``/``backend`` is made.
        """
        parties = list(parties)
        labels = [p for p in parties if isinstance(p, LabelHolder)]
        holders = [p for p in parties if isinstance(p, FeatureHolder)]
        coordinators = [p for p in parties if isinstance(p, Coordinator)]
        others = [p for p in parties if not isinstance(p, (LabelHolder, FeatureHolder,
                                                           Coordinator))]
        if others:
            raise TypeError(f"fit() takes party objects, got {type(others[0]).__name__}")
        if len(labels) != 1 or not holders or len(coordinators) > 1:
            raise ValueError(f"fit() needs one LabelHolder, at least one FeatureHolder and at "
                             f"most one Coordinator; got {len(labels)}, {len(holders)} and "
                             f"{len(coordinators)}")
        run = self.run_config
        coordinator = coordinators[0] if coordinators else Coordinator(
            key_bits=run.key_bits, insecure_key=run.insecure_key, backend=run.backend,
            insecure_plaintext=run.insecure_plaintext)
        with compute_on(run.executor):  # executor=: the heavy work on a cluster, if named
            self.federation_ = Federation(coordinator, labels[0], holders, config=run.training,
                                          alignment=run.alignment, timeout=run.timeout,
                                          progress=self.progress).fit()
        return self

    def _fitted(self) -> Federation:
        if not hasattr(self, "federation_"):
            raise AttributeError(f"this {type(self).__name__} is not fitted yet: call fit() "
                                 "with the parties first")
        return self.federation_

    @property
    def history_(self) -> pd.DataFrame:
        """Loss per epoch: ``epoch``, ``loss`` and, with a validation split,
        ``validation_loss``."""
        return self._fitted().history_

    @property
    def coef_(self) -> dict[str, pd.Series]:
        """Each party's raw-unit weights, by party name (feature holders, then B)."""
        fed = self._fitted()
        parties: list[DataParty[Any]] = [*fed.feature_holders, fed.label_holder]
        return {p.name: p.coef_ for p in parties}

    @property
    def intercept_(self) -> float:
        """The intercept (held by the label holder)."""
        return self._fitted().label_holder.intercept_

    @property
    def n_epochs_(self) -> int:
        """Epochs actually run (early stopping may end training before ``epochs``)."""
        return len(self._fitted().history_)

    @property
    def aligned_rows_(self) -> int:
        """Rows all parties share."""
        rows = self._fitted().aligned_rows_
        if rows is None:
            raise AttributeError("no rows were aligned: fit() did not finish")
        return rows

    # --- using the model -----------------------------------------------------------

    def _decision(self, label_holder_data, feature_holder_data, deliver_to) -> pd.Series:
        return self._fitted().predict(label_holder_data, feature_holder_data,
                                      deliver_to=deliver_to)

    def evaluate(self, label_holder_data: pd.DataFrame | None = None,
                 feature_holder_data: pd.DataFrame | Mapping[str, pd.DataFrame] | None = None
                 ) -> dict[str, float]:
        """Federated metrics, computed by B against its labels (see
        :meth:`parties.Federation.evaluate`)."""
        return self._fitted().evaluate(label_holder_data, feature_holder_data)


class VerticalLinearRegression(_VerticalEstimator):
    """Linear regression trained by the three-party Paillier protocol.

    Parameters
    ----------
    **params
        Any :class:`~vfl.training.TrainingConfig` field except ``model``
        (``epochs``, ``learning_rate``, ``batch_size``, ``optimizer``,
        ``penalty``, ``alpha``, ``early_stopping``, ...); the run settings
        ``key_bits``, ``insecure_key``, ``backend``, ``alignment`` and
        ``timeout`` (:class:`~vfl.runtime.config.RunConfig`'s fields, with its
        defaults); and ``progress`` (False: no progress line). An invalid
        value raises :class:`~vfl.errors.ConfigError` here, not at ``fit``.

    Attributes
    ----------
    federation_ : parties.Federation
    history_ : pandas.DataFrame
    coef_ : dict of str to pandas.Series
    intercept_ : float
    n_epochs_ : int
    """

    _model = "linear"

    def predict(self, label_holder_data: pd.DataFrame | None = None,
                feature_holder_data: pd.DataFrame | Mapping[str, pd.DataFrame] | None = None,
                *, deliver_to: str = "B") -> pd.Series:
        """Federated predictions indexed by ID (new rows, or the training rows)."""
        return self._decision(label_holder_data, feature_holder_data, deliver_to)

    def score(self, label_holder_data: pd.DataFrame | None = None,
              feature_holder_data: pd.DataFrame | Mapping[str, pd.DataFrame] | None = None
              ) -> float:
        """R² on the given rows (default: the training rows)."""
        return self.evaluate(label_holder_data, feature_holder_data)["r2"]


class VerticalLogisticRegression(_VerticalEstimator):
    """Logistic regression (Taylor-expanded log-loss) by the three-party protocol.

    Labels at the label holder are coded 0/1 or -1/+1; ``predict`` returns
    the same coding. Parameters and attributes as
    :class:`VerticalLinearRegression`.
    """

    _model = "logistic"

    def predict_proba(self, label_holder_data: pd.DataFrame | None = None,
                      feature_holder_data: pd.DataFrame | Mapping[str, pd.DataFrame] | None
                      = None, *, deliver_to: str = "B") -> pd.Series:
        """P(class 1) per row, indexed by ID."""
        return self._decision(label_holder_data, feature_holder_data, deliver_to)

    def predict(self, label_holder_data: pd.DataFrame | None = None,
                feature_holder_data: pd.DataFrame | Mapping[str, pd.DataFrame] | None = None,
                *, deliver_to: str = "B", threshold: float = 0.5) -> pd.Series:
        """Class labels (the label holder's coding: 0/1 or -1/+1), indexed by ID."""
        probability = self.predict_proba(label_holder_data, feature_holder_data,
                                         deliver_to=deliver_to)
        labels = self._fitted().label_holder.table.label
        negative = -1 if labels is not None and np.any(labels == -1) else 0
        return pd.Series(np.where(probability > threshold, 1, negative),
                         index=probability.index, name=probability.name)

    def score(self, label_holder_data: pd.DataFrame | None = None,
              feature_holder_data: pd.DataFrame | Mapping[str, pd.DataFrame] | None = None
              ) -> float:
        """Accuracy on the given rows (default: the training rows)."""
        return self.evaluate(label_holder_data, feature_holder_data)["accuracy"]


class VerticalPoissonRegression(_VerticalEstimator):
    """Poisson regression (log link, exact loss) by the three-party protocol.

    Labels at the label holder are counts (non-negative); an exposure
    column, if the label holder has one (``LabelHolder(...,
    exposure_column=...)``), is the offset log(exposure). No Taylor
    approximation: exp(u) = exp(u_B) * prod_k exp(u_Ak) is formed on
    ciphertexts (``docs/poisson.md``). With ``optimizer="lbfgs"`` the line
    search backtracks by Armijo's condition. Parameters and attributes as
    :class:`VerticalLinearRegression`.
    """

    _model = "poisson"

    def predict(self, label_holder_data: pd.DataFrame | None = None,
                feature_holder_data: pd.DataFrame | Mapping[str, pd.DataFrame] | None = None,
                *, deliver_to: str = "B") -> pd.Series:
        """Expected counts mu (times the exposure, where B has one), indexed by ID."""
        return self._decision(label_holder_data, feature_holder_data, deliver_to)

    def score(self, label_holder_data: pd.DataFrame | None = None,
              feature_holder_data: pd.DataFrame | Mapping[str, pd.DataFrame] | None = None
              ) -> float:
        """D², the share of the null deviance explained (scikit-learn's
        ``PoissonRegressor.score``), on the given rows (default: the training rows)."""
        return self.evaluate(label_holder_data, feature_holder_data)["d2"]
