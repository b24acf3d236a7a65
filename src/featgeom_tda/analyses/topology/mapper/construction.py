"""Building a Mapper graph of feature directions with KeplerMapper: lens, cover, clustering, eps choice.

:func:`mapper_graph` builds the graph with ``kmapper.KeplerMapper.map``: a lens (PCA / UMAP / row norm /
your own array) is covered by ``n_cubes`` overlapping intervals per lens dimension (``kmapper.Cover``),
the rows falling in each cube are clustered (DBSCAN, or single-linkage agglomerative clustering cut at
``eps``; clusters smaller than ``min_samples`` are dropped as noise), every cluster becomes a node and
nodes sharing rows are joined. A node therefore *is* a set of feature (row) indices
(:class:`~featgeom_tda.analyses.topology.mapper.graph.MapperGraph`); per-feature annotations (top tokens,
concept labels, matched partners, names) are summarised per node.

Choice of ``eps`` when not given: ``eps_scale`` (1.25) times the ``eps_quantile`` (0.9) quantile of the
distance from each row to its ``(min_samples - 1)``-th nearest other row (over a seeded sample of at
most 2,000 rows, neighbours searched among all rows). At the quantile itself about that fraction of rows
would be DBSCAN core points; the margin keeps chains of neighbours along a noisy manifold from breaking
(without it a noisy circle in R^20 often splits into arcs).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import scipy.sparse as sp

from featgeom_tda.analyses.projection import pca_projection, umap_projection
from featgeom_tda.analyses.topology.mapper.graph import MapperGraph, check_annotations
from featgeom_tda.core._validation import check_choice, check_fraction, check_positive_int, to_numpy
from featgeom_tda.core.types import as_points, unit_rows

logger = logging.getLogger(__name__)

__all__ = ["mapper_graph", "choose_eps"]

# ---------------------------------------------------------------------------------------------------
# building
# ---------------------------------------------------------------------------------------------------
class _IncidenceNerve:
    """Graph nerve of kmapper nodes from a sparse node-by-row incidence product (kmapper's nerve API)."""

    def __init__(self, min_intersection: int = 1) -> None:
        self.min_intersection = min_intersection

    def __repr__(self) -> str:
        return f"IncidenceNerve(min_intersection={self.min_intersection})"

    def compute(self, nodes: dict[str, list[int]]):
        ids = list(nodes)
        links: dict[str, list[str]] = {}
        if len(ids) < 2:
            return links, [[k] for k in ids]
        rows = np.concatenate([np.full(len(nodes[k]), i) for i, k in enumerate(ids)])
        cols = np.concatenate([np.asarray(nodes[k], dtype=np.int64) for k in ids])
        n_cols = int(cols.max()) + 1
        inc = sp.csr_matrix((np.ones(cols.size, dtype=np.int64), (rows, cols)), shape=(len(ids), n_cols))
        overlap = sp.triu(inc @ inc.T, k=1).tocoo()
        keep = overlap.data >= self.min_intersection
        edges = sorted(zip(overlap.row[keep].tolist(), overlap.col[keep].tolist()))
        for i, j in edges:
            links.setdefault(ids[i], []).append(ids[j])
        simplices = [[k] for k in ids] + [[ids[i], ids[j]] for i, j in edges]
        return links, simplices


class _SingleLinkage:
    """Single-linkage clusters cut at ``eps``; clusters of fewer than ``min_samples`` rows get label -1.

    Exposes ``get_params`` with ``min_samples`` so kmapper skips cubes holding fewer rows."""

    def __init__(self, eps: float, min_samples: int, metric: str) -> None:
        self.eps, self.min_samples, self.metric = eps, min_samples, metric

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"eps": self.eps, "min_samples": self.min_samples, "metric": self.metric}

    def __repr__(self) -> str:
        return f"SingleLinkage(eps={self.eps:.4g}, min_samples={self.min_samples}, metric={self.metric!r})"

    def fit_predict(self, x: np.ndarray) -> np.ndarray:
        from sklearn.cluster import AgglomerativeClustering

        if x.shape[0] < 2:
            return np.full(x.shape[0], -1 if self.min_samples > x.shape[0] else 0)
        labels = AgglomerativeClustering(
            n_clusters=None, distance_threshold=self.eps, linkage="single", metric=self.metric
        ).fit_predict(x)
        counts = np.bincount(labels)
        return np.where(counts[labels] >= self.min_samples, labels, -1)


