import numpy as np
import pytest

from featgeom_tda.analyses.geometry import (
    PermutationResult,
    SubsetBaselineResult,
    linear_cka,
    permutation_test,
    procrustes,
    random_subset_baseline,
    rsa,
    svcca,
)
from featgeom_tda.analyses.geometry import baselines as bl
from featgeom_tda.analyses.geometry import fast_nulls  # block sizes patched to pin the blocked fast paths on purpose


def correlated_pair(rng, n=36, d1=6, d2=5, noise=0.8):
    X = rng.standard_normal((n, d1))
    Y = X @ rng.standard_normal((d1, d2)) + noise * rng.standard_normal((n, d2))
    return X, Y


FAST_CASES = [
    ("svcca", {}),
    ("svcca", {"variance": 0.8}),
    ("svcca", {"n_components": 1}),
    ("svcca", {"n_components": (3, 2)}),
    ("cka", {}),
    ("cka", {"debiased": True}),
    ("linear_cka", {}),
    ("rsa", {}),
    ("rsa", {"rdm": "cosine", "compare": "pearson"}),
    ("rsa", {"rdm": "euclidean"}),
    ("rsa", {"rdm": "correlation", "compare": "pearson"}),
    ("procrustes", {}),
    ("knn_jaccard", {"k": 4}),
    ("knn_jaccard", {"k": 3, "metric": "euclidean"}),
    ("mutual_knn", {"k": 5}),
]


@pytest.mark.parametrize("metric,options", FAST_CASES, ids=[f"{m}-{o}" for m, o in FAST_CASES])
def test_fast_permutation_path_equals_naive_recomputation(metric, options, monkeypatch):
    monkeypatch.setattr(fast_nulls, "_BLOCK_ROWS", 7)  # several row blocks in the blocked permuted sums
    X, Y = correlated_pair(np.random.default_rng(0))
    fast = permutation_test(metric, X, Y, n_permutations=40, seed=11, **options)
    naive = permutation_test(metric, X, Y, n_permutations=40, seed=11, method="naive", **options)
    assert fast.method == "fast" and naive.method == "naive"
    assert np.allclose(fast.null, naive.null, rtol=0, atol=1e-10)
    assert fast.score == naive.score
    assert fast.p_value == naive.p_value


@pytest.mark.parametrize("debiased", [False, True])
def test_fast_cka_gram_path_equals_naive(debiased, monkeypatch):
    # n < d1 * d2 / 10 takes the n x n Gram route
    monkeypatch.setattr(fast_nulls, "_BLOCK_ROWS", 6)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((20, 30))
    Y = X[:, :12] @ rng.standard_normal((12, 25)) + rng.standard_normal((20, 25))
    fast = permutation_test("cka", X, Y, n_permutations=30, seed=2, debiased=debiased)
    naive = permutation_test("cka", X, Y, n_permutations=30, seed=2, debiased=debiased, method="naive")
    assert np.allclose(fast.null, naive.null, rtol=0, atol=1e-10)


def test_fast_rsa_with_tied_ranks_equals_naive(monkeypatch):
    monkeypatch.setattr(fast_nulls, "_BLOCK_ROWS", 5)
    rng = np.random.default_rng(3)
    X = rng.integers(0, 3, size=(30, 3)).astype(float)
    Y = X + rng.integers(0, 2, size=(30, 3))
    fast = permutation_test("rsa", X, Y, n_permutations=25, seed=4, rdm="euclidean")
    naive = permutation_test("rsa", X, Y, n_permutations=25, seed=4, rdm="euclidean", method="naive")
    assert np.allclose(fast.null, naive.null, rtol=0, atol=1e-10)


def test_null_scores_are_the_metric_on_rows_of_y_shuffled_by_the_seeded_stream():
    X, Y = correlated_pair(np.random.default_rng(5))
    res = permutation_test("cka", X, Y, n_permutations=6, seed=9)
    rng = np.random.default_rng(9)
    expected = [linear_cka(X, Y[rng.permutation(X.shape[0])]) for _ in range(6)]
    assert np.allclose(res.null, expected, rtol=0, atol=1e-12)
    assert res.score == pytest.approx(linear_cka(X, Y), abs=1e-15)


def test_p_value_formula_and_summary_fields():
    X, Y = correlated_pair(np.random.default_rng(6), noise=6.0)
    res = permutation_test("svcca", X, Y, n_permutations=99, seed=1, variance=0.9)
    assert res.p_value == (1 + np.count_nonzero(res.null >= res.score)) / 100
    assert res.null_mean == pytest.approx(res.null.mean())
    assert res.null_std == pytest.approx(res.null.std())
    assert res.n_permutations == 99 and res.null.shape == (99,)
    assert res.seed == 1 and res.metric == "svcca" and res.options == {"variance": 0.9}
    assert res.z_score == pytest.approx((res.score - res.null_mean) / res.null_std)


