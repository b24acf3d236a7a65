"""Figures of two-dimensional projections: side-by-side, joint and before/after views.

Every figure is a PNG (matplotlib object API, Agg canvas) and optionally an interactive HTML file (plotly,
with plotly.js inlined: it opens without network). Every string from the data is HTML-escaped. The
coordinates come from :mod:`featgeom_tda.analyses.projection`.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from featgeom_tda.analyses.projection import before_after_layout, joint_layout, side_by_side_layout

__all__ = ["side_by_side", "joint_projection", "before_after"]


def _save_png(fig, path: str | Path) -> Path:
    """Write a matplotlib Figure as PNG (dpi 110) through an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    return path


def _write_plotly_html(fig, path: str | Path) -> Path:
    """Self-contained HTML (plotly.js inlined, no external resource)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = fig.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False})
    path.write_text(text, encoding="utf-8")
    return path


def side_by_side(
    weights_a: Any,
    weights_b: Any,
    matching: Any,
    *,
    method: str = "pca",
    path_png: str | Path,
    path_html: str | Path | None = None,
    labels: Sequence[str] = ("A", "B"),
    metric: str = "cosine",
    seed: int = 0,
    n_neighbors: int = 15,
    align: bool = True,
    max_links: int = 300,
    names_a: Sequence[str] | None = None,
    names_b: Sequence[str] | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """Two models' rows (n_a, d_a) and (n_b, d_b), each projected on its own, matched pairs highlighted.

    B's coordinates are aligned to A's by the similarity transform (scale, rotation/reflection, shift)
    that best maps matched B rows onto their A partners (``align=True``); matched pairs share a colour and
    the ``max_links`` best-correlated pairs are joined by lines. ``names_a``/``names_b``: optional hover
    labels per feature (escaped). Returns dict with ``coords_a``, ``coords_b`` (aligned, before the
    side-by-side offset), ``n_links``, ``png`` and ``html`` paths.
    """
    lay = side_by_side_layout(
        weights_a, weights_b, matching, method=method, labels=labels, metric=metric, seed=seed,
        n_neighbors=n_neighbors, align=align, max_links=max_links, names_a=names_a, names_b=names_b,
    )
    ca, cb, ba, bb_shift, order = lay["coords_a"], lay["coords_b"], lay["box_a"], lay["box_b"], lay["order"]
    color, color_b, matched_a, matched_b = lay["color_a"], lay["color_b"], lay["matched_a"], lay["matched_b"]
    m, (la, lb), na_txt, nb_txt = lay["matching"], lay["labels"], lay["names_a"], lay["names_b"]
    n_a, n_b = ca.shape[0], cb.shape[0]
    caption = title or f"{la} vs {lb}: {method.upper()} of rows, {len(m)} matched pairs"

    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 5.5))
    ax = fig.subplots()
    if order.size:
        segs = np.stack([ba[m.index_a[order]], bb_shift[m.index_b[order]]], axis=1)
        ax.add_collection(LineCollection(segs, colors="0.6", linewidths=0.4, alpha=0.5, zorder=1))
    for pts, matched, col in ((ba, matched_a, color), (bb_shift, matched_b, color_b)):
        ax.scatter(pts[~matched, 0], pts[~matched, 1], s=4, c="0.8", zorder=2, linewidths=0)
        ax.scatter(pts[matched, 0], pts[matched, 1], s=9, c=col[matched], cmap="hsv", vmin=0, vmax=1, zorder=3, linewidths=0)
    ax.text(0.5, 1.05, la, ha="center", fontsize=12, transform=ax.transData)
    ax.text(1.75, 1.05, lb, ha="center", fontsize=12, transform=ax.transData)
    ax.set_xlim(-0.05, 2.3)
    ax.set_ylim(-0.05, 1.12)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(caption, fontsize=10)
    fig.tight_layout()
    png = _save_png(fig, path_png)

    html_path = None
    if path_html is not None:
        import plotly.graph_objects as go

        corr_a = np.full(n_a, np.nan)
        partner_a = np.full(n_a, -1)
        corr_a[m.index_a] = m.correlation
        partner_a[m.index_a] = m.index_b
        corr_b = np.full(n_b, np.nan)
        partner_b = np.full(n_b, -1)
        corr_b[m.index_b] = m.correlation
        partner_b[m.index_b] = m.index_a

        def hover(label, names, partner, corr, n):
            out = []
            for i in range(n):
                t = f"{html.escape(label)} feature {i}"
                if names is not None and names[i]:
                    t += f"<br>{html.escape(names[i])}"
                if partner[i] >= 0:
                    t += f"<br>partner {int(partner[i])} (r = {corr[i]:.3f})"
                out.append(t)
            return np.array(out, dtype=object)

        ha = hover(la, na_txt, partner_a, corr_a, n_a)
        hb = hover(lb, nb_txt, partner_b, corr_b, n_b)
        fig2 = go.Figure()
        if order.size:
            xs, ys = [], []
            for i in order:
                p, q = ba[m.index_a[i]], bb_shift[m.index_b[i]]
                xs += [p[0], q[0], None]
                ys += [p[1], q[1], None]
            fig2.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", line=dict(color="rgba(120,120,120,0.35)", width=1),
                                        hoverinfo="skip", name="links"))
        for pts, matched, col, hv, lab in ((ba, matched_a, color, ha, la), (bb_shift, matched_b, color_b, hb, lb)):
            fig2.add_trace(go.Scattergl(x=pts[~matched, 0], y=pts[~matched, 1], mode="markers",
                                        marker=dict(size=4, color="lightgrey"), text=hv[~matched],
                                        hoverinfo="text", name=f"{html.escape(lab)} unmatched"))
            fig2.add_trace(go.Scattergl(x=pts[matched, 0], y=pts[matched, 1], mode="markers",
                                        marker=dict(size=6, color=col[matched], colorscale="HSV", cmin=0, cmax=1),
                                        text=hv[matched], hoverinfo="text", name=f"{html.escape(lab)} matched"))
        fig2.update_layout(title=html.escape(caption), xaxis=dict(visible=False), yaxis=dict(visible=False),
                           template="plotly_white", width=1100, height=600)
        html_path = _write_plotly_html(fig2, path_html)
    return {"coords_a": ca, "coords_b": cb, "n_links": int(order.size), "png": png, "html": html_path}


def joint_projection(
    weights_a: Any,
    weights_b: Any,
    *,
    matching: Any = None,
    method: str = "pca",
    metric: str = "cosine",
    normalize: bool = True,
    seed: int = 0,
    n_neighbors: int = 15,
    path_png: str | Path | None = None,
    path_html: str | Path | None = None,
    labels: Sequence[str] = ("A", "B"),
    max_links: int = 300,
) -> dict[str, Any]:
    """One projection fitted on the rows of both models stacked ((n_a + n_b), d).

    Both must have the same ``d`` (same space), else ValueError. ``normalize`` scales rows to unit norm
    first. Returns dict with ``projection`` (Projection of the stacked rows), ``coords_a``, ``coords_b``,
    and ``png`` / ``html`` paths when asked for; matched pairs (if ``matching``) are linked.
    """
    lay = joint_layout(
        weights_a, weights_b, matching=matching, method=method, metric=metric, normalize=normalize, seed=seed,
        n_neighbors=n_neighbors, labels=labels, max_links=max_links,
    )
    ca, cb, (la, lb) = lay["coords_a"], lay["coords_b"], lay["labels"]
    out: dict[str, Any] = {"projection": lay["projection"], "coords_a": ca, "coords_b": cb, "png": None, "html": None}
    out.update(_overlay_figures(ca, cb, lay["links"], la, lb, f"joint {method.upper()} of {la} and {lb} rows",
                                path_png, path_html, None, None))
    return out


def before_after(
    acts_before: Any,
    acts_after: Any,
    *,
    method: str = "pca",
    metric: str = "euclidean",
    seed: int = 0,
    n_neighbors: int = 15,
    max_points: int = 3000,
    max_links: int = 300,
    path_png: str | Path | None = None,
    path_html: str | Path | None = None,
    labels: Sequence[str] = ("before", "after"),
    token_labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Activations (n_tokens, n_features) before vs after an intervention in one joint projection.

    Inputs: FeatureActivations / scipy sparse / numpy / torch with the same ``n_features``. When both have
    the same rows (same tokens) they are treated as paired: the same seeded subsample of at most
    ``max_points`` rows is drawn from both and up to ``max_links`` pairs are joined by arrows.
    ``token_labels``: optional hover text per row (escaped). Returns dict with ``coords_before``,
    ``coords_after``, ``rows`` (subsampled row indices of before, and of after), ``paired``,
    ``mean_shift`` (norm of the difference of mean activation vectors, full space), ``png``, ``html``.
    """
    lay = before_after_layout(
        acts_before, acts_after, method=method, metric=metric, seed=seed, n_neighbors=n_neighbors,
        max_points=max_points, max_links=max_links, labels=labels, token_labels=token_labels,
    )
    la, lb = lay["labels"]
    ca, cb = lay["coords_before"], lay["coords_after"]
    raw_a, raw_b = lay["token_labels"]
    hov_a = [html.escape(t) for t in raw_a] if raw_a is not None else None
    hov_b = [html.escape(t) for t in raw_b] if raw_b is not None else None
    out: dict[str, Any] = {k: lay[k] for k in ("projection", "coords_before", "coords_after", "rows", "paired", "mean_shift")}
    out.update(_overlay_figures(ca, cb, lay["links"], la, lb, f"{la} vs {lb}: joint {method.upper()} of activations",
                                path_png, path_html, hov_a, hov_b, arrows=True))
    return out


