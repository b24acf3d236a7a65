import itertools

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
from scipy.spatial.distance import pdist
from sklearn.neighbors import NearestNeighbors

from featgeom_tda.analyses.geometry import (
    knn_jaccard,
    linear_cka,
    mutual_knn,
    procrustes,
    rsa,
    svcca,
    svcca_result,
)
from featgeom_tda.analyses.geometry import similarity as sim
from featgeom_tda.analyses.geometry.similarity import auto_max_components, forced_unit_correlations


def orthogonal(d, rng):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def correlated_pair(rng, n=60, d1=7, d2=5, noise=0.7):
    X = rng.standard_normal((n, d1))
    Y = X @ rng.standard_normal((d1, d2)) + noise * rng.standard_normal((n, d2))
    return X, Y


ALL_METRICS = [
    ("svcca", lambda X, Y: svcca(X, Y)),
    ("cka", lambda X, Y: linear_cka(X, Y)),
    ("cka_debiased", lambda X, Y: linear_cka(X, Y, debiased=True)),
    ("rsa_cosine", lambda X, Y: rsa(X, Y, rdm="cosine")),
    ("rsa_euclidean_pearson", lambda X, Y: rsa(X, Y, rdm="euclidean", compare="pearson")),
    ("rsa_correlation", lambda X, Y: rsa(X, Y)),
    ("procrustes", lambda X, Y: procrustes(X, Y)),
    ("knn_jaccard", lambda X, Y: knn_jaccard(X, Y, k=5)),
    ("knn_jaccard_euclidean", lambda X, Y: knn_jaccard(X, Y, k=5, metric="euclidean")),
    ("mutual_knn", lambda X, Y: mutual_knn(X, Y, k=5)),
]
ROTATION_INVARIANT = [m for m in ALL_METRICS if m[0] != "rsa_correlation"]


# ---------------------------------------------------------------------------------------------- invariances


@pytest.mark.parametrize("name,metric", ROTATION_INVARIANT, ids=[m[0] for m in ROTATION_INVARIANT])
def test_every_metric_is_one_for_an_orthogonal_map(name, metric):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 6))
    assert metric(X, X @ orthogonal(6, rng)) == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("name", ["svcca", "cka", "cka_debiased", "procrustes"])
def test_svcca_cka_procrustes_are_one_for_scaled_rotated_shifted_copies(name):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 5))
    Y = 3.7 * X @ orthogonal(5, rng) + rng.standard_normal(5)
    metric = dict(ALL_METRICS)[name]
    assert metric(X, Y) == pytest.approx(1.0, abs=1e-10)


def test_svcca_is_one_for_any_invertible_linear_map():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((80, 4))
    A = rng.standard_normal((4, 4)) + 4 * np.eye(4)
    assert svcca(X, X @ A + 2.0, variance=1.0) == pytest.approx(1.0, abs=1e-10)


def test_correlation_rsa_invariances_are_the_documented_ones():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 6))
    # per-row affine maps leave the correlation RDM unchanged
    scaled = X * rng.uniform(0.5, 3, size=(30, 1)) + rng.standard_normal((30, 1))
    assert rsa(X, scaled) == pytest.approx(1.0, abs=1e-12)
    # an orthogonal map that fixes the all-ones direction keeps it too
    ones = np.ones((6, 1)) / np.sqrt(6)
    basis = np.linalg.qr(np.hstack([ones, rng.standard_normal((6, 5))]))[0]
    R = orthogonal(5, rng)
    Q = basis @ scipy.linalg.block_diag(1.0, R) @ basis.T
    assert np.allclose(Q @ Q.T, np.eye(6)) and np.allclose(Q @ np.ones(6), np.ones(6))
    assert rsa(X, X @ Q) == pytest.approx(1.0, abs=1e-12)
    # a generic rotation does not (row centring is basis dependent)
    assert rsa(X, X @ orthogonal(6, rng)) < 0.99