def test_p_values_are_reproducible_for_a_seed_and_change_with_it():
    X, Y = correlated_pair(np.random.default_rng(7), noise=5.0)
    a = permutation_test("rsa", X, Y, n_permutations=50, seed=3)
    b = permutation_test("rsa", X, Y, n_permutations=50, seed=3)
    c = permutation_test("rsa", X, Y, n_permutations=50, seed=4)
    assert np.array_equal(a.null, b.null) and a.p_value == b.p_value
    assert not np.array_equal(a.null, c.null)


def test_structure_is_detected_and_independent_data_is_not():
    rng = np.random.default_rng(8)
    X, Y = correlated_pair(rng, n=60, noise=0.3)
    strong = permutation_test("cka", X, Y, n_permutations=200, seed=0)
    assert strong.p_value == pytest.approx(1 / 201)
    assert strong.score > strong.null.max()
    p_values = []
    for seed in range(10):
        A, B = rng.standard_normal((60, 4)), rng.standard_normal((60, 3))
        res = permutation_test("cka", A, B, n_permutations=100, seed=seed)
        assert abs(res.z_score) < 5
        p_values.append(res.p_value)
    assert np.mean(p_values) > 0.2  # uniform p-values average 0.5


def test_exact_ties_count_as_exceeding_the_score():
    # with k = n - 1 every row's neighbours are all the other rows: every pairing scores 1 and p must be 1
    rng = np.random.default_rng(9)
    X, Y = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    for method in ("fast", "naive"):
        res = permutation_test("knn_jaccard", X, Y, n_permutations=20, seed=0, k=5, method=method)
        assert res.score == 1.0 and np.all(res.null == 1.0)
        assert res.p_value == 1.0


def test_callable_metrics_run_the_naive_loop_and_registered_functions_the_fast_path():
    X, Y = correlated_pair(np.random.default_rng(10))

    def first_column_corr(A, B):
        return float(np.corrcoef(A[:, 0], B[:, 0])[0, 1])

    res = permutation_test(first_column_corr, X, Y, n_permutations=10, seed=0)
    assert res.method == "naive" and res.metric == "first_column_corr"
    assert permutation_test(svcca, X, Y, n_permutations=5).method == "fast"
    assert permutation_test(svcca, X, Y, n_permutations=5).metric == "svcca"
    assert permutation_test(procrustes, X, Y, n_permutations=5).metric == "procrustes"
    with pytest.raises(ValueError, match=r"metric 'first_column_corr' has no fast permutation path"):
        permutation_test(first_column_corr, X, Y, n_permutations=5, method="fast")


def test_the_metric_option_of_knn_passes_through():
    X, Y = correlated_pair(np.random.default_rng(11))
    res = permutation_test("knn_jaccard", X, Y, n_permutations=5, k=3, metric="euclidean")
    assert res.options == {"k": 3, "metric": "euclidean"}


def test_permutation_test_rejects_bad_arguments():
    X, Y = correlated_pair(np.random.default_rng(12))
    with pytest.raises(ValueError, match=r"metric must be one of 'svcca', 'cka', .* got 'cca'"):
        permutation_test("cca", X, Y)
    with pytest.raises(ValueError, match=r"metric 'rsa' does not take the options \['rmd'\]"):
        permutation_test("rsa", X, Y, rmd="cosine")
    with pytest.raises(ValueError, match=r"n_permutations must be an integer >= 1; got 0"):
        permutation_test("rsa", X, Y, n_permutations=0)
    with pytest.raises(ValueError, match=r"seed must be a non-negative integer; got -1"):
        permutation_test("rsa", X, Y, seed=-1)
    with pytest.raises(ValueError, match=r"method must be one of 'auto', 'fast', 'naive'; got 'quick'"):
        permutation_test("rsa", X, Y, method="quick")
    with pytest.raises(ValueError, match=r"X has 36 rows but Y has 35"):
        permutation_test("cka", X, Y[:-1])
    with pytest.raises(ValueError, match=r"rdm must be one of"):
        permutation_test("rsa", X, Y, rdm="l1")
    with pytest.raises(ValueError, match=r"metric must be a metric name or a callable"):
        permutation_test(3, X, Y)


def test_permutation_result_round_trips_through_json(tmp_path):
    X, Y = correlated_pair(np.random.default_rng(13))
    res = permutation_test("rsa", X, Y, n_permutations=10, rdm="cosine")
    back = PermutationResult.load(res.save(tmp_path / "perm.json"))
    assert back.to_dict() == res.to_dict()
    assert np.array_equal(back.null, res.null)


# ---------------------------------------------------------------------------------------------- random subsets


def test_random_subset_baseline_draws_reproducibly_and_independently():
    rng = np.random.default_rng(20)
    X_full, Y_full = correlated_pair(rng, n=80)
    a = random_subset_baseline("cka", X_full, Y_full, 15, n_draws=12, seed=5)
    b = random_subset_baseline("cka", X_full, Y_full, 15, n_draws=12, seed=5)
    assert np.array_equal(a.scores, b.scores) and a.n == (15, 15) and not a.paired
    draw = np.random.default_rng(5)
    rows_x = draw.choice(80, size=15, replace=False)
    rows_y = draw.choice(80, size=15, replace=False)
    assert a.scores[0] == pytest.approx(linear_cka(X_full[rows_x], Y_full[rows_y]), abs=1e-14)


