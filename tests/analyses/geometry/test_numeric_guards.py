"""Numeric guards of the similarity metrics and their baselines: NaN p-values, scale robustness, no variance."""

from __future__ import annotations

import numpy as np
import pytest

from featgeom_tda.analyses.geometry import permutation_test, random_subset_baseline
from featgeom_tda.analyses.geometry import similarity as sim

SCALES = [1e160, 1e-200]
METRICS = {
    "svcca": sim.svcca,
    "cka": sim.linear_cka,
    "procrustes": sim.procrustes,
    "rsa": sim.rsa,
}


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(40, 8))
    Y = X @ rng.normal(size=(8, 6)) + 0.5 * rng.normal(size=(40, 6))
    return X, Y


# ------------------------------------------------------------------ NaN p-values


def _nan_metric(X, Y):
    return float("nan")


def _nan_when_permuted(X, Y):
    """A finite score on the identity pairing, NaN on any other one."""
    return 0.5 if np.array_equal(Y[:, 0], np.arange(Y.shape[0], dtype=np.float64)) else float("nan")


def test_nan_score_gives_nan_p_value(pair):
    X, Y = pair
    result = permutation_test(_nan_metric, X, Y, n_permutations=20)
    assert np.isnan(result.score) and np.isnan(result.p_value)


def test_nan_null_score_gives_nan_p_value(pair):
    X, _ = pair
    Y = np.column_stack([np.arange(X.shape[0], dtype=np.float64), X[:, 0]])
    result = permutation_test(_nan_when_permuted, X, Y, n_permutations=20)
    assert result.score == 0.5
    assert np.isnan(result.null).any() and np.isnan(result.p_value)


@pytest.mark.parametrize("observed", [float("nan"), 0.5])
def test_random_subset_baseline_nan_p_value(pair, observed):
    X, Y = pair
    result = random_subset_baseline(_nan_metric, X, Y, 10, n_draws=5, observed=observed)
    assert np.isnan(result.p_value)


def test_finite_p_value_is_unchanged(pair):
    X, Y = pair
    result = permutation_test("cka", X, Y, n_permutations=30, seed=3)
    expected = (1 + np.count_nonzero(result.null >= result.score - 1e-10)) / 31
    assert result.p_value == expected


@pytest.mark.parametrize("metric", ["cka", "svcca", "procrustes", "rsa"])
def test_permutation_test_of_huge_inputs_is_finite_and_equal(pair, metric):
    X, Y = pair
    plain = permutation_test(metric, X, Y, n_permutations=30, seed=1)
    huge = permutation_test(metric, X * 1e160, Y, n_permutations=30, seed=1)
    assert np.isfinite(huge.score) and np.isfinite(huge.p_value)
    assert huge.score == pytest.approx(plain.score, abs=1e-9)
    np.testing.assert_allclose(huge.null, plain.null, atol=1e-9, rtol=0)
    assert huge.p_value == plain.p_value


# ------------------------------------------------------------------ scale robustness


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", list(METRICS))
def test_scale_invariant_metrics_survive_extreme_scales(pair, name, scale):
    X, Y = pair
    f = METRICS[name]
    expected = f(X, Y)
    assert f(X * scale, Y) == pytest.approx(expected, abs=1e-9)
    assert f(X, Y * scale) == pytest.approx(expected, abs=1e-9)
    assert f(X * scale, Y * scale) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("scale", SCALES)
def test_debiased_cka_survives_extreme_scales(pair, scale):
    X, Y = pair
    assert sim.linear_cka(X * scale, Y, debiased=True) == pytest.approx(sim.linear_cka(X, Y, debiased=True), abs=1e-9)


def test_ordinary_inputs_are_not_rescaled(pair):
    X, _ = pair
    assert sim._rescaled(X) is X
    ordinary = X * 1e10
    assert sim._rescaled(ordinary) is ordinary
    for scale in SCALES:
        m = np.max(np.abs(sim._rescaled(X * scale)))
        assert 0.5 <= m < 1.0


# ------------------------------------------------------------------ no variance after centring


def _tiled(seed: int) -> np.ndarray:
    return np.tile(np.random.default_rng(seed).normal(size=5), (20, 1))


@pytest.mark.parametrize(
    "w", [np.zeros((20, 5)), np.ones((20, 5)), _tiled(0), _tiled(1) * 1e-3], ids=["zeros", "ones", "tiled", "tiled-small"]
)
@pytest.mark.parametrize(
    "f, message",
    [
        (sim.svcca, r"X has zero variance after centring"),
        (sim.linear_cka, r"X has zero variance after centring"),
        (sim.procrustes, r"X has zero variance after centring"),
    ],
    ids=["svcca", "cka", "procrustes"],
)
def test_identical_rows_are_refused(w, f, message):
    with pytest.raises(ValueError, match=message):
        f(w, w)


@pytest.mark.parametrize("f", [sim.svcca, sim.linear_cka, sim.procrustes], ids=["svcca", "cka", "procrustes"])
def test_identical_rows_of_y_are_refused(pair, f):
    X, _ = pair
    with pytest.raises(ValueError, match=r"Y has zero variance after centring"):
        f(X[:20], _tiled(2))
