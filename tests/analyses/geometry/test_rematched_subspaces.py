"""The paper's semantic subspaces: concept features selected per side, re-matched inside the concept, scored
against the within-concept permutation null."""

from functools import partial

import numpy as np
import pytest
import scipy.sparse as sp

from featgeom_tda.analyses.geometry import compare_rematched_subspaces
from featgeom_tda.analyses.matching import match_features
from featgeom_tda.core.types import FeatureActivations, FeatureMatching

MATCH = partial(match_features, mode="one-to-one", threshold=0.3)


def _cka64(X, Y):
    """Linear CKA in float64 from its definition: ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)."""
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    return np.linalg.norm(Yc.T @ Xc) ** 2 / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc))


def _planted(shuffle_b_directions: bool, seed: int = 0):
    """60 features a side; concept features 0..19 of A are features perm[0..19] of B (same activations plus
    noise), B's decoder rows are A's rotated (or, shuffled, independent random rows)."""
    rng = np.random.default_rng(seed)
    n, f, d = 3000, 60, 12
    A = rng.exponential(size=(n, f)) * (rng.random((n, f)) < 0.2)
    perm = rng.permutation(f)
    B = np.zeros_like(A)
    B[:, perm] = A + 0.05 * rng.random((n, f)) * (A > 0)
    Wa = rng.standard_normal((f, d))
    Q = np.linalg.qr(rng.standard_normal((d, d)))[0]
    Wb = np.zeros((f, d))
    Wb[perm] = Wa @ Q
    if shuffle_b_directions:
        Wb = rng.standard_normal((f, d))
    acts_a, acts_b = FeatureActivations(sp.csr_matrix(A)), FeatureActivations(sp.csr_matrix(B))
    labels_a = {"royalty": np.arange(20)}
    labels_b = {"royalty": np.sort(perm[:20])}
    return acts_a, acts_b, Wa, Wb, labels_a, labels_b, perm


def test_planted_concept_is_rematched_and_scores_high():
    acts_a, acts_b, Wa, Wb, la, lb, perm = _planted(False)
    (res,) = compare_rematched_subspaces(acts_a, acts_b, Wa, Wb, la, lb, match=MATCH, metrics=("cka", "svcca"),
                                         n_permutations=99, seed=3)
    assert res.compared and res.pairing == "rematched" and res.null_kind == "permutation"
    assert (res.n_features_a, res.n_features_b, res.n_pairs) == (20, 20, 20)
    assert res.mean_correlation > 0.99
    # the re-matched pairs are the planted ones, so the score is the float64 CKA of A's rows against B's
    expected = _cka64(Wa[:20], Wb[perm[:20]])
    assert expected == pytest.approx(1.0, abs=1e-12)
    assert res.scores["cka"] == pytest.approx(expected, abs=1e-9)
    assert res.p_values["cka"] == pytest.approx(1 / 100)
    for name in res.scores:
        assert res.p_values[name] == (1 + np.count_nonzero(res.nulls[name] >= res.scores[name])) / 100
    # 20 pairs hold at most 5 SVCCA components a side: it is scored, not saturated
    assert "svcca" in res.scores and res.details["svcca"]["n_components_x"] <= 5


def test_shuffled_directions_fall_to_the_within_concept_null():
    acts_a, acts_b, Wa, Wb, la, lb, perm = _planted(True)
    (res,) = compare_rematched_subspaces(acts_a, acts_b, Wa, Wb, la, lb, match=MATCH, metrics=("cka",),
                                         n_permutations=199, seed=3)
    assert res.n_pairs == 20  # the activations still match
    assert res.scores["cka"] == pytest.approx(_cka64(Wa[:20], Wb[perm[:20]]), abs=1e-9)
    assert res.p_values["cka"] > 0.05
    assert abs(res.scores["cka"] - res.null_means["cka"]) < 3 * res.null_stds["cka"]


def test_rematching_finds_pairs_the_global_matching_would_label_differently():
    """Only the selected columns enter the matcher, and its subset indices are mapped back to full indices."""
    acts_a, acts_b, Wa, Wb, la, lb, perm = _planted(False)
    seen = []

    def spy(xa, xb):
        seen.append((xa.n_features, xb.n_features))
        return MATCH(xa, xb)

    compare_rematched_subspaces(acts_a, acts_b, Wa, Wb, la, lb, match=spy, metrics=("cka",), n_permutations=9)
    assert seen == [(20, 20)]


def test_too_few_features_or_pairs_are_skipped_with_the_reason():
    acts_a, acts_b, Wa, Wb, la, lb, perm = _planted(False)
    few = {"months": np.arange(3)}
    (res,) = compare_rematched_subspaces(acts_a, acts_b, Wa, Wb, few, few, match=MATCH, n_permutations=9)
    assert res.skipped == "too few features selected for 'months' (side a has 3, side b has 3); min_features=5"
    none = lambda xa, xb: FeatureMatching(np.zeros(0, int), np.zeros(0, int), np.zeros(0))  # noqa: E731
    (res,) = compare_rematched_subspaces(acts_a, acts_b, Wa, Wb, la, lb, match=none, n_permutations=9)
    assert res.skipped.startswith("re-matching the 20 x 20 features of 'royalty' gave 0 pairs")


def test_svcca_on_too_few_pairs_is_a_metric_error_not_a_score():
    acts_a, acts_b, Wa, Wb, la, lb, perm = _planted(False)
    (res,) = compare_rematched_subspaces(acts_a, acts_b, Wa, Wb, la, lb, match=MATCH, metrics=("svcca", "cka"),
                                         n_permutations=9, metric_options={"svcca": {"n_components": 10}})
    assert "svcca" in res.metric_errors and "svcca" not in res.scores and "cka" in res.scores


@pytest.mark.parametrize("kwargs, message", [
    ({"match": "one-to-one"}, "match must be a callable"),
    ({"weights_a": np.zeros((5, 12))}, "acts_a has 60 features but weights_a has 5 rows"),
    ({"acts_b": FeatureActivations(sp.csr_matrix((10, 60)))}, "acts_a has 3000 rows but acts_b has 10"),
])
def test_bad_input_names_the_argument(kwargs, message):
    acts_a, acts_b, Wa, Wb, la, lb, perm = _planted(False)
    args = dict(acts_a=acts_a, acts_b=acts_b, weights_a=Wa, weights_b=Wb, labels_a=la, labels_b=lb, match=MATCH)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        compare_rematched_subspaces(**args)
