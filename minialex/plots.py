"""The pictures of a training run, as PNG files (matplotlib, no window needed).

    plot_curves(metrics, "curves.png")          # loss and accuracy against the epoch
    plot_filters(model, "filters.png")          # the first conv layer's kernels, as the paper's Figure 3

``metrics`` is a list of dicts with the columns of ``metrics.csv``. The figures are drawn with
matplotlib's object interface on an Agg canvas: no pyplot, no global state, so this works on a
machine without a display and does not disturb a notebook's own backend.
"""

from __future__ import annotations

import math
import os

import numpy as np

__all__ = ["plot_curves", "plot_filters", "filter_grid"]


def _save(fig, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)


def _column(metrics, key):
    """(epochs, values) where ``key`` has a value (validation columns are empty between evaluations)."""
    pairs = [(row["epoch"], row[key]) for row in metrics if row.get(key) not in (None, "")]
    return [p[0] for p in pairs], [float(p[1]) for p in pairs]


def plot_curves(metrics, path, title=""):
    """Two panels: training loss (left), training and validation accuracy (right), per epoch."""
    from matplotlib.figure import Figure

    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 4))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.85 if title else 0.9, wspace=0.22)
    loss_ax, acc_ax = fig.subplots(1, 2)
    for key, label in (("loss", "training loss"), ("val_loss", "validation loss")):
        x, y = _column(metrics, key)
        if x:
            loss_ax.plot(x, y, marker="o", label=label)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    if loss_ax.get_legend_handles_labels()[0]:
        loss_ax.legend()
    loss_ax.grid(alpha=0.3)
    for key, label in (("train_acc", "training (dropout on)"), ("val_acc", "validation"),
                       ("val_top5", "validation top-5")):
        x, y = _column(metrics, key)
        if x:
            acc_ax.plot(x, [100 * v for v in y], marker="o", label=label)
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy", ylim=(0, 100))
    if acc_ax.get_legend_handles_labels()[0]:
        acc_ax.legend(loc="lower right")
    acc_ax.grid(alpha=0.3)
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    _save(fig, path)


def filter_grid(weight: np.ndarray, zoom: int = 8, gap: int = 1) -> np.ndarray:
    """Kernels (OC, C, KH, KW) tiled in a grid image (rows, cols[, 3]) with values in [0, 1].

    Each kernel is scaled on its own to fill [0, 1] (as the paper's Figure 3: the colours show the
    pattern, not the magnitude), enlarged ``zoom`` times, and separated by ``gap`` white pixels.
    3-channel kernels are shown in colour, others as grey levels of their first channel.
    """
    weight = np.asarray(weight, dtype=np.float64)
    OC, C, KH, KW = weight.shape
    kernels = weight if C == 3 else weight[:, :1]                        # (OC, 3 or 1, KH, KW)
    low = kernels.min(axis=(1, 2, 3), keepdims=True)
    high = kernels.max(axis=(1, 2, 3), keepdims=True)
    kernels = (kernels - low) / np.maximum(high - low, 1e-12)
    kernels = kernels.transpose(0, 2, 3, 1)                              # (OC, KH, KW, c)
    kernels = kernels.repeat(zoom, axis=1).repeat(zoom, axis=2)          # (OC, KH*zoom, KW*zoom, c)
    cols = math.ceil(math.sqrt(OC * 2))                                  # a grid twice as wide as tall
    cols = min(cols, OC)
    rows = math.ceil(OC / cols)
    h, w = KH * zoom, KW * zoom
    grid = np.ones((rows * (h + gap) + gap, cols * (w + gap) + gap, kernels.shape[3]))
    for i in range(OC):
        r, c = divmod(i, cols)
        grid[gap + r * (h + gap):gap + r * (h + gap) + h, gap + c * (w + gap):gap + c * (w + gap) + w] = kernels[i]
    return grid if grid.shape[2] == 3 else grid[:, :, 0]


def plot_filters(model_or_weight, path, title="first convolution's kernels"):
    """The first Conv2d's kernels of ``model_or_weight`` (a model, or an array (OC, C, KH, KW))."""
    from matplotlib.figure import Figure

    weight = model_or_weight
    if hasattr(model_or_weight, "named_parameters"):
        weight = next((p for name, p in model_or_weight.named_parameters()
                       if name.endswith("weight") and p.ndim == 4), None)
        if weight is None:
            raise ValueError("plot_filters: the model has no convolution weight (a 4-D parameter)")
        weight = weight.numpy()
    grid = filter_grid(weight)
    OC, C, KH, KW = np.shape(weight)
    fig = Figure(figsize=(max(4.0, grid.shape[1] / 60), max(2.5, grid.shape[0] / 60 + 0.6)))
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.84))
    ax.imshow(grid, cmap=None if grid.ndim == 3 else "gray", interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"{title}: {OC} kernels of {C}x{KH}x{KW}")
    _save(fig, path)
