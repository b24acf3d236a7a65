"""Figures of feature splitting across SAE widths: each score against width beside its null, family sizes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["plot_scores_by_width", "plot_family_sizes"]


def plot_scores_by_width(
    widths: Sequence[int], scores: Mapping[str, Sequence[Any]], nulls: Mapping[str, Sequence[Any]],
    path: str | Path, *, title: str = "",
) -> Path:
    """One line per metric: its score at each SAE width (``widths``, features) with the random-pairing null mean
    dashed in the same colour; ``None`` entries (a width that was not scored) are gaps. Written as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = np.asarray(widths, dtype=np.float64)
    if x.ndim != 1 or x.size < 1:
        raise ValueError(f"widths must be a non-empty list of feature counts, got {widths!r}")
    fig = Figure(figsize=(5.6, 3.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (metric, values) in enumerate(scores.items()):
        y = np.array([np.nan if v is None else float(v) for v in values])
        null = np.array([np.nan if v is None else float(v) for v in nulls.get(metric, [None] * x.size)])
        if y.shape != x.shape or null.shape != x.shape:
            raise ValueError(f"scores[{metric!r}] and its null need one value per width ({x.size})")
        colour = f"C{i % 10}"
        ax.plot(x, y, marker="o", color=colour, label=metric)
        ax.plot(x, null, linestyle="--", color=colour, alpha=0.6, linewidth=1)
    ax.set_xscale("log", base=2)
    ax.set_xticks(x, [f"{int(w):,}" for w in x])
    ax.set_xlabel("SAE features (width)")
    ax.set_ylabel("score (dashed: random-pairing null)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, frameon=False, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_family_sizes(
    distributions: Mapping[str, Mapping[str, int]], path: str | Path, *, title: str = "",
) -> Path:
    """Grouped bars: for each (narrow -> wide) step, how many narrow features have 1, 2, ... children."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sizes = sorted({int(k) for dist in distributions.values() for k in dist})
    if not sizes:
        raise ValueError("distributions hold no family sizes")
    fig = Figure(figsize=(5.6, 3.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    n = max(1, len(distributions))
    width = 0.8 / n
    pos = np.arange(len(sizes), dtype=np.float64)
    for i, (label, dist) in enumerate(distributions.items()):
        counts = [int(dist.get(str(s), 0)) for s in sizes]
        ax.bar(pos + (i - (n - 1) / 2) * width, counts, width=width, label=label, color=f"C{i % 10}")
    ax.set_xticks(pos, [str(s) for s in sizes])
    ax.set_xlabel("children per narrow feature (family size)")
    ax.set_ylabel("narrow features")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)