def test_paired_subsets_keep_the_pairing():
    rng = np.random.default_rng(21)
    X_full = rng.standard_normal((50, 4))
    unpaired = random_subset_baseline("procrustes", X_full, X_full, 10, n_draws=8, seed=0)
    paired = random_subset_baseline("procrustes", X_full, X_full, 10, n_draws=8, seed=0, paired=True)
    assert np.allclose(paired.scores, 1.0) and paired.paired
    assert unpaired.scores.max() < 0.99


def test_random_subset_baseline_p_value_and_unequal_sizes(tmp_path):
    rng = np.random.default_rng(22)
    X_full, Y_full = rng.standard_normal((40, 5)), rng.standard_normal((30, 5))

    def span_overlap(A, B):
        qa = np.linalg.qr(A.T)[0]
        qb = np.linalg.qr(B.T)[0]
        return float(np.linalg.svd(qa.T @ qb, compute_uv=False).mean())

    res = random_subset_baseline(span_overlap, X_full, Y_full, (3, 2), n_draws=20, seed=1, observed=0.5)
    assert res.n == (3, 2)
    assert res.p_value == (1 + np.count_nonzero(res.scores >= 0.5)) / 21
    back = SubsetBaselineResult.load(res.save(tmp_path / "subset.json"))
    assert back.to_dict() == res.to_dict()


def test_random_subset_baseline_rejects_bad_sizes():
    rng = np.random.default_rng(23)
    X_full, Y_full = rng.standard_normal((20, 3)), rng.standard_normal((15, 3))
    with pytest.raises(ValueError, match=r"n=16 exceeds the 15 rows of Y_full"):
        random_subset_baseline("cka", X_full, Y_full, 16)
    with pytest.raises(ValueError, match=r"n must be an integer >= 2; got 1"):
        random_subset_baseline("cka", X_full, Y_full, 1)
    with pytest.raises(ValueError, match=r"X_full has 20 rows but Y_full has 15; paired subsets need the same rows"):
        random_subset_baseline("cka", X_full, Y_full, 5, paired=True)
    with pytest.raises(ValueError, match=r"n must be one size when paired=True"):
        random_subset_baseline("cka", X_full, X_full, (4, 5), paired=True)
    with pytest.raises(ValueError, match=r"n_draws must be an integer >= 1"):
        random_subset_baseline("cka", X_full, Y_full, 5, n_draws=0)


def test_rsa_fast_path_on_a_larger_problem_matches_the_plain_metric():
    rng = np.random.default_rng(24)
    X, Y = correlated_pair(rng, n=300, d1=8, d2=8, noise=2.0)
    res = permutation_test("rsa", X, Y, n_permutations=3, seed=0)
    draw = np.random.default_rng(0)
    expected = [rsa(X, Y[draw.permutation(300)]) for _ in range(3)]
    assert np.allclose(res.null, expected, rtol=0, atol=1e-10)


def test_svcca_permutation_test_is_never_saturated_and_records_its_components():
    # the default cap keeps max(1, n // 4) components a side: the null is no longer identically 1
    rng = np.random.default_rng(10)
    X, Y = rng.standard_normal((10, 128)), rng.standard_normal((10, 128))
    res = permutation_test("svcca", X, Y, n_permutations=99, seed=0)
    d = res.details
    assert (d["n_components_x"], d["n_components_y"], d["n_rows"], d["n_forced"], d["saturated"]) == (2, 2, 10, 0, False)
    assert res.score < 1 and np.all(res.null < 1) and res.null.std() > 0.01
    assert res.to_dict()["details"]["n_rows"] == 10
    naive = permutation_test("svcca", X, Y, n_permutations=99, seed=0, method="naive")
    np.testing.assert_allclose(naive.null, res.null, atol=1e-10)
    for method in ("fast", "naive"):
        with pytest.raises(ValueError, match="SVCCA is saturated"):
            permutation_test("svcca", X, Y, n_permutations=9, max_components=None, method=method)


def test_a_null_too_large_for_memory_is_refused_before_any_work():
    from featgeom_tda.analyses.geometry.baselines import MAX_NULL_BYTES

    X = np.random.default_rng(0).standard_normal((20, 4))
    too_many = MAX_NULL_BYTES // 8 + 1
    with pytest.raises(ValueError, match=rf"n_permutations={too_many} needs an estimated .* must be at most {too_many - 1}"):
        permutation_test("cka", X, X, n_permutations=too_many)
    with pytest.raises(ValueError, match=r"n_draws=10000000000 needs an estimated 74\.5 GiB"):
        random_subset_baseline("cka", X, X, 5, n_draws=10**10)
