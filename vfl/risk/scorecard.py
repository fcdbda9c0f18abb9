"""Scorecard points from a logistic model trained on WOE-encoded columns.

The score is a linear rescaling of the model's log-odds. With ``logit`` the
log-odds of the event (label 1, e.g. default) and the usual parameters
(points to double the odds ``pdo``, the odds ``base_odds`` of a non-event
to an event at the score ``base_score``):

    factor = pdo / ln 2
    offset = base_score - factor * ln(base_odds)
    score  = offset - factor * logit

so a higher score means a lower risk, and the score rises by ``pdo`` where
the odds of a non-event double. For the model
``logit = b + sum_j beta_j * WOE_j`` the score splits into points:

    base points             = offset - factor * b            (the intercept's)
    points of bin k of col j = -factor * beta_j * WOE_jk

and a row's score is the base points plus the points of its bin in every
column. With WOE's sign (events over non-events, :mod:`vfl.risk.woe`) a
riskier bin has a higher WOE and, for beta_j > 0, fewer points.

Defaults: 600 points at odds 50:1, 20 points to double the odds (the
textbook scale of Siddiqi's "Credit Risk Scorecards"). Points are not
rounded, so they add up to the score exactly.

Pure numpy; the file of one party's points is :class:`Scorecard`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from vfl.files import atomic_write_text
from vfl.risk.binning import Bins
from vfl.risk.woe_encoding import WoeEncoder

__all__ = [
    "DEFAULT_BASE_ODDS",
    "DEFAULT_BASE_SCORE",
    "DEFAULT_PDO",
    "SCORECARD_FORMAT",
    "ScoreScale",
    "Scorecard",
    "ScorecardColumn",
]

DEFAULT_PDO = 20.0
DEFAULT_BASE_ODDS = 50.0
DEFAULT_BASE_SCORE = 600.0
SCORECARD_FORMAT = "vfl-scorecard/1"


@dataclass(frozen=True)
class ScoreScale:
    """How log-odds become points (see the module's formulas).

    Attributes
    ----------
    pdo : float
        Points to double the odds (of a non-event to an event); positive.
    base_odds : float
        Odds of a non-event to an event at `base_score` (50 means 50:1); positive.
    base_score : float
        The score at `base_odds`.
    """

    pdo: float = DEFAULT_PDO
    base_odds: float = DEFAULT_BASE_ODDS
    base_score: float = DEFAULT_BASE_SCORE

    def __post_init__(self) -> None:
        for name in ("pdo", "base_odds", "base_score"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not self.pdo > 0:
            raise ValueError(f"pdo (points to double the odds) must be positive, got {self.pdo}")
        if not self.base_odds > 0:
            raise ValueError(f"base_odds must be positive, got {self.base_odds}")

    @property
    def factor(self) -> float:
        return self.pdo / math.log(2.0)

    @property
    def offset(self) -> float:
        return self.base_score - self.factor * math.log(self.base_odds)

    def score(self, logit: np.ndarray) -> np.ndarray:
        """Scores of log-odds (of the event): ``offset - factor * logit``."""
        return self.offset - self.factor * np.asarray(logit, dtype=np.float64)

    def base_points(self, intercept: float) -> float:
        """The intercept's points: ``offset - factor * intercept``."""
        return self.offset - self.factor * float(intercept)

    def to_json(self) -> dict[str, float]:
        return {"pdo": float(self.pdo), "base_odds": float(self.base_odds),
                "base_score": float(self.base_score), "factor": self.factor,
                "offset": self.offset}


@dataclass(frozen=True)
class ScorecardColumn:
    """One column's points: its encoding and its model weight.

    Attributes
    ----------
    encoder : WoeEncoder
        The column's bins and WOE per bin.
    weight : float
        The model's weight beta_j of the WOE-encoded column.
    points : tuple of float
        Points of each bin: ``-factor * weight * woe``.
    """

    encoder: WoeEncoder
    weight: float
    points: tuple[float, ...]

    @classmethod
    def of(cls, encoder: WoeEncoder, weight: float, scale: ScoreScale) -> ScorecardColumn:
        points = -scale.factor * float(weight) * np.asarray(encoder.woe, dtype=np.float64)
        return cls(encoder, float(weight), tuple(float(p) for p in points))

    @property
    def name(self) -> str:
        return self.encoder.name

    def points_of(self, values: np.ndarray) -> np.ndarray:
        """The points of every value's bin."""
        return np.asarray(self.points, dtype=np.float64)[self.encoder.bin_of(values)]


@dataclass(frozen=True)
class Scorecard:
    """One party's part of a scorecard: its own columns' points (and B's the base).

    Attributes
    ----------
    party : str
    scale : ScoreScale
    columns : tuple of ScorecardColumn
        This party's columns, in its model's order.
    base_points : float or None
        The intercept's points; the label holder's part only (it holds the intercept).
    binning_session : str or None
        The binning run whose bins and WOE these are.
    """

    party: str
    scale: ScoreScale
    columns: tuple[ScorecardColumn, ...]
    base_points: float | None = None
    binning_session: str | None = None

    def points(self, values: np.ndarray) -> np.ndarray:
        """Points of every row (rows x columns, this part's column order): each
        column's points, then the base points when this part has them."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(self.columns):
            raise ValueError(f"party {self.party}: expected {len(self.columns)} columns "
                             f"({', '.join(c.name for c in self.columns)}), got shape "
                             f"{values.shape}")
        columns = [c.points_of(values[:, j]) for j, c in enumerate(self.columns)]
        if self.base_points is not None:
            columns.append(np.full(len(values), self.base_points))
        return np.column_stack(columns) if columns else np.zeros((len(values), 0))

    def partial_score(self, values: np.ndarray) -> np.ndarray:
        """This part's share of every row's score (its points summed)."""
        return self.points(values).sum(axis=1)

    # --- the file ---------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps({
            "format": SCORECARD_FORMAT, "party": self.party, "scale": self.scale.to_json(),
            "binning_session": self.binning_session, "base_points": self.base_points,
            "columns": [{"name": c.name, "edges": list(c.encoder.bins.edges),
                         "missing_bin": c.encoder.bins.missing_bin,
                         "woe": list(c.encoder.woe), "weight": c.weight,
                         "points": list(c.points)} for c in self.columns],
        }, indent=2, allow_nan=False) + "\n"

    def save(self, path: str | os.PathLike[str]) -> None:
        atomic_write_text(path, self.to_json())

    @classmethod
    def from_json(cls, data: Any) -> Scorecard:
        """Read :meth:`to_json`'s content (raises ValueError, naming what is wrong)."""
        if not isinstance(data, dict) or data.get("format") != SCORECARD_FORMAT:
            raise ValueError(f"not a scorecard file (format {SCORECARD_FORMAT})")
        try:
            scale = ScoreScale(**{k: data["scale"][k] for k in
                                  ("pdo", "base_odds", "base_score")})
            columns = []
            for c in data["columns"]:
                bins = Bins(tuple(float(e) for e in c["edges"]), c["missing_bin"])
                encoder = WoeEncoder(str(c["name"]), bins, tuple(float(w) for w in c["woe"]))
                column = ScorecardColumn.of(encoder, float(c["weight"]), scale)
                if not np.allclose(column.points, c["points"], rtol=1e-12, atol=1e-9):
                    raise ValueError(f"the points of column {column.name!r} do not follow "
                                     "from its weight, WOE and the scale")
                columns.append(column)
            base = data["base_points"]
            return cls(str(data["party"]), scale, tuple(columns),
                       None if base is None else float(base), data.get("binning_session"))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"damaged scorecard: {type(exc).__name__} {exc}") from None
