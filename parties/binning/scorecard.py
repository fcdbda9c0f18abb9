"""Each party's scorecard points from its own model part and its own binning result.

A party's points need only its own columns' weights (its model part) and
WOE per bin (its binning file), so each party builds its own part alone and
keeps it; the label holder's part also holds the intercept's base points.
Nobody learns another party's points. The formulas are in
:mod:`vfl.risk.scorecard`.
"""

from __future__ import annotations

import json
import os

from parties.binning.result import BinningResult
from vfl.errors import BinningFileError
from vfl.model import ModelPart
from vfl.risk.scorecard import Scorecard, ScorecardColumn, ScoreScale

__all__ = ["load_scorecard", "party_scorecard"]


def party_scorecard(model: ModelPart, binning: BinningResult,
                    scale: ScoreScale | None = None) -> Scorecard:
    """The scorecard part of `model`'s owner.

    Parameters
    ----------
    model : ModelPart
        The party's part of a logistic model trained on its WOE-encoded columns.
    binning : BinningResult
        The same party's binning result, whose WOE it was trained on.
    scale : ScoreScale, optional
        Points to double the odds, base odds and base score (defaults: 20, 50, 600).

    Raises
    ------
    BinningFileError
        If the model is of another party or kind, or uses a column the binning file
        does not bin.
    """
    scale = scale or ScoreScale()
    if model.party != binning.party:
        raise BinningFileError(f"{binning.source} is {binning.party}'s, the model part "
                               f"{model.party}'s", party=model.party)
    if model.model != "logistic":
        raise BinningFileError(f"a scorecard rescales log-odds: the model must be logistic, "
                               f"not {model.model}", party=model.party)
    encoders = binning.encoders(all_columns=True)
    unknown = [f for f in model.features if f not in encoders]
    if unknown:
        raise BinningFileError(f"the model uses column {unknown[0]!r}, which "
                               f"{binning.source} does not bin: was the model trained on the "
                               "WOE of this binning run?", party=model.party)
    columns = tuple(ScorecardColumn.of(encoders[name], weight, scale)
                    for name, weight in zip(model.features, model.weights))
    base = None if model.intercept is None else scale.base_points(model.intercept)
    return Scorecard(model.party, scale, columns, base, binning.session)


def load_scorecard(path: str | os.PathLike[str], *, party: str) -> Scorecard:
    """Read ``scorecard_<party>.json``.

    Raises
    ------
    BinningFileError
        If it is missing, damaged or another party's (naming the party and the file).
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            card = Scorecard.from_json(json.load(handle))
    except FileNotFoundError:
        raise BinningFileError(f"scorecard file {path} does not exist (was the model trained "
                               "with --scorecard?)", party=party) from None
    except OSError as exc:
        raise BinningFileError(f"cannot read scorecard file {path}: {exc.strerror}",
                               party=party) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BinningFileError(f"{path} cannot be used: {exc}", party=party) from None
    if card.party != party:
        raise BinningFileError(f"{path} is party {card.party}'s scorecard, not {party}'s",
                               party=party)
    return card
