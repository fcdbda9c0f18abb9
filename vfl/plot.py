"""Loss curves as PNG files (needs the optional ``matplotlib``: ``pip install vfl[plot]``)."""

from __future__ import annotations

import os

import pandas as pd

__all__ = ["plot_history"]


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
