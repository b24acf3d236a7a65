"""Tests for correlation matching: exactness against a float64 dense computation, modes, filters, errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from featgeom_tda.analyses.matching import TopCorrelations, match_features, top_correlations
from featgeom_tda.core.types import FeatureActivations, FeatureMatching, Provenance

METHODS = ["fused", "scipy", "dense"]


# ------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------
def dense_reference(a, b):
    """float64 dense Pearson correlation (n_a x n_b) and dead masks, by z-scoring whole columns."""
    a = np.asarray(a.toarray() if sp.issparse(a) else a, dtype=np.float64)
    b = np.asarray(b.toarray() if sp.issparse(b) else b, dtype=np.float64)
    n = a.shape[0]
    dead_a = np.ptp(a, axis=0) == 0
    dead_b = np.ptp(b, axis=0) == 0
    za = (a - a.mean(0)) / np.where(dead_a, 1.0, a.std(0))
    zb = (b - b.mean(0)) / np.where(dead_b, 1.0, b.std(0))
    return za.T @ zb / n, dead_a, dead_b


def check_against_reference(result: TopCorrelations, a, b, k: int, tol: float = 1e-5) -> None:
    corr, dead_a, dead_b = dense_reference(a, b)
    np.testing.assert_array_equal(result.dead_a, dead_a)
    np.testing.assert_array_equal(result.dead_b, dead_b)
    assert result.values.shape == result.indices.shape == (a.shape[1], k)
    live_b = np.flatnonzero(~dead_b)
    masked = np.where(dead_b[None, :], -np.inf, corr)
    expected = -np.sort(-masked, axis=1)[:, :k]  # k best values (float64 reference)
    n_valid = min(k, live_b.size)
    for i in range(a.shape[1]):
        vals, idx = result.values[i], result.indices[i]
        if dead_a[i]:
            assert np.isnan(vals).all() and (idx == -1).all()
            continue
        assert np.isnan(vals[n_valid:]).all() and (idx[n_valid:] == -1).all()
        v, j = vals[:n_valid], idx[:n_valid]
        np.testing.assert_allclose(v, expected[i, :n_valid], atol=tol, rtol=0)
        assert len(set(j.tolist())) == n_valid and not dead_b[j].any()
        # each returned index carries the correlation reported for it
        np.testing.assert_allclose(corr[i, j], v, atol=tol, rtol=0)
        assert (np.diff(v) <= 0).all()


def random_sparse(rng, n, f, density, *, signed=False):
    m = sp.random(n, f, density=density, random_state=rng, format="csr", dtype=np.float64)
    m.data = rng.exponential(1.0, m.data.size) + 0.05
    if signed:
        m.data *= rng.choice([-1.0, 1.0], m.data.size)
    return m.astype(np.float32).tocsr()


def with_dead_columns(m, zero_cols, const_cols):
    m = m.tolil()
    for c in zero_cols:
        m[:, c] = 0
    for c in const_cols:
        m[:, c] = 0.75
    return m.tocsr()


@pytest.fixture(scope="module")
def sparse_pair():
    rng = np.random.default_rng(11)
    a = with_dead_columns(random_sparse(rng, 400, 37, 0.06), [3, 20], [5])
    b = with_dead_columns(random_sparse(rng, 400, 45, 0.05), [0, 2], [7, 44])
    return a, b


# ------------------------------------------------------------------------------------------------------
# exactness
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("k", [1, 3, 8])
@pytest.mark.parametrize("chunk_size", [None, 5])
def test_top_correlations_match_float64_dense(sparse_pair, method, k, chunk_size):
    a, b = sparse_pair
    result = top_correlations(a, b, k=k, method=method, chunk_size=chunk_size)
    check_against_reference(result, a, b, k)
    assert result.n_rows == 400 and result.k == k


@pytest.mark.parametrize("k", [1, 4])
def test_torch_path_on_cpu_matches_reference(sparse_pair, k):
    a, b = sparse_pair
    result = top_correlations(a, b, k=k, device="cpu", chunk_size=8)
    check_against_reference(result, a, b, k)
    assert result.method == "torch:cpu"


def test_unavailable_cuda_device_is_a_clear_error(sparse_pair):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is available here")
    a, b = sparse_pair
    with pytest.raises(ValueError, match="torch.cuda.is_available"):
        top_correlations(a, b, device="cuda")


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


# ------------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------------
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
    with pytest.raises(ValueError, match="exclude_tokens='punctuation' needs token_strings"):
        match_features(a, b, exclude_tokens="punctuation")
    with pytest.raises(ValueError, match="rows without token ids"):
        match_features(a, b, require_same_token=True)


# ------------------------------------------------------------------------------------------------------
# matching modes on a planted correspondence
# ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def planted():
    """A (30 live + 2 dead features); B = A's columns permuted, noisy, plus 10 unrelated features."""
    rng = np.random.default_rng(21)
    n, f = 3000, 32
    a = random_sparse(rng, n, f, 0.04).tolil()
    a[:, 30] = 0
    a[:, 31] = 0
    a = a.tocsr()
    perm = rng.permutation(f)  # B column j is A column perm[j]
    core = a[:, perm].tocsr()
    core.data *= rng.uniform(0.6, 1.4, core.data.size).astype(np.float32)
    noise = random_sparse(rng, n, f, 0.004).tolil()
    noise[:, np.flatnonzero(perm >= 30)] = 0  # B keeps A's two dead columns dead
    noise = noise.tocsr()
    extra = random_sparse(rng, n, 10, 0.04)
    b = sp.hstack([core + noise, extra], format="csr")
    prov_a, prov_b = Provenance(model="model-a", hook_name="blocks.0.hook_resid_post"), Provenance(model="model-b")
    return FeatureActivations(a, provenance=prov_a), FeatureActivations(b, provenance=prov_b), perm


