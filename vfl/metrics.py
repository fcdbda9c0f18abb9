"""Regression metrics, computed the same way for federated and central models."""

from __future__ import annotations

import numpy as np

__all__ = ["regression_metrics"]


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MSE, RMSE, MAE and R² (1 - SSE/SST) of predictions against labels."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"need equally long non-empty arrays, got {y_true.shape} and "
                         f"{y_pred.shape}")
    err = y_pred - y_true
    mse = float(np.mean(err**2))
    sst = float(np.sum((y_true - y_true.mean()) ** 2))
    r2 = 1.0 - float(np.sum(err**2)) / sst if sst > 0 else float("nan")
    return {"mse": mse, "rmse": float(np.sqrt(mse)), "mae": float(np.mean(np.abs(err))),
            "r2": r2}
