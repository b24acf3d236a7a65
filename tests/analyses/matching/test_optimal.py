"""match_features(mode="optimal"): the maximum-total one-to-one pairing over the top-k candidate graph."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from analyses.matching.helpers import dense_reference, random_sparse, with_dead_columns
from featgeom_tda.analyses.matching import MATCH_MODES, match_features, top_correlations


def candidate_weights(a, b, top_k):
    """Dense (n_a, n_b) float64 weights: max(corr, 0) on the pairs in the top-k lists of either direction, else 0
    (a zero-weight pair is the same as leaving both features unpaired)."""
    corr, dead_a, dead_b = dense_reference(a, b)
    mask = np.zeros(corr.shape, dtype=bool)
    ab = top_correlations(a, b, k=top_k)
    ba = top_correlations(b, a, k=top_k)
    for i, row in enumerate(ab.indices):
        mask[i, row[row >= 0]] = True
    for j, row in enumerate(ba.indices):
        mask[row[row >= 0], j] = True
    mask[dead_a, :] = False
    mask[:, dead_b] = False
    return np.where(mask, np.clip(corr, 0.0, None), 0.0), corr


def brute_force_total(W):
    """Exhaustive maximum of sum W[i, p(i)] over injective maps of the smaller side (zero pairs = unpaired)."""
    if W.shape[0] > W.shape[1]:
        W = W.T
    rows = np.arange(W.shape[0])
    return max(W[rows, list(p)].sum() for p in itertools.permutations(range(W.shape[1]), W.shape[0]))


def check_one_to_one(m):
    assert len(set(m.index_a.tolist())) == len(m) and len(set(m.index_b.tolist())) == len(m)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("top_k", [1, 2, 6])
def test_small_random_problems_reach_the_brute_force_optimum(seed, top_k):
    rng = np.random.default_rng(100 + seed)
    a = random_sparse(rng, 300, 6, 0.2)
    b = random_sparse(rng, 300, 5, 0.2)
    W, corr = candidate_weights(a, b, top_k)
    m = match_features(a, b, mode="optimal", top_k=top_k)
    check_one_to_one(m)
    assert (m.correlation > 0).all()
    np.testing.assert_allclose(m.correlation, corr[m.index_a, m.index_b], atol=1e-5)  # float32 of the float64 corr
    assert W[m.index_a, m.index_b].all()  # only candidate pairs
    best = brute_force_total(W)
    r, c = linear_sum_assignment(W, maximize=True)
    assert W[r, c].sum() == pytest.approx(best, abs=1e-12)
    assert float(m.correlation.sum()) == pytest.approx(best, abs=1e-5)
    one = match_features(a, b, mode="one-to-one", top_k=top_k)
    assert m.correlation.sum() >= one.correlation.sum() - 1e-6
    assert m.config["mode"] == "optimal" and m.filtered["unassigned_a"] == 6 - len(m)


@pytest.mark.parametrize("seed", range(3))
def test_larger_random_problems_equal_dense_assignment_and_beat_one_to_one(seed):
    rng = np.random.default_rng(200 + seed)
    a = with_dead_columns(random_sparse(rng, 500, 60, 0.08), [4], [9])
    b = with_dead_columns(random_sparse(rng, 500, 50, 0.08), [0], [])
    for top_k in (1, 3, 60):
        W, _ = candidate_weights(a, b, top_k)
        r, c = linear_sum_assignment(W, maximize=True)
        m = match_features(a, b, mode="optimal", top_k=top_k)
        check_one_to_one(m)
        assert float(m.correlation.sum()) == pytest.approx(W[r, c].sum(), abs=1e-4)
        one = match_features(a, b, mode="one-to-one", top_k=top_k)
        assert m.correlation.sum() >= one.correlation.sum() - 1e-5
        # dead features are never paired
        assert not np.isin(m.index_a, [4, 9]).any() and 0 not in m.index_b
        assert m.filtered["dead_a"] == 2 and m.filtered["dead_b"] == 1


def test_optimal_beats_greedy_mutual_first_on_a_competing_example():
    """A0 is B0's best and B0 is A0's best (mutual), but pairing A0-B1 and A1-B0 gives a larger total: the
    one-to-one mode fixes the mutual pair first, the optimal mode does not."""
    rng = np.random.default_rng(7)
    n = 6000
    s = (rng.uniform(size=(n, 3)) < 0.1) * rng.exponential(1.0, (n, 3))
    a = np.stack([s[:, 0] + 0.9 * s[:, 1], s[:, 0] + 0.02 * s[:, 2]], axis=1)
    b = np.stack([s[:, 0] + 0.4 * s[:, 1], s[:, 1] + 0.05 * s[:, 2]], axis=1)
    corr, _, _ = dense_reference(a, b)
    assert corr.argmax(axis=1)[0] == 0 and corr.argmax(axis=0)[0] == 0  # (0, 0) is mutual
    one = match_features(a, b, mode="one-to-one", top_k=2)
    opt = match_features(a, b, mode="optimal", top_k=2)
    assert sorted(zip(opt.index_a.tolist(), opt.index_b.tolist())) == [(0, 1), (1, 0)]
    assert (0, 0) in set(zip(one.index_a.tolist(), one.index_b.tolist()))
    assert opt.correlation.sum() > one.correlation.sum() + 0.05
    r, c = linear_sum_assignment(np.clip(corr, 0, None), maximize=True)
    assert float(opt.correlation.sum()) == pytest.approx(np.clip(corr, 0, None)[r, c].sum(), abs=1e-5)


@pytest.mark.parametrize("method", ["fused", "scipy", "dense"])
def test_planted_permutation_is_recovered(planted, method):
    a, b, perm = planted
    m = match_features(a, b, mode="optimal", method=method)
    assert len(m) == 30
    np.testing.assert_array_equal(m.index_a, np.arange(30))
    np.testing.assert_array_equal(perm[m.index_b], m.index_a)
    assert m.filtered["dead_a"] == 2 and m.filtered["dead_b"] == 2 and m.filtered["unassigned_a"] == 0
    assert m.provenance_a.model == "model-a"


def test_threshold_restricts_the_candidates_before_the_assignment():
    rng = np.random.default_rng(300)
    a = random_sparse(rng, 400, 30, 0.1)
    b = random_sparse(rng, 400, 25, 0.1)
    W, corr = candidate_weights(a, b, 4)
    full = match_features(a, b, mode="optimal", top_k=4)
    cut = float(np.quantile(full.correlation, 0.5))
    m = match_features(a, b, mode="optimal", top_k=4, threshold=cut)
    check_one_to_one(m)
    assert (m.correlation >= cut).all()
    Wt = np.where(W >= cut, W, 0.0)
    r, c = linear_sum_assignment(Wt, maximize=True)
    assert float(m.correlation.sum()) == pytest.approx(Wt[r, c].sum(), abs=1e-4)
    assert m.filtered["below_threshold"] == int(((W > 0) & (W < cut)).sum()) > 0
    assert list(m.filtered) == ["dead_a", "dead_b", "below_threshold", "unassigned_a"]
    assert m.config["threshold"] == cut


def test_no_candidates_and_validation():
    a = np.zeros((50, 3), dtype=np.float32)
    b = np.random.default_rng(1).uniform(size=(50, 2)).astype(np.float32)
    m = match_features(a, b, mode="optimal")  # every A feature dead: nothing to pair
    assert len(m) == 0 and m.filtered["dead_a"] == 3 and m.filtered["unassigned_a"] == 0
    assert "optimal" in MATCH_MODES
    with pytest.raises(ValueError, match="mode must be one of 'one-to-one', 'many-to-one', 'mutual', 'optimal'"):
        match_features(a, b, mode="hungarian")