@pytest.mark.parametrize("name,metric", ALL_METRICS, ids=[m[0] for m in ALL_METRICS])
def test_metrics_are_symmetric(name, metric):
    X, Y = correlated_pair(np.random.default_rng(4), d1=5, d2=5)
    assert metric(X, Y) == pytest.approx(metric(Y, X), abs=1e-12)


@pytest.mark.parametrize("name,metric", ALL_METRICS, ids=[m[0] for m in ALL_METRICS])
def test_metrics_stay_within_bounds(name, metric):
    rng = np.random.default_rng(5)
    low = -1.0 if name.startswith(("rsa", "cka_debiased")) else 0.0
    for _ in range(5):
        X, Y = correlated_pair(rng, n=30, noise=rng.uniform(0.1, 5))
        for A, B in ((X, Y), (X, rng.standard_normal((30, 3)))):
            value = metric(A, B)
            assert low - 1e-12 <= value <= 1 + 1e-12


def test_metrics_sit_near_their_null_on_independent_data():
    rng = np.random.default_rng(6)
    n, k = 600, 10
    X = rng.standard_normal((n, 4))
    Y = rng.standard_normal((n, 4))
    assert abs(linear_cka(X, Y, debiased=True)) < 0.02
    assert linear_cka(X, Y) < 0.05
    assert abs(rsa(X, Y, rdm="euclidean")) < 0.05
    assert svcca(X, Y) < 0.1
    assert procrustes(X, Y) < 0.15
    assert mutual_knn(X, Y, k=k) == pytest.approx(k / (n - 1), abs=0.01)
    assert knn_jaccard(X, Y, k=k) < 0.02


def test_torch_inputs_give_the_numpy_values():
    X, Y = correlated_pair(np.random.default_rng(7))
    tX, tY = torch.from_numpy(X), torch.from_numpy(Y)
    for name, metric in ALL_METRICS:
        assert metric(tX, tY) == pytest.approx(metric(X, Y), abs=1e-14), name


# ---------------------------------------------------------------------------------------------- SVCCA


def _orthonormal_centred(n, m, rng):
    """n x m orthonormal columns, each orthogonal to the all-ones vector."""
    Z = rng.standard_normal((n, m))
    Z -= Z.mean(axis=0)
    return np.linalg.qr(Z)[0]


@pytest.mark.parametrize("m,da,db", [(1, 3, 5), (3, 2, 4), (4, 0, 3), (2, 3, 3)])
def test_svcca_of_spaces_sharing_m_directions_is_m_over_min_dim(m, da, db):
    # X = [S, A] M_x and Y = [S, B] M_y with S, A, B mutually orthogonal centred columns: the canonical
    # correlations are exactly m ones and min(dx, dy) - m zeros, whatever invertible mixing M is applied.
    rng = np.random.default_rng(10 + m)
    n = 50
    Q = _orthonormal_centred(n, m + da + db, rng)
    S, A, B = Q[:, :m], Q[:, m : m + da], Q[:, m + da :]
    dx, dy = m + da, m + db
    X = np.hstack([S, A]) @ (rng.standard_normal((dx, dx)) + 3 * np.eye(dx)) + 5.0
    Y = np.hstack([S, B]) @ (rng.standard_normal((dy, dy)) + 3 * np.eye(dy)) - 1.0
    res = svcca_result(X, Y, variance=1.0)
    assert (res.n_components_x, res.n_components_y) == (dx, dy)
    assert res.score == pytest.approx(m / min(dx, dy), abs=1e-10)
    expected = np.r_[np.ones(m), np.zeros(min(dx, dy) - m)]
    assert np.allclose(res.canonical_correlations, expected, atol=1e-10)


def test_svcca_shared_directions_large_n_limit_with_independent_noise():
    rng = np.random.default_rng(11)
    n, m = 20000, 2
    S = rng.standard_normal((n, m))
    X = np.hstack([S, rng.standard_normal((n, 3))])
    Y = np.hstack([S, rng.standard_normal((n, 2))])
    assert svcca(X, Y, variance=1.0) == pytest.approx(m / 4, abs=0.01)


