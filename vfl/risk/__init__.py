"""Low layer of the credit-risk tools: binning, WOE/IV and WOE encoding, scorecard points,
KS/lift/gain, population stability.

Pure numpy on one party's plaintext values and counts; the federated
binning protocol that uses them lives in :mod:`parties.binning`.
"""

from vfl.risk.binning import (
    BINNING_METHODS,
    Bins,
    chimerge_groups,
    equal_width_edges,
    make_bins,
    merge_small_bins,
    quantile_edges,
)
from vfl.risk.evaluation import (
    ConfusionMatrix,
    CurvePoints,
    LiftRow,
    confusion_matrix,
    ks_statistic,
    lift_table,
    roc_ks_points,
)
from vfl.risk.scorecard import (
    DEFAULT_BASE_ODDS,
    DEFAULT_BASE_SCORE,
    DEFAULT_PDO,
    Scorecard,
    ScorecardColumn,
    ScoreScale,
)
from vfl.risk.stability import (
    DEFAULT_FLOOR,
    Stability,
    population_stability,
    psi,
    psi_from_counts,
    stability_status,
)
from vfl.risk.woe import DEFAULT_ADJUSTMENT, WoeTable, select_by_iv, woe_table
from vfl.risk.woe_encoding import WoeEncoder

__all__ = [
    "BINNING_METHODS",
    "DEFAULT_ADJUSTMENT",
    "DEFAULT_BASE_ODDS",
    "DEFAULT_BASE_SCORE",
    "DEFAULT_FLOOR",
    "DEFAULT_PDO",
    "Bins",
    "ConfusionMatrix",
    "CurvePoints",
    "LiftRow",
    "ScoreScale",
    "Scorecard",
    "ScorecardColumn",
    "Stability",
    "WoeEncoder",
    "WoeTable",
    "chimerge_groups",
    "confusion_matrix",
    "equal_width_edges",
    "ks_statistic",
    "lift_table",
    "make_bins",
    "merge_small_bins",
    "population_stability",
    "psi",
    "psi_from_counts",
    "quantile_edges",
    "roc_ks_points",
    "select_by_iv",
    "stability_status",
    "woe_table",
]
