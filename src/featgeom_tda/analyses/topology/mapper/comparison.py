"""Whether a feature matching preserves Mapper neighbourhoods: :func:`compare_mapper_graphs`.

Over pairs of matched pairs ``(a_i, b_i)``, ``(a_j, b_j)`` whose four features are all in some node:

- ``same``: among pairs with ``a_i, a_j`` in a common node of A, the fraction with ``b_i, b_j`` in a
  common node of B;
- ``adjacent``: the same with "in a common node or in two nodes joined by an edge".

The baseline keeps both graphs and the set of matched features, and pairs the A features with a random
permutation of the B partners (seeded, ``n_permutations`` times); ``p_value = (1 + #{null >= observed}) /
(1 + n_permutations)`` and ``lift = observed / mean(null)``. At most ``max_pairs`` matched pairs (a
seeded sample) enter, since the work grows with their square.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp

from featgeom_tda.analyses.topology.mapper.graph import MapperGraph
from featgeom_tda.core._validation import check_positive_int

__all__ = ["compare_mapper_graphs"]


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