def _known_spectrum(power, n=200, seed=12):
    rng = np.random.default_rng(seed)
    U = _orthonormal_centred(n, len(power), rng)
    V = orthogonal(len(power), rng)
    return U @ np.diag(np.sqrt(power)) @ V.T


@pytest.mark.parametrize(
    "variance,expected", [(0.3, 1), (0.5, 1), (0.51, 2), (0.8, 2), (0.9, 3), (0.95, 3), (0.97, 4), (1.0, 5)]
)
def test_svcca_keeps_the_fewest_components_reaching_the_variance_fraction(variance, expected):
    X = _known_spectrum([0.5, 0.3, 0.15, 0.04, 0.01])
    res = svcca_result(X, X, variance=variance)
    assert res.n_components_x == res.n_components_y == expected
    assert res.explained_variance_x == pytest.approx([0.5, 0.8, 0.95, 0.99, 1.0][expected - 1])


def test_svcca_kept_count_uses_the_fraction_not_the_absolute_total_variance():
    # Regression: comparing the cumulative fraction (<= 1) with the absolute total variance (here ~ 10^6)
    # always kept one component. The count must not depend on the scale of the data.
    X = _known_spectrum([0.5, 0.3, 0.15, 0.04, 0.01]) * 1000.0
    res = svcca_result(X, X, variance=0.99)
    assert res.n_components_x == 4
    assert svcca_result(X / 1e6, X / 1e6, variance=0.99).n_components_x == 4


def test_svcca_with_one_component_is_the_top_direction_correlation():
    rng = np.random.default_rng(13)
    X, Y = correlated_pair(rng, n=100, noise=1.0)
    res = svcca_result(X, Y, n_components=1)
    assert (res.n_components_x, res.n_components_y) == (1, 1)
    assert res.variance is None
    pcx = np.linalg.svd(X - X.mean(0), full_matrices=False)[0][:, 0]
    pcy = np.linalg.svd(Y - Y.mean(0), full_matrices=False)[0][:, 0]
    assert res.score == pytest.approx(abs(np.corrcoef(pcx, pcy)[0, 1]), abs=1e-12)
    assert svcca(X, Y, n_components=(2, 3)) == pytest.approx(svcca_result(X, Y, n_components=(2, 3)).score)
    assert svcca_result(X, Y, n_components=(2, 3)).canonical_correlations.shape == (2,)


def test_svcca_matches_an_independent_cca_of_the_reduced_spaces():
    # independent route: reduce by PCA scores, then CCA via Cholesky whitening of the covariance blocks
    rng = np.random.default_rng(14)
    X, Y = correlated_pair(rng, n=120, d1=6, d2=5, noise=0.8)
    res = svcca_result(X, Y, n_components=(4, 3))
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Zx = Xc @ np.linalg.svd(Xc, full_matrices=False)[2][:4].T
    Zy = Yc @ np.linalg.svd(Yc, full_matrices=False)[2][:3].T
    Cxx, Cyy, Cxy = Zx.T @ Zx, Zy.T @ Zy, Zx.T @ Zy
    Wx = np.linalg.inv(np.linalg.cholesky(Cxx))
    Wy = np.linalg.inv(np.linalg.cholesky(Cyy))
    rho = np.linalg.svd(Wx @ Cxy @ Wy.T, compute_uv=False)
    assert np.allclose(res.canonical_correlations, rho, atol=1e-10)


