"""One party's part of a trained model, and how it is saved.

A part holds only its owner's columns and weights (in the units of the raw
input columns); the label holder's part also holds the intercept. The full
prediction is the sum of every part's score, which only the federation can
form.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import numpy as np

from vfl.errors import ModelFileError
from vfl.files import atomic_write_text

__all__ = ["ModelPart", "sigmoid"]

_FORMAT = "vfl-linear-model-part/1"


def sigmoid(score: np.ndarray) -> np.ndarray:
    """The logistic function, computed without overflow for large |score|."""
    score = np.asarray(score, dtype=np.float64)
    out = np.empty_like(score)
    positive = score >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-score[positive]))
    e = np.exp(score[~positive])
    out[~positive] = e / (1.0 + e)
    return out


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
    model : {"linear", "logistic"}
        What the summed score means: the prediction itself, or the log-odds
        of class 1 (probability = 1 / (1 + exp(-score))).
    """

    party: str
    role: str
    features: list[str]
    weights: list[float]
    intercept: float | None
    session: str
    model: str = "linear"

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
        if not isinstance(data, dict) or data.pop("format", None) != _FORMAT:
            raise ModelFileError(f"{path} is not a vfl model part", party=party)
        try:
            part = cls(**data)
        except TypeError as exc:
            raise ModelFileError(f"{path} is damaged: {exc}", party=party) from None
        if part.model not in ("linear", "logistic"):
            raise ModelFileError(f"{path} is damaged: unknown model kind {part.model!r}",
                                 party=party)
        if party is not None and part.party != party:
            raise ModelFileError(f"{path} holds party {part.party}'s model, not {party}'s",
                                 party=party)
        if len(part.features) != len(part.weights):
            raise ModelFileError(f"{path} is damaged: {len(part.features)} features for "
                                 f"{len(part.weights)} weights", party=party)
        return part
