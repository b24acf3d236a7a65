import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform

import featgeom_tda.analyses.topology.homology as homology
from featgeom_tda.analyses.topology import (
    PersistenceDiagrams,
    betti_curve,
    compare_with_gaussian,
    diagram_distance,
    estimate_memory_bytes,
    gaussian_baseline,
    landmarks,
    pairwise_distances,
    persistence,
    persistence_entropy,
    plot_betti_curves,
    plot_diagrams,
)
from featgeom_tda.core.types import FeatureWeights


def _rotation(d, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q


def circle(n=120, d=20, noise=0.02, radius=1.0, center=None, seed=0):
    """Evenly spaced circle points embedded in R^d by a random rotation, with Gaussian noise."""
    rng = np.random.default_rng(seed)
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    pts = np.zeros((n, d))
    pts[:, 0] = radius * np.cos(theta)
    pts[:, 1] = radius * np.sin(theta)
    pts = pts @ _rotation(d, seed + 100)
    if center is not None:
        pts += center
    return pts + noise * rng.standard_normal((n, d))


def lifetimes(diagrams, dim):
    d = diagrams.finite(dim)
    return np.sort(d[:, 1] - d[:, 0])[::-1]


# ---------------------------------------------------------------------------------------------------
# shapes with known homology
# ---------------------------------------------------------------------------------------------------
def test_circle_in_r20_has_exactly_one_long_h1_bar():
    dg = persistence(circle(), maxdim=1)
    life = lifetimes(dg, 1)
    assert life[0] > 1.0  # a unit circle's loop lives from ~spacing to ~sqrt(3)
    assert (life[1:] < 0.2).all()
    assert dg.summary()["H0"]["n_infinite"] == 1
    assert dg.exact and dg.n_points == 120 and dg.n_input == 120


def test_two_noisy_circles_have_two_long_h1_bars():
    center = np.zeros(20)
    center[5] = 6.0
    pts = np.vstack([circle(seed=1), circle(seed=2, center=center, radius=1.5)])
    dg = persistence(pts, maxdim=1)
    life = lifetimes(dg, 1)
    assert (life[:2] > 1.0).all()
    assert (life[2:] < 0.2).all()
    # H0: two clusters -> one long finite bar (the merge at ~ the gap) and one infinite
    h0 = lifetimes(dg, 0)
    assert h0[0] > 3.0 and (h0[1:] < 0.3).all()


def test_giotto_and_ripser_agree_and_match_independent_distances():
    import ripser

    pts = np.vstack([circle(n=60, seed=3), np.random.default_rng(4).standard_normal((40, 20))])
    for metric, scipy_metric in (("euclidean", "euclidean"), ("cosine", "cosine")):
        g = persistence(pts, metric=metric, engine="giotto")
        r = persistence(pts, metric=metric, engine="ripser")
        np.testing.assert_array_equal(g.bars, r.bars)
        # independent: ripser on scipy's float64 distances
        ref = ripser.ripser(squareform(pdist(pts, scipy_metric)), distance_matrix=True, maxdim=1)["dgms"]
        for k in (0, 1):
            ours = g.dim(k)
            theirs = ref[k][ref[k][:, 1] > ref[k][:, 0]]
            theirs = theirs[np.lexsort((theirs[:, 1], theirs[:, 0]))]
            assert ours.shape == theirs.shape
            np.testing.assert_allclose(ours, theirs, atol=2e-5)


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
    dist = homology._distance_matrix(pts, "euclidean", np.float32)
    t = float(np.sort(dist[np.triu_indices(len(pts), 1)])[600])
    o = persistence(pts, engine="oineus", threshold=t)
    g = persistence(pts, engine="giotto", threshold=t)
    np.testing.assert_array_equal(o.bars, g.bars)
    assert np.isinf(o.dim(1)[:, 1]).any()  # classes alive at t are reported as such


def test_auto_engine_uses_oineus_within_budget_and_giotto_otherwise(monkeypatch):
    monkeypatch.setattr(homology, "_AUTO_MIN_POINTS", 10)
    x = np.random.default_rng(22).standard_normal((150, 12))
    # a sparse truncated complex goes to oineus, a dense one (here the full filtration) to giotto-ph
    t = float(np.quantile(homology._distance_matrix(x, "euclidean", np.float32), 0.05))
    assert persistence(x, threshold=t).engine == "oineus"
    assert persistence(x, threshold=None).engine == "giotto"
    monkeypatch.setattr(homology, "_OINEUS_MAX_EDGE_DENSITY", 1.0)
    auto = persistence(x)
    assert auto.engine == "oineus" and auto.exact
    np.testing.assert_array_equal(auto.bars, persistence(x, engine="giotto").bars)
    # H2 and other coefficients are outside oineus's reach here: giotto-ph runs them
    assert persistence(x[:40], maxdim=2).engine == "giotto"
    assert persistence(x[:40], coeff=3).engine == "giotto"
    # an explicit complex over the budget goes to giotto-ph (the estimate is 480 bytes a simplex)
    monkeypatch.setattr(homology, "_OINEUS_BYTES_PER_SIMPLEX", 10**9)
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
    from itertools import combinations

    x = np.random.default_rng(24).standard_normal((40, 3))
    dist = squareform(pdist(x)).astype(np.float32)
    for t in (0.5, 1.0, 2.0, 10.0):
        adj = dist <= t
        edges = sum(adj[u, v] for u, v in combinations(range(40), 2))
        triangles = sum(adj[u, v] and adj[u, w] and adj[v, w] for u, v, w in combinations(range(40), 3))
        n_e, n_t = homology._count_edges_and_triangles(dist, t, n_sample=10**6)  # every edge: exact
        assert (n_e, n_t) == (edges, triangles)
    # sampled estimate on a larger cloud: within 10% of the exact count (trace(A^3) / 6)
    y = np.random.default_rng(25).standard_normal((1500, 6))
    dist = homology._distance_matrix(y, "euclidean", np.float32)
    t = float(np.quantile(dist, 0.05))
    a = ((dist <= t) & ~np.eye(1500, dtype=bool)).astype(np.float64)
    exact = np.einsum("ij,ij->", a @ a, a) / 6
    n_e, n_t = homology._count_edges_and_triangles(dist, t)
    assert n_e == int(a.sum()) // 2
    assert abs(n_t - exact) < 0.1 * exact
    monkeypatch.setattr(homology, "_EDGE_LIST_MAX", 1000)  # the random-pair sampling of dense graphs
    n_e, n_t = homology._count_edges_and_triangles(dist, t)
    assert n_e == int(a.sum()) // 2
    assert abs(n_t - exact) < 0.1 * exact
    # a full run is truncated at the enclosing radius (above it the complex is a cone)
    assert homology._flag_truncation(dist, math.inf) == pytest.approx(float(dist.max(axis=1).min()))


def test_pairwise_distances_match_scipy():
    x = np.random.default_rng(5).standard_normal((30, 7))
    np.testing.assert_allclose(pairwise_distances(x), squareform(pdist(x)), atol=1e-10)
    np.testing.assert_allclose(pairwise_distances(x, metric="cosine"), squareform(pdist(x, "cosine")), atol=1e-12)
    # several blocks, float32 result: symmetric, zero diagonal, same values
    blocked = homology._distance_matrix(x, "euclidean", np.float32, block=7)
    assert blocked.dtype == np.float32 and (blocked == blocked.T).all() and (np.diag(blocked) == 0).all()
    np.testing.assert_allclose(blocked, squareform(pdist(x)), rtol=1e-6, atol=1e-6)


def test_accepts_torch_and_feature_weights():
    pts = circle(n=40)
    a = persistence(pts)
    b = persistence(torch.from_numpy(pts))
    c = persistence(FeatureWeights(pts.astype(np.float32)))
    np.testing.assert_array_equal(a.bars, b.bars)
    np.testing.assert_allclose(a.bars, c.bars, atol=1e-5)


# ---------------------------------------------------------------------------------------------------
# auto threshold (certified truncation)
# ---------------------------------------------------------------------------------------------------
def test_auto_threshold_truncates_and_equals_full_filtration(monkeypatch):
    monkeypatch.setattr(homology, "_AUTO_MIN_POINTS", 10)
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
                assert homology._cone_certificate(dist, t, n_scales=n_scales) == _brute_cone_ok(dist, t)


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
        assert homology._cone_certificate(dist, t) == expected
    assert outcomes == {True, False}  # both answers were exercised


def test_cone_certificate_square_closed_form():
    # unit square: the sides have no cone point, the diagonals do
    sq = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)
    dist = squareform(pdist(sq)).astype(np.float32)
    assert not homology._cone_certificate(dist, 1.0)
    assert homology._cone_certificate(dist, 1.01)


