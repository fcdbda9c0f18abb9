"""Federated binning with WOE and IV (``docs/binning.md``): B's labels, every party's columns.

>>> from parties.binning import (BinningConfig, BinningCoordinator,
...     BinningFeatureHolder, BinningLabelHolder, run_binning)
>>> a = BinningFeatureHolder(frame_a, id_column="id")               # doctest: +SKIP
>>> b = BinningLabelHolder(frame_b, id_column="id", label_column="y")  # doctest: +SKIP
>>> run_binning(b, a, BinningCoordinator(), BinningConfig(bins=10))  # doctest: +SKIP
>>> a.result_                                                        # doctest: +SKIP
>>> FeatureHolder(woe_encode(frame_a, a.binning), id_column="id")   # doctest: +SKIP
"""

from parties.binning.config import DEFAULT_MIN_BIN_ROWS, BinningConfig
from parties.binning.coordinator import BinningCoordinator
from parties.binning.encoding import check_binning_files, woe_encode
from parties.binning.feature_holder import BinningFeatureHolder
from parties.binning.federation import run_binning
from parties.binning.label_holder import BinningLabelHolder
from parties.binning.result import BINNING_FORMAT, BinningResult, FeatureBinning
from parties.binning.scorecard import load_scorecard, party_scorecard
from parties.binning.table import BinningTable

__all__ = [
    "BINNING_FORMAT",
    "DEFAULT_MIN_BIN_ROWS",
    "BinningConfig",
    "BinningCoordinator",
    "BinningFeatureHolder",
    "BinningLabelHolder",
    "BinningResult",
    "BinningTable",
    "FeatureBinning",
    "check_binning_files",
    "load_scorecard",
    "party_scorecard",
    "run_binning",
    "woe_encode",
]