def test_svcca_rejects_bad_component_requests():
    rng = np.random.default_rng(15)
    X, Y = correlated_pair(rng, n=20, d1=3, d2=3)
    with pytest.raises(ValueError, match=r"n_components=4 exceeds the rank of centred X \(3\)"):
        svcca(X, Y, n_components=4)
    with pytest.raises(ValueError, match=r"n_components must be an integer >= 1; got 0"):
        svcca(X, Y, n_components=0)
    with pytest.raises(ValueError, match=r"n_components must be an integer or a pair"):
        svcca(X, Y, n_components=(1, 2, 3))
    with pytest.raises(ValueError, match=r"variance must be a number in \(0, 1\]; got 1.5"):
        svcca(X, Y, variance=1.5)
    with pytest.raises(ValueError, match=r"variance must be a number in \(0, 1\]; got 0"):
        svcca(X, Y, variance=0)
    with pytest.raises(ValueError, match=r"Y has zero variance after centring"):
        svcca(X, np.ones((20, 2)))


# ---------------------------------------------------------------------------------------------- CKA


def _hsic_biased(K, L):
    n = K.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    return np.trace(K @ H @ L @ H) / (n - 1) ** 2


def _hsic_u_statistic(K, L):
    """Unbiased HSIC as the plain U-statistic over all ordered distinct 4-tuples (Song et al. 2012)."""
    n = K.shape[0]
    total = 0.0
    count = 0
    for i, j, q, r in itertools.permutations(range(n), 4):
        total += K[i, j] * L[i, j] + K[i, j] * L[q, r] - 2 * K[i, j] * L[i, q]
        count += 1
    return total / count


def _cka_reference(X, Y, hsic):
    K, L = X @ X.T, Y @ Y.T
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


@pytest.mark.parametrize("n,d1,d2", [(40, 3, 4), (12, 30, 25)])
def test_linear_cka_equals_explicit_centering_matrix_hsic(n, d1, d2):
    # (40, 3, 4) exercises the feature-space form, (12, 30, 25) the Gram form of ||X^T Y||_F^2
    rng = np.random.default_rng(20)
    X = rng.standard_normal((n, d1)) + 2.0
    Y = X[:, :1] @ rng.standard_normal((1, d2)) + rng.standard_normal((n, d2))
    assert linear_cka(X, Y) == pytest.approx(_cka_reference(X, Y, _hsic_biased), abs=1e-12)


def test_debiased_cka_equals_the_u_statistic_on_uncentred_data():
    # the unbiased estimator is translation invariant, so the U-statistic on the raw data is an independent check
    rng = np.random.default_rng(21)
    X = rng.standard_normal((7, 3)) + 1.5
    Y = X @ rng.standard_normal((3, 2)) + rng.standard_normal((7, 2)) - 0.7
    assert linear_cka(X, Y, debiased=True) == pytest.approx(_cka_reference(X, Y, _hsic_u_statistic), abs=1e-10)