def test_longest_mst_edge_matches_scipy():
    from scipy.sparse.csgraph import minimum_spanning_tree

    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((60, 4))
        dist = squareform(pdist(x)).astype(np.float32)
        expected = float(minimum_spanning_tree(dist.astype(np.float64)).data.max())
        assert homology._longest_mst_edge(dist) == pytest.approx(expected, rel=1e-6)


def test_infinite_threshold_is_the_full_filtration():
    x = circle(n=50)
    a = persistence(x, threshold=math.inf)
    assert a.exact and math.isinf(a.threshold)
    np.testing.assert_array_equal(a.bars, persistence(x, threshold=None).bars)


def test_user_threshold_marks_alive_classes_infinite():
    x = circle(n=80, noise=0.05, seed=9)
    full = persistence(x, threshold=None)
    t = 0.5
    cut = persistence(x, threshold=t)
    assert not cut.exact and cut.threshold == t
    for k in (0, 1):
        f, c = full.dim(k), cut.dim(k)
        # finished bars are the full bars that die by t; the others are alive at t with the same births
        np.testing.assert_allclose(c[np.isfinite(c[:, 1])], f[f[:, 1] <= t], atol=1e-6)
        np.testing.assert_allclose(np.sort(c[np.isinf(c[:, 1]), 0]), np.sort(f[(f[:, 0] <= t) & (f[:, 1] > t), 0]), atol=1e-6)


