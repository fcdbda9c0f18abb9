"""Regression and classification metrics, computed the same way for federated and central models."""

from __future__ import annotations

import numpy as np

__all__ = ["classification_metrics", "count_metrics", "model_metrics", "poisson_deviance",
           "regression_metrics"]


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


def classification_metrics(y_true: np.ndarray, probability: np.ndarray, *,
                           threshold: float = 0.5) -> dict[str, float]:
    """AUC, accuracy and log-loss of predicted probabilities of class 1.

    Parameters
    ----------
    y_true : array_like
        Labels coded 0/1 or -1/+1 (1 is the positive class).
    probability : array_like
        Predicted P(class 1), in [0, 1].
    threshold : float
        Probability above which a row is predicted as class 1 (accuracy).

    Notes
    -----
    AUC is the Mann-Whitney statistic with ties counted one half (the area
    under the ROC curve); it is NaN when only one class is present.
    Log-loss clips probabilities to [1e-15, 1 - 1e-15].
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(probability, dtype=np.float64)
    if y.shape != p.shape or y.size == 0:
        raise ValueError(f"need equally long non-empty arrays, got {y.shape} and {p.shape}")
    if not set(np.unique(y).tolist()) <= {0.0, 1.0, -1.0}:
        raise ValueError("labels must be coded 0/1 or -1/+1")
    positive = y == 1.0
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos and n_neg:
        # Average ranks handle ties exactly as the ROC area does.
        _, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
        ends = np.cumsum(counts)
        ranks = (ends - (counts - 1) / 2)[inverse]
        auc = (ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    else:
        auc = float("nan")
    clipped = np.clip(p, 1e-15, 1 - 1e-15)
    log_loss = -float(np.mean(np.where(positive, np.log(clipped), np.log1p(-clipped))))
    accuracy = float(np.mean((p > threshold) == positive))
    return {"auc": float(auc), "accuracy": accuracy, "log_loss": log_loss}


def poisson_deviance(y_true: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Each row's Poisson deviance 2 (y log(y / mu) - (y - mu)), y log(y / mu) = 0 at y = 0."""
    y = np.asarray(y_true, dtype=np.float64)
    mu = np.asarray(mu, dtype=np.float64)
    ratio = np.where(y > 0, y / np.where(mu > 0, mu, 1.0), 1.0)
    return 2.0 * (np.where(y > 0, y * np.log(ratio), 0.0) - (y - mu))


def count_metrics(y_true: np.ndarray, mu: np.ndarray) -> dict[str, float]:
    """Deviance, mean Poisson deviance, D² and RMSE of predicted counts mu against counts.

    ``deviance`` is the sum of :func:`poisson_deviance`; ``mean_poisson_deviance``
    its mean (scikit-learn's ``mean_poisson_deviance``); ``d2`` is 1 - deviance /
    the deviance of predicting the mean count (scikit-learn's ``d2_tweedie_score``
    with power 1, what ``PoissonRegressor.score`` returns).
    """
    y = np.asarray(y_true, dtype=np.float64)
    mu = np.asarray(mu, dtype=np.float64)
    if y.shape != mu.shape or y.size == 0:
        raise ValueError(f"need equally long non-empty arrays, got {y.shape} and {mu.shape}")
    if np.any(y < 0) or not np.all(mu > 0):
        raise ValueError("Poisson metrics need counts y >= 0 and predictions mu > 0")
    deviance = float(poisson_deviance(y, mu).sum())
    null = float(poisson_deviance(y, np.full_like(y, y.mean())).sum())
    return {"deviance": deviance, "mean_poisson_deviance": deviance / y.size,
            "d2": 1.0 - deviance / null if null > 0 else float("nan"),
            "rmse": float(np.sqrt(np.mean((mu - y) ** 2)))}


def model_metrics(model: str, y_true: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """The metrics that fit the model: regression for "linear", classification for
    "logistic", counts for "poisson"."""
    if model == "logistic":
        return classification_metrics(y_true, prediction)
    if model == "poisson":
        return count_metrics(y_true, prediction)
    return regression_metrics(y_true, prediction)