def choose_eps(
    points: Any,
    *,
    metric: str = "cosine",
    min_samples: int = 5,
    quantile: float = 0.9,
    seed: int = 0,
    max_queries: int = 2000,
) -> float:
    """DBSCAN radius: ``quantile`` of the distance of (a seeded sample of) rows to their
    ``(min_samples - 1)``-th nearest other row, searched among all rows."""
    check_choice(metric, "metric", ("cosine", "euclidean"))
    min_samples = check_positive_int(min_samples, "min_samples", minimum=2)
    quantile = check_fraction(quantile, "quantile")
    x = as_points(points, "points", dtype=np.float32)
    n = x.shape[0]
    k = min(min_samples - 1, n - 1)
    if k < 1:
        raise ValueError(f"points needs at least 2 rows to choose eps; got {n}")
    if metric == "cosine":
        x = unit_rows(x)
    rng = np.random.default_rng(seed)
    q_idx = np.sort(rng.choice(n, size=min(n, max_queries), replace=False))
    sq = np.einsum("ij,ij->i", x, x)
    kth = np.empty(q_idx.size)
    block = max(1, (64 * 2**20) // (4 * n))
    for b0 in range(0, q_idx.size, block):
        qi = q_idx[b0 : b0 + block]
        dot = x[qi] @ x.T
        if metric == "cosine":
            d = np.clip(1.0 - dot, 0.0, 2.0)
        else:
            d = np.sqrt(np.maximum(sq[qi, None] + sq[None, :] - 2.0 * dot, 0.0))
        d[np.arange(qi.size), qi] = np.inf
        kth[b0 : b0 + qi.size] = np.partition(d, k - 1, axis=1)[:, k - 1]
    eps = float(np.quantile(kth, quantile))
    if eps <= 0:
        positive = kth[kth > 0]
        eps = float(positive.min()) if positive.size else 1e-6
    return eps


def _lens(x: np.ndarray, lens: Any, *, metric: str, n_components: int, seed: int, n_neighbors: int) -> tuple[np.ndarray, str]:
    n = x.shape[0]
    if isinstance(lens, str):
        check_choice(lens, "lens", ("pca", "umap", "l2norm"))
        if lens == "pca":
            values = pca_projection(x, n_components=n_components, metric=metric, seed=seed).coords
        elif lens == "umap":
            values = umap_projection(x, n_components=n_components, metric=metric, seed=seed, n_neighbors=n_neighbors).coords
        else:
            values = np.linalg.norm(x, axis=1, keepdims=True)
        name = lens
    else:
        values = to_numpy(lens, "lens", dtype=np.float64)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2 or values.shape[0] != n or values.shape[1] == 0:
            raise ValueError(f"lens must be 'pca', 'umap', 'l2norm' or an array of shape ({n}, m); got shape {values.shape}")
        if not np.isfinite(values).all():
            raise ValueError("lens contains NaN or inf values; expected only finite numbers")
        name = "custom"
    span = values.max(axis=0) - values.min(axis=0)
    flat = np.flatnonzero(span <= 1e-12 * np.maximum(1.0, np.abs(values).max(axis=0)))
    if flat.size:
        raise ValueError(
            f"lens column {int(flat[0])} is constant (value {values[0, flat[0]]:.6g}) so the cover cannot split it; "
            f"choose another lens (rows of equal norm make 'l2norm' constant)"
        )
    return np.asarray(values, dtype=np.float64), name



def _check_eps(eps: Any, *, eps_scale: Any, eps_quantile: Any) -> tuple[float, float | None]:
    """Validated ``(eps_scale, eps)``; ``eps`` stays None when it is to be chosen from the data."""
    scale = float(eps_scale) if isinstance(eps_scale, (int, float, np.floating)) and not isinstance(eps_scale, bool) else -1.0
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"eps_scale must be a positive number; got {eps_scale!r}")
    check_fraction(eps_quantile, "eps_quantile")
    if eps is None:
        return scale, None
    try:
        eps_value = float(eps)
    except (TypeError, ValueError):
        raise ValueError(f"eps must be a positive number or None; got {eps!r}") from None
    if not (eps_value > 0 and math.isfinite(eps_value)):
        raise ValueError(f"eps must be a positive number or None; got {eps!r}")
    return scale, eps_value


def _clusterer(name: str, *, eps: float, min_samples: int, metric: str):
    """The per-cube clusterer: DBSCAN, or single linkage cut at ``eps``."""
    if name == "dbscan":
        from sklearn.cluster import DBSCAN

        return DBSCAN(eps=eps, min_samples=min_samples, metric=metric, algorithm="brute")
    return _SingleLinkage(eps=eps, min_samples=min_samples, metric=metric)