@pytest.mark.parametrize("mode", ["one-to-one", "many-to-one", "mutual"])
@pytest.mark.parametrize("method", ["fused", "scipy", "dense"])
def test_planted_correspondence_is_recovered(planted, mode, method):
    a, b, perm = planted
    m = match_features(a, b, mode=mode, method=method)
    assert isinstance(m, FeatureMatching)
    assert len(m) == 30
    np.testing.assert_array_equal(m.index_a, np.arange(30))
    np.testing.assert_array_equal(perm[m.index_b], m.index_a)
    assert (m.correlation > 0.5).all()
    assert m.filtered["dead_a"] == 2 and m.filtered["dead_b"] == 2  # A's dead columns were copied into B
    assert m.provenance_a.model == "model-a" and m.provenance_b.model == "model-b"
    assert m.config["mode"] == mode and m.config["n_rows"] == 3000
    # reported correlations are the float64 ones
    corr, _, _ = dense_reference(a.matrix, b.matrix)
    np.testing.assert_allclose(m.correlation, corr[m.index_a, m.index_b], atol=1e-5)


def test_threshold_filter_records_what_it_removed(planted):
    a, b, _ = planted
    full = match_features(a, b, mode="many-to-one")
    cut = float(np.median(full.correlation))
    m = match_features(a, b, mode="many-to-one", threshold=cut)
    expected_removed = int((full.correlation < cut).sum())
    assert m.filtered["below_threshold"] == expected_removed > 0
    assert len(m) == len(full) - expected_removed
    assert (m.correlation >= cut).all()


def _competing_example():
    """A0 and A1 both correlate best with B0; B1 correlates with A1 only; mutual pairs cannot cover all."""
    rng = np.random.default_rng(31)
    n = 4000
    s = (rng.uniform(size=(n, 4)) < 0.1) * rng.exponential(1.0, (n, 4))
    a = np.stack([s[:, 0], s[:, 1], s[:, 2]], axis=1)
    b = np.stack([1.3 * s[:, 0] + s[:, 1], s[:, 1] * 0.5 + s[:, 3], s[:, 2] + s[:, 3]], axis=1)
    return a.astype(np.float32), b.astype(np.float32)


def test_one_to_one_matches_mutual_pairs_plus_optimal_assignment():
    a, b = _competing_example()
    corr, _, _ = dense_reference(a, b)
    mutual = match_features(a, b, mode="mutual")
    one = match_features(a, b, mode="one-to-one", top_k=3)
    assert len(set(one.index_a.tolist())) == len(one) and len(set(one.index_b.tolist())) == len(one)
    pairs_one = set(zip(one.index_a.tolist(), one.index_b.tolist()))
    assert set(zip(mutual.index_a.tolist(), mutual.index_b.tolist())) <= pairs_one
    assert sorted(zip(mutual.index_a.tolist(), mutual.index_b.tolist())) == [(0, 0), (2, 2)]
    assert sorted(zip(one.index_a.tolist(), one.index_b.tolist())) == [(0, 0), (1, 1), (2, 2)]
    # independent optimum: LSA on the dense correlations of the features left after the mutual pairs
    rest_a = np.setdiff1d(np.arange(a.shape[1]), mutual.index_a)
    rest_b = np.setdiff1d(np.arange(b.shape[1]), mutual.index_b)
    sub = np.clip(corr[np.ix_(rest_a, rest_b)], 0, None)
    r, c = linear_sum_assignment(sub, maximize=True)
    best_total = corr[mutual.index_a, mutual.index_b].sum() + sub[r, c].sum()
    np.testing.assert_allclose(one.correlation.sum(), best_total, atol=1e-5)


def test_one_to_one_equals_dense_assignment_on_random_data():
    rng = np.random.default_rng(41)
    a = random_sparse(rng, 500, 15, 0.15)
    b = random_sparse(rng, 500, 12, 0.15)
    corr, _, _ = dense_reference(a, b)
    mutual = match_features(a, b, mode="mutual")
    one = match_features(a, b, mode="one-to-one", top_k=15)  # candidate lists cover every pair
    rest_a = np.setdiff1d(np.arange(15), mutual.index_a)
    rest_b = np.setdiff1d(np.arange(12), mutual.index_b)
    sub = np.clip(corr[np.ix_(rest_a, rest_b)], 0, None)
    r, c = linear_sum_assignment(sub, maximize=True)
    expected = corr[mutual.index_a, mutual.index_b].sum() + sub[r, c].sum()
    np.testing.assert_allclose(one.correlation.sum(), expected, atol=1e-5)
    assert (one.correlation > 0).all()
    assert len(set(one.index_b.tolist())) == len(one)
    assert one.filtered["unassigned_a"] == 15 - len(one)