def _overlay_figures(
    ca: np.ndarray,
    cb: np.ndarray,
    links: tuple[np.ndarray, np.ndarray] | None,
    la: str,
    lb: str,
    caption: str,
    path_png: str | Path | None,
    path_html: str | Path | None,
    hover_a: Sequence[str] | None,
    hover_b: Sequence[str] | None,
    *,
    arrows: bool = False,
) -> dict[str, Any]:
    """PNG and/or HTML of two point sets in one coordinate system, with optional links a -> b."""
    out: dict[str, Any] = {"png": None, "html": None}
    if path_png is not None:
        from matplotlib.collections import LineCollection
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 6))
        ax = fig.subplots()
        if links is not None and len(links[0]):
            if arrows:
                d = links[1] - links[0]
                ax.quiver(links[0][:, 0], links[0][:, 1], d[:, 0], d[:, 1], angles="xy", scale_units="xy", scale=1,
                          width=0.002, color="0.5", alpha=0.6, zorder=1)
            else:
                ax.add_collection(LineCollection(np.stack(links, axis=1), colors="0.6", linewidths=0.4, alpha=0.5, zorder=1))
        ax.scatter(ca[:, 0], ca[:, 1], s=6, alpha=0.7, label=la, zorder=2, linewidths=0)
        ax.scatter(cb[:, 0], cb[:, 1], s=6, alpha=0.7, label=lb, zorder=3, linewidths=0)
        ax.legend(fontsize=9)
        ax.set_title(caption, fontsize=10)
        fig.tight_layout()
        out["png"] = _save_png(fig, path_png)
    if path_html is not None:
        import plotly.graph_objects as go

        fig2 = go.Figure()
        if links is not None and len(links[0]):
            xs, ys = [], []
            for p, q in zip(links[0], links[1]):
                xs += [p[0], q[0], None]
                ys += [p[1], q[1], None]
            fig2.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", line=dict(color="rgba(120,120,120,0.35)", width=1),
                                        hoverinfo="skip", name="links"))
        for c, lab, hv in ((ca, la, hover_a), (cb, lb, hover_b)):
            text = list(hv) if hv is not None else [f"{html.escape(lab)} {i}" for i in range(c.shape[0])]
            fig2.add_trace(go.Scattergl(x=c[:, 0], y=c[:, 1], mode="markers", marker=dict(size=5, opacity=0.7),
                                        text=text, hoverinfo="text", name=html.escape(lab)))
        fig2.update_layout(title=html.escape(caption), template="plotly_white", width=900, height=750)
        out["html"] = _write_plotly_html(fig2, path_html)
    return out
