"""Mapper graphs of feature directions (KeplerMapper), their statistics, HTML views and comparison.

:func:`mapper_graph` builds the graph with ``kmapper.KeplerMapper.map``: a lens (PCA / UMAP / row norm /
your own array) is covered by ``n_cubes`` overlapping intervals per lens dimension (``kmapper.Cover``),
the rows falling in each cube are clustered (DBSCAN, or single-linkage agglomerative clustering cut at
``eps``; clusters smaller than ``min_samples`` are dropped as noise), every cluster becomes a node and
nodes sharing rows are joined. A node therefore *is* a set of
feature (row) indices; per-feature annotations (top tokens, concept labels, matched partners, names)
are summarised per node.

Choice of ``eps`` when not given: ``eps_scale`` (1.25) times the ``eps_quantile`` (0.9) quantile of the
distance from each row to its ``(min_samples - 1)``-th nearest other row (over a seeded sample of at
most 2,000 rows, neighbours searched among all rows). At the quantile itself about that fraction of rows
would be DBSCAN core points; the margin keeps chains of neighbours along a noisy manifold from breaking
(without it a noisy circle in R^20 often splits into arcs).

Graph statistics: ``betti_1 = E - V + C`` is the number of independent cycles of the graph. Covers with
a lens of dimension >= 2 create triangles (three nodes sharing rows) that the graph counts as cycles;
``nerve_betti_1`` is the first Betti number of the nerve (triangles whose three nodes share a row are
filled), the better count of loops for such covers. For a 1-D lens both agree.

:func:`compare_mapper_graphs` asks whether a feature matching preserves Mapper neighbourhoods. Over
pairs of matched pairs ``(a_i, b_i)``, ``(a_j, b_j)`` whose four features are all in some node:

- ``same``: among pairs with ``a_i, a_j`` in a common node of A, the fraction with ``b_i, b_j`` in a
  common node of B;
- ``adjacent``: the same with "in a common node or in two nodes joined by an edge".

The baseline keeps both graphs and the set of matched features, and pairs the A features with a random
permutation of the B partners (seeded, ``n_permutations`` times); ``p_value = (1 + #{null >= observed}) /
(1 + n_permutations)`` and ``lift = observed / mean(null)``. At most ``max_pairs`` matched pairs (a
seeded sample) enter, since the work grows with their square.
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from featgeom_tda.core._validation import check_choice, check_fraction, check_positive_int, to_numpy
from featgeom_tda.analyses.projection import pca_projection, umap_projection
from featgeom_tda.core.types import as_points

logger = logging.getLogger(__name__)

__all__ = ["MapperGraph", "mapper_graph", "compare_mapper_graphs", "choose_eps"]

_ANNOTATION_KEYS = ("top_tokens", "concept", "partner", "names")


# ---------------------------------------------------------------------------------------------------
# annotations
# ---------------------------------------------------------------------------------------------------
def _check_annotations(annotations: Any, n: int) -> dict[str, Any]:
    """Validated per-feature annotations: lists of length ``n`` (``partner``: int64 array)."""
    if annotations is None:
        return {}
    if not isinstance(annotations, dict):
        raise ValueError(f"annotations must be a dict with keys among {_ANNOTATION_KEYS}; got {type(annotations).__name__}")
    unknown = set(annotations) - set(_ANNOTATION_KEYS)
    if unknown:
        raise ValueError(f"annotations has unknown keys {sorted(unknown)}; valid keys are {list(_ANNOTATION_KEYS)}")
    out: dict[str, Any] = {}
    for key, values in annotations.items():
        if values is None:
            continue
        if key == "partner":
            arr = to_numpy(values, "annotations['partner']")
            if arr.ndim != 1 or arr.shape[0] != n:
                raise ValueError(f"annotations['partner'] must have shape ({n},); got {arr.shape}")
            if arr.dtype.kind not in "iu":
                raise ValueError(f"annotations['partner'] must hold integers (-1 for none); got dtype {arr.dtype}")
            if (arr < -1).any():
                raise ValueError("annotations['partner'] must hold indices >= 0 or -1 for none")
            out[key] = arr.astype(np.int64)
            continue
        vals = list(values)
        if len(vals) != n:
            raise ValueError(f"annotations[{key!r}] has {len(vals)} entries but there are {n} features")
        if key == "top_tokens":
            out[key] = [[] if v is None else ([str(v)] if isinstance(v, str) else [str(t) for t in v]) for v in vals]
        else:
            out[key] = [None if v is None else str(v) for v in vals]
    return out


# ---------------------------------------------------------------------------------------------------
# result type
# ---------------------------------------------------------------------------------------------------
@dataclass
class MapperGraph:
    """A Mapper graph whose nodes are sets of feature (row) indices.

    Attributes:
        nodes: node id -> sorted int64 array of member rows.
        edges: list of (node id, node id) pairs, each once.
        n_points: number of rows the graph was built from.
        lens: float64 (n_points, m) lens values.
        annotations: validated per-feature annotations (keys among top_tokens, concept, partner, names).
        config: options of the run (lens, cover, clusterer, eps, ...).
    """

    nodes: dict[str, np.ndarray]
    edges: list[tuple[str, str]]
    n_points: int
    lens: np.ndarray
    annotations: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.nodes = {str(k): np.unique(np.asarray(v, dtype=np.int64)) for k, v in self.nodes.items()}
        for k, v in self.nodes.items():
            if v.size and (v[0] < 0 or v[-1] >= self.n_points):
                raise ValueError(f"node {k!r} has members outside [0, {self.n_points})")
        known = set(self.nodes)
        for a, b in self.edges:
            if a not in known or b not in known:
                raise ValueError(f"edge ({a!r}, {b!r}) refers to an unknown node")
        self.edges = [(str(a), str(b)) for a, b in self.edges]
        self.lens = np.asarray(self.lens, dtype=np.float64).reshape(self.n_points, -1)
        self.annotations = _check_annotations(self.annotations, self.n_points) if self.annotations else {}

    def __repr__(self) -> str:
        return f"MapperGraph(nodes={len(self.nodes)}, edges={len(self.edges)}, n_points={self.n_points})"

    @property
    def node_ids(self) -> list[str]:
        return list(self.nodes)

    def incidence(self) -> sp.csr_matrix:
        """Boolean CSR (n_nodes, n_points): entry (k, i) set when row i is in node k (node order = node_ids)."""
        ids = self.node_ids
        if not ids:
            return sp.csr_matrix((0, self.n_points), dtype=bool)
        rows = np.concatenate([np.full(self.nodes[k].size, i) for i, k in enumerate(ids)])
        cols = np.concatenate([self.nodes[k] for k in ids])
        return sp.csr_matrix((np.ones(cols.size, dtype=bool), (rows, cols)), shape=(len(ids), self.n_points))

    def adjacency(self) -> sp.csr_matrix:
        """Symmetric boolean CSR (n_nodes, n_nodes) of the edges."""
        index = {k: i for i, k in enumerate(self.node_ids)}
        n = len(index)
        if not self.edges:
            return sp.csr_matrix((n, n), dtype=bool)
        r = np.array([index[a] for a, _ in self.edges])
        c = np.array([index[b] for _, b in self.edges])
        m = sp.csr_matrix((np.ones(r.size, dtype=bool), (r, c)), shape=(n, n))
        return (m + m.T).astype(bool).tocsr()

    def to_networkx(self):
        """networkx.Graph with node attributes ``size``, ``members`` (list) and the node annotations."""
        import networkx as nx

        g = nx.Graph()
        ann = self.node_annotations()
        for k, members in self.nodes.items():
            g.add_node(k, size=int(members.size), members=members.tolist(), **{a: v for a, v in ann[k].items() if a != "size"})
        g.add_edges_from(self.edges)
        return g

    # -- annotations ---------------------------------------------------------------------------------
    def node_annotations(self, *, top_k: int = 5, max_names: int = 5) -> dict[str, dict[str, Any]]:
        """Per node: size; ``top_tokens`` [(token, count)] pooled over members; ``concept`` majority label,
        its ``concept_share`` and ``concept_counts``; ``partner_fraction`` (members with a matched partner);
        ``names`` of the first members."""
        out: dict[str, dict[str, Any]] = {}
        a = self.annotations
        for k, members in self.nodes.items():
            info: dict[str, Any] = {"size": int(members.size)}
            if "top_tokens" in a:
                c = Counter(t for i in members for t in a["top_tokens"][i])
                info["top_tokens"] = [[t, int(n)] for t, n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]]
            if "concept" in a:
                c = Counter(a["concept"][i] for i in members if a["concept"][i] is not None)
                if c:
                    label, count = sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[0]
                    info["concept"] = label
                    info["concept_share"] = count / members.size
                    info["concept_counts"] = dict(sorted(c.items()))
                else:
                    info["concept"] = None
                    info["concept_share"] = 0.0
                    info["concept_counts"] = {}
            if "partner" in a:
                info["partner_fraction"] = float((a["partner"][members] >= 0).mean()) if members.size else 0.0
            if "names" in a:
                info["names"] = [a["names"][i] for i in members[:max_names] if a["names"][i] is not None]
            out[k] = info
        return out

    # -- statistics ----------------------------------------------------------------------------------
    def statistics(self) -> dict[str, Any]:
        """Nodes, edges, components, ``betti_1 = E - V + C``, ``nerve_betti_1``, coverage, degree and
        node-size distributions (summaries + histograms)."""
        from scipy.sparse.csgraph import connected_components

        v, e = len(self.nodes), len(self.edges)
        adj = self.adjacency()
        if v:
            n_comp, labels = connected_components(adj, directed=False)
        else:
            n_comp, labels = 0, np.zeros(0, dtype=np.int64)
        inc = self.incidence()
        memberships = np.asarray(inc.sum(axis=0)).ravel() if v else np.zeros(self.n_points)
        covered = memberships > 0
        sizes = np.array([m.size for m in self.nodes.values()], dtype=np.int64)
        degree = np.asarray(adj.sum(axis=1)).ravel().astype(np.int64) if v else np.zeros(0, dtype=np.int64)
        if v:
            comp_nodes = np.bincount(labels)
            big = int(np.argmax(comp_nodes))
            big_points = int((np.asarray(inc[labels == big].sum(axis=0)).ravel() > 0).sum())
        else:
            comp_nodes, big_points = np.zeros(0, dtype=np.int64), 0
        return {
            "n_points": self.n_points,
            "n_nodes": v,
            "n_edges": e,
            "n_components": int(n_comp),
            "betti_1": int(e - v + n_comp),
            "nerve_betti_1": self._nerve_betti_1(),
            "n_covered_points": int(covered.sum()),
            "coverage": float(covered.mean()) if self.n_points else 0.0,
            "mean_memberships": float(memberships[covered].mean()) if covered.any() else 0.0,
            "isolated_nodes": int((degree == 0).sum()),
            "largest_component_nodes": int(comp_nodes.max()) if v else 0,
            "largest_component_points": big_points,
            "degree": _distribution(degree, integer=True),
            "node_size": _distribution(sizes, integer=False),
        }

    def _nerve_betti_1(self) -> int:
        """First Betti number (Z/2) of the 2-skeleton of the nerve of the node sets."""
        if not self.nodes:
            return 0
        import gudhi

        ids = self.node_ids
        index = {k: i for i, k in enumerate(ids)}
        st = gudhi.SimplexTree()
        for i in range(len(ids)):
            st.insert([i])
        nbrs: dict[int, set[int]] = {i: set() for i in range(len(ids))}
        for a, b in self.edges:
            i, j = index[a], index[b]
            st.insert([i, j])
            nbrs[i].add(j)
            nbrs[j].add(i)
        sets = [set(self.nodes[k].tolist()) for k in ids]
        for i in range(len(ids)):
            for j in nbrs[i]:
                if j <= i:
                    continue
                common_ij = sets[i] & sets[j]
                for k in nbrs[i] & nbrs[j]:
                    if k > j and not common_ij.isdisjoint(sets[k]):
                        st.insert([i, j, k])
        st.compute_persistence(persistence_dim_max=True)
        betti = st.betti_numbers()
        return int(betti[1]) if len(betti) > 1 else 0

    # -- export --------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: nodes (member lists), edges, n_points, config, annotations."""
        ann = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.annotations.items()}
        return {
            "nodes": {k: v.tolist() for k, v in self.nodes.items()},
            "edges": [list(e) for e in self.edges],
            "n_points": self.n_points,
            "config": self.config,
            "annotations": ann,
        }

    def save(self, path: str | Path) -> Path:
        """Write directory ``path``: ``graph.json`` and ``lens.safetensors``."""
        from safetensors.numpy import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "graph.json").write_text(json.dumps(self.to_dict(), indent=1, default=_json_default))
        save_file({"lens": np.ascontiguousarray(self.lens)}, str(path / "lens.safetensors"))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "MapperGraph":
        from safetensors.numpy import load_file

        path = Path(path)
        for f in ("graph.json", "lens.safetensors"):
            if not (path / f).exists():
                raise ValueError(f"path {str(path)!r} is not a saved Mapper graph: {f} is missing")
        d = json.loads((path / "graph.json").read_text())
        return cls(
            nodes={k: np.asarray(v, dtype=np.int64) for k, v in d["nodes"].items()},
            edges=[tuple(e) for e in d["edges"]],
            n_points=int(d["n_points"]),
            lens=load_file(str(path / "lens.safetensors"))["lens"],
            annotations=d.get("annotations") or {},
            config=d.get("config", {}),
        )

    def _kmapper_graph(self) -> dict[str, Any]:
        links: dict[str, list[str]] = {}
        for a, b in self.edges:
            links.setdefault(a, []).append(b)
        meta = dict(self.config.get("kmapper_meta", {}))
        for key, default in (("projection", "custom"), ("n_cubes", self.config.get("n_cubes")),
                             ("perc_overlap", self.config.get("overlap")), ("clusterer", self.config.get("clusterer")),
                             ("scaler", "None"), ("nerve_min_intersection", self.config.get("min_intersection", 1))):
            meta.setdefault(key, default)
        return {
            "nodes": {k: v.tolist() for k, v in self.nodes.items()},
            "links": links,
            "simplices": [[k] for k in self.nodes] + [list(e) for e in self.edges],
            "meta_data": meta,
            "meta_nodes": {},
        }

    def feature_tooltips(self) -> list[str]:
        """One plain-text line per feature: id, name, top tokens, concept, partner (not escaped)."""
        a = self.annotations
        out = []
        for i in range(self.n_points):
            parts = [f"#{i}"]
            if "names" in a and a["names"][i]:
                parts.append(a["names"][i])
            if "top_tokens" in a and a["top_tokens"][i]:
                parts.append("tokens: " + ", ".join(a["top_tokens"][i][:5]))
            if "concept" in a and a["concept"][i]:
                parts.append(f"concept: {a['concept'][i]}")
            if "partner" in a and a["partner"][i] >= 0:
                parts.append(f"partner: {int(a['partner'][i])}")
            out.append(" | ".join(parts))
        return out

    def save_html(
        self,
        path: str | Path,
        *,
        self_contained: bool = True,
        color_by: Any = None,
        color_name: str | None = None,
        title: str = "Mapper graph",
        seed: int = 0,
    ) -> Path:
        """Write an HTML view of the graph.

        ``self_contained=True``: one file with no external resource (inline SVG drawn from a spring layout
        computed here, inline script and style): hover a node for its summary, click it for its members,
        search top tokens. ``self_contained=False``: KeplerMapper's own page (loads d3 from a CDN).
        ``color_by``: one value per feature (row); a node is coloured by its members' mean (default: the
        first lens coordinate). All data strings are escaped.
        """
        if color_by is None:
            values = self.lens[:, 0]
            name = color_name or "lens 0"
        else:
            values = to_numpy(color_by, "color_by", dtype=np.float64)
            if values.ndim != 1 or values.shape[0] != self.n_points:
                raise ValueError(f"color_by must have one value per feature, shape ({self.n_points},); got {values.shape}")
            if not np.isfinite(values).all():
                raise ValueError("color_by contains NaN or inf values; expected only finite numbers")
            name = color_name or "color"
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self_contained:
            text = _render_html(self, values=values, color_name=name, title=title, seed=seed)
            path.write_text(text, encoding="utf-8")
            return path
        import kmapper as km

        tips = np.array([html.escape(t) for t in self.feature_tooltips()], dtype=object)
        km.KeplerMapper(verbose=0).visualize(
            self._kmapper_graph(),
            color_values=values,
            color_function_name=html.escape(name),
            custom_tooltips=tips,
            path_html=str(path),
            title=html.escape(title),
            lens=self.lens,
            lens_names=[f"lens {i}" for i in range(self.lens.shape[1])],
        )
        return path