# ---------------------------------------------------------------------------------------------------
# landmarks and memory
# ---------------------------------------------------------------------------------------------------
def test_landmarks_are_max_min():
    x = np.random.default_rng(11).standard_normal((300, 6))
    idx = landmarks(x, 25, seed=3)
    assert idx.dtype == np.int64 and len(set(idx.tolist())) == 25
    assert idx[0] == np.random.default_rng(3).integers(300)
    d = squareform(pdist(x))
    radii = []
    for k in range(1, 25):
        mind = d[:, idx[:k]].min(axis=1)
        assert mind[idx[k]] >= mind.max() - 1e-5  # the next landmark is (one of) the farthest rows
        radii.append(mind.max())
    assert all(a >= b - 1e-9 for a, b in zip(radii, radii[1:]))  # covering radius never grows
    np.testing.assert_array_equal(idx, landmarks(x, 25, seed=3))


def test_landmarks_cosine_uses_angles():
    x = np.random.default_rng(12).standard_normal((100, 5))
    scaled = x * np.random.default_rng(13).uniform(0.5, 3.0, size=(100, 1))
    np.testing.assert_array_equal(landmarks(x, 10, metric="cosine"), landmarks(scaled, 10, metric="cosine"))


def test_landmarks_keep_the_circle_bar():
    x = circle(n=1000, noise=0.02, seed=14)
    full = persistence(x[::10])
    lm = persistence(x, n_landmarks=80, seed=0)
    assert lm.n_points == 80 and lm.n_input == 1000 and lm.landmark_indices.shape == (80,)
    life = lifetimes(lm, 1)
    assert life[0] > 1.0 and (life[1:] < 0.25).all()
    assert abs(life[0] - lifetimes(full, 1)[0]) < 0.2


def test_memory_estimate_formula_and_refusal():
    n, fixed = 1000, 64 * 2**20
    assert estimate_memory_bytes(n, maxdim=1, auto_threshold=False) == 20 * n * n + fixed
    assert estimate_memory_bytes(n, maxdim=1) == 28 * n * n + fixed
    assert estimate_memory_bytes(n, maxdim=0) == 28 * n * n + fixed
    assert estimate_memory_bytes(n, maxdim=2) == 24 * n * n + fixed  # no auto threshold above H1
    x = np.random.default_rng(15).standard_normal((3000, 4))
    with pytest.raises(ValueError, match=r"needs about 0.32 GB, over memory_budget_gb=0.1; pass n_landmarks=<= 1083"):
        persistence(x, memory_budget_gb=0.1)  # 28 * 3000^2 + 64 MiB; sqrt((1e8 - 64 MiB) / 28) = 1083
    dg = persistence(x, memory_budget_gb=0.1, n_landmarks=60)
    assert dg.n_points == 60


