"""top_correlations: exactness against a float64 dense computation, edge cases and option errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from featgeom_tda.analyses.matching import TopCorrelations, match_features, top_correlations
from featgeom_tda.core.types import FeatureActivations, FeatureMatching, Provenance
from analyses.matching.helpers import METHODS, check_against_reference, dense_reference, random_sparse, with_dead_columns


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("k", [1, 3, 8])
@pytest.mark.parametrize("chunk_size", [None, 5])
def test_top_correlations_match_float64_dense(sparse_pair, method, k, chunk_size):
    a, b = sparse_pair
    result = top_correlations(a, b, k=k, method=method, chunk_size=chunk_size)
    check_against_reference(result, a, b, k)
    assert result.n_rows == 400 and result.k == k




@pytest.mark.parametrize("k", [1, 3])
def test_signed_values_use_dense_fallback_and_stay_exact(k):
    rng = np.random.default_rng(3)
    a = with_dead_columns(random_sparse(rng, 300, 20, 0.1, signed=True), [1], [4])
    b = with_dead_columns(random_sparse(rng, 300, 25, 0.1, signed=True), [6], [])
    result = top_correlations(a, b, k=k)
    assert result.method == "dense"
    check_against_reference(result, a, b, k)
    check_against_reference(top_correlations(a, b, k=k, device="cpu"), a, b, k)


def test_dense_inputs_with_strong_correlations_are_exact():
    # dense, non-sparse columns: the out-of-support shortcut never applies; correlations close to 1
    rng = np.random.default_rng(4)
    base = rng.uniform(0.1, 1.0, size=(200, 6))
    a = np.hstack([base, rng.uniform(0, 1, (200, 4))])
    b = np.hstack([base[:, ::-1] * 3 + 0.01 * rng.uniform(0, 1, (200, 6)), rng.uniform(0, 1, (200, 3))])
    for method in METHODS:
        check_against_reference(top_correlations(a, b, k=2, method=method), sp.csr_matrix(a), sp.csr_matrix(b), 2)


@pytest.mark.parametrize("method", METHODS)
def test_fewer_live_b_features_than_k_pads_with_nan(method):
    rng = np.random.default_rng(5)
    a = random_sparse(rng, 100, 6, 0.2)
    b = with_dead_columns(random_sparse(rng, 100, 4, 0.2), [0, 1], [])
    result = top_correlations(a, b, k=5, method=method)
    assert (result.indices[:, 2:] == -1).all() and np.isnan(result.values[:, 2:]).all()
    assert set(result.indices[:, :2].ravel().tolist()) <= {2, 3}
    check_against_reference(result, a, b, 5)


@pytest.mark.parametrize("method", METHODS)
def test_all_b_dead_gives_no_candidates(method):
    a = random_sparse(np.random.default_rng(6), 50, 4, 0.3)
    b = sp.csr_matrix(np.zeros((50, 3), dtype=np.float32))
    result = top_correlations(a, b, k=2, method=method)
    assert (result.indices == -1).all() and np.isnan(result.values).all()
    assert result.dead_b.all()


@pytest.mark.parametrize("method", METHODS)
def test_ties_go_to_the_lower_b_index(method):
    rng = np.random.default_rng(7)
    a = random_sparse(rng, 200, 5, 0.2)
    # B: copies of A's column 0 at columns 4 and 1 (exact ties in the support), plus identical
    # single-firing columns 5, 2, 6 (exact ties outside the support)
    b = np.zeros((200, 7), dtype=np.float32)
    b[:, 4] = b[:, 1] = a[:, 0].toarray().ravel()
    free_row = int(np.flatnonzero(np.asarray(a.sum(axis=1)).ravel() == 0)[0])
    b[free_row, [5, 2, 6]] = 1.0
    b[:, 0] = rng.uniform(0, 1, 200)
    b[:, 3] = rng.uniform(0, 1, 200)
    result = top_correlations(a, sp.csr_matrix(b), k=2, method=method)
    assert result.indices[0].tolist() == [1, 4]
    assert result.values[0, 0] == result.values[0, 1] == pytest.approx(1.0, abs=1e-6)
    single = np.isin(result.indices, [2, 5, 6])
    # whenever a single-firing column is returned, the first is column 2, and 2 comes before 5 comes before 6
    for row_idx, row_mask in zip(result.indices, single):
        chosen = row_idx[row_mask].tolist()
        assert chosen == sorted(chosen, key=[2, 5, 6].index) and (not chosen or chosen[0] == 2)


def test_methods_agree_on_skewed_sparse_data():
    rng = np.random.default_rng(8)
    n, f = 3000, 300
    p = 1.0 / (np.arange(f) + 5.0)
    p = p / p.sum()
    cols = rng.choice(f, size=(n, 12), p=p)
    rows = np.repeat(np.arange(n), 12)
    a = sp.csr_matrix((rng.exponential(1, rows.size), (rows, cols.ravel())), shape=(n, f)).astype(np.float32)
    cols_b = rng.permutation(f)[cols]
    b = sp.csr_matrix((rng.exponential(1, rows.size), (rows, cols_b.ravel())), shape=(n, f)).astype(np.float32)
    results = {m: top_correlations(a, b, k=4, method=m, n_jobs=2) for m in METHODS}
    check_against_reference(results["fused"], a, b, 4)
    for m in ("scipy", "dense"):
        np.testing.assert_allclose(results[m].values, results["fused"].values, atol=1e-6, equal_nan=True)
        np.testing.assert_array_equal(results[m].indices, results["fused"].indices)
    single = top_correlations(a, b, k=4, method="fused", n_jobs=1, chunk_size=17)
    np.testing.assert_array_equal(single.indices, results["fused"].indices)


def test_input_types_give_the_same_result(sparse_pair):
    import torch

    a, b = sparse_pair
    ref = top_correlations(a, b, k=2)
    for x in (a.toarray(), torch.from_numpy(a.toarray()), torch.from_numpy(a.toarray()).to_sparse(),
              FeatureActivations(a)):
        r = top_correlations(x, b, k=2)
        np.testing.assert_array_equal(r.indices, ref.indices)
        np.testing.assert_allclose(r.values, ref.values, equal_nan=True)


def test_explicit_zeros_are_ignored(sparse_pair):
    a, b = sparse_pair
    b_zeros = b.copy()
    b_zeros.data[::4] = 0.0  # stored zeros
    clean = b_zeros.copy()
    clean.eliminate_zeros()
    for method in METHODS:
        r = top_correlations(a, b_zeros, k=3, method=method)
        check_against_reference(r, a, clean, 3)



def test_row_mismatch_is_a_clear_error():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="acts_a has 1200 rows but acts_b has 1199"):
        top_correlations(random_sparse(rng, 1200, 4, 0.1), random_sparse(rng, 1199, 4, 0.1))
    with pytest.raises(ValueError, match="acts_a has 1200 rows but acts_b has 1199"):
        match_features(random_sparse(rng, 1200, 4, 0.1), random_sparse(rng, 1199, 4, 0.1))


def test_nan_and_inf_are_refused():
    a = np.ones((10, 3), dtype=np.float32)
    a[2, 1] = np.nan
    b = np.random.default_rng(0).uniform(size=(10, 3))
    with pytest.raises(ValueError, match="acts_a contains 1 NaN or inf"):
        top_correlations(a, b)
    b[0, 0] = np.inf
    with pytest.raises(ValueError, match="acts_b contains 1 NaN or inf"):
        top_correlations(np.ones((10, 3)), b)
    acts = FeatureActivations(np.ones((10, 3), dtype=np.float32))
    acts.matrix.data[0] = np.nan  # corrupted after construction
    with pytest.raises(ValueError, match="acts_a contains 1 NaN"):
        match_features(acts, np.ones((10, 3)))


def test_bad_options_are_refused(sparse_pair):
    a, b = sparse_pair
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        top_correlations(a, b, k=0)
    with pytest.raises(ValueError, match="method must be one of"):
        top_correlations(a, b, method="fast")
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1"):
        top_correlations(a, b, chunk_size=0)
    with pytest.raises(ValueError, match="n_jobs must be an integer >= 1"):
        top_correlations(a, b, n_jobs=0)
    signed = a.copy()
    signed.data[0] = -1.0
    with pytest.raises(ValueError, match="needs non-negative activations, but acts_a has negative values"):
        top_correlations(signed, b, method="fused")
    with pytest.raises(ValueError, match="cannot run on a device"):
        top_correlations(a, b, method="fused", device="cpu")
    with pytest.raises(ValueError, match="mode must be one of"):
        match_features(a, b, mode="greedy")
    with pytest.raises(ValueError, match=r"threshold must be a number in \[-1, 1\]"):
        match_features(a, b, threshold=1.5)
    with pytest.raises(ValueError, match=r"threshold must be a number in \[-1, 1\]; got True"):
        match_features(a, b, threshold=True)  # issue 14, class 9: was taken as 1.0
    with pytest.raises(ValueError, match="exclude_tokens='punctuation' needs token_strings"):
        match_features(a, b, exclude_tokens="punctuation")
    with pytest.raises(ValueError, match="rows without token ids"):
        match_features(a, b, require_same_token=True)



def test_progress_and_threads_do_not_change_results(sparse_pair):
    a, b = sparse_pair
    one = top_correlations(a, b, k=3, n_jobs=1)
    two = top_correlations(a, b, k=3, n_jobs=2, progress=True, chunk_size=4)
    np.testing.assert_array_equal(one.indices, two.indices)
    np.testing.assert_array_equal(one.values, two.values)
