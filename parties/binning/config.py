"""The settings of a federated binning run, which every party must share."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from vfl.errors import ConfigError
from vfl.risk.binning import BINNING_METHODS

__all__ = ["DEFAULT_MIN_BIN_ROWS", "BinningConfig"]

#: Fewest rows a revealed bin may hold (docs/binning.md: no bin narrows to a few people).
DEFAULT_MIN_BIN_ROWS = 20


@dataclass(frozen=True)
class BinningConfig:
    """How every party bins its columns, and which columns are kept.

    Attributes
    ----------
    method : {"quantile", "equal-width", "chimerge"}
        ``chimerge`` starts from `prebins` quantile bins and merges adjacent
        ones by their event counts (at the label holder, for every column).
    bins : int
        Value bins per column at most (fewer where values repeat or bins merge).
    min_bin_rows : int
        Fewest rows of any bin; smaller bins are merged by their owner before
        anything about them leaves it.
    prebins : int
        ChiMerge's starting quantile bins (at least `bins`).
    select_iv : float, optional
        Keep the columns whose information value is at least this.
    select_top : int, optional
        Keep the this many columns of highest information value (across parties).
    """

    method: str = "quantile"
    bins: int = 10
    min_bin_rows: int = DEFAULT_MIN_BIN_ROWS
    prebins: int = 20
    select_iv: float | None = None
    select_top: int | None = None

    def __post_init__(self) -> None:
        if self.method not in BINNING_METHODS:
            raise ConfigError(f"unknown binning method {self.method!r}; use one of "
                              f"{', '.join(BINNING_METHODS)}")
        for name in ("bins", "min_bin_rows", "prebins"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.bins < 2:
            raise ConfigError(f"bins must be at least 2, got {self.bins}")
        if self.method == "chimerge" and self.prebins < self.bins:
            raise ConfigError(f"prebins ({self.prebins}) must be at least bins ({self.bins}): "
                              "ChiMerge only merges")
        if self.select_iv is not None and self.select_top is not None:
            raise ConfigError("select by IV threshold or by top count, not both")
        if self.select_iv is not None and (isinstance(self.select_iv, bool)
                                           or not isinstance(self.select_iv, (int, float))
                                           or not self.select_iv >= 0):
            raise ConfigError(f"select_iv must be a non-negative number, got {self.select_iv!r}")
        if self.select_top is not None and (not isinstance(self.select_top, int)
                                            or isinstance(self.select_top, bool)
                                            or self.select_top < 1):
            raise ConfigError(f"select_top must be a positive integer, got {self.select_top!r}")

    @property
    def first_bins(self) -> tuple[str, int]:
        """(unsupervised method, bins) each owner cuts its columns into first."""
        if self.method == "chimerge":
            return "quantile", self.prebins
        return self.method, self.bins

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