def test_debiased_cka_equals_song_formula_with_n_by_n_matrices():
    rng = np.random.default_rng(22)
    X, Y = correlated_pair(rng, n=25, d1=4, d2=6)

    def song(K, L):
        n = K.shape[0]
        Kt, Lt = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
        one = np.ones(n)
        value = np.trace(Kt @ Lt) + (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
        value -= 2 / (n - 2) * one @ Kt @ Lt @ one
        return value / (n * (n - 3))

    assert linear_cka(X, Y, debiased=True) == pytest.approx(_cka_reference(X, Y, song), abs=1e-12)


def test_cka_rejects_constant_data_and_too_few_rows():
    rng = np.random.default_rng(23)
    with pytest.raises(ValueError, match=r"Y has zero variance after centring"):
        linear_cka(rng.standard_normal((5, 2)), np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"debiased must be True or False; got 'yes'"):
        linear_cka(rng.standard_normal((5, 2)), rng.standard_normal((5, 2)), debiased="yes")
    with pytest.raises(ValueError, match=r"X and Y have 3 rows; this metric needs at least 4 paired rows"):
        linear_cka(rng.standard_normal((3, 2)), rng.standard_normal((3, 2)), debiased=True)


# ---------------------------------------------------------------------------------------------- RSA


@pytest.mark.parametrize("rdm", ["correlation", "cosine", "euclidean"])
@pytest.mark.parametrize("compare", ["spearman", "pearson"])
def test_rsa_equals_pdist_with_scipy_correlations(rdm, compare, monkeypatch):
    monkeypatch.setattr(sim, "_CHUNK_ENTRIES", 37)  # many row blocks and rank chunks
    rng = np.random.default_rng(30)
    X, Y = correlated_pair(rng, n=33, d1=5, d2=4)
    a, b = pdist(X, rdm), pdist(Y, rdm)
    expected = scipy.stats.spearmanr(a, b)[0] if compare == "spearman" else scipy.stats.pearsonr(a, b)[0]
    assert rsa(X, Y, rdm=rdm, compare=compare) == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("compare", ["spearman", "pearson"])
def test_rsa_with_many_tied_distances_equals_scipy(compare, monkeypatch):
    # small-integer points: squared Euclidean distances are exact integers, so ties are exact in both routes
    monkeypatch.setattr(sim, "_CHUNK_ENTRIES", 37)
    rng = np.random.default_rng(31)
    X = rng.integers(0, 3, size=(40, 3)).astype(float)
    Y = np.round(X + rng.integers(0, 2, size=(40, 3)))
    a, b = pdist(X, "euclidean"), pdist(Y, "euclidean")
    assert len(np.unique(a)) < 20
    expected = scipy.stats.spearmanr(a, b)[0] if compare == "spearman" else scipy.stats.pearsonr(a, b)[0]
    assert rsa(X, Y, rdm="euclidean", compare=compare) == pytest.approx(expected, abs=1e-10)


def test_doubled_ranks_equal_scipy_average_ranks_with_ties(monkeypatch):
    """Pins the private rank kernel of RSA on purpose: ties must give scipy's average ranks, doubled."""
    monkeypatch.setattr(sim, "_CHUNK_ENTRIES", 5)
    rng = np.random.default_rng(31)
    for values in (rng.integers(0, 6, size=50).astype(float), rng.standard_normal(41), np.ones(7)):
        m = values.shape[0]
        got = sim._centred_doubled_ranks(values.copy())
        assert got.dtype == np.int32
        assert np.array_equal(got, 2 * scipy.stats.rankdata(values) - (m + 1))


def test_condensed_rdm_matches_pdist_across_blocks(monkeypatch):
    """Pins the private blocked RDM on purpose: every block boundary must equal scipy's pdist."""
    monkeypatch.setattr(sim, "_CHUNK_ENTRIES", 23)
    X = np.random.default_rng(32).standard_normal((19, 4))
    for rdm in ("correlation", "cosine", "euclidean"):
        assert np.allclose(sim._condensed_rdm(X, rdm, "X"), pdist(X, rdm), atol=1e-12)


def test_rsa_rejects_bad_options_and_degenerate_rows():
    rng = np.random.default_rng(33)
    X, Y = correlated_pair(rng, n=10)
    with pytest.raises(ValueError, match=r"rdm must be one of 'correlation', 'cosine', 'euclidean'; got 'l2'"):
        rsa(X, Y, rdm="l2")
    with pytest.raises(ValueError, match=r"compare must be one of 'spearman', 'pearson'; got 'kendall'"):
        rsa(X, Y, compare="kendall")
    Xc = X.copy()
    Xc[4] = 2.0
    with pytest.raises(ValueError, match=r"X row 4 is constant .* correlation distance"):
        rsa(Xc, Y)
    Yz = Y.copy()
    Yz[2] = 0.0
    with pytest.raises(ValueError, match=r"Y row 2 is all zeros; the cosine distance"):
        rsa(X, Yz, rdm="cosine")
    with pytest.raises(ValueError, match=r"needs at least 3 paired rows"):
        rsa(X[:2], Y[:2])


# ---------------------------------------------------------------------------------------------- Procrustes


@pytest.mark.parametrize("d1,d2", [(4, 4), (3, 6), (6, 2)])
def test_procrustes_equals_one_minus_half_squared_scipy_distance(d1, d2):
    rng = np.random.default_rng(40)
    X, Y = correlated_pair(rng, n=30, d1=d1, d2=d2)
    d = max(d1, d2)

    def normalised_padded(Z):
        Zc = Z - Z.mean(0)
        Zc = Zc / np.linalg.norm(Zc)
        return np.hstack([Zc, np.zeros((Z.shape[0], d - Z.shape[1]))])

    A, B = normalised_padded(X), normalised_padded(Y)
    R, _ = scipy.linalg.orthogonal_procrustes(A, B)
    distance = np.linalg.norm(A @ R - B)
    assert procrustes(X, Y) == pytest.approx(1 - distance**2 / 2, abs=1e-12)


def test_procrustes_pads_the_narrower_side():
    rng = np.random.default_rng(41)
    X = rng.standard_normal((25, 3))
    Y = np.hstack([X, np.zeros((25, 2))]) @ orthogonal(5, rng)
    assert procrustes(X, Y) == pytest.approx(1.0, abs=1e-12)


# ---------------------------------------------------------------------------------------------- kNN


def _sklearn_neighbour_sets(Z, k, metric):
    nn = NearestNeighbors(n_neighbors=k + 1, metric=metric, algorithm="brute").fit(Z)
    idx = nn.kneighbors(Z, return_distance=False)
    return [set(row[row != i][:k]) for i, row in enumerate(idx)]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_knn_scores_match_sklearn_neighbours(metric, monkeypatch):
    monkeypatch.setattr(sim, "_CHUNK_ENTRIES", 100)  # row blocks of a few rows
    rng = np.random.default_rng(50)
    X, Y = correlated_pair(rng, n=45, d1=4, d2=3, noise=0.5)
    k = 6
    Nx, Ny = _sklearn_neighbour_sets(X, k, metric), _sklearn_neighbour_sets(Y, k, metric)
    jaccard = np.mean([len(a & b) / len(a | b) for a, b in zip(Nx, Ny)])
    overlap = np.mean([len(a & b) / k for a, b in zip(Nx, Ny)])
    assert knn_jaccard(X, Y, k=k, metric=metric) == pytest.approx(jaccard, abs=1e-12)
    assert mutual_knn(X, Y, k=k, metric=metric) == pytest.approx(overlap, abs=1e-12)


def test_knn_with_k_of_n_minus_one_is_one():
    rng = np.random.default_rng(51)
    X, Y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    assert knn_jaccard(X, Y, k=7) == 1.0
    assert mutual_knn(X, Y, k=7) == 1.0


def test_knn_rejects_bad_k_and_metric():
    rng = np.random.default_rng(52)
    X, Y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    with pytest.raises(ValueError, match=r"k=8 needs at least k \+ 1 = 9 rows .* X and Y have 8"):
        knn_jaccard(X, Y, k=8)
    with pytest.raises(ValueError, match=r"k must be an integer >= 1; got 0"):
        mutual_knn(X, Y, k=0)
    with pytest.raises(ValueError, match=r"metric must be one of 'cosine', 'euclidean'; got 'manhattan'"):
        knn_jaccard(X, Y, metric="manhattan")


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("name,metric", ALL_METRICS, ids=[m[0] for m in ALL_METRICS])
def test_bad_inputs_raise_value_errors_naming_the_argument(name, metric):
    rng = np.random.default_rng(60)
    X, Y = rng.standard_normal((12, 3)), rng.standard_normal((12, 2))
    with pytest.raises(ValueError, match=r"X has 12 rows but Y has 11; paired metrics need the same rows"):
        metric(X, Y[:11])
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"X contains 1 NaN or inf values \(first at index \[3, 1\]\)"):
        metric(Xn, Y)
    with pytest.raises(ValueError, match=r"Y must be 2-D, got 1-D shape \(12,\)"):
        metric(X, Y[:, 0])
    with pytest.raises(ValueError, match=r"Y must not be empty"):
        metric(X, np.zeros((12, 0)))
    with pytest.raises(ValueError, match=r"X must hold real numbers"):
        metric(X.astype(complex), Y)


