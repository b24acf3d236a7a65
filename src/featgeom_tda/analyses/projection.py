"""Two-dimensional views of feature directions and activations: PCA and UMAP.

- :func:`pca_projection`, :func:`umap_projection`: seeded projections of the rows of a matrix.
- :func:`side_by_side_layout`: two models' decoder rows, each projected on its own, B aligned to A by a
  similarity transform fitted on the matched pairs; pair colours and the best-correlated links.
- :func:`joint_layout`: one projection fitted on the rows of both models together. Only defined when
  both live in the same space (same ``d``, e.g. two SAEs of one hook); otherwise a ValueError points to
  side-by-side views (the residual bases of different models are not comparable).
- :func:`before_after_layout`: activations before vs after an intervention, one joint fit, paired rows.

The figures of these layouts (PNG and plotly HTML) are drawn by :mod:`featgeom_tda.viz.projection`.

With ``metric="cosine"`` PCA is fitted on unit-normalised rows (cosine ignores norms); UMAP uses the
metric directly. UMAP is imported lazily; its first call in a process compiles with numba (about a minute).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from featgeom_tda.core.types import as_points, unit_rows
from featgeom_tda.core._validation import as_float_matrix, check_choice, check_positive_int

logger = logging.getLogger(__name__)

__all__ = [
    "Projection",
    "as_points",
    "pca_projection",
    "umap_projection",
    "project",
    "side_by_side_layout",
    "joint_layout",
    "before_after_layout",
]

_METHODS = ("pca", "umap")
_SVD_MAX_ENTRIES = 20_000_000  # dense PCA by full SVD up to this many entries
_METRICS = ("cosine", "euclidean")


@dataclass
class Projection:
    """Low-dimensional coordinates of the rows of a matrix.

    Attributes:
        coords: float64 (n, n_components).
        method: "pca" or "umap".
        explained_variance_ratio: (n_components,) for PCA, None for UMAP.
        components: (n_components, d) principal axes for dense PCA, else None.
        config: the options used.
    """

    coords: np.ndarray
    method: str
    explained_variance_ratio: np.ndarray | None = None
    components: np.ndarray | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.coords.shape[0])


def _fix_signs(coords: np.ndarray, components: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Deterministic signs: each axis is flipped so that its largest-magnitude coordinate is positive."""
    ref = components if components is not None else coords.T
    idx = np.argmax(np.abs(ref), axis=1)
    signs = np.sign(ref[np.arange(ref.shape[0]), idx])
    signs[signs == 0] = 1.0
    coords = coords * signs[None, :]
    if components is not None:
        components = components * signs[:, None]
    return coords, components


def pca_projection(
    points: Any, *, n_components: int = 2, metric: str = "euclidean", seed: int = 0
) -> Projection:
    """PCA of the rows of ``points`` (n, d): numpy / torch / FeatureWeights, or scipy sparse (n, d).

    Dense input: exact SVD of the centred matrix (float64) up to 20 million entries, above that the
    eigenvectors of the d x d scatter matrix (d <= 4096) or scikit-learn's randomized solver seeded
    with ``seed``. Sparse input: scikit-learn's ARPACK solver with implicit
    centring. ``metric="cosine"`` normalises rows first. Axis signs are fixed (largest loading positive).
    """
    n_components = check_positive_int(n_components, "n_components")
    check_choice(metric, "metric", _METRICS)
    if sp.issparse(points):
        return _sparse_pca(points, n_components=n_components, metric=metric, seed=seed)
    x = as_points(points, "points")
    n, d = x.shape
    if n_components > min(n, d):
        raise ValueError(f"n_components must be at most min(n_rows, n_columns) = {min(n, d)}; got {n_components}")
    if metric == "cosine":
        x = unit_rows(x, "points")
    xc = x - x.mean(axis=0)
    total = float((xc**2).sum())
    if n * d <= _SVD_MAX_ENTRIES:
        _, s, vt = np.linalg.svd(xc, full_matrices=False)
        comps = vt[:n_components]
        var = s[:n_components] ** 2
    elif d <= 4096:
        w, v = np.linalg.eigh(xc.T @ xc)
        top = np.argsort(w)[::-1][:n_components]
        comps = v[:, top].T
        var = np.maximum(w[top], 0.0)
    else:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=n_components, svd_solver="randomized", random_state=seed).fit(xc)
        comps = pca.components_
        var = pca.explained_variance_ * (n - 1)
    coords = xc @ comps.T
    coords, comps = _fix_signs(coords, comps)
    ratio = var / total if total > 0 else np.zeros_like(var)
    return Projection(
        coords=coords,
        method="pca",
        explained_variance_ratio=np.asarray(ratio, dtype=np.float64),
        components=comps,
        config={"n_components": n_components, "metric": metric, "seed": seed},
    )


