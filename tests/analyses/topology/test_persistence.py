"""persistence(): shapes with known homology, independent references, thresholds, landmarks, memory."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform

from analyses.topology.shapes import circle, lifetimes
from featgeom_tda.analyses.topology import estimate_memory_bytes, landmarks, pairwise_distances, persistence
from featgeom_tda.analyses.topology.homology.persistence import distance_matrix
from featgeom_tda.core.types import FeatureWeights


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


def test_pairwise_distances_match_scipy():
    x = np.random.default_rng(5).standard_normal((30, 7))
    np.testing.assert_allclose(pairwise_distances(x), squareform(pdist(x)), atol=1e-10)
    np.testing.assert_allclose(pairwise_distances(x, metric="cosine"), squareform(pdist(x, "cosine")), atol=1e-12)


def test_blocked_float32_distance_matrix_matches_scipy():
    """Pins the private block size of distance_matrix on purpose: the public function uses one block below
    2,048 rows, so the mirrored off-diagonal blocks are only reached this way."""
    x = np.random.default_rng(5).standard_normal((30, 7))
    # several blocks, float32 result: symmetric, zero diagonal, same values
    blocked = distance_matrix(x, "euclidean", np.float32, block=7)
    assert blocked.dtype == np.float32 and (blocked == blocked.T).all() and (np.diag(blocked) == 0).all()
    np.testing.assert_allclose(blocked, squareform(pdist(x)), rtol=1e-6, atol=1e-6)


def test_accepts_torch_and_feature_weights():
    pts = circle(n=40)
    a = persistence(pts)
    b = persistence(torch.from_numpy(pts))
    c = persistence(FeatureWeights(pts.astype(np.float32)))
    np.testing.assert_array_equal(a.bars, b.bars)
    np.testing.assert_allclose(a.bars, c.bars, atol=1e-5)


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
    assert estimate_memory_bytes(n, maxdim=2) == 24 * n * n + fixed + 8 * math.comb(n, 3)  # no auto threshold above H1; simplices (test_budget)
    x = np.random.default_rng(15).standard_normal((3000, 4))
    with pytest.raises(ValueError, match=r"needs about 0.32 GB, over memory_budget_gb=0.1; pass n_landmarks=<= 1083"):
        persistence(x, memory_budget_gb=0.1)  # 28 * 3000^2 + 64 MiB; sqrt((1e8 - 64 MiB) / 28) = 1083
    dg = persistence(x, memory_budget_gb=0.1, n_landmarks=60)
    assert dg.n_points == 60


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
    with pytest.raises(ValueError, match=r"threshold must be 'auto', None or a positive number; got True"):
        persistence(x, threshold=True)
    with pytest.raises(ValueError, match=r"memory_budget_gb must be a number in \(0, inf\]; got True"):
        persistence(x, memory_budget_gb=True)
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