def test_svcca_result_serialises_to_plain_json():
    import json

    X, Y = correlated_pair(np.random.default_rng(70), n=30, d1=4, d2=3)
    res = svcca_result(X, Y, n_components=(2, 2))
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert d["n_components_x"] == 2 and d["variance"] is None and len(d["canonical_correlations"]) == 2
    assert d["score"] == pytest.approx(np.mean(d["canonical_correlations"]))


def test_svcca_with_more_columns_than_rows_keeps_at_most_n_minus_one_components():
    rng = np.random.default_rng(71)
    X, Y = rng.standard_normal((8, 20)), rng.standard_normal((8, 30))
    res = svcca_result(X, Y, variance=1.0, max_components=None, allow_saturated=True)
    assert res.n_components_x == res.n_components_y == 7
    assert res.saturated and res.n_forced == 7 + 7 - (8 - 1)
    with pytest.raises(ValueError, match=r"n_components=8 exceeds the rank of centred X \(7\)"):
        svcca(X, Y, n_components=8)


# -- saturation ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, kx, ky", [(10, 9, 9), (12, 8, 6), (20, 15, 10), (30, 20, 12), (30, 20, 9)])
def test_saturated_svcca_has_exactly_the_forced_unit_correlations(n, kx, ky):
    # two subspaces of dimensions kx, ky in the (n - 1)-dimensional centred space meet in >= kx + ky - (n - 1)
    # dimensions; for independent Gaussian data the intersection is exactly that large
    rng = np.random.default_rng(n + kx + ky)
    X, Y = rng.standard_normal((n, 40)), rng.standard_normal((n, 40))
    res = svcca_result(X, Y, n_components=(kx, ky), allow_saturated=True)
    forced = forced_unit_correlations(kx, ky, n)
    assert res.n_forced == forced == max(0, kx + ky - (n - 1))
    assert res.saturated == (forced > 0)
    rho = res.canonical_correlations
    np.testing.assert_allclose(rho[:forced], 1.0, atol=1e-9)
    if forced < len(rho):
        assert rho[forced] < 1 - 1e-6
    if forced:
        with pytest.raises(ValueError, match=rf"SVCCA is saturated: k_x={kx} and k_y={ky} components on n={n}"):
            svcca(X, Y, n_components=(kx, ky))
    else:  # k_x + k_y = n - 1 exactly: the largest choice that is not saturated
        assert svcca(X, Y, n_components=(kx, ky)) == pytest.approx(res.score)


