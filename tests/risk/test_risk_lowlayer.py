"""The risk low layer against direct computations: bins, WOE/IV, KS/lift/gain, PSI."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vfl.risk import (
    Bins,
    chimerge_groups,
    confusion_matrix,
    equal_width_edges,
    ks_statistic,
    lift_table,
    make_bins,
    merge_small_bins,
    psi,
    psi_from_counts,
    quantile_edges,
    roc_ks_points,
    woe_table,
)


def test_bins_are_left_closed_with_missing_apart():
    bins = Bins((1.0, 2.0), missing_bin=3)
    values = np.array([0.5, 1.0, 1.5, 2.0, 7.0, np.nan])
    assert bins.assign(values).tolist() == [0, 1, 1, 2, 2, 3]
    assert bins.assign(values).tolist() == np.r_[np.digitize(values[:5], [1.0, 2.0]), 3].tolist()
    assert bins.n_bins == 4 and bins.missing_apart


def test_missing_values_need_a_place():
    with pytest.raises(ValueError, match="missing"):
        Bins((1.0,)).assign(np.array([np.nan]))


def test_quantile_edges_are_numpys_quantiles():
    rng = np.random.default_rng(0)
    x = rng.normal(size=1000)
    assert quantile_edges(x, 4) == tuple(np.quantile(x, [0.25, 0.5, 0.75]))


def test_quantile_edges_drop_repeats_and_the_minimum():
    x = np.array([0.0] * 60 + [1.0] * 30 + [2.0] * 10)
    edges = quantile_edges(x, 10)
    assert min(edges) > 0.0 and len(set(edges)) == len(edges)
    # An empty bin between interpolated quantiles merges away even at one row per bin.
    assert make_bins(x, method="quantile", bins=10, min_rows=1).counts(x).tolist() == [60, 30, 10]


def test_equal_width_edges():
    x = np.array([0.0, 10.0, np.nan, 3.0])
    assert equal_width_edges(x, 5) == pytest.approx((2.0, 4.0, 6.0, 8.0))


def test_small_bins_merge_until_every_bin_has_the_minimum():
    rng = np.random.default_rng(1)
    x = np.r_[rng.normal(size=200), [50.0, 51.0]]  # two outliers alone in a top bin
    bins = merge_small_bins(x, Bins((-1.0, 0.0, 1.0, 10.0)), 20)
    counts = bins.counts(x)
    assert counts.min() >= 20 and counts.sum() == x.size
    assert 10.0 not in bins.edges


def test_few_missing_values_join_the_largest_bin():
    x = np.r_[np.zeros(30), np.ones(50), [np.nan] * 3]
    bins = make_bins(x, method="quantile", bins=2, min_rows=10)
    assert bins.missing_bin == 1 and not bins.missing_apart
    assert bins.counts(x).tolist() == [30, 53]


def test_enough_missing_values_keep_their_own_bin():
    x = np.r_[np.arange(100.0), [np.nan] * 20]
    bins = make_bins(x, method="quantile", bins=4, min_rows=10)
    assert bins.missing_apart and bins.counts(x).tolist() == [25, 25, 25, 25, 20]


def test_merged_bins_drop_inner_edges():
    assert Bins((1.0, 2.0, 3.0), 4).merged([0, 0, 1, 1]) == Bins((2.0,), 2)
    with pytest.raises(ValueError):
        Bins((1.0, 2.0)).merged([0, 2, 2])


def test_chimerge_merges_the_most_alike_neighbours_first():
    # Bins 0 and 1 have the same event rate: chi-square 0, merged first.
    counts, events = [100, 100, 100, 100], [10, 10, 50, 90]
    assert chimerge_groups(counts, events, 3) == [0, 0, 1, 2]
    assert chimerge_groups(counts, events, 1) == [0, 0, 0, 0]
    # With a threshold it keeps merging while neighbours look alike.
    assert chimerge_groups(counts, events, 4, threshold=3.841) == [0, 0, 1, 2]


def test_chi_square_matches_the_textbook_2x2_formula():
    from vfl.risk.binning import _chi_square

    a, b, c, d = 10, 90, 30, 70  # events/non-events of two bins
    n = a + b + c + d
    textbook = n * (a * d - b * c) ** 2 / ((a + b) * (c + d) * (a + c) * (b + d))
    assert _chi_square(a + b, a, c + d, c) == pytest.approx(textbook, rel=1e-12)


def test_woe_and_iv_equal_the_formula():
    counts, events = np.array([50, 30, 20]), np.array([5, 10, 15])
    table = woe_table(counts, events)
    e_total, g_total = 30, 70
    for i in range(3):
        share_e, share_g = events[i] / e_total, (counts[i] - events[i]) / g_total
        assert table.woe[i] == pytest.approx(math.log(share_e / share_g), rel=1e-12)
        assert table.iv_bins[i] == pytest.approx((share_e - share_g)
                                                 * math.log(share_e / share_g), rel=1e-12)
    assert table.iv == pytest.approx(table.iv_bins.sum())


def test_woe_smooths_an_empty_class_by_half_a_row():
    table = woe_table(np.array([10, 20]), np.array([0, 8]))
    assert table.woe[0] == pytest.approx(math.log((0.5 / 8) / (10.5 / 22)))
    assert np.isfinite(table.woe).all()


def test_woe_refuses_a_column_of_one_class():
    with pytest.raises(ValueError, match="both events and non-events"):
        woe_table(np.array([10, 20]), np.array([0, 0]))


def _direct_ks(y, s):
    best = 0.0
    for t in np.unique(s):
        tpr = np.mean(s[y == 1] >= t)
        fpr = np.mean(s[y == 0] >= t)
        best = max(best, abs(tpr - fpr))
    return best


def test_ks_equals_the_direct_maximum_over_thresholds():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.normal(size=500) + y, 1)  # rounded: many ties
    assert ks_statistic(y, s) == pytest.approx(_direct_ks(y, s), abs=1e-12)


def test_roc_points_give_the_auc_of_the_metrics_module():
    from vfl.metrics import classification_metrics

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    p = 1 / (1 + np.exp(-(rng.normal(size=300) + y)))
    points = roc_ks_points(y, p)
    auc = float(np.sum(np.diff(points.fpr) * (points.tpr[1:] + points.tpr[:-1]) / 2))
    assert auc == pytest.approx(classification_metrics(y, p)["auc"], rel=1e-12)
    assert points.tpr[-1] == points.fpr[-1] == points.population[-1] == 1.0


def test_lift_table_equals_deciles_computed_directly():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 1000)
    s = rng.normal(size=1000) + y  # distinct scores: deciles of exactly 100 rows
    table = lift_table(y, s)
    ranked = y[np.argsort(-s)]
    overall = y.mean()
    assert len(table) == 10
    for k, row in enumerate(table):
        decile = ranked[100 * k:100 * (k + 1)]
        assert row.rows == 100 and row.events == decile.sum()
        assert row.lift == pytest.approx(decile.mean() / overall)
        assert row.gain == pytest.approx(ranked[:100 * (k + 1)].sum() / y.sum())
        assert row.cumulative_lift == pytest.approx(ranked[:100 * (k + 1)].mean() / overall)
    assert table[-1].gain == pytest.approx(1.0)


def test_lift_table_keeps_ties_in_one_group():
    y = np.array([1, 0, 1, 0, 1, 0, 0, 0, 1, 0])
    s = np.array([0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.2, 0.2, 0.2, 0.1])
    table = lift_table(y, s, groups=5)
    assert [r.rows for r in table] == [4, 2, 3, 1]
    assert sum(r.events for r in table) == 4


def test_confusion_matrix_counts():
    y = np.array([1, 1, 0, 0, 1])
    p = np.array([0.9, 0.4, 0.6, 0.1, 0.5])
    m = confusion_matrix(y, p, 0.5)
    assert (m.true_positive, m.false_positive, m.true_negative, m.false_negative) == (1, 1, 1, 2)
    assert m.precision == 0.5 and m.recall == pytest.approx(1 / 3)


def test_psi_equals_the_direct_sum():
    e, a = np.array([30, 50, 20]), np.array([20, 50, 30])
    pe, pa = e / e.sum(), a / a.sum()
    assert psi_from_counts(e, a) == pytest.approx(np.sum((pa - pe) * np.log(pa / pe)))


def test_psi_of_shifted_rows_uses_the_training_deciles():
    rng = np.random.default_rng(5)
    train, new = rng.normal(size=2000), rng.normal(0.5, 1, size=1500)
    cuts = np.quantile(train, np.arange(1, 10) / 10)
    pe = np.bincount(np.digitize(train, cuts), minlength=10) / train.size
    pa = np.bincount(np.digitize(new, cuts), minlength=10) / new.size
    assert psi(train, new) == pytest.approx(np.sum((pa - pe) * np.log(pa / pe)), rel=1e-12)
    assert psi(train, train) == 0.0


def test_psi_gives_new_missing_values_a_bin():
    train = np.arange(100.0)
    new = np.r_[np.arange(90.0), [np.nan] * 10]
    assert psi(train, new) > 0.05
