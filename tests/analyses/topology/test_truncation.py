"""The certified truncation of threshold="auto": it equals the full filtration, and its certificate."""

import math

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from featgeom_tda.analyses.topology import persistence
from featgeom_tda.analyses.topology.homology import truncation


def test_auto_threshold_truncates_and_equals_full_filtration(monkeypatch):
    monkeypatch.setattr(truncation, "AUTO_MIN_POINTS", 10)
    x = np.random.default_rng(1).standard_normal((120, 30))
    auto = persistence(x)
    full = persistence(x, threshold=None)
    assert math.isfinite(auto.threshold)  # the truncation happened ...
    assert auto.exact
    np.testing.assert_array_equal(auto.bars, full.bars)  # ... and lost nothing
    assert math.isinf(full.threshold)


def _brute_cone_ok(dist, t):
    n = dist.shape[0]
    for u in range(n):
        for v in range(u + 1, n):
            if dist[u, v] >= t:
                if not any(max(dist[u, w], dist[v, w]) < dist[u, v] for w in range(n) if w not in (u, v)):
                    return False
    return True


def test_cone_certificate_matches_brute_force():
    rng = np.random.default_rng(7)
    for trial in range(6):
        x = rng.standard_normal((25, 3 + trial))
        dist = squareform(pdist(x)).astype(np.float32)
        vals = np.sort(dist[np.triu_indices(25, 1)])
        for q in (0.1, 0.3, 0.6, 0.9):
            t = float(vals[int(q * (vals.size - 1))])
            for n_scales in (2, 4, 16):  # few scales send more edges to the exact search
                assert truncation.cone_certificate(dist, t, n_scales=n_scales) == _brute_cone_ok(dist, t)


def test_cone_certificate_across_bitset_words():
    # 150 points span three 64-bit words; the vectorised brute force is O(n^3)
    x = np.random.default_rng(8).standard_normal((150, 6))
    dist = squareform(pdist(x)).astype(np.float32)
    cone = np.maximum(dist[:, None, :], dist[None, :, :])  # cone[u, v, w] = max(d(u,w), d(v,w))
    idx = np.arange(150)
    cone[:, :, idx] = np.where(np.eye(150, dtype=bool)[:, None, :] | np.eye(150, dtype=bool)[None, :, :], np.inf,
                               cone[:, :, idx])
    has_cone = (cone < dist[:, :, None]).any(axis=2)
    outcomes = set()
    for q in (0.05, 0.3, 0.7, 0.95):
        t = float(np.quantile(dist[np.triu_indices(150, 1)], q))
        expected = bool(has_cone[(dist >= t) & ~np.eye(150, dtype=bool)].all())
        outcomes.add(expected)
        assert truncation.cone_certificate(dist, t) == expected
    assert outcomes == {True, False}  # both answers were exercised


def test_cone_certificate_square_closed_form():
    # unit square: the sides have no cone point, the diagonals do
    sq = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)
    dist = squareform(pdist(sq)).astype(np.float32)
    assert not truncation.cone_certificate(dist, 1.0)
    assert truncation.cone_certificate(dist, 1.01)


def test_longest_mst_edge_matches_scipy():
    from scipy.sparse.csgraph import minimum_spanning_tree

    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((60, 4))
        dist = squareform(pdist(x)).astype(np.float32)
        expected = float(minimum_spanning_tree(dist.astype(np.float64)).data.max())
        assert truncation.longest_mst_edge(dist) == pytest.approx(expected, rel=1e-6)