def test_default_svcca_is_capped_below_saturation_and_says_so():
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((10, 128)), rng.standard_normal((10, 128))
    res = svcca_result(X, Y)  # variance 0.99 alone would keep 9 + 9 components of 9 centred dimensions
    assert res.n_components_variance == (9, 9)
    assert res.max_components == auto_max_components(10) == 2
    assert (res.n_components_x, res.n_components_y, res.n_rows, res.n_forced) == (2, 2, 10, 0)
    assert not res.saturated and res.score < 0.99
    assert "max(1, n // 4)" in res.rule
    with pytest.raises(ValueError, match=r"saturated.*force max\(0, k_x \+ k_y - \(n - 1\)\) = 9"):
        svcca(X, Y, max_components=None)
    assert [auto_max_components(n) for n in (1, 3, 4, 145, 1000)] == [1, 1, 1, 36, 250]


def test_explicit_n_components_are_not_capped_and_a_cap_is_validated():
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((40, 30)), rng.standard_normal((40, 30))
    assert svcca_result(X, Y, n_components=15).n_components_x == 15  # 15 > 40 // 4 but given explicitly
    assert svcca_result(X, Y, max_components=3).n_components_x == 3
    for bad in (0, -2, 1.5, "all", True):
        with pytest.raises(ValueError, match="max_components must be 'auto', a positive integer or None"):
            svcca(X, Y, max_components=bad)