def _distribution(values: np.ndarray, *, integer: bool) -> dict[str, Any]:
    values = np.asarray(values)
    if values.size == 0:
        return {"min": 0, "max": 0, "mean": 0.0, "median": 0.0, "histogram": {"bin_edges": [], "counts": []}}
    if integer:
        counts = np.bincount(values)
        hist = {"bin_edges": list(range(counts.size + 1)), "counts": counts.tolist()}
    else:
        counts, edges = np.histogram(values, bins=min(10, max(1, int(np.unique(values).size))))
        hist = {"bin_edges": edges.tolist(), "counts": counts.tolist()}
    return {
        "min": int(values.min()),
        "max": int(values.max()),
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "histogram": hist,
    }


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot serialise {type(o).__name__} to JSON")


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
        x = _unit_rows(x)
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


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise ValueError(
            f"points has {zero.size} all-zero rows (first at row {int(zero[0])}); the cosine metric needs non-zero rows"
        )
    return (x / norms[:, None]).astype(x.dtype, copy=False)


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
    from sklearn.cluster import DBSCAN

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
    ann = _check_annotations(annotations, n)
    if metric == "cosine":
        _unit_rows(x)
    scale = float(eps_scale) if isinstance(eps_scale, (int, float, np.floating)) and not isinstance(eps_scale, bool) else -1.0
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"eps_scale must be a positive number; got {eps_scale!r}")
    check_fraction(eps_quantile, "eps_quantile")
    if eps is not None:
        try:
            eps_value = float(eps)
        except (TypeError, ValueError):
            raise ValueError(f"eps must be a positive number or None; got {eps!r}") from None
        if not (eps_value > 0 and math.isfinite(eps_value)):
            raise ValueError(f"eps must be a positive number or None; got {eps!r}")
    lens_values, lens_name = _lens(x, lens, metric=metric, n_components=lens_components, seed=seed, n_neighbors=n_neighbors)
    if eps is None:
        eps_value = scale * choose_eps(x, metric=metric, min_samples=max(2, min_samples), quantile=eps_quantile, seed=seed)
    data = _unit_rows(x.astype(np.float32)) if metric == "cosine" else x.astype(np.float32)
    if clusterer == "dbscan":
        model = DBSCAN(eps=eps_value, min_samples=min_samples, metric=metric, algorithm="brute")
    else:
        model = _SingleLinkage(eps=eps_value, min_samples=min_samples, metric=metric)
    logger.info(
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


# ---------------------------------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------------------------------
def _co_membership(graph: MapperGraph, rows: np.ndarray, *, adjacent: bool) -> np.ndarray:
    """Boolean (p, p): rows i, j share a node (or, with ``adjacent``, sit in equal or adjacent nodes)."""
    inc = graph.incidence()[:, rows].astype(np.float32)
    if adjacent:
        reach = graph.adjacency().astype(np.float32) + sp.identity(inc.shape[0], dtype=np.float32, format="csr")
        prod = (inc.T @ (reach @ inc)).toarray()
    else:
        prod = (inc.T @ inc).toarray()
    return prod > 0


def compare_mapper_graphs(
    graph_a: MapperGraph,
    graph_b: MapperGraph,
    matching: Any,
    *,
    n_permutations: int = 200,
    max_pairs: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Statistics of both graphs side by side and how well ``matching`` preserves Mapper neighbourhoods.

    Returns dict with ``statistics`` {"a", "b"}, ``n_pairs`` (matching size), ``n_pairs_used`` (both
    features covered, after subsampling), ``n_pairs_uncovered``, ``subsampled``, and for ``same`` and
    ``adjacent``: ``observed`` (fraction, NaN when no A pair qualifies), ``n_a_pairs`` (pairs of A features
    in relation), ``null_mean``, ``null_std``, ``lift``, ``p_value`` (see module notes).
    """
    from featgeom_tda.core.types import FeatureMatching

    for g, name in ((graph_a, "graph_a"), (graph_b, "graph_b")):
        if not isinstance(g, MapperGraph):
            raise ValueError(f"{name} must be a MapperGraph; got {type(g).__name__}")
    if not isinstance(matching, FeatureMatching):
        raise ValueError(f"matching must be a FeatureMatching; got {type(matching).__name__}")
    n_permutations = check_positive_int(n_permutations, "n_permutations")
    max_pairs = check_positive_int(max_pairs, "max_pairs", minimum=2)
    ia, ib = matching.index_a, matching.index_b
    for idx, g, side in ((ia, graph_a, "a"), (ib, graph_b, "b")):
        if idx.size and (idx.min() < 0 or idx.max() >= g.n_points):
            raise ValueError(
                f"matching.index_{side} must lie in [0, {g.n_points}) (graph_{side} has {g.n_points} features); "
                f"got values in [{int(idx.min())}, {int(idx.max())}]"
            )
    cov_a = np.asarray(graph_a.incidence().sum(axis=0)).ravel() > 0
    cov_b = np.asarray(graph_b.incidence().sum(axis=0)).ravel() > 0
    use = cov_a[ia] & cov_b[ib]
    sel = np.flatnonzero(use)
    rng = np.random.default_rng(seed)
    subsampled = sel.size > max_pairs
    if subsampled:
        sel = np.sort(rng.choice(sel, size=max_pairs, replace=False))
    ra, rb = ia[sel], ib[sel]
    out: dict[str, Any] = {
        "statistics": {"a": graph_a.statistics(), "b": graph_b.statistics()},
        "n_pairs": int(len(matching)),
        "n_pairs_used": int(sel.size),
        "n_pairs_uncovered": int((~use).sum()),
        "subsampled": bool(subsampled),
        "n_permutations": n_permutations,
        "seed": seed,
    }
    p = sel.size
    upper = np.triu(np.ones((p, p), dtype=bool), k=1)
    perms = [rng.permutation(p) for _ in range(n_permutations)]
    for key, adjacent in (("same", False), ("adjacent", True)):
        sa = _co_membership(graph_a, ra, adjacent=adjacent) & upper
        sb = _co_membership(graph_b, rb, adjacent=adjacent)
        n_a = int(sa.sum())
        if n_a == 0:
            out[key] = {"observed": math.nan, "n_a_pairs": 0, "null_mean": math.nan, "null_std": math.nan,
                        "lift": math.nan, "p_value": math.nan}
            continue
        observed = float((sa & sb).sum() / n_a)
        null = np.array([float((sa & sb[perm][:, perm]).sum() / n_a) for perm in perms])
        mean = float(null.mean())
        out[key] = {
            "observed": observed,
            "n_a_pairs": n_a,
            "null_mean": mean,
            "null_std": float(null.std(ddof=1)) if null.size > 1 else 0.0,
            "lift": observed / mean if mean > 0 else math.inf,
            "p_value": float((1 + int((null >= observed).sum())) / (1 + n_permutations)),
        }
    return out



# ---------------------------------------------------------------------------------------------------
# self-contained HTML
# ---------------------------------------------------------------------------------------------------
def _safe_json(obj: Any) -> str:
    """JSON that is inert inside a <script> element: '<', '>' and '&' become \\u escapes."""
    text = json.dumps(obj, ensure_ascii=True, separators=(",", ":"), default=_json_default)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _layout(graph: MapperGraph, seed: int, width: float, height: float, margin: float) -> dict[str, tuple[float, float]]:
    """Spring layout per connected component, components packed left to right in rows by size."""
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(graph.node_ids)
    g.add_edges_from(graph.edges)
    comps = sorted(nx.connected_components(g), key=lambda c: (-len(c), min(c)))
    if not comps:
        return {}
    # cell sizes proportional to sqrt(component size); simple shelf packing
    weights = [math.sqrt(len(c)) for c in comps]
    total = sum(w * w for w in weights)
    unit = math.sqrt((width - 2 * margin) * (height - 2 * margin) / (1.6 * total))
    pos: dict[str, tuple[float, float]] = {}
    x0, y0, shelf = margin, margin, 0.0
    for comp, w in zip(comps, weights):
        side = max(unit * w, 24.0)
        if x0 + side > width - margin and x0 > margin:
            x0, y0, shelf = margin, y0 + shelf + 8.0, 0.0
        members = sorted(comp)
        if len(members) == 1:
            local = {members[0]: np.array([0.5, 0.5])}
        else:
            idx = {k: i for i, k in enumerate(members)}
            sub_edges = np.array([(idx[a], idx[b]) for a, b in g.subgraph(comp).edges()], dtype=np.int64).reshape(-1, 2)
            raw = _spring_layout(len(members), sub_edges, seed=seed)
            lo, hi = raw.min(axis=0), raw.max(axis=0)
            span = np.where(hi - lo > 0, hi - lo, 1.0)
            local = {k: 0.08 + 0.84 * (raw[i] - lo) / span for i, k in enumerate(members)}
        for k, v in local.items():
            pos[k] = (x0 + float(v[0]) * side, y0 + float(v[1]) * side)
        x0 += side + 8.0
        shelf = max(shelf, side)
    arr = np.array(list(pos.values()))
    ext = np.maximum(arr.max(axis=0) - margin, 1e-9)
    sx, sy = (width - 2 * margin) / ext[0], (height - 2 * margin) / ext[1]
    # fill the box, stretching one axis by at most 1.5x against the other
    sx, sy = min(sx, 1.5 * sy), min(sy, 1.5 * sx)
    return {k: (margin + (x - margin) * sx, margin + (y - margin) * sy) for k, (x, y) in pos.items()}


def _spring_layout(n: int, edges: np.ndarray, *, seed: int, iterations: int = 100) -> np.ndarray:
    """Fruchterman-Reingold layout (n, 2) in numpy: repulsion k^2/d between all nodes, attraction d^2/k
    along edges, displacement capped by a linearly cooling temperature. Seeded start."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(size=(n, 2))
    k = 1.0 / math.sqrt(n)
    temp = 0.1
    cool = temp / (iterations + 1)
    block = max(1, 2_000_000 // n)
    for _ in range(iterations):
        disp = np.empty_like(pos)
        sq = (pos**2).sum(axis=1)
        for b0 in range(0, n, block):
            p = pos[b0 : b0 + block]
            dist2 = np.maximum(sq[b0 : b0 + block, None] + sq[None, :] - 2.0 * (p @ pos.T), 1e-4)
            w = (k * k) / dist2
            w[np.arange(p.shape[0]), np.arange(b0, b0 + p.shape[0])] = 0.0
            # sum_j w_ij (p_i - p_j) = p_i sum_j w_ij - (W pos)_i
            disp[b0 : b0 + block] = p * w.sum(axis=1)[:, None] - w @ pos
        if edges.size:
            d = pos[edges[:, 0]] - pos[edges[:, 1]]
            length = np.sqrt((d**2).sum(axis=1))[:, None]
            f = d * length / k
            np.add.at(disp, edges[:, 0], -f)
            np.add.at(disp, edges[:, 1], f)
        length = np.maximum(np.sqrt((disp**2).sum(axis=1)), 1e-12)[:, None]
        pos += disp / length * np.minimum(length, temp)
        temp -= cool
    return pos


def _hex_colors(values: np.ndarray) -> tuple[list[str], list[str]]:
    """viridis hex colour per value, and a 7-stop gradient for the legend."""
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    t = (values - lo) / (hi - lo) if hi > lo else np.full(values.shape, 0.5)

    def hx(rgba) -> str:
        return "#%02x%02x%02x" % tuple(int(round(255 * c)) for c in rgba[:3])

    return [hx(cmap(float(v))) for v in t], [hx(cmap(i / 6)) for i in range(7)]


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
header{padding:10px 18px;border-bottom:1px solid #ddd;background:#fff}
h1{font-size:20px;margin:0 0 4px 0}
.sub{color:#555;font-size:13px}
main{display:flex;gap:12px;padding:12px}
#view{flex:1 1 auto;background:#fff;border:1px solid #ddd;min-width:0}
svg{display:block;width:100%;height:auto;cursor:grab;user-select:none}
.edge{stroke:#9a9a9a;stroke-width:1;stroke-opacity:.7}
.node{stroke:#333;stroke-width:.6;cursor:pointer}
.node.hit{stroke:#e4572e;stroke-width:3}
.node.sel{stroke:#000;stroke-width:3}
.dim .node:not(.hit){opacity:.25}
aside{flex:0 0 330px;font-size:13px}
.card{background:#fff;border:1px solid #ddd;padding:10px;margin-bottom:10px;overflow-wrap:anywhere}
.bar{height:12px;border:1px solid #ccc;margin:4px 0}
.ends{display:flex;justify-content:space-between;color:#555}
#search{width:100%;box-sizing:border-box;padding:5px}
table{border-collapse:collapse;width:100%}
td{padding:2px 4px;border-bottom:1px solid #eee}
td.v{text-align:right}
#members{max-height:340px;overflow:auto;margin:6px 0 0 0;padding-left:42px}
"""

_JS = """
(function(){
  var data = JSON.parse(document.getElementById('mapper-data').textContent);
  var svg = document.getElementById('graph');
  var details = document.getElementById('details');
  var circles = svg.querySelectorAll('circle.node');
  function clear(el){ while(el.firstChild){ el.removeChild(el.firstChild); } }
  function line(parent, tag, text){ var e = document.createElement(tag); e.textContent = text; parent.appendChild(e); return e; }
  function show(i){
    var n = data.nodes[i];
    circles.forEach(function(c){ c.classList.remove('sel'); });
    circles[i].classList.add('sel');
    clear(details);
    line(details, 'b', n.id);
    line(details, 'div', n.size + ' features; ' + data.color_name + ' = ' + n.color.toPrecision(4));
    if (n.tokens && n.tokens.length){ line(details, 'div', 'top tokens: ' + n.tokens.map(function(t){ return t[0] + ' (' + t[1] + ')'; }).join(', ')); }
    if (n.concept){ line(details, 'div', 'concept: ' + n.concept + ' (' + Math.round(100 * n.concept_share) + '%)'); }
    if (n.partner_fraction !== undefined){ line(details, 'div', 'with a matched partner: ' + Math.round(100 * n.partner_fraction) + '%'); }
    var ul = document.createElement('ol'); ul.id = 'members'; details.appendChild(ul);
    n.members.forEach(function(m){ line(ul, 'li', data.features ? data.features[m] : ('#' + m)); });
    if (n.more > 0){ line(details, 'div', '... and ' + n.more + ' more'); }
  }
  circles.forEach(function(c, i){ c.addEventListener('click', function(ev){ ev.stopPropagation(); show(i); }); });
  var search = document.getElementById('search');
  search.addEventListener('input', function(){
    var q = search.value.trim().toLowerCase();
    var root = document.getElementById('view');
    if (!q){ root.classList.remove('dim'); circles.forEach(function(c){ c.classList.remove('hit'); }); return; }
    root.classList.add('dim');
    circles.forEach(function(c, i){ c.classList.toggle('hit', data.nodes[i].search.indexOf(q) >= 0); });
  });
  var m = /^#node=(\d+)$/.exec(window.location.hash);
  if (m && +m[1] < circles.length){ show(+m[1]); }
  var vb = svg.viewBox.baseVal, drag = null;
  svg.addEventListener('wheel', function(ev){
    ev.preventDefault();
    var r = svg.getBoundingClientRect(), f = ev.deltaY > 0 ? 1.15 : 1 / 1.15;
    var px = vb.x + (ev.clientX - r.left) / r.width * vb.width, py = vb.y + (ev.clientY - r.top) / r.height * vb.height;
    vb.x = px - (px - vb.x) * f; vb.y = py - (py - vb.y) * f; vb.width *= f; vb.height *= f;
  }, {passive: false});
  svg.addEventListener('mousedown', function(ev){ drag = [ev.clientX, ev.clientY, vb.x, vb.y]; });
  window.addEventListener('mouseup', function(){ drag = null; });
  window.addEventListener('mousemove', function(ev){
    if (!drag) return;
    var r = svg.getBoundingClientRect();
    vb.x = drag[2] - (ev.clientX - drag[0]) / r.width * vb.width;
    vb.y = drag[3] - (ev.clientY - drag[1]) / r.height * vb.height;
  });
})();
"""


def _render_html(graph: MapperGraph, *, values: np.ndarray, color_name: str, title: str, seed: int,
                 max_members: int = 500) -> str:
    """One HTML page with inline SVG, style and script; no external resource; every data string escaped."""
    esc = html.escape
    width, height, margin = 1000.0, 720.0, 20.0
    stats = graph.statistics()
    ann = graph.node_annotations()
    ids = graph.node_ids
    node_vals = np.array([float(values[graph.nodes[k]].mean()) if graph.nodes[k].size else 0.0 for k in ids])
    colors, stops = _hex_colors(node_vals)
    pos = _layout(graph, seed, width, height, margin)
    if pos:
        height = min(height, max(y for _, y in pos.values()) + 2 * margin)
    max_size = max([m.size for m in graph.nodes.values()] or [1])
    tips = graph.feature_tooltips() if graph.annotations else None

    nodes_json, circles = [], []
    for i, k in enumerate(ids):
        a = ann[k]
        members = graph.nodes[k]
        summary = [f"{k}: {members.size} features", f"{color_name} = {node_vals[i]:.4g}"]
        search_bits = [k]
        if a.get("top_tokens"):
            summary.append("top tokens: " + ", ".join(f"{t} ({c})" for t, c in a["top_tokens"]))
            search_bits += [t for t, _ in a["top_tokens"]]
        if a.get("concept"):
            summary.append(f"concept: {a['concept']} ({100 * a['concept_share']:.0f}%)")
            search_bits.append(a["concept"])
        if "partner_fraction" in a:
            summary.append(f"with a matched partner: {100 * a['partner_fraction']:.0f}%")
        if a.get("names"):
            summary.append("e.g. " + "; ".join(a["names"]))
            search_bits += a["names"]
        listed = members[:max_members]
        summary.append("features: " + ", ".join(str(int(m)) for m in listed[:30]) + (" ..." if members.size > 30 else ""))
        x, y = pos[k]
        r = 3.0 + 11.0 * math.sqrt(members.size / max_size)
        circles.append(
            f'<circle class="node" cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{colors[i]}">'
            f"<title>{esc(chr(10).join(summary))}</title></circle>"
        )
        entry: dict[str, Any] = {
            "id": k,
            "size": int(members.size),
            "color": float(node_vals[i]),
            "members": listed.tolist(),
            "more": int(members.size - listed.size),
            "search": " ".join(search_bits).lower(),
        }
        for key in ("concept", "concept_share", "partner_fraction"):
            if key in a:
                entry[key] = a[key]
        if "top_tokens" in a:
            entry["tokens"] = a["top_tokens"]
        nodes_json.append(entry)
    lines = []
    for a_, b_ in graph.edges:
        (x1, y1), (x2, y2) = pos[a_], pos[b_]
        lines.append(f'<line class="edge" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"></line>')
    data: dict[str, Any] = {"nodes": nodes_json, "color_name": color_name}
    if tips is not None:
        data["features"] = tips
    rows = [
        ("features", stats["n_points"]), ("covered features", f"{stats['n_covered_points']} ({100 * stats['coverage']:.1f}%)"),
        ("nodes", stats["n_nodes"]), ("edges", stats["n_edges"]), ("connected components", stats["n_components"]),
        ("cycles of the graph (E - V + C)", stats["betti_1"]), ("loops of the nerve (Betti 1)", stats["nerve_betti_1"]),
        ("node size min / median / max", f"{stats['node_size']['min']} / {stats['node_size']['median']:g} / {stats['node_size']['max']}"),
        ("degree min / mean / max", f"{stats['degree']['min']} / {stats['degree']['mean']:.2f} / {stats['degree']['max']}"),
    ]
    cfg = graph.config
    sub = (f"lens {cfg.get('lens', '?')}, {cfg.get('n_cubes', '?')} cubes per dimension, overlap {cfg.get('overlap', '?')}, "
           f"{cfg.get('clusterer', '?')} ({cfg.get('metric', '?')}, eps {cfg.get('eps', float('nan')):.4g})")
    table = "".join(f"<tr><td>{esc(str(a))}</td><td class=\"v\">{esc(str(b))}</td></tr>" for a, b in rows)
    lo, hi = (float(node_vals.min()), float(node_vals.max())) if node_vals.size else (0.0, 0.0)
    gradient = ", ".join(stops)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><div class=\"sub\">{esc(sub)}</div></header><main>"
        f"<div id=\"view\"><svg id=\"graph\" viewBox=\"0 0 {width:.0f} {height:.0f}\" role=\"img\" "
        f"aria-label=\"{esc(title)}\"><g>{''.join(lines)}</g><g>{''.join(circles)}</g></svg></div>"
        "<aside>"
        f"<div class=\"card\"><b>colour: {esc(color_name)}</b> (node mean)<div class=\"bar\" "
        f"style=\"background:linear-gradient(to right, {gradient})\"></div>"
        f"<div class=\"ends\"><span>{lo:.4g}</span><span>{hi:.4g}</span></div></div>"
        "<div class=\"card\"><input id=\"search\" type=\"search\" placeholder=\"highlight nodes: token, concept, name, node id\"></div>"
        "<div class=\"card\" id=\"details\">Hover a node for a summary; click it for its features. "
        "Scroll to zoom, drag to pan.</div>"
        f"<div class=\"card\"><table>{table}</table></div>"
        "</aside></main>"
        f"<script type=\"application/json\" id=\"mapper-data\">{_safe_json(data)}</script>"
        f"<script>{_JS}</script></body></html>\n"
    )
