"""One party's part of a trained model, and how it is saved.

A part holds only its owner's columns and weights (in the units of the raw
input columns); the label holder's part also holds the intercept. The full
prediction is the sum of every part's score, which only the federation can
form.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from vfl.errors import ModelFileError
from vfl.files import atomic_write_text

__all__ = ["MODEL_KINDS", "ModelPart", "check_model_set", "mean_prediction", "sigmoid"]

_FORMAT = "vfl-linear-model-part/2"
#: Files of 0.1: the same fields but ``members`` (still read).
_OLDER_FORMATS = ("vfl-linear-model-part/1",)
_ROLES = ("feature_holder", "label_holder")
#: What a summed score can mean (:attr:`ModelPart.model`).
MODEL_KINDS = ("linear", "logistic", "poisson")


def sigmoid(score: np.ndarray) -> np.ndarray:
    """The logistic function, computed without overflow for large |score|."""
    score = np.asarray(score, dtype=np.float64)
    out = np.empty_like(score)
    positive = score >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-score[positive]))
    e = np.exp(score[~positive])
    out[~positive] = e / (1.0 + e)
    return out


def mean_prediction(model: str, score: np.ndarray) -> np.ndarray:
    """The prediction from the summed linear score: itself (linear), P(class 1)
    (logistic, the sigmoid) or the expected count mu = exp(score) (Poisson, log link;
    an exposure enters the score as the offset log(exposure))."""
    score = np.asarray(score, dtype=np.float64)
    if model == "logistic":
        return sigmoid(score)
    if model == "poisson":
        return np.exp(score)
    return score


@dataclass(frozen=True)
class ModelPart:
    """A party's share of a federated linear model.

    Attributes
    ----------
    party : str
        Owner ("A1", "B").
    role : str
        "feature_holder" or "label_holder".
    features : list of str
        Owner's feature columns, in weight order.
    weights : list of float
        One weight per feature, raw units.
    intercept : float or None
        The model's intercept (label holder only).
    session : str
        Federation run that trained it.
    model : {"linear", "logistic", "poisson"}
        What the summed score means: the prediction itself, the log-odds
        of class 1 (probability = 1 / (1 + exp(-score))), or the log of the
        expected count per unit exposure (mu = exposure * exp(score)).
    members : list of str
        Every data party of the run that trained it (feature holders, then
        the label holder): a prediction needs exactly these parts. Empty in
        parts saved by 0.1, which did not record it.
    """

    party: str
    role: str
    features: list[str]
    weights: list[float]
    intercept: float | None
    session: str
    model: str = "linear"
    members: list[str] = field(default_factory=list)

    def score(self, features: np.ndarray) -> np.ndarray:
        """This part's contribution to the prediction for raw feature rows."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != len(self.weights):
            raise ValueError(f"party {self.party}: expected {len(self.weights)} feature "
                             f"columns ({', '.join(self.features)}), got shape {features.shape}")
        out = features @ np.asarray(self.weights, dtype=np.float64)
        return out + (self.intercept or 0.0)

    def to_json(self) -> str:
        """The JSON text :meth:`save` writes."""
        return json.dumps({"format": _FORMAT, **asdict(self)}, indent=2) + "\n"

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the part as JSON, atomically."""
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, party: str | None = None) -> ModelPart:
        """Read a part written by :meth:`save`.

        Parameters
        ----------
        path : path-like
        party : str, optional
            Expected owner; a part of another party is refused.

        Raises
        ------
        ModelFileError
            If the file is missing, not a model part, or another party's.
        """
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            raise ModelFileError(f"model file {path} does not exist", party=party) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelFileError(f"model file {path} is not valid JSON: {exc}",
                                 party=party) from None
        if not isinstance(data, dict) or data.pop("format", None) not in (_FORMAT,
                                                                          *_OLDER_FORMATS):
            raise ModelFileError(f"{path} is not a vfl model part", party=party)
        try:
            part = cls(**data)
        except TypeError as exc:
            raise ModelFileError(f"{path} is damaged: {exc}", party=party) from None
        problem = part._problem()
        if problem:
            raise ModelFileError(f"{path} is damaged: {problem}", party=party)
        if party is not None and part.party != party:
            raise ModelFileError(f"{path} holds party {part.party}'s model, not {party}'s",
                                 party=party)
        return part

    def _problem(self) -> str | None:
        """What makes this part unusable on its own (None: nothing)."""
        if self.model not in MODEL_KINDS:
            return f"unknown model kind {self.model!r}"
        if self.role not in _ROLES:
            return f"unknown role {self.role!r}"
        if len(self.features) != len(self.weights):
            return f"{len(self.features)} features for {len(self.weights)} weights"
        if not all(isinstance(w, (int, float)) and math.isfinite(w) for w in self.weights):
            return "a weight is not a finite number"
        if self.role == "label_holder" and not (isinstance(self.intercept, (int, float))
                                                and math.isfinite(self.intercept)):
            return "the label holder's part has no finite intercept"
        if self.role == "feature_holder" and self.intercept is not None:
            return "a feature holder's part holds an intercept"
        return None


def check_model_set(parts: Mapping[str, ModelPart]) -> None:
    """Refuse parts that do not make one model: all of one run, complete, of one kind.

    Parameters
    ----------
    parts : mapping of party name to ModelPart
        Every part a prediction will sum.

    Raises
    ------
    ModelFileError
        Naming what is wrong: a damaged part, no or several label holder parts,
        parts of different runs or kinds, or a run's party missing or extra.
    """
    for name, part in parts.items():
        problem = part._problem()
        if problem:
            raise ModelFileError(f"the model part of {name} is unusable: {problem}", party=name)
    holders = [name for name, part in parts.items() if part.role == "label_holder"]
    if len(holders) != 1:
        raise ModelFileError(f"a model has one label holder's part (with the intercept); "
                             f"got {len(holders)} ({', '.join(holders) or 'none'})")
    runs = {part.session for part in parts.values()}
    if len(runs) > 1:
        shown = ", ".join(f"{name}: {part.session}" for name, part in parts.items())
        raise ModelFileError(f"the model parts come from different training runs ({shown}); "
                             "use the parts one run saved")
    kinds = {part.model for part in parts.values()}
    if len(kinds) > 1:
        shown = ", ".join(f"{name}: {part.model}" for name, part in parts.items())
        raise ModelFileError(f"the model parts are of different kinds ({shown})")
    members = parts[holders[0]].members
    if members and sorted(members) != sorted(parts):
        missing = sorted(set(members) - set(parts))
        extra = sorted(set(parts) - set(members))
        raise ModelFileError(
            f"the model was trained by {', '.join(members)}"
            + (f"; the part of {', '.join(missing)} is missing" if missing else "")
            + (f"; {', '.join(extra)} took no part in that run" if extra else "")
            + ": predict with exactly the parties that trained it")
