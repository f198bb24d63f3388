"""The figures a trial logs: its embedding histograms and its loss curves."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def embedding_figure(embeddings: dict[str, np.ndarray], title: str) -> plt.Figure:
    """One histogram of all values per embedding table."""
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for name, table in embeddings.items():
        dims = table.shape[1] if table.ndim == 2 else 1
        ax.hist(np.ravel(table), bins=60, alpha=0.6, label=f"{name} ({dims} dims)")
    ax.set(title=title, xlabel="embedding value", ylabel="count")
    ax.legend()
    return fig


def loss_curve_figure(history: dict[str, list[float]], title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    epochs = range(1, len(history["train_loss"]) + 1)
    ax.plot(epochs, history["train_loss"], label="train loss")
    if history.get("val_loss"):
        ax.plot(epochs, history["val_loss"], label="validation loss")
    ax.set(yscale="log", xlabel="Epoch", ylabel="Loss", title=title)
    ax.legend()
    return fig
