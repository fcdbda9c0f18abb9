"""What a risk team reads of a binary classifier: KS, lift and gain, ROC and KS curves.

Scores are ranked from highest to lowest (a higher score means more likely
an event, label 1). Ties are never split: every curve steps over all rows of
one score at once, so the results do not depend on the rows' order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ConfusionMatrix",
    "CurvePoints",
    "LiftRow",
    "confusion_matrix",
    "ks_statistic",
    "lift_table",
    "roc_ks_points",
]


@dataclass(frozen=True)
class CurvePoints:
    """The ROC and KS curves, one point per distinct score (plus the origin).

    Attributes
    ----------
    thresholds : numpy.ndarray
        Score at or above which rows are called events (``inf`` first: none).
    population : numpy.ndarray
        Share of all rows at or above the threshold.
    tpr, fpr : numpy.ndarray
        Shares of events and of non-events at or above the threshold (the
        ROC curve is fpr against tpr; the KS curve both against `population`).
    """

    thresholds: np.ndarray
    population: np.ndarray
    tpr: np.ndarray
    fpr: np.ndarray

    @property
    def ks(self) -> float:
        """The largest gap between the two cumulative shares."""
        return float(np.max(np.abs(self.tpr - self.fpr)))

    @property
    def ks_threshold(self) -> float:
        """The score where that gap is largest."""
        return float(self.thresholds[int(np.argmax(np.abs(self.tpr - self.fpr)))])


@dataclass(frozen=True)
class LiftRow:
    """One group (decile) of the rows ranked by score, highest first.

    Attributes
    ----------
    group : int
        1 for the highest scores.
    rows, events : int
    min_score, max_score : float
    event_rate : float
        events / rows.
    lift : float
        event_rate over the event rate of all rows.
    cumulative_events : int
    gain : float
        Share of all events in this group and those above it.
    cumulative_lift : float
        Event rate of this group and those above, over the overall rate.
    """

    group: int
    rows: int
    events: int
    min_score: float
    max_score: float
    event_rate: float
    lift: float
    cumulative_events: int
    gain: float
    cumulative_lift: float


@dataclass(frozen=True)
class ConfusionMatrix:
    """Counts of rows called events (score above the threshold) against their labels."""

    threshold: float
    true_positive: int
    false_positive: int
    true_negative: int
    false_negative: int

    @property
    def precision(self) -> float:
        called = self.true_positive + self.false_positive
        return self.true_positive / called if called else float("nan")

    @property
    def recall(self) -> float:
        events = self.true_positive + self.false_negative
        return self.true_positive / events if events else float("nan")


def _checked(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1 or y.size == 0:
        raise ValueError(f"need equally long non-empty vectors, got {y.shape} and {s.shape}")
    if not set(np.unique(y).tolist()) <= {0.0, 1.0, -1.0}:
        raise ValueError("labels must be coded 0/1 or -1/+1")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return (y == 1.0).astype(np.int64), s


def roc_ks_points(labels: np.ndarray, scores: np.ndarray) -> CurvePoints:
    """Cumulative shares of events and non-events as the threshold falls.

    Raises
    ------
    ValueError
        If the labels hold only one class (no curve is defined).
    """
    y, s = _checked(labels, scores)
    n_events, n_non = int(y.sum()), int(y.size - y.sum())
    if not n_events or not n_non:
        raise ValueError("ROC and KS need both events and non-events")
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    # The last row of each distinct score: the curve steps there.
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s.size - 1]
    events = np.cumsum(y_sorted)[last]
    rows = last + 1
    return CurvePoints(thresholds=np.r_[np.inf, s_sorted[last]],
                       population=np.r_[0.0, rows / s.size],
                       tpr=np.r_[0.0, events / n_events],
                       fpr=np.r_[0.0, (rows - events) / n_non])


def ks_statistic(labels: np.ndarray, scores: np.ndarray) -> float:
    """Kolmogorov-Smirnov statistic: max over thresholds of |TPR - FPR|."""
    return roc_ks_points(labels, scores).ks


def lift_table(labels: np.ndarray, scores: np.ndarray, groups: int = 10) -> list[LiftRow]:
    """Lift and gain by group of (about) equal size, highest scores first.

    Rows are ranked by score and cut into `groups` groups of rows; rows of one
    score never straddle two groups (a tie goes to the group where its first
    row falls), so groups may differ in size and some may be empty (omitted).
    """
    y, s = _checked(labels, scores)
    if groups < 1:
        raise ValueError(f"groups must be at least 1, got {groups}")
    total_events = int(y.sum())
    if not total_events:
        raise ValueError("lift needs at least one event")
    overall = total_events / y.size
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    # Group of each rank, then every row of one score in the group of its first rank.
    rank_group = (np.arange(s.size) * groups) // s.size
    first_of_score = np.r_[0, np.flatnonzero(np.diff(s_sorted) != 0) + 1]
    tie_id = np.cumsum(np.r_[1, np.diff(s_sorted) != 0]) - 1
    group_of = rank_group[first_of_score][tie_id]
    table: list[LiftRow] = []
    cumulative_events = cumulative_rows = 0
    for g in range(groups):
        members = group_of == g
        rows = int(members.sum())
        if not rows:
            continue
        events = int(y_sorted[members].sum())
        cumulative_events += events
        cumulative_rows += rows
        rate = events / rows
        table.append(LiftRow(
            group=g + 1, rows=rows, events=events,
            min_score=float(s_sorted[members].min()), max_score=float(s_sorted[members].max()),
            event_rate=rate, lift=rate / overall, cumulative_events=cumulative_events,
            gain=cumulative_events / total_events,
            cumulative_lift=(cumulative_events / cumulative_rows) / overall))
    return table


def confusion_matrix(labels: np.ndarray, scores: np.ndarray,
                     threshold: float = 0.5) -> ConfusionMatrix:
    """Rows with score above `threshold` called events, against their labels.

    Strictly above, as the accuracy of :func:`vfl.metrics.classification_metrics`.
    """
    y, s = _checked(labels, scores)
    called = s > threshold
    return ConfusionMatrix(
        threshold=float(threshold),
        true_positive=int(np.sum(called & (y == 1))),
        false_positive=int(np.sum(called & (y == 0))),
        true_negative=int(np.sum(~called & (y == 0))),
        false_negative=int(np.sum(~called & (y == 1))))
