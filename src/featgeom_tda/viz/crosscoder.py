"""Figures of a crosscoder: the histogram of its latents' relative decoder norms."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["plot_decoder_norm_histogram"]


def plot_decoder_norm_histogram(
    counts: Any, edges: Any, path: str | Path, *, title: str = "", exclusive_threshold: float = 0.1,
    shared_band: Sequence[float] = (0.3, 0.7), labels: tuple[str, str] = ("A", "B"),
) -> Path:
    """Bar histogram of relative decoder norms r = |d_B| / (|d_A| + |d_B|) over [0, 1], written as a PNG, with
    the exclusive zones (r < t, r > 1 - t) and the shared band shaded."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = np.asarray(counts, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    if edges.shape != (counts.size + 1,):
        raise ValueError(f"edges must have one more entry than counts ({counts.size + 1}); got {edges.size}")
    t, (lo, hi) = float(exclusive_threshold), (float(shared_band[0]), float(shared_band[1]))
    fig = Figure(figsize=(5, 3.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.axvspan(0.0, t, color="#dd8452", alpha=0.15, lw=0, label=f"only {labels[0]}")
    ax.axvspan(1.0 - t, 1.0, color="#55a868", alpha=0.15, lw=0, label=f"only {labels[1]}")
    ax.axvspan(lo, hi, color="#4c72b0", alpha=0.12, lw=0, label="shared")
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#1f3a5f", edgecolor="white", linewidth=0.5)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel(f"relative decoder norm |d_{labels[1]}| / (|d_{labels[0]}| + |d_{labels[1]}|)")
    ax.set_ylabel("latents")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper center", frameon=False, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)
