"""Figures of steering results: feature changes and alpha sweeps (matplotlib Figure + Agg canvas, PNG files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from featgeom_tda.analyses.steering.measures import FeatureChange

__all__ = ["plot_before_after", "plot_alpha_sweep"]


def _figure(figsize: tuple[float, float]):
    """A matplotlib Figure attached to an Agg canvas (object API, no global backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def plot_before_after(
    change: FeatureChange, path: str | Path, *, token_labels: Sequence[str] | None = None, title: str | None = None
) -> Path:
    """Two panels: bars of each top feature's peak activation before / after, and a heatmap of
    after - before over positions (features x positions). Returns the written path."""
    if not isinstance(change, FeatureChange):
        raise ValueError(f"change must be a FeatureChange, got {type(change).__name__}")
    n_pos, n_feat = change.before.shape
    if token_labels is not None and len(token_labels) != n_pos:
        raise ValueError(f"token_labels has {len(token_labels)} entries but the change covers {n_pos} positions")
    labels = list(token_labels) if token_labels is not None else [str(t) for t in change.token_ids]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = _figure((12, 0.35 * n_feat + 2.5))
    ax_bar, ax_map = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.4]})
    y = np.arange(n_feat)
    ax_bar.barh(y - 0.2, change.before.max(axis=0), height=0.4, label="before", color="#888888")
    ax_bar.barh(y + 0.2, change.after.max(axis=0), height=0.4, label="after", color="#d95f02")
    ax_bar.set_yticks(y, [f"f{f}" for f in change.features])
    ax_bar.invert_yaxis()
    ax_bar.set_xlabel("peak activation over positions")
    ax_bar.legend(loc="lower right")
    delta = change.delta.T
    lim = float(np.abs(delta).max()) or 1.0
    im = ax_map.imshow(delta, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax_map.set_yticks(y, [f"f{f}" for f in change.features])
    ax_map.set_xticks(np.arange(n_pos), labels, rotation=60, ha="right", fontsize=8)
    ax_map.set_title("after - before")
    fig.colorbar(im, ax=ax_map, shrink=0.8)
    fig.suptitle(title or f"SAE features at {change.hook_name}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_alpha_sweep(rows: Sequence[dict[str, Any]], path: str | Path, *, title: str = "steering sweep") -> Path:
    """Success rate (and KL on unrelated prompts when present) against alpha, from ``alpha_sweep`` rows."""
    if not rows:
        raise ValueError("rows must hold at least one row")
    missing = {"alpha", "success_rate"} - set(rows[0])
    if missing:
        raise ValueError(f"rows need the keys alpha and success_rate; missing {sorted(missing)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = _figure((6, 4))
    ax = fig.subplots()
    alphas = [r["alpha"] for r in rows]
    ax.plot(alphas, [r["success_rate"] for r in rows], "o-", color="#1b9e77", label="success rate")
    ax.set_xlabel("alpha")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    if all(r.get("kl_unrelated") is not None for r in rows):
        ax2 = ax.twinx()
        ax2.plot(alphas, [r["kl_unrelated"] for r in rows], "s--", color="#7570b3", label="KL unrelated")
        ax2.set_ylabel("mean KL(before || after), nats")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
