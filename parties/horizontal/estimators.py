"""A scikit-learn-style estimator over an in-process horizontal federation.

>>> model = FederatedAveraging(algorithm="fedavg", rounds=20, local_epochs=2)  # doctest: +SKIP
>>> model.fit([HorizontalClient(df1, label_column="y"),
...            HorizontalClient(df2, label_column="y")])                     # doctest: +SKIP
>>> model.coef_, model.history_[-1]["loss"]                                  # doctest: +SKIP

In a notebook one person plays every role, so the estimator may read what
each party object holds (each client's own metrics, say); in a deployment
each organisation runs only its own party and sees only its own part.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from parties.horizontal.config import HorizontalConfig
from parties.horizontal.federation import HorizontalClient, HorizontalFederation
from parties.horizontal.models import Architecture
from parties.params import ConfigEstimator
from vfl.crypto import DEFAULT_BACKEND, DEFAULT_KEY_BITS

__all__ = ["FederatedAveraging"]

_RUNTIME: dict[str, Any] = {"key_bits": DEFAULT_KEY_BITS, "insecure_key": False,
                            "backend": DEFAULT_BACKEND, "classes": None,
                            "round_timeout": 600.0, "record": False,
                            "checkpoint_dir": None, "run_id": "horizontal"}


class FederatedAveraging(ConfigEstimator):
    """FedSGD, FedAvg or FedProx with Paillier-encrypted, packed aggregation.

    Parameters
    ----------
    **params
        The fields of :class:`~parties.horizontal.config.HorizontalConfig`
        (``model``, ``algorithm``, ``rounds``, ``local_epochs``, ``batch_size``,
        ``learning_rate``, ``mu``, ``server_optimizer``, ``fraction``, ``seed``,
        ...) and the run settings ``key_bits``, ``insecure_key``, ``backend``,
        ``classes``, ``round_timeout``, ``record``, ``checkpoint_dir``, ``run_id``.

    Attributes
    ----------
    coef_ : numpy.ndarray
        Weights in the columns' raw units: ``(d,)``, or ``(d, classes)`` for softmax;
        for the MLP, the hidden layer's ``(d, hidden_units)``.
    intercept_ : float or numpy.ndarray
    layers_ : list of numpy.ndarray
        Every layer in raw units, ``(inputs + 1, outputs)`` with the intercept row
        last: ``[W]`` for the linear models, ``[W1, W2]`` for the MLP.
    history_ : list of dict
        Per round: ``round``, ``loss`` (mean loss of the global model before the
        round's update over the participants' rows), ``participants``,
        ``dropped``, ``rows``, and ``clients``: each participant's own metrics.
    feature_names_in_ : list of str
    classes_ : numpy.ndarray
        Softmax or MLP classes (or ``[0, 1]`` for logistic).
    federation_ : HorizontalFederation
    """

    _config_type = HorizontalConfig
    _runtime = _RUNTIME

    # Set in __init__ from the keywords (with every other option).
    model: str
    key_bits: int
    insecure_key: bool
    backend: str
    classes: Sequence[float] | None
    round_timeout: float
    record: bool
    checkpoint_dir: str | None
    run_id: str

    @property
    def config(self) -> HorizontalConfig:
        config: HorizontalConfig = super().config
        return config

    def fit(self, clients: Sequence[HorizontalClient]) -> FederatedAveraging:
        """Train on the clients' rows through the encrypted protocol; returns self."""
        federation = HorizontalFederation(
            clients, self.config, classes=self.classes, key_bits=self.key_bits,
            insecure_key=self.insecure_key, backend=self.backend,
            round_timeout=self.round_timeout, record=self.record,
            checkpoint_dir=self.checkpoint_dir, run_id=self.run_id).fit()
        server = federation.server_
        assert server is not None
        self.layers_ = server.raw_layers()
        coef, intercept = self.layers_[0][:-1], self.layers_[0][-1]
        single = self.config.model in ("linear", "logistic")
        self.coef_ = coef[:, 0] if single else coef
        self.intercept_ = float(intercept[0]) if single else intercept
        self.weights_standardised_ = server.weights_
        self.feature_names_in_ = list(federation.features)
        self.classes_ = (np.asarray(federation.classes) if not single
                         else np.array([0.0, 1.0]))
        per_client = {name: {r["round"]: r for r in role.rounds_}
                      for name, role in federation.client_roles_.items()}
        self.history_ = [
            {"round": rec.round, "loss": rec.loss, "participants": list(rec.participants),
             "dropped": list(rec.dropped), "rows": rec.rows,
             "clients": {name: {k: v for k, v in per_client[name][rec.round].items()
                                if k != "round"}
                         for name in rec.participants if rec.round in per_client[name]}}
            for rec in server.current.history]
        self.federation_ = federation
        return self

    def _matrix(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        if isinstance(features, pd.DataFrame):
            missing = [c for c in self.feature_names_in_ if c not in features.columns]
            if missing:
                raise KeyError(f"columns missing for prediction: {missing}")
            features = features[self.feature_names_in_].to_numpy(dtype=np.float64)
        return np.asarray(features, dtype=np.float64)

    def _scores(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        layers = self.layers_
        architecture = Architecture(self.model, len(self.feature_names_in_),
                                    layers[-1].shape[1], layers[0].shape[1])
        flat = np.concatenate([layer.ravel() for layer in layers])
        return architecture.scores(flat, self._matrix(features))

    def predict_proba(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Class probabilities: ``(rows, 2)`` for logistic, ``(rows, classes)`` for softmax
        and the MLP."""
        if self.model == "linear":
            raise AttributeError("a linear model has no predict_proba; use predict")
        scores = self._scores(features)
        if self.model == "logistic":
            return np.hstack([1 - scores, scores])
        return scores

    def predict(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Values (linear) or the most probable class (logistic, softmax, MLP)."""
        if self.model == "linear":
            return self._scores(features)[:, 0]
        return self.classes_[np.argmax(self.predict_proba(features), axis=1)]
