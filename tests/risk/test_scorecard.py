"""Scorecard points (``vfl simulate --woe DIR --scorecard``, ``vfl predict --scorecard``):
each party's points from its own files add up to the score B computes from its prediction."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from parties.binning import load_scorecard
from vfl.cli import main
from vfl.model import ModelPart
from vfl.risk import ScoreScale

KEY = ["--key-bits", "512", "--insecure-key"]


def test_scale_follows_the_usual_definitions():
    scale = ScoreScale()  # 600 points at 50:1, 20 points to double the odds
    assert (scale.pdo, scale.base_odds, scale.base_score) == (20.0, 50.0, 600.0)
    assert scale.factor == pytest.approx(20 / math.log(2))
    assert scale.offset == pytest.approx(600 - 20 / math.log(2) * math.log(50))
    # Odds of a non-event 50:1, i.e. log-odds of the event -ln 50: the base score.
    assert scale.score(np.array([-math.log(50)]))[0] == pytest.approx(600.0)
    # Doubling the odds of a non-event adds PDO points: a higher score, a lower risk.
    assert scale.score(np.array([-math.log(100)]))[0] == pytest.approx(620.0)
    for bad in ({"pdo": 0.0}, {"base_odds": -1.0}, {"base_score": math.inf}):
        with pytest.raises(ValueError):
            ScoreScale(**bad)


@pytest.fixture
def credit(tmp_path):
    rng = np.random.default_rng(3)
    n = 400
    x = rng.normal(size=(n, 4))
    y = (x @ [1.2, -0.8, 0.6, 0.5] + rng.logistic(size=n) > 0).astype(int)
    ids = [f"c{i}" for i in range(n)]
    a = pd.DataFrame({"id": ids, "income": x[:, 0], "age": x[:, 1]})
    a.loc[::9, "age"] = np.nan
    b = pd.DataFrame({"id": ids[::-1], "default": y[::-1], "score": x[::-1, 2],
                      "debt": x[::-1, 3]})
    a.to_csv(tmp_path / "a.csv", index=False)
    b.to_csv(tmp_path / "b.csv", index=False)
    # New rows: some beyond the training range, some missing ages.
    m = 60
    z = rng.normal(size=(m, 4)) * 2.0
    new_ids = [f"n{i}" for i in range(m)]
    new_a = pd.DataFrame({"id": new_ids, "income": z[:, 0], "age": z[:, 1]})
    new_a.loc[::7, "age"] = np.nan
    new_b = pd.DataFrame({"id": new_ids[::-1], "score": z[::-1, 2], "debt": z[::-1, 3]})
    new_a.to_csv(tmp_path / "a_new.csv", index=False)
    new_b.to_csv(tmp_path / "b_new.csv", index=False)
    assert main(["binning", "--party-a", str(tmp_path / "a.csv"), "--party-b",
                 str(tmp_path / "b.csv"), "--id-column", "id", "--label-column", "default",
                 "--out", str(tmp_path / "bins"), "--bins", "5", "--min-bin-rows", "30",
                 "--quiet", *KEY]) == 0
    return tmp_path, new_a, new_b


def simulate(tmp_path, *extra):
    return main(["simulate", "--party-a", str(tmp_path / "a.csv"), "--party-b",
                 str(tmp_path / "b.csv"), "--id-column", "id", "--label-column", "default",
                 "--model", "logistic", "--epochs", "5", "--learning-rate", "0.5",
                 "--out", str(tmp_path / "run"), "--woe", str(tmp_path / "bins"),
                 "--quiet", *KEY, *extra])


def predict(tmp_path, out, *extra):
    return main(["predict", "--party-a", str(tmp_path / "a_new.csv"), "--party-b",
                 str(tmp_path / "b_new.csv"), "--id-column", "id", "--model",
                 str(tmp_path / "run"), "--woe", str(tmp_path / "bins"), "--out",
                 str(tmp_path / out), *extra])


def test_each_partys_points_sum_to_the_score_b_gets(credit):
    tmp_path, new_a, new_b = credit
    assert simulate(tmp_path, "--scorecard", "--pdo", "40", "--base-odds", "20",
                    "--base-score", "500") == 0
    run = tmp_path / "run"
    cards = {p: load_scorecard(run / f"scorecard_{p}.json", party=p) for p in ("A1", "B")}
    models = {p: ModelPart.load(run / f"model_{p}.json", party=p) for p in ("A1", "B")}
    scale = ScoreScale(40.0, 20.0, 500.0)
    # Each party's points: -factor * weight * WOE of its own columns; B's the base.
    for party, card in cards.items():
        assert [c.name for c in card.columns] == models[party].features
        binning = json.loads((tmp_path / "bins" / f"binning_{party}.json").read_text())
        woe = {f["name"]: f["woe"] for f in binning["features"] if f["owner"] == party}
        for column, weight in zip(card.columns, models[party].weights):
            np.testing.assert_allclose(column.points,
                                       -scale.factor * weight * np.array(woe[column.name]),
                                       rtol=1e-12)
    assert cards["A1"].base_points is None
    assert cards["B"].base_points == pytest.approx(
        scale.offset - scale.factor * models["B"].intercept, rel=1e-12)
    # B's file holds nothing of A's columns.
    assert "income" not in (run / "scorecard_B.json").read_text()

    assert predict(tmp_path, "scores.csv", "--scorecard") == 0
    scores = pd.read_csv(tmp_path / "scores.csv", dtype={"id": str}).set_index("id")
    # Centrally, on the joined new rows: each party's points from its own file, summed.
    joined = new_b.merge(new_a, on="id").set_index("id").loc[scores.index]
    total = (cards["A1"].partial_score(joined[["income", "age"]].to_numpy())
             + cards["B"].partial_score(joined[["score", "debt"]].to_numpy()))
    assert np.isnan(joined["age"]).any() and (np.abs(joined["income"]) > 3).any()
    np.testing.assert_allclose(scores["score"].to_numpy(), total, rtol=0, atol=1e-9)
    # The probability is the model's, as without --scorecard.
    assert predict(tmp_path, "plain.csv") == 0
    plain = pd.read_csv(tmp_path / "plain.csv", dtype={"id": str}).set_index("id")
    np.testing.assert_allclose(scores["probability"], plain.loc[scores.index, "probability"],
                               rtol=1e-12)
    logit = np.log(plain["probability"] / (1 - plain["probability"]))
    np.testing.assert_allclose(scores["score"], scale.score(logit.loc[scores.index]),
                               rtol=1e-9)


def test_scorecard_options_are_checked_before_any_work(credit, capsys):
    tmp_path, _, _ = credit
    assert simulate(tmp_path) == 0  # no scorecard files
    capsys.readouterr()
    assert predict(tmp_path, "s.csv", "--scorecard") == 2
    err = capsys.readouterr().err.strip()
    assert "party B" in err and "scorecard_B.json" in err and "\n" not in err
    assert predict(tmp_path, "s.csv", "--scorecard", "--deliver-to", "C") == 2
    assert "--deliver-to B" in capsys.readouterr().err
    assert not (tmp_path / "s.csv").exists()
    assert main(["simulate", "--party-a", str(tmp_path / "a.csv"), "--party-b",
                 str(tmp_path / "b.csv"), "--id-column", "id", "--label-column", "default",
                 "--out", str(tmp_path / "run2"), "--scorecard", "--quiet", *KEY]) == 2
    assert "--woe" in capsys.readouterr().err
    assert simulate(tmp_path, "--scorecard", "--pdo", "0", "--force") == 2
    assert "pdo" in capsys.readouterr().err
