"""The oineus / giotto-ph / ripser engines and the automatic choice between them."""

import math

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from analyses.topology.shapes import circle
from featgeom_tda.analyses.topology import pairwise_distances, persistence
from featgeom_tda.analyses.topology.homology import engines, truncation


def test_oineus_engine_equals_giotto_and_ripser():
    rng = np.random.default_rng(21)
    pts = np.vstack([circle(n=50, seed=5), rng.standard_normal((40, 20)), np.zeros((2, 20)) + 0.3])  # a duplicate
    for metric in ("euclidean", "cosine"):
        o = persistence(pts, metric=metric, engine="oineus", threshold=None)
        g = persistence(pts, metric=metric, engine="giotto", threshold=None)
        r = persistence(pts, metric=metric, engine="ripser", threshold=None)
        assert o.engine == "oineus" and g.engine == "giotto" and r.engine == "ripser"
        np.testing.assert_array_equal(o.bars, g.bars)
        np.testing.assert_array_equal(o.bars, r.bars)
        h0 = persistence(pts, metric=metric, engine="oineus", maxdim=0, threshold=None)
        np.testing.assert_array_equal(h0.bars, g.bars[g.bars[:, 2] == 0])
    # a threshold equal to an edge length includes that edge in both engines (d <= t)
    dist = pairwise_distances(pts).astype(np.float32)  # the float32 matrix the engines see
    t = float(np.sort(dist[np.triu_indices(len(pts), 1)])[600])
    o = persistence(pts, engine="oineus", threshold=t)
    g = persistence(pts, engine="giotto", threshold=t)
    np.testing.assert_array_equal(o.bars, g.bars)
    assert np.isinf(o.dim(1)[:, 1]).any()  # classes alive at t are reported as such


def test_auto_engine_uses_oineus_within_budget_and_giotto_otherwise(monkeypatch):
    monkeypatch.setattr(truncation, "AUTO_MIN_POINTS", 10)
    x = np.random.default_rng(22).standard_normal((150, 12))
    # a sparse truncated complex goes to oineus, a dense one (here the full filtration) to giotto-ph
    t = float(np.quantile(pairwise_distances(x).astype(np.float32), 0.05))
    assert persistence(x, threshold=t).engine == "oineus"
    assert persistence(x, threshold=None).engine == "giotto"
    monkeypatch.setattr(engines, "_OINEUS_MAX_EDGE_DENSITY", 1.0)
    auto = persistence(x)
    assert auto.engine == "oineus" and auto.exact
    np.testing.assert_array_equal(auto.bars, persistence(x, engine="giotto").bars)
    # H2 and other coefficients are outside oineus's reach here: giotto-ph runs them
    assert persistence(x[:40], maxdim=2).engine == "giotto"
    assert persistence(x[:40], coeff=3).engine == "giotto"
    # an explicit complex over the budget goes to giotto-ph (the estimate is 480 bytes a simplex)
    monkeypatch.setattr(engines, "_OINEUS_BYTES_PER_SIMPLEX", 10**9)
    fallback = persistence(x)
    assert fallback.engine == "giotto"
    np.testing.assert_array_equal(fallback.bars, auto.bars)
    with pytest.raises(ValueError, match=r"engine='oineus' holds the complex in memory: about .* GB for this run"):
        persistence(x, engine="oineus")


def test_oineus_engine_refuses_what_it_cannot_compute():
    x = np.random.default_rng(23).standard_normal((20, 3))
    with pytest.raises(ValueError, match=r"engine='oineus' computes maxdim <= 1 with coeff=2 only; got maxdim=2, coeff=2"):
        persistence(x, engine="oineus", maxdim=2)
    with pytest.raises(ValueError, match=r"got maxdim=1, coeff=5"):
        persistence(x, engine="oineus", coeff=5)


def test_edge_and_triangle_counts_match_brute_force(monkeypatch):
    """Pins the private edge and triangle counter (and the enclosing-radius truncation) on purpose: the
    engine choice depends on these estimates, and a persistence() run only shows which engine won."""
    from itertools import combinations

    x = np.random.default_rng(24).standard_normal((40, 3))
    dist = squareform(pdist(x)).astype(np.float32)
    for t in (0.5, 1.0, 2.0, 10.0):
        adj = dist <= t
        edges = sum(adj[u, v] for u, v in combinations(range(40), 2))
        triangles = sum(adj[u, v] and adj[u, w] and adj[v, w] for u, v, w in combinations(range(40), 3))
        n_e, n_t = engines._count_edges_and_triangles(dist, t, n_sample=10**6)  # every edge: exact
        assert (n_e, n_t) == (edges, triangles)
    # sampled estimate on a larger cloud: within 10% of the exact count (trace(A^3) / 6)
    y = np.random.default_rng(25).standard_normal((1500, 6))
    dist = pairwise_distances(y).astype(np.float32)
    t = float(np.quantile(dist, 0.05))
    a = ((dist <= t) & ~np.eye(1500, dtype=bool)).astype(np.float64)
    exact = np.einsum("ij,ij->", a @ a, a) / 6
    n_e, n_t = engines._count_edges_and_triangles(dist, t)
    assert n_e == int(a.sum()) // 2
    assert abs(n_t - exact) < 0.1 * exact
    monkeypatch.setattr(engines, "_EDGE_LIST_MAX", 1000)  # the random-pair sampling of dense graphs
    n_e, n_t = engines._count_edges_and_triangles(dist, t)
    assert n_e == int(a.sum()) // 2
    assert abs(n_t - exact) < 0.1 * exact
    # a full run is truncated at the enclosing radius (above it the complex is a cone)
    assert engines._flag_truncation(dist, math.inf) == pytest.approx(float(dist.max(axis=1).min()))