# ------------------------------------------------------------------------------------------------------
# token filters
# ------------------------------------------------------------------------------------------------------
VOCAB = ["<bos>", ".", ",", "Ġ", "Ġthe", "Ġking", "Ġqueen", "Ġcat", "<|endoftext|>", "Ġdog"]


@pytest.fixture(scope="module")
def token_pair():
    """Rows with known tokens; A/B feature pairs fire on chosen token ids.

    pair 0: both fire on "." and ","           -> punctuation only
    pair 1: both fire on " king"               -> shared token
    pair 2: A fires on " cat", B on " dog" rows that co-occur with " cat" -> no shared top token
    pair 3: A fires on "<|endoftext|>", B on "<bos>"/"," mix -> punctuation/special only
    """
    rng = np.random.default_rng(51)
    n = 600
    tokens = rng.integers(0, len(VOCAB), n)
    a = np.zeros((n, 4), dtype=np.float32)
    b = np.zeros((n, 4), dtype=np.float32)
    punct = np.isin(tokens, [1, 2])
    a[punct, 0] = rng.uniform(1, 2, punct.sum())
    b[punct, 0] = a[punct, 0] * 1.1
    king = tokens == 5
    a[king, 1] = rng.uniform(1, 2, king.sum())
    b[king, 1] = a[king, 1] + 0.1
    cat = np.flatnonzero(tokens == 7)
    a[cat, 2] = rng.uniform(1, 2, cat.size)
    b[cat, 2] = 0.1  # weak on cat rows
    dog = np.flatnonzero(tokens == 9)
    b[dog, 2] = rng.uniform(3, 4, dog.size)  # strongest on dog rows
    a[dog, 2] = 0.05
    special = np.isin(tokens, [0, 8])
    a[special, 3] = rng.uniform(1, 2, special.sum())
    b[special, 3] = a[special, 3]
    acts_a = FeatureActivations(a, token_ids=tokens)
    acts_b = FeatureActivations(b, token_ids=tokens)
    return acts_a, acts_b


def test_punctuation_filter_counts(token_pair):
    a, b = token_pair
    base = match_features(a, b, mode="many-to-one")
    assert base.index_b.tolist() == [0, 1, 2, 3]
    m = match_features(a, b, mode="many-to-one", exclude_tokens="punctuation", token_strings=VOCAB, n_top_tokens=5)
    assert m.filtered["punctuation_only"] == 2
    assert m.index_a.tolist() == [1, 2]
    assert m.config["exclude_tokens"] == "punctuation"


def test_custom_exclude_list_by_id_and_by_string(token_pair):
    a, b = token_pair
    by_id = match_features(a, b, mode="many-to-one", exclude_tokens=[5])
    assert by_id.filtered["excluded_tokens_only"] == 1 and 1 not in by_id.index_a
    by_str = match_features(a, b, mode="many-to-one", exclude_tokens=["Ġking"], token_strings=VOCAB)
    np.testing.assert_array_equal(by_str.index_a, by_id.index_a)


def test_same_token_rule_keeps_overlapping_pairs(token_pair):
    a, b = token_pair
    m = match_features(a, b, mode="many-to-one", require_same_token=True, n_top_tokens=3)
    assert m.filtered["no_shared_top_token"] == 1
    assert m.index_a.tolist() == [0, 1, 3]
    both = match_features(
        a, b, mode="one-to-one", require_same_token=True, exclude_tokens="punctuation", token_strings=VOCAB,
        threshold=0.0,
    )
    assert list(both.filtered) == ["dead_a", "dead_b", "unassigned_a", "below_threshold", "punctuation_only",
                                   "no_shared_top_token"]
    assert both.index_a.tolist() == [1]


# ------------------------------------------------------------------------------------------------------
# persistence
# ------------------------------------------------------------------------------------------------------
def test_matching_save_load_round_trip(planted, tmp_path):
    a, b, _ = planted
    m = match_features(a, b, mode="one-to-one", threshold=0.2)
    path = m.save(tmp_path / "matching")
    back = FeatureMatching.load(path)
    np.testing.assert_array_equal(back.index_a, m.index_a)
    np.testing.assert_array_equal(back.index_b, m.index_b)
    np.testing.assert_array_equal(back.correlation, m.correlation)
    assert back.filtered == m.filtered
    assert back.config == m.config
    assert back.provenance_a == m.provenance_a and back.provenance_b == m.provenance_b


def test_progress_and_threads_do_not_change_results(sparse_pair):
    a, b = sparse_pair
    one = top_correlations(a, b, k=3, n_jobs=1)
    two = top_correlations(a, b, k=3, n_jobs=2, progress=True, chunk_size=4)
    np.testing.assert_array_equal(one.indices, two.indices)
    np.testing.assert_array_equal(one.values, two.values)
