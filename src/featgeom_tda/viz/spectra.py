"""Log-log figures of singular-value spectra (matplotlib Figure + Agg canvas, written to files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from featgeom_tda.analyses.geometry.spectra import Spectrum
from featgeom_tda.core._validation import check_choice

__all__ = ["plot_spectra"]


def plot_spectra(
    spectra: dict[str, Spectrum],
    path: str | Path,
    *,
    quantity: str = "normalized",
    title: str | None = None,
) -> Path:
    """Log-log plot of several spectra (random baselines, ``kind == "random"``, dashed); written to ``path``.

    Args:
        spectra: label -> :class:`Spectrum`.
        path: output image (.png, .svg or .pdf).
        quantity: ``"normalized"`` (s / sum s), ``"singular_values"`` or ``"explained_variance"``.
    Returns:
        The path written.
    """
    fig = _spectra_figure(spectra, quantity=quantity, title=title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _spectra_figure(spectra: dict[str, Spectrum], *, quantity: str, title: str | None):
    """The matplotlib Figure drawn by :func:`plot_spectra` (object API, no global backend change)."""
    check_choice(quantity, "quantity", ("normalized", "singular_values", "explained_variance"))
    if not isinstance(spectra, dict) or not spectra:
        raise ValueError("spectra must be a non-empty dict label -> Spectrum")
    for label, spec in spectra.items():
        if not isinstance(spec, Spectrum):
            raise ValueError(f"spectra[{label!r}] must be a Spectrum, got {type(spec).__name__}")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, spec in spectra.items():
        y = getattr(spec, quantity)
        ranks = np.arange(1, y.shape[0] + 1)
        keep = y > 0
        ax.loglog(ranks[keep], y[keep], linestyle="--" if spec.kind == "random" else "-", label=str(label))
    ax.set_xlabel("rank k")
    ax.set_ylabel({"normalized": "s_k / sum s", "singular_values": "s_k",
                   "explained_variance": "s_k^2 / sum s^2"}[quantity])
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig
