"""The evaluation tables of a binary classifier as plain JSON values (for report.json)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from vfl.risk.evaluation import confusion_matrix, lift_table, roc_ks_points

__all__ = ["evaluation_report"]


def evaluation_report(labels: np.ndarray, probabilities: np.ndarray, *,
                      threshold: float = 0.5, groups: int = 10) -> dict[str, Any]:
    """KS, the lift and gain table by decile and the confusion matrix at `threshold`.

    Returns
    -------
    dict
        ``ks`` (max |TPR - FPR|), ``ks_threshold`` (the probability where it
        is reached), ``lift`` (one object per decile, highest probabilities
        first: rows, events, event_rate, lift, cumulative_events, gain,
        cumulative_lift, min_score, max_score) and ``confusion_matrix``
        (threshold, true/false positives/negatives, precision, recall).
        With one class only, ``ks`` and ``lift`` are left out (undefined).
    """
    matrix = confusion_matrix(labels, probabilities, threshold)
    report: dict[str, Any] = {
        "confusion_matrix": {**asdict(matrix), "precision": _number(matrix.precision),
                             "recall": _number(matrix.recall)}}
    y = np.asarray(labels, dtype=np.float64) == 1.0
    if y.any() and not y.all():
        points = roc_ks_points(labels, probabilities)
        report = {"ks": points.ks, "ks_threshold": points.ks_threshold,
                  "lift": [asdict(row) for row in lift_table(labels, probabilities, groups)],
                  **report}
    return report


def _number(value: float) -> float | None:
    """JSON has no NaN: an undefined ratio is null."""
    return None if np.isnan(value) else float(value)
