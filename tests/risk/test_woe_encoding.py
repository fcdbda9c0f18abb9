"""The low layer of WOE encoding and scorecards against direct numpy computations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from parties.binning import load_scorecard
from vfl.errors import BinningFileError
from vfl.risk import Bins, Scorecard, ScorecardColumn, ScoreScale, WoeEncoder


@pytest.mark.parametrize("missing_bin", [None, 3, 1])
def test_encoding_is_the_woe_of_each_values_left_closed_bin(missing_bin):
    bins = Bins((-1.0, 0.5), missing_bin)
    woe = (0.3, -0.2, 1.1, -0.7)[:bins.n_bins]
    encoder = WoeEncoder("x", bins, woe)
    values = np.array([-5.0, -1.0, -0.999, 0.5, 0.49, 1e9, -1e9])
    expected = [woe[0], woe[1], woe[1], woe[2], woe[1], woe[2], woe[0]]
    np.testing.assert_array_equal(encoder.encode(values), expected)
    if missing_bin is None:
        with pytest.raises(ValueError, match="'x' has 1 missing value"):
            encoder.encode(np.array([0.0, np.nan]))
    else:
        assert encoder.encode(np.array([np.nan]))[0] == woe[missing_bin]
    with pytest.raises(ValueError, match="infinite"):
        encoder.encode(np.array([np.inf]))


def test_an_encoder_refuses_woe_that_does_not_fit_its_bins():
    with pytest.raises(ValueError, match="2 WOE values for 3 bins"):
        WoeEncoder("x", Bins((0.0, 1.0)), (0.1, 0.2))
    with pytest.raises(ValueError, match="finite"):
        WoeEncoder("x", Bins((0.0,)), (0.1, math.nan))


def card() -> Scorecard:
    scale = ScoreScale(pdo=30.0, base_odds=10.0, base_score=500.0)
    columns = (ScorecardColumn.of(WoeEncoder("a", Bins((0.0,), 2), (0.4, -0.3, 0.05)), 0.8,
                                  scale),
               ScorecardColumn.of(WoeEncoder("b", Bins((1.0, 2.0)), (-0.5, 0.0, 0.6)), 1.2,
                                  scale))
    return Scorecard("B", scale, columns, scale.base_points(-0.25), "run-1")


def test_points_are_minus_factor_weight_woe_and_sum_to_the_rescaled_logit():
    scorecard = card()
    scale = scorecard.scale
    values = np.array([[-1.0, 0.5], [3.0, 1.5], [np.nan, 9.0]])
    woe_a = np.array([0.4, -0.3, 0.05])[[0, 1, 2]]
    woe_b = np.array([-0.5, 0.0, 0.6])[[0, 1, 2]]
    logit = -0.25 + 0.8 * woe_a + 1.2 * woe_b
    np.testing.assert_allclose(scorecard.partial_score(values), scale.score(logit),
                               rtol=0, atol=1e-9)
    assert scorecard.points(values).shape == (3, 3)  # two columns, then the base


def test_a_scorecard_file_reads_back_and_a_tampered_one_is_refused(tmp_path):
    scorecard = card()
    path = tmp_path / "scorecard_B.json"
    scorecard.save(path)
    again = load_scorecard(path, party="B")
    assert again == scorecard
    with pytest.raises(BinningFileError, match=r"party A1: .* is party B.s scorecard"):
        load_scorecard(path, party="A1")
    data = json.loads(path.read_text())
    data["columns"][0]["points"][0] += 5.0
    path.write_text(json.dumps(data))
    with pytest.raises(BinningFileError, match="points of column 'a' do not follow"):
        load_scorecard(path, party="B")
    with pytest.raises(BinningFileError, match="does not exist"):
        load_scorecard(tmp_path / "none.json", party="B")
