"""Loss, ROC and KS curves as PNG files (needs the optional ``matplotlib``: ``vfl[plot]``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from vfl.risk.evaluation import CurvePoints

__all__ = ["plot_history", "plot_roc_ks"]


def plot_history(history: pd.DataFrame, path: str | os.PathLike[str], *,
                 title: str = "federated training") -> None:
    """Save the loss per epoch (and the validation loss, if any) as a PNG.

    Parameters
    ----------
    history : pandas.DataFrame
        ``epoch``, ``loss`` and optionally ``validation_loss`` columns, as
        :attr:`parties.Federation.history_` returns.
    path : path-like
        PNG file to write (its folder is created).

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    """
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'vfl[plot]'") from None
    matplotlib.use("Agg")  # files only: works on servers without a display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(history["epoch"], history["loss"], marker="o", label="training loss")
    if "validation_loss" in history:
        axes.plot(history["epoch"], history["validation_loss"], marker="s",
                  label="validation loss")
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss (encrypted, decrypted by C)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend()
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    os.makedirs(folder, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_roc_ks(points: CurvePoints, roc_path: str | os.PathLike[str],
                ks_path: str | os.PathLike[str], *, title: str = "federated model") -> None:
    """Save the ROC curve and the KS curve of a binary classifier as two PNGs.

    Parameters
    ----------
    points : vfl.risk.CurvePoints
        From :func:`vfl.risk.roc_ks_points` (labels and predicted probabilities).
    roc_path, ks_path : path-like
        PNG files to write (their folders are created).

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    """
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5, 5))
    auc = float(np.sum(np.diff(points.fpr) * (points.tpr[1:] + points.tpr[:-1]) / 2))
    axes.plot(points.fpr, points.tpr, label=f"ROC (AUC {auc:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title(f"{title}: ROC")
    axes.grid(True, alpha=0.3)
    axes.legend()
    _save(plt, figure, roc_path)
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(points.population, points.tpr, label="events (cumulative share)")
    axes.plot(points.population, points.fpr, label="non-events (cumulative share)")
    at = int(np.argmax(np.abs(points.tpr - points.fpr)))
    axes.vlines(points.population[at], points.fpr[at], points.tpr[at], color="black",
                label=f"KS {points.ks:.3f}")
    axes.set_xlabel("share of rows, highest scores first")
    axes.set_ylabel("cumulative share")
    axes.set_title(f"{title}: KS")
    axes.grid(True, alpha=0.3)
    axes.legend()
    _save(plt, figure, ks_path)


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'vfl[plot]'") from None
    matplotlib.use("Agg")  # files only: works on servers without a display
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, figure: Any, path: str | os.PathLike[str]) -> None:
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    os.makedirs(folder, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
