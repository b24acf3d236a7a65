"""Figures of a matching: the histogram of matched-pair correlations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_correlation_histogram"]


def plot_correlation_histogram(values: Any, path: str | Path, *, title: str = "", bins: int = 40) -> Path:
    """Histogram of (n_pairs,) Pearson correlations, written as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.hist(np.asarray(values, dtype=np.float64), bins=bins, color="#1f3a5f")
    ax.set_xlabel("Pearson correlation")
    ax.set_ylabel("pairs")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)