# ---------------------------------------------------------------------------------------------------
# summaries
# ---------------------------------------------------------------------------------------------------
def _toy():
    bars = np.array(
        [[0.0, np.inf, 0], [0.0, 1.0, 0], [0.0, 3.0, 0], [1.0, 2.0, 1], [1.5, 4.0, 1], [2.0, 2.5, 1]], dtype=float
    )
    return PersistenceDiagrams(bars=bars, maxdim=1)


def test_summary_closed_form():
    s = _toy().summary()
    assert s["H0"] == {
        "n_bars": 3,
        "n_infinite": 1,
        "total_persistence": 4.0,
        "max_persistence": 3.0,
        "persistence_entropy": pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75))),
    }
    p = np.array([1.0, 2.5, 0.5]) / 4.0
    assert s["H1"]["total_persistence"] == 4.0 and s["H1"]["max_persistence"] == 2.5
    assert s["H1"]["persistence_entropy"] == pytest.approx(float(-(p * np.log(p)).sum()))
    assert persistence_entropy(np.zeros((0, 2))) == 0.0
    assert persistence_entropy(np.array([[0.0, 1.0]])) == 0.0


def test_betti_curve_closed_form():
    dg = _toy()
    grid = [0.0, 0.5, 1.0, 1.75, 2.0, 2.25, 3.0, 10.0]
    np.testing.assert_array_equal(betti_curve(dg, 0, grid), [3, 3, 2, 2, 2, 2, 1, 1])
    np.testing.assert_array_equal(betti_curve(dg, 1, grid), [0, 0, 1, 2, 2, 2, 1, 0])
    np.testing.assert_array_equal(dg.betti_curve(1, grid), betti_curve(dg.bars, 1, grid))


def test_save_load_roundtrip_and_plots(tmp_path):
    dg = persistence(circle(n=50), n_landmarks=30)
    back = PersistenceDiagrams.load(dg.save(tmp_path / "dg"))
    np.testing.assert_array_equal(back.bars, dg.bars)
    np.testing.assert_array_equal(back.landmark_indices, dg.landmark_indices)
    assert back.summary() == dg.summary() and back.exact == dg.exact
    assert plot_diagrams({"a": dg, "b": back}, tmp_path / "d.png").stat().st_size > 1000
    assert plot_betti_curves(dg, tmp_path / "b.png").stat().st_size > 1000


# ---------------------------------------------------------------------------------------------------
# distances
# ---------------------------------------------------------------------------------------------------
def test_diagram_distance_closed_forms():
    a = np.array([[0.0, 1.0]])
    empty = np.zeros((0, 2))
    assert diagram_distance(a, a) == 0.0
    assert diagram_distance(a, empty) == pytest.approx(0.5)  # L-inf distance to the diagonal
    assert diagram_distance(a, np.array([[0.0, 1.2]])) == pytest.approx(0.2)
    assert diagram_distance(np.array([[0.0, 2.0]]), empty, kind="wasserstein") == pytest.approx(1.0, rel=0.011)
    w = diagram_distance(np.array([[0.0, 2.0], [0.0, 1.0]]), empty, kind="wasserstein", order=2)
    assert w == pytest.approx(math.sqrt(1.0 + 0.25), rel=0.011)
    assert diagram_distance(np.array([[0.0, np.inf]]), empty) == math.inf  # essential classes must match


def test_diagram_distance_matches_persim():
    import persim

    rng = np.random.default_rng(21)
    d1 = persistence(rng.standard_normal((40, 3)))
    d2 = persistence(rng.standard_normal((40, 3)))
    assert diagram_distance(d1, d1) == 0.0
    assert diagram_distance(d1, d1, kind="wasserstein") == 0.0
    for k in (0, 1):
        a, b = d1.finite(k), d2.finite(k)
        assert diagram_distance(a, b, dim=k) == pytest.approx(persim.bottleneck(a, b), abs=1e-6)
        ours = diagram_distance(a, b, kind="wasserstein", internal_p=2.0, relative_error=1e-3)
        assert ours == pytest.approx(persim.wasserstein(a, b), rel=2e-3)
    # canonical (n, 3) arrays select the dimension
    assert diagram_distance(d1.bars, d2.bars, dim=1) == diagram_distance(d1, d2, dim=1)


