"""PNG figures of persistence diagrams and Betti curves (matplotlib object API, Agg canvas)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from featgeom_tda.analyses.topology import PersistenceDiagrams, betti_curve
from featgeom_tda.core._validation import check_positive_int

__all__ = ["plot_diagrams", "plot_betti_curves"]


def _as_named(diagrams: Any) -> dict[str, PersistenceDiagrams]:
    if isinstance(diagrams, PersistenceDiagrams):
        return {"diagrams": diagrams}
    if isinstance(diagrams, Mapping) and diagrams and all(isinstance(v, PersistenceDiagrams) for v in diagrams.values()):
        return {str(k): v for k, v in diagrams.items()}
    raise ValueError(
        f"diagrams must be PersistenceDiagrams or a non-empty dict name -> PersistenceDiagrams; got {type(diagrams).__name__}"
    )


def _figure(figsize: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def plot_diagrams(diagrams: Any, path: str | Path, *, title: str | None = None) -> Path:
    """PNG of persistence diagrams (one panel per entry; infinite deaths drawn on a dashed top line).

    ``diagrams``: PersistenceDiagrams or a dict name -> PersistenceDiagrams.
    """
    named = _as_named(diagrams)
    n_cols = min(2, len(named))  # two panels a row: each stays legible at report width
    n_rows = -(-len(named) // n_cols)
    fig = _figure((5.0 * n_cols, 4.6 * n_rows))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for ax in axes.ravel()[len(named):]:
        ax.set_visible(False)
    for ax, (name, pd_) in zip(axes.ravel(), named.items()):
        fin = pd_.bars[np.isfinite(pd_.bars[:, 1])]
        top = float(fin[:, 1].max()) if fin.size else 1.0
        top = max(top, float(pd_.bars[:, 0].max()) if pd_.bars.size else 0.0, 1e-12) * 1.1
        for k in range(pd_.maxdim + 1):
            d = pd_.dim(k)
            deaths = np.where(np.isinf(d[:, 1]), top, d[:, 1])
            ax.scatter(d[:, 0], deaths, s=10, alpha=0.7, label=f"H{k} ({d.shape[0]})")
        ax.plot([0, top], [0, top], color="grey", lw=0.8)
        ax.axhline(top, color="grey", ls="--", lw=0.8)
        ax.text(0, top, " inf", va="bottom", fontsize=8, color="grey")
        ax.set_xlabel("birth (scale at which the feature appears)")
        ax.set_ylabel("death (scale at which it fills in)")
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_betti_curves(
    diagrams: Any, path: str | Path, *, dim: int = 1, n_grid: int = 200, title: str | None = None
) -> Path:
    """PNG of the Betti-``dim`` curves of one or several diagrams on a common grid of ``n_grid`` scales."""
    named = _as_named(diagrams)
    n_grid = check_positive_int(n_grid, "n_grid", minimum=2)
    ends = [float(v) for p in named.values() for v in p.bars[:, :2].ravel() if np.isfinite(v)]
    hi = max(ends) if ends else 1.0
    grid = np.linspace(0.0, hi * 1.05 if hi > 0 else 1.0, n_grid)
    fig = _figure((6, 4))
    ax = fig.subplots()
    for name, pd_ in named.items():
        ax.step(grid, betti_curve(pd_, dim, grid), where="post", label=name)
    ax.set_xlabel("scale")
    ax.set_ylabel(f"Betti {dim}")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)
