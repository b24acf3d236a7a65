"""The Mapper graph type: nodes as sets of feature (row) indices, annotations, statistics, save / load.

Graph statistics: ``betti_1 = E - V + C`` is the number of independent cycles of the graph. Covers with
a lens of dimension >= 2 create triangles (three nodes sharing rows) that the graph counts as cycles;
``nerve_betti_1`` is the first Betti number of the nerve (triangles whose three nodes share a row are
filled), the better count of loops for such covers. For a 1-D lens both agree.

The HTML view is :func:`featgeom_tda.viz.mapper_html.save_mapper_html`; the comparison of two graphs
under a feature matching is :mod:`featgeom_tda.analyses.topology.mapper.comparison`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from featgeom_tda.core.types import json_default
from featgeom_tda.core._validation import to_numpy

__all__ = ["MapperGraph", "check_annotations"]

_ANNOTATION_KEYS = ("top_tokens", "concept", "partner", "names")


# ---------------------------------------------------------------------------------------------------
# annotations
# ---------------------------------------------------------------------------------------------------
def check_annotations(annotations: Any, n: int) -> dict[str, Any]:
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
        self.annotations = check_annotations(self.annotations, self.n_points) if self.annotations else {}

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
        (path / "graph.json").write_text(json.dumps(self.to_dict(), indent=1, default=json_default))
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

    def to_kmapper(self) -> dict[str, Any]:
        """The graph as KeplerMapper's graph dict (nodes, links, simplices, meta_data, meta_nodes)."""
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