def mapper_graph(
    points: Any,
    *,
    lens: Any = "pca",
    lens_components: int = 2,
    n_cubes: int = 10,
    overlap: float = 0.3,
    clusterer: str = "dbscan",
    metric: str = "cosine",
    eps: float | None = None,
    eps_quantile: float = 0.9,
    eps_scale: float = 1.25,
    min_samples: int = 5,
    min_intersection: int = 1,
    n_neighbors: int = 15,
    seed: int = 0,
    annotations: dict[str, Any] | None = None,
) -> MapperGraph:
    """Mapper graph of the rows of ``points`` (n, d): numpy / torch / FeatureWeights.

    Args:
        lens: "pca" / "umap" (``lens_components`` dimensions; cosine PCA is on unit rows), "l2norm"
            (row norms, 1-D) or an array (n,) / (n, m).
        n_cubes, overlap: intervals per lens dimension and their overlap fraction (kmapper.Cover).
        clusterer: "dbscan" (``eps``, ``min_samples``; noise rows belong to no node) or "agglomerative"
            (single linkage cut at ``eps``; clusters of fewer than ``min_samples`` rows are dropped).
        metric: "cosine" or "euclidean" for clustering (and the eps choice).
        eps: cluster radius; None: ``eps_scale`` times :func:`choose_eps` at ``eps_quantile``.
        min_intersection: rows two nodes must share to be joined.
        annotations: per-feature dict with optional "top_tokens" (list of str per feature), "concept"
            (str or None per feature), "partner" (int, -1 for none), "names" (str per feature).
    """
    import kmapper as km

    x = as_points(points, "points", min_rows=2)
    n = x.shape[0]
    n_cubes = check_positive_int(n_cubes, "n_cubes")
    ov = float(overlap) if isinstance(overlap, (int, float, np.floating)) and not isinstance(overlap, bool) else None
    if ov is None or not (0.0 < ov < 1.0):
        raise ValueError(f"overlap must be a number in (0, 1); got {overlap!r}")
    check_choice(clusterer, "clusterer", ("dbscan", "agglomerative"))
    check_choice(metric, "metric", ("cosine", "euclidean"))
    min_samples = check_positive_int(min_samples, "min_samples")
    min_intersection = check_positive_int(min_intersection, "min_intersection")
    lens_components = check_positive_int(lens_components, "lens_components")
    ann = check_annotations(annotations, n)
    if metric == "cosine":
        unit_rows(x)
    scale, eps_value = _check_eps(eps, eps_scale=eps_scale, eps_quantile=eps_quantile)
    lens_values, lens_name = _lens(x, lens, metric=metric, n_components=lens_components, seed=seed, n_neighbors=n_neighbors)
    if eps is None:
        eps_value = scale * choose_eps(x, metric=metric, min_samples=max(2, min_samples), quantile=eps_quantile, seed=seed)
    data = unit_rows(x.astype(np.float32)) if metric == "cosine" else x.astype(np.float32)
    model = _clusterer(clusterer, eps=eps_value, min_samples=min_samples, metric=metric)
    logger.debug(
        "mapper: %d rows, lens %s %s, %d cubes per dimension, overlap %.2f, %s eps=%.4g",
        n, lens_name, lens_values.shape, n_cubes, ov, clusterer, eps_value,
    )
    graph = km.KeplerMapper(verbose=0).map(
        lens_values,
        data,
        clusterer=model,
        cover=km.Cover(n_cubes=n_cubes, perc_overlap=ov),
        nerve=_IncidenceNerve(min_intersection),
    )
    edges = [(a, b) for a, bs in graph["links"].items() for b in bs]
    config = {
        "lens": lens_name,
        "lens_components": int(lens_values.shape[1]),
        "n_cubes": n_cubes,
        "overlap": ov,
        "clusterer": clusterer,
        "metric": metric,
        "eps": eps_value,
        "eps_quantile": float(eps_quantile) if eps is None else None,
        "eps_scale": float(eps_scale) if eps is None else None,
        "min_samples": min_samples,
        "min_intersection": min_intersection,
        "seed": seed,
        "kmapper_meta": {k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in graph["meta_data"].items()},
    }
    return MapperGraph(
        nodes={k: np.asarray(v, dtype=np.int64) for k, v in graph["nodes"].items()},
        edges=edges,
        n_points=n,
        lens=lens_values,
        annotations=ann,
        config=config,
    )
