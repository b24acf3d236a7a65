import numpy as np
import pytest
import scipy.sparse as sp
import torch
import featgeom_tda.analyses.projection as projection
from featgeom_tda.analyses.projection import (
    before_after_layout,
    joint_layout,
    pca_projection,
    side_by_side_layout,
    umap_projection,
)
from featgeom_tda.core.types import FeatureActivations, FeatureMatching, FeatureWeights

def _cloud(n=80, d=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) @ np.diag(np.linspace(3, 0.2, d)) + 0.5


def _same_up_to_sign(a, b, atol=1e-8):
    for k in range(a.shape[1]):
        s = np.sign(a[:, k] @ b[:, k])
        np.testing.assert_allclose(a[:, k], s * b[:, k], atol=atol)


def test_pca_matches_covariance_eigenvectors():
    x = _cloud()
    p = pca_projection(x, n_components=3)
    xc = x - x.mean(axis=0)
    w, v = np.linalg.eigh(np.cov(xc.T))
    order = np.argsort(w)[::-1][:3]
    _same_up_to_sign(p.coords, xc @ v[:, order])
    np.testing.assert_allclose(p.explained_variance_ratio, w[order] / w.sum(), rtol=1e-10)
    # deterministic signs: the largest-magnitude loading of each axis is positive
    idx = np.argmax(np.abs(p.components), axis=1)
    assert (p.components[np.arange(3), idx] > 0).all()


def test_pca_scatter_matrix_path_equals_svd_path(monkeypatch):
    x = _cloud(n=200, d=10, seed=1)
    svd = pca_projection(x, n_components=2)
    monkeypatch.setattr(projection, "_SVD_MAX_ENTRIES", 10)
    eig = pca_projection(x, n_components=2)
    np.testing.assert_allclose(eig.coords, svd.coords, atol=1e-9)
    np.testing.assert_allclose(eig.explained_variance_ratio, svd.explained_variance_ratio, rtol=1e-9)


def test_pca_cosine_ignores_row_norms_and_accepts_torch_and_weights():
    x = _cloud(seed=2)
    scaled = x * np.random.default_rng(3).uniform(0.1, 5.0, size=(x.shape[0], 1))
    a = pca_projection(x, metric="cosine")
    np.testing.assert_allclose(pca_projection(scaled, metric="cosine").coords, a.coords, atol=1e-10)
    np.testing.assert_allclose(pca_projection(torch.from_numpy(x), metric="cosine").coords, a.coords, atol=1e-12)
    np.testing.assert_allclose(pca_projection(FeatureWeights(x), metric="cosine").coords, a.coords, atol=1e-5)


def test_sparse_pca_matches_dense():
    dense = sp.random(120, 30, density=0.2, random_state=np.random.default_rng(4)).toarray()
    a = pca_projection(dense, n_components=2)
    b = pca_projection(sp.csr_matrix(dense), n_components=2)
    _same_up_to_sign(b.coords, a.coords, atol=1e-7)
    np.testing.assert_allclose(b.explained_variance_ratio, a.explained_variance_ratio, rtol=1e-7)



def _pair(n=60, d=8, seed=5):
    """Model A rows and model B = A rotated, scaled and permuted; the matching recovers the permutation."""
    rng = np.random.default_rng(seed)
    a = _cloud(n, d, seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    perm = rng.permutation(n)
    b = np.empty_like(a)
    b[perm] = 2.5 * a @ q
    return a, b, FeatureMatching(np.arange(n), perm, np.linspace(1.0, 0.5, n))


def test_side_by_side_layout_aligns_pairs():
    a, b, m = _pair()
    lay = side_by_side_layout(a, b, m, metric="euclidean", max_links=20)
    # B is an isometry of A up to scale, so the aligned PCA coordinates coincide pair by pair
    np.testing.assert_allclose(lay["coords_b"][m.index_b], lay["coords_a"][m.index_a], atol=1e-6)
    assert lay["order"].size == 20 and lay["matched_a"].all() and lay["matched_b"].all()
    np.testing.assert_array_equal(lay["color_b"][m.index_b], lay["color_a"][m.index_a])


def test_joint_layout_requires_same_space_and_equals_stacked_pca():
    a, b, m = _pair(d=8)
    lay = joint_layout(a, b, matching=m, max_links=7)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    ref = pca_projection(np.vstack([unit(a), unit(b)]), metric="cosine").coords
    np.testing.assert_allclose(np.vstack([lay["coords_a"], lay["coords_b"]]), ref, atol=1e-6)
    assert lay["links"][0].shape == (7, 2)
    with pytest.raises(ValueError, match="R\\^8 but weights_b in R\\^9.*side_by_side"):
        joint_layout(a, np.zeros((5, 9)) + 1.0)


def test_before_after_layout_constant_shift():
    rng = np.random.default_rng(7)
    before = sp.random(200, 40, density=0.1, random_state=rng, format="csr")
    shift = np.zeros(40)
    shift[3] = 2.0
    after = sp.csr_matrix(before.toarray() + shift)
    lay = before_after_layout(FeatureActivations(before), after, max_points=150, max_links=10)
    assert lay["paired"] and lay["coords_before"].shape == (150, 2) and lay["links"][0].shape == (10, 2)
    assert lay["mean_shift"] == pytest.approx(2.0, abs=1e-5)
    d = lay["coords_after"] - lay["coords_before"]
    np.testing.assert_allclose(d, np.broadcast_to(d[0], d.shape), atol=1e-6)
    with pytest.raises(ValueError, match="40 features but acts_after has 39"):
        before_after_layout(before, after[:, :39])


def test_bad_inputs_raise_value_errors():
    x = _cloud(n=10, d=4)
    with pytest.raises(ValueError, match="n_components"):
        pca_projection(x, n_components=5)
    with pytest.raises(ValueError, match="metric"):
        pca_projection(x, metric="manhattan")
    zero = x.copy()
    zero[2] = 0
    with pytest.raises(ValueError, match="all-zero rows"):
        pca_projection(zero, metric="cosine")
    with pytest.raises(ValueError, match="n_neighbors"):
        umap_projection(x, n_neighbors=15)
    a, b, m = _pair(n=10, d=4)
    with pytest.raises(ValueError, match="method"):
        side_by_side_layout(a, b, m, method="tsne")
    with pytest.raises(ValueError, match=r"index_b must lie in \[0, 5\)"):
        side_by_side_layout(a, b[:5], m)
    with pytest.raises(ValueError, match="labels"):
        side_by_side_layout(a, b, m, labels="AB")
    with pytest.raises(ValueError, match="names_a has 3 entries"):
        side_by_side_layout(a, b, m, names_a=["a", "b", "c"])


@pytest.mark.slow
def test_umap_is_seeded_and_reproducible():
    x = np.vstack([_cloud(40, 6, 0) + 8, _cloud(40, 6, 1) - 8])
    a = umap_projection(x, metric="euclidean", seed=3, n_neighbors=10)
    b = umap_projection(x, metric="euclidean", seed=3, n_neighbors=10)
    np.testing.assert_array_equal(a.coords, b.coords)
    assert a.coords.shape == (80, 2) and a.method == "umap"
    # the two blobs stay apart: every point is nearer its own blob's centre
    ca, cb = a.coords[:40].mean(axis=0), a.coords[40:].mean(axis=0)
    own = np.linalg.norm(a.coords[:40] - ca, axis=1) < np.linalg.norm(a.coords[:40] - cb, axis=1)
    assert own.all()