def _sparse_pca(x: Any, *, n_components: int, metric: str, seed: int) -> Projection:
    from sklearn.decomposition import PCA

    m = sp.csr_matrix(x, dtype=np.float64)
    n, d = m.shape
    if n == 0 or d == 0:
        raise ValueError(f"points must not be empty, got shape {(n, d)}")
    if not np.isfinite(m.data).all():
        raise ValueError("points contains NaN or inf values; expected only finite numbers")
    if n_components >= min(n, d):
        raise ValueError(f"n_components must be below min(n_rows, n_columns) = {min(n, d)} for sparse input; got {n_components}")
    if metric == "cosine":
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        m = sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ m
    pca = PCA(n_components=n_components, svd_solver="arpack", random_state=seed).fit(m)
    coords = pca.transform(m)
    coords, comps = _fix_signs(coords, pca.components_)
    return Projection(
        coords=np.asarray(coords, dtype=np.float64),
        method="pca",
        explained_variance_ratio=np.asarray(pca.explained_variance_ratio_, dtype=np.float64),
        components=None,
        config={"n_components": n_components, "metric": metric, "seed": seed, "sparse": True},
    )


def umap_projection(
    points: Any,
    *,
    n_components: int = 2,
    metric: str = "cosine",
    seed: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
) -> Projection:
    """UMAP of the rows of ``points`` (n, d) (dense, or scipy sparse), seeded (single-threaded, reproducible)."""
    n_components = check_positive_int(n_components, "n_components")
    n_neighbors = check_positive_int(n_neighbors, "n_neighbors", minimum=2)
    check_choice(metric, "metric", _METRICS)
    if sp.issparse(points):
        x = sp.csr_matrix(points, dtype=np.float32)
        if not np.isfinite(x.data).all():
            raise ValueError("points contains NaN or inf values; expected only finite numbers")
    else:
        x = as_points(points, "points", dtype=np.float32)
        if metric == "cosine":
            unit_rows(x, "points")
    n = x.shape[0]
    if n <= n_neighbors:
        raise ValueError(f"n_neighbors must be below the number of rows ({n}); got {n_neighbors}")
    if n_components >= n - 1:
        raise ValueError(f"n_components must be below n_rows - 1 = {n - 1}; got {n_components}")
    import umap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reducer = umap.UMAP(
            n_components=n_components,
            metric=metric,
            n_neighbors=n_neighbors,
            min_dist=float(min_dist),
            random_state=seed,
            transform_seed=seed,
            n_jobs=1,
        )
        coords = reducer.fit_transform(x)
    return Projection(
        coords=np.asarray(coords, dtype=np.float64),
        method="umap",
        config={
            "n_components": n_components,
            "metric": metric,
            "seed": seed,
            "n_neighbors": n_neighbors,
            "min_dist": float(min_dist),
        },
    )


def project(
    points: Any, *, method: str = "pca", n_components: int = 2, metric: str = "cosine", seed: int = 0, n_neighbors: int = 15
) -> Projection:
    """:func:`pca_projection` or :func:`umap_projection` by name."""
    check_choice(method, "method", _METHODS)
    if method == "pca":
        return pca_projection(points, n_components=n_components, metric=metric, seed=seed)
    return umap_projection(points, n_components=n_components, metric=metric, seed=seed, n_neighbors=n_neighbors)