# ---------------------------------------------------------------------------------------------------
# Gaussian baseline
# ---------------------------------------------------------------------------------------------------
def test_gaussian_baseline_has_same_mean_and_covariance():
    x = np.random.default_rng(31).standard_normal((200, 8)) @ np.diag([5, 3, 2, 1, 1, 0.5, 0.2, 0.1]) + 3.0
    g = gaussian_baseline(x, seed=1)
    assert g.shape == x.shape
    np.testing.assert_allclose(g.mean(axis=0), x.mean(axis=0), atol=1e-10)
    np.testing.assert_allclose(np.cov(g.T), np.cov(x.T), atol=1e-10)
    assert not np.allclose(g, gaussian_baseline(x, seed=2))
    np.testing.assert_array_equal(g, gaussian_baseline(x, seed=1))
    # fewer rows than columns: same spectrum still
    w = np.random.default_rng(32).standard_normal((10, 30))
    np.testing.assert_allclose(np.cov(gaussian_baseline(w, seed=0).T), np.cov(w.T), atol=1e-10)


def test_compare_with_gaussian_circle_beats_baselines():
    out = compare_with_gaussian(circle(n=80), n_baselines=3, seed=0)
    assert out["H1"]["p_value"] == pytest.approx(1 / 4)
    assert out["H1"]["max_persistence"] > max(out["H1"]["baseline_max_persistence"])
    assert len(out["H1"]["distance_to_baselines"]) == 3 and len(out["H1"]["baseline_spread"]) == 3
    assert isinstance(out["data"], PersistenceDiagrams)


# ---------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------
def test_bad_inputs_raise_value_errors():
    x = np.random.default_rng(0).standard_normal((20, 3))
    with pytest.raises(ValueError, match="maxdim"):
        persistence(x, maxdim=-1)
    with pytest.raises(ValueError, match="metric"):
        persistence(x, metric="manhattan")
    with pytest.raises(ValueError, match="engine"):
        persistence(x, engine="gudhi")
    with pytest.raises(ValueError, match="threshold"):
        persistence(x, threshold=-1.0)
    with pytest.raises(ValueError, match="threshold"):
        persistence(x, threshold="fast")
    with pytest.raises(ValueError, match="n_landmarks"):
        persistence(x, n_landmarks=0)
    # n_landmarks is a cap: with at least as many landmarks as rows every row is used
    capped = persistence(x, n_landmarks=21)
    assert capped.landmark_indices is None and capped.n_points == 20
    np.testing.assert_array_equal(capped.bars, persistence(x).bars)
    with pytest.raises(ValueError, match="coeff"):
        persistence(x, coeff=4)
    with pytest.raises(ValueError, match="memory_budget_gb"):
        persistence(x, memory_budget_gb=0)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        persistence(bad)
    with pytest.raises(ValueError, match="2-D"):
        persistence(x[:, 0])
    zero = x.copy()
    zero[5] = 0
    with pytest.raises(ValueError, match="all-zero rows"):
        persistence(zero, metric="cosine")
    with pytest.raises(ValueError, match="n must be at most"):
        landmarks(x, 50)
    with pytest.raises(ValueError, match="kind"):
        diagram_distance(x[:2, :2] ** 2, x[:2, :2] ** 2, kind="energy")
    with pytest.raises(ValueError, match="order"):
        diagram_distance(_toy(), _toy(), kind="wasserstein", order=0.5)
    with pytest.raises(ValueError, match="internal_p"):
        diagram_distance(_toy(), _toy(), internal_p="two")
    with pytest.raises(ValueError, match=r"shape \(m, 2\)"):
        diagram_distance(np.zeros((3, 4)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="grid"):
        betti_curve(_toy(), 1, [])
    with pytest.raises(ValueError, match="dim=2"):
        diagram_distance(_toy(), _toy(), dim=2)
    with pytest.raises(ValueError, match="death < birth"):
        PersistenceDiagrams(bars=[[1.0, 0.5, 0]], maxdim=0)
    with pytest.raises(ValueError, match="not saved persistence diagrams"):
        PersistenceDiagrams.load("/nonexistent/path")
