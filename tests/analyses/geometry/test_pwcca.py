"""PWCCA: closed forms, invariances, an independent float64 implementation, and the permutation registry."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

import featgeom_tda
from featgeom_tda.analyses.geometry import PWCCAResult, permutation_test, pwcca, pwcca_result, svcca_result
from featgeom_tda.analyses.geometry.baselines import METRIC_LABELS, METRIC_NAMES


def correlated_pair(rng, n=120, d1=7, d2=6, noise=0.7):
    X = rng.standard_normal((n, d1)) * np.linspace(3.0, 0.5, d1)  # distinct variances: a unique PC basis
    Y = X @ rng.standard_normal((d1, d2)) + noise * rng.standard_normal((n, d2))
    return X, Y


# ---------------------------------------------------------------------------------------------------------------
# an independent float64 implementation: PCA scores, then CCA by covariance whitening
# ---------------------------------------------------------------------------------------------------------------


def _inv_sqrt(C):
    w, V = np.linalg.eigh(C)
    return V @ np.diag(w**-0.5) @ V.T


def reference_pwcca(X, Y, kx, ky, *, weight_basis="components"):
    """(rho, alpha_x, alpha_y, pwcca_x, pwcca_y) with k_x, k_y principal components kept a side."""
    Xc = X - X.mean(0)
    Yc = Y - Y.mean(0)
    _, _, Vx = np.linalg.svd(Xc, full_matrices=False)
    _, _, Vy = np.linalg.svd(Yc, full_matrices=False)
    Sx = Xc @ Vx[:kx].T  # PC scores (n, k_x)
    Sy = Yc @ Vy[:ky].T
    Wx, Wy = _inv_sqrt(Sx.T @ Sx), _inv_sqrt(Sy.T @ Sy)
    U, rho, Vt = np.linalg.svd(Wx @ (Sx.T @ Sy) @ Wy)
    m = min(kx, ky)
    Hx = Sx @ (Wx @ U[:, :m])  # canonical variates of X, unit norm
    Hy = Sy @ (Wy @ Vt.T[:, :m])
    Hx /= np.linalg.norm(Hx, axis=0)
    Hy /= np.linalg.norm(Hy, axis=0)
    Zx, Zy = (Sx, Sy) if weight_basis == "components" else (Xc, Yc)
    ax = np.abs(Hx.T @ Zx).sum(axis=1)
    ay = np.abs(Hy.T @ Zy).sum(axis=1)
    ax, ay = ax / ax.sum(), ay / ay.sum()
    rho = rho[:m]
    return rho, ax, ay, float(ax @ rho), float(ay @ rho)


@pytest.mark.parametrize("weight_basis", ["components", "columns"])
@pytest.mark.parametrize("n_components", [(7, 6), (4, 5), (3, 3), (1, 2)])
def test_agrees_with_independent_float64_implementation(weight_basis, n_components):
    X, Y = correlated_pair(np.random.default_rng(3))
    kx, ky = n_components
    rho, ax, ay, px, py = reference_pwcca(X, Y, kx, ky, weight_basis=weight_basis)
    res = pwcca_result(X, Y, n_components=n_components, weight_basis=weight_basis)
    assert (res.k_x, res.k_y, res.n) == (kx, ky, 120)
    np.testing.assert_allclose(res.canonical_correlations, rho, rtol=0, atol=1e-9)
    np.testing.assert_allclose(res.weights_x, ax, rtol=0, atol=1e-9)
    np.testing.assert_allclose(res.weights_y, ay, rtol=0, atol=1e-9)
    assert res.score == pytest.approx(px, abs=1e-9) and res.score_x == res.score
    assert res.score_y == pytest.approx(py, abs=1e-9)
    assert pwcca(X, Y, n_components=n_components, weight_basis=weight_basis, side="y") == pytest.approx(py, abs=1e-9)
    mean = pwcca(X, Y, n_components=n_components, weight_basis=weight_basis, side="mean")
    assert mean == pytest.approx((px + py) / 2, abs=1e-9)
    assert res.mean_cca == pytest.approx(rho.mean(), abs=1e-9)


def test_default_rule_is_svccas_and_never_saturates():
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((40, 30)), rng.standard_normal((40, 25))  # 0.99 of the variance needs > n / 2
    res = pwcca_result(X, Y)
    sv = svcca_result(X, Y)
    assert (res.k_x, res.k_y) == (sv.n_components_x, sv.n_components_y) == (10, 10)  # max(1, 40 // 4)
    assert res.max_components == 10 and res.n_components_variance == sv.n_components_variance
    assert res.k_x + res.k_y <= res.n - 1 and not res.summary()["saturated"]
    assert res.mean_cca == pytest.approx(sv.score, abs=1e-12)
    rho, ax, _, px, _ = reference_pwcca(X, Y, 10, 10)
    assert res.score == pytest.approx(px, abs=1e-9)
    assert 0.0 <= res.score <= 1.0 and res.weights_x.sum() == pytest.approx(1.0)
    # the same rule with a variance threshold that binds before the cap
    X2, Y2 = correlated_pair(rng, n=400)
    assert pwcca_result(X2, Y2, variance=0.8).k_x == svcca_result(X2, Y2, variance=0.8).n_components_x


def test_saturated_choice_is_refused():
    rng = np.random.default_rng(6)
    X, Y = rng.standard_normal((10, 8)), rng.standard_normal((10, 8))
    with pytest.raises(ValueError, match=r"PWCCA would be saturated: k_x=6 and k_y=6 .* n=10"):
        pwcca(X, Y, n_components=6)
    with pytest.raises(ValueError, match="PWCCA would be saturated"):
        pwcca(X, Y, max_components=None)
    assert pwcca_result(X, Y, n_components=(5, 4)).k_y == 4  # 5 + 4 = n - 1 is allowed


# ---------------------------------------------------------------------------------------------------------------
# closed forms and invariances
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["x", "y", "mean"])
@pytest.mark.parametrize("weight_basis", ["components", "columns"])
def test_identical_inputs_score_one(side, weight_basis):
    X, _ = correlated_pair(np.random.default_rng(7))
    assert pwcca(X, X, side=side, weight_basis=weight_basis) == pytest.approx(1.0, abs=1e-12)
    assert pwcca(X, X.copy(), n_components=7, side=side, weight_basis=weight_basis) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("side", ["x", "y", "mean"])
def test_invariant_to_rotations_isotropic_scaling_and_shifts_of_each_side(side):
    rng = np.random.default_rng(8)
    X, Y = correlated_pair(rng)
    Qx = ortho_group.rvs(7, random_state=1)
    Qy = ortho_group.rvs(6, random_state=2)
    for nc in [None, (5, 4), (7, 6)]:
        base = pwcca(X, Y, n_components=nc, side=side)
        moved = pwcca(3.7 * X @ Qx + 5.0, 0.02 * Y @ Qy - 1.0, n_components=nc, side=side)
        assert moved == pytest.approx(base, abs=1e-10)
    # a representation of X in a wider space (X Q with Q having orthonormal rows) gives the same score
    Q = ortho_group.rvs(12, random_state=3)[:7]
    assert pwcca(X @ Q, Y, side=side, n_components=(5, 4)) == pytest.approx(
        pwcca(X, Y, side=side, n_components=(5, 4)), abs=1e-10
    )
    # and Y equal to a rotated, scaled X scores one
    assert pwcca(X, 2.0 * X @ Qx, side=side) == pytest.approx(1.0, abs=1e-10)
    # extreme magnitudes are rescaled exactly
    assert pwcca(X * 1e160, Y * 1e-200, side=side) == pytest.approx(pwcca(X, Y, side=side), abs=1e-10)


def test_column_weights_are_invariant_to_permutations_and_sign_flips_of_the_columns():
    rng = np.random.default_rng(9)
    X, Y = correlated_pair(rng)
    P = np.eye(7)[rng.permutation(7)] * rng.choice([-1.0, 1.0], 7)
    for nc in [(5, 4), (7, 6)]:
        base = pwcca(X, Y, n_components=nc, weight_basis="columns")
        assert pwcca(X @ P, 2.5 * Y, n_components=nc, weight_basis="columns") == pytest.approx(base, abs=1e-10)


def test_symmetries_of_the_sides():
    X, Y = correlated_pair(np.random.default_rng(10))
    assert pwcca(X, Y, side="y", n_components=(5, 4)) == pytest.approx(pwcca(Y, X, n_components=(4, 5)), abs=1e-12)
    assert pwcca(X, Y, side="mean") == pytest.approx(pwcca(Y, X, side="mean"), abs=1e-12)


def test_single_component_equals_the_canonical_correlation():
    X, Y = correlated_pair(np.random.default_rng(11))
    res = pwcca_result(X, Y, n_components=(3, 1))
    assert res.weights_x.tolist() == [1.0] and res.score == pytest.approx(svcca_result(X, Y, n_components=(3, 1)).score)


def test_weighting_favours_the_high_variance_shared_direction():
    """A shared high-variance direction plus low-variance private noise: PWCCA > mean CCA (the noise correlations
    are near zero and their canonical variates carry little of the representation)."""
    rng = np.random.default_rng(12)
    n = 2000
    z = rng.standard_normal(n)
    X = np.column_stack([10.0 * z, 0.3 * rng.standard_normal((n, 4))])
    Y = np.column_stack([10.0 * z + 2.0 * rng.standard_normal(n), 0.3 * rng.standard_normal((n, 4))])
    X, Y = X @ ortho_group.rvs(5, random_state=4), Y @ ortho_group.rvs(5, random_state=5)
    for side in ("x", "y", "mean"):
        res = pwcca_result(X, Y, n_components=5, side=side)  # all components: the variance rule would keep one
        assert res.mean_cca < 0.3
        assert res.score > 0.75 > 0.3 > res.mean_cca
        assert min(res.weights_x[0], res.weights_y[0]) > 0.75 and res.canonical_correlations[0] > 0.97
    # with the noise directions as strong as the signal the weights are even and PWCCA is close to mean CCA
    Xe = np.column_stack([z, rng.standard_normal((n, 4))])
    Ye = np.column_stack([z + 0.2 * rng.standard_normal(n), rng.standard_normal((n, 4))])
    even = pwcca_result(Xe, Ye, n_components=5)
    assert abs(even.score - even.mean_cca) < 0.05


# ---------------------------------------------------------------------------------------------------------------
# permutation test, result, validation
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"side": "mean"}, {"weight_basis": "columns", "n_components": (3, 2)}])
def test_permutation_test_fast_path_equals_naive_and_counts_the_p_value(options):
    rng = np.random.default_rng(13)
    X, Y = correlated_pair(rng, n=36, d1=6, d2=5, noise=3.0)
    fast = permutation_test("pwcca", X, Y, n_permutations=60, seed=4, **options)
    naive = permutation_test("pwcca", X, Y, n_permutations=60, seed=4, method="naive", **options)
    assert fast.method == "fast" and naive.method == "naive" and fast.metric == "pwcca"
    np.testing.assert_allclose(fast.null, naive.null, rtol=0, atol=1e-10)
    assert fast.score == naive.score == pytest.approx(pwcca(X, Y, **options), abs=0)
    # p = (k + 1) / (n + 1), k = null scores >= the observed score, the null recomputed here independently
    perm_rng = np.random.default_rng(4)
    null = np.array([pwcca(X, Y[perm_rng.permutation(36)], **options) for _ in range(60)])
    np.testing.assert_allclose(fast.null, null, rtol=0, atol=1e-10)
    k = int(np.count_nonzero(null >= fast.score - 1e-10 * max(1.0, fast.score)))
    assert fast.p_value == (k + 1) / 61
    assert fast.details["n_components_x"] == pwcca_result(X, Y, **options).k_x
    assert fast.details["saturated"] is False


def test_permutation_test_of_a_real_pairing_is_significant():
    X, Y = correlated_pair(np.random.default_rng(14), n=200, noise=0.3)
    res = permutation_test("pwcca", X, Y, n_permutations=99, seed=0)
    assert res.p_value == 1 / 100 and res.score > res.null.max()
    assert "pwcca" in METRIC_NAMES and METRIC_LABELS["pwcca"] == "PWCCA"
    with pytest.raises(ValueError, match="side must be one of"):
        permutation_test("pwcca", X, Y, n_permutations=5, side="both")
    with pytest.raises(ValueError, match="does not take the options"):
        permutation_test("pwcca", X, Y, n_permutations=5, debiased=True)


def test_result_to_dict_and_exports():
    X, Y = correlated_pair(np.random.default_rng(15))
    res = pwcca_result(X, Y, n_components=(4, 3), side="mean")
    assert isinstance(res, PWCCAResult)
    d = res.to_dict()
    assert d["n_components_x"] == 4 and d["n_components_y"] == 3 and d["n_rows"] == 120 and d["side"] == "mean"
    assert len(d["canonical_correlations"]) == len(d["weights_x"]) == len(d["weights_y"]) == 3
    assert d["options"] == {"variance": 0.99, "n_components": [4, 3], "max_components": "auto", "side": "mean",
                            "weight_basis": "components"}
    assert featgeom_tda.pwcca is pwcca


def test_validation_errors_name_the_argument():
    rng = np.random.default_rng(16)
    X, Y = rng.standard_normal((30, 4)), rng.standard_normal((30, 3))
    with pytest.raises(ValueError, match="side must be one of 'x', 'y', 'mean'; got 'z'"):
        pwcca(X, Y, side="z")
    with pytest.raises(ValueError, match="weight_basis must be one of 'components', 'columns'"):
        pwcca(X, Y, weight_basis="neurons")
    with pytest.raises(ValueError, match="X has 30 rows but Y has 29"):
        pwcca(X, Y[:29])
    with pytest.raises(ValueError, match="Y has zero variance after centring.*PWCCA"):
        pwcca(X, np.ones((30, 3)))
    with pytest.raises(ValueError, match="variance must be"):
        pwcca(X, Y, variance=1.5)
    with pytest.raises(ValueError, match="n_components=5 exceeds the rank of centred X"):
        pwcca(X, Y, n_components=(5, 1))
    with pytest.raises(ValueError, match="max_components must be"):
        pwcca(X, Y, max_components="all")
    Xn = X.copy()
    Xn[2, 1] = np.nan
    with pytest.raises(ValueError, match="X contains 1 NaN"):
        pwcca(Xn, Y)
