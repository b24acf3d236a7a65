"""Figures of the similarity grid: one heatmap per metric, matched pairs beside the random-pairing null."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["plot_metric_heatmap"]


def plot_metric_heatmap(
    score: np.ndarray,
    null: np.ndarray,
    path: str | Path,
    *,
    metric_label: str,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    row_title: str,
    col_title: str,
) -> Path:
    """Two (n_rows, n_cols) heatmaps side by side, scores and null means on [0, 1]; NaN cells left blank."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 2.2 + 0.4 * len(row_labels)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    im = None
    for ax, mat, title in zip(axes, (score, null), ("matched pairs", "random pairing (null mean)")):
        im = ax.imshow(mat, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(col_labels)), list(col_labels), fontsize=7)
        ax.set_yticks(range(len(row_labels)), list(row_labels), fontsize=7)
        ax.set_xlabel(col_title, fontsize=8)
        ax.set_ylabel(row_title, fontsize=8)
        ax.set_title(f"{metric_label}: {title}", fontsize=8)
        for (i, j), v in np.ndenumerate(mat):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < 0.6 else "k", fontsize=8)
    fig.colorbar(im, ax=axes, shrink=0.8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return Path(path)