# ---------------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------------
def _similarity_align(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale s, orthogonal R (k x k) and shift c minimising ||s src R + c - dst||; returns (s, R, c)."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_s, dst - mu_d
    u, sv, vt = np.linalg.svd(a.T @ b)
    r = u @ vt
    denom = float((a**2).sum())
    s = float(sv.sum() / denom) if denom > 0 else 1.0
    return s, r, mu_d - s * mu_s @ r


def _box(coords: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """Scale/shift 2-D coordinates into [0, 1]^2 using the bounding box of ``ref`` (default: coords)."""
    ref = coords if ref is None else ref
    lo, hi = ref.min(axis=0), ref.max(axis=0)
    span = float(np.max(hi - lo))
    return (coords - lo) / (span if span > 0 else 1.0)


def _check_matching(matching: Any, n_a: int, n_b: int):
    from featgeom_tda.core.types import FeatureMatching

    if not isinstance(matching, FeatureMatching):
        raise ValueError(f"matching must be a FeatureMatching; got {type(matching).__name__}")
    for idx, n, side in ((matching.index_a, n_a, "a"), (matching.index_b, n_b, "b")):
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(
                f"matching.index_{side} must lie in [0, {n}) (model {side.upper()} has {n} features); "
                f"got values in [{int(idx.min())}, {int(idx.max())}]"
            )
    return matching


def _check_labels(labels: Sequence[str], name: str = "labels") -> tuple[str, str]:
    if isinstance(labels, str) or len(labels) != 2:
        raise ValueError(f"{name} must be a pair of strings; got {labels!r}")
    return str(labels[0]), str(labels[1])


def _texts(values: Any, n: int, name: str) -> list[str] | None:
    if values is None:
        return None
    vals = list(values)
    if len(vals) != n:
        raise ValueError(f"{name} has {len(vals)} entries but there are {n} rows")
    return ["" if v is None else str(v) for v in vals]


def _pair_colors(coords_a: np.ndarray) -> np.ndarray:
    """Colour value in [0, 1) per point from its angle around the centre (pairs share it)."""
    c = coords_a - coords_a.mean(axis=0)
    return (np.arctan2(c[:, 1], c[:, 0]) + np.pi) / (2 * np.pi)



def _prepare_2d(x: Any, method: str, metric: str, seed: int, n_neighbors: int) -> np.ndarray:
    return project(x, method=method, n_components=2, metric=metric, seed=seed, n_neighbors=n_neighbors).coords


def side_by_side_layout(
    weights_a: Any,
    weights_b: Any,
    matching: Any,
    *,
    method: str = "pca",
    labels: Sequence[str] = ("A", "B"),
    metric: str = "cosine",
    seed: int = 0,
    n_neighbors: int = 15,
    align: bool = True,
    max_links: int = 300,
    names_a: Sequence[str] | None = None,
    names_b: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Coordinates of a side-by-side view of rows (n_a, d_a) and (n_b, d_b), each projected on its own.

    B's coordinates are aligned to A's by the similarity transform (scale, rotation/reflection, shift)
    that best maps matched B rows onto their A partners (``align=True``). Returns a dict: ``coords_a``,
    ``coords_b`` (n, 2; aligned, before the side-by-side offset), ``box_a``, ``box_b`` (in the unit box;
    B shifted right by 1.25), ``order`` (the ``max_links`` best-correlated pairs), ``color_a``,
    ``color_b`` (pair colour in [0, 1), NaN when unmatched), ``matched_a``, ``matched_b`` (bool),
    ``matching``, ``labels``, ``names_a``, ``names_b`` (checked hover texts or None), ``method``.
    """
    from featgeom_tda.core.types import as_weights

    wa = as_weights(weights_a, "weights_a")
    wb = as_weights(weights_b, "weights_b")
    check_choice(method, "method", _METHODS)
    check_choice(metric, "metric", _METRICS)
    max_links = check_positive_int(max_links, "max_links", minimum=0)
    la, lb = _check_labels(labels)
    m = _check_matching(matching, wa.n_features, wb.n_features)
    na_txt = _texts(names_a, wa.n_features, "names_a")
    nb_txt = _texts(names_b, wb.n_features, "names_b")
    ca = _prepare_2d(wa.weights, method, metric, seed, n_neighbors)
    cb = _prepare_2d(wb.weights, method, metric, seed, n_neighbors)
    if align and len(m) >= 3:
        s, r, c = _similarity_align(cb[m.index_b], ca[m.index_a])
        cb = s * cb @ r + c
    both = np.vstack([ca, cb])
    ba, bb = _box(ca, both), _box(cb, both)
    offset = np.array([1.25, 0.0])
    bb_shift = bb + offset
    order = np.argsort(-m.correlation, kind="stable")[:max_links]
    color = np.full(wa.n_features, np.nan)
    color[m.index_a] = _pair_colors(ba[m.index_a]) if len(m) else color[m.index_a]
    color_b = np.full(wb.n_features, np.nan)
    color_b[m.index_b] = color[m.index_a]
    matched_a = np.zeros(wa.n_features, bool)
    matched_a[m.index_a] = True
    matched_b = np.zeros(wb.n_features, bool)
    matched_b[m.index_b] = True
    return {
        "coords_a": ca, "coords_b": cb, "box_a": ba, "box_b": bb_shift, "order": order, "color_a": color,
        "color_b": color_b, "matched_a": matched_a, "matched_b": matched_b, "matching": m, "labels": (la, lb),
        "names_a": na_txt, "names_b": nb_txt, "method": method,
    }


def joint_layout(
    weights_a: Any,
    weights_b: Any,
    *,
    matching: Any = None,
    method: str = "pca",
    metric: str = "cosine",
    normalize: bool = True,
    seed: int = 0,
    n_neighbors: int = 15,
    labels: Sequence[str] = ("A", "B"),
    max_links: int = 300,
) -> dict[str, Any]:
    """One projection fitted on the rows of both models stacked ((n_a + n_b), d).

    Both must have the same ``d`` (same space), else ValueError. ``normalize`` scales rows to unit norm
    first. Returns dict with ``projection`` (Projection of the stacked rows), ``coords_a``, ``coords_b``,
    ``links`` (start and end points (n_links, 2) of the best-correlated matched pairs, or None) and
    ``labels``.
    """
    from featgeom_tda.core.types import as_weights

    wa = as_weights(weights_a, "weights_a")
    wb = as_weights(weights_b, "weights_b")
    check_choice(method, "method", _METHODS)
    check_choice(metric, "metric", _METRICS)
    la, lb = _check_labels(labels)
    if wa.dim != wb.dim:
        raise ValueError(
            f"weights_a has rows in R^{wa.dim} but weights_b in R^{wb.dim}; a joint projection needs both in the "
            f"same space (same d, e.g. two SAEs of one hook); use side_by_side for different models"
        )
    m = _check_matching(matching, wa.n_features, wb.n_features) if matching is not None else None
    xa = np.asarray(wa.weights, dtype=np.float64)
    xb = np.asarray(wb.weights, dtype=np.float64)
    if normalize:
        xa, xb = unit_rows(xa, "weights_a"), unit_rows(xb, "weights_b")
    proj = project(np.vstack([xa, xb]), method=method, n_components=2, metric=metric, seed=seed, n_neighbors=n_neighbors)
    ca, cb = proj.coords[: wa.n_features], proj.coords[wa.n_features :]
    links = None
    if m is not None and len(m):
        order = np.argsort(-m.correlation, kind="stable")[:max_links]
        links = (ca[m.index_a[order]], cb[m.index_b[order]])
    return {"projection": proj, "coords_a": ca, "coords_b": cb, "links": links, "labels": (la, lb)}


def before_after_layout(
    acts_before: Any,
    acts_after: Any,
    *,
    method: str = "pca",
    metric: str = "euclidean",
    seed: int = 0,
    n_neighbors: int = 15,
    max_points: int = 3000,
    max_links: int = 300,
    labels: Sequence[str] = ("before", "after"),
    token_labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Activations (n_tokens, n_features) before vs after an intervention in one joint projection.

    Inputs: FeatureActivations / scipy sparse / numpy / torch with the same ``n_features``. When both have
    the same rows (same tokens) they are treated as paired: the same seeded subsample of at most
    ``max_points`` rows is drawn from both and up to ``max_links`` pairs are linked. Returns dict with
    ``projection``, ``coords_before``, ``coords_after``, ``rows`` (subsampled row indices of before, and
    of after), ``paired``, ``mean_shift`` (norm of the difference of mean activation vectors, full space),
    ``links`` (or None), ``labels``, ``token_labels`` of the kept rows of before and after (raw strings,
    or None).
    """
    from featgeom_tda.core.types import as_activations

    a = as_activations(acts_before, "acts_before")
    b = as_activations(acts_after, "acts_after")
    check_choice(method, "method", _METHODS)
    check_choice(metric, "metric", _METRICS)
    max_points = check_positive_int(max_points, "max_points", minimum=2)
    max_links = check_positive_int(max_links, "max_links", minimum=0)
    la, lb = _check_labels(labels)
    if a.n_features != b.n_features:
        raise ValueError(
            f"acts_before has {a.n_features} features but acts_after has {b.n_features}; a before/after view "
            f"needs the same features"
        )
    paired = a.n_tokens == b.n_tokens
    tl = _texts(token_labels, a.n_tokens, "token_labels")
    rng = np.random.default_rng(seed)
    ra = np.sort(rng.choice(a.n_tokens, size=min(max_points, a.n_tokens), replace=False))
    rb = ra if paired else np.sort(rng.choice(b.n_tokens, size=min(max_points, b.n_tokens), replace=False))
    ma, mb = a.matrix[ra], b.matrix[rb]
    stacked = sp.vstack([ma, mb], format="csr").astype(np.float64)
    if method == "pca":
        proj = pca_projection(stacked, n_components=2, metric=metric, seed=seed)
    else:
        proj = umap_projection(stacked, n_components=2, metric=metric, seed=seed, n_neighbors=n_neighbors)
    ca, cb = proj.coords[: ra.size], proj.coords[ra.size :]
    mean_a = np.asarray(a.matrix.mean(axis=0), dtype=np.float64).ravel()
    mean_b = np.asarray(b.matrix.mean(axis=0), dtype=np.float64).ravel()
    links = None
    if paired and max_links:
        pick = rng.choice(ra.size, size=min(max_links, ra.size), replace=False)
        links = (ca[pick], cb[pick])
    hov_a = [tl[i] for i in ra] if tl is not None else None
    hov_b = [tl[i] for i in rb] if (tl is not None and paired) else None
    return {
        "projection": proj,
        "coords_before": ca,
        "coords_after": cb,
        "rows": (ra, rb),
        "paired": paired,
        "mean_shift": float(np.linalg.norm(mean_b - mean_a)),
        "links": links,
        "labels": (la, lb),
        "token_labels": (hov_a, hov_b),
    }
