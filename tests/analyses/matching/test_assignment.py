"""match_features: modes on a planted correspondence, one-to-one assignment, filters, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from featgeom_tda.analyses.matching import TopCorrelations, match_features, top_correlations
from featgeom_tda.core.types import FeatureActivations, FeatureMatching, Provenance
from analyses.matching.helpers import METHODS, VOCAB, check_against_reference, dense_reference, random_sparse, with_dead_columns


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
