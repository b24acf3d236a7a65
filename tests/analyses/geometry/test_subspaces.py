import numpy as np
import pytest
import scipy.linalg

from featgeom_tda.analyses.geometry import (
    compare_concept_subspaces,
    linear_cka,
    principal_angle_cosines,
    principal_angle_similarity,
)
from featgeom_tda.core.types import FeatureMatching, FeatureWeights


def orthogonal(d, rng):
    return np.linalg.qr(rng.standard_normal((d, d)))[0]


@pytest.fixture
def two_models():
    """Model b's directions are model a's in another basis (rotated), plus noise; features 0..119 matched."""
    rng = np.random.default_rng(0)
    Wa = rng.standard_normal((150, 16))
    Wb = Wa @ orthogonal(16, rng) + 0.05 * rng.standard_normal((150, 16))
    Wb = np.hstack([Wb, 0.01 * rng.standard_normal((150, 4))])  # side b is wider: d = 20
    matching = FeatureMatching(np.arange(120), np.arange(120), np.ones(120))
    return FeatureWeights(Wa), FeatureWeights(Wb), matching


def test_matched_concepts_get_scores_nulls_and_p_values(two_models):
    Wa, Wb, matching = two_models
    labels_a = {"royalty": list(range(0, 20)), "months": list(range(20, 32)), "tiny": [40, 41, 42]}
    labels_b = {"royalty": list(range(0, 20)), "months": list(range(20, 32)), "tiny": [40, 41, 42]}
    results = compare_concept_subspaces(Wa, Wb, labels_a, labels_b, matching=matching, n_permutations=50)
    by = {r.concept: r for r in results}
    assert [r.concept for r in results] == ["royalty", "months", "tiny"]
    royal = by["royalty"]
    assert royal.compared and royal.pairing == "matched" and royal.null_kind == "permutation"
    assert royal.n_pairs == 20 and royal.n_features_a == 20 and royal.n_features_b == 20
    assert set(royal.scores) == {"svcca", "cka", "rsa"}
    for name in ("svcca", "cka", "rsa"):
        assert royal.nulls[name].shape == (50,)
        assert royal.p_values[name] == (1 + np.count_nonzero(royal.nulls[name] >= royal.scores[name])) / 51
    assert royal.scores["cka"] > 0.99 and royal.p_values["cka"] == pytest.approx(1 / 51)
    assert by["tiny"].skipped == "only 3 matched pairs carry the label 'tiny' on both sides; min_features=5"
    assert by["tiny"].scores == {}


def test_only_pairs_labelled_on_both_sides_are_used(two_models):
    Wa, Wb, matching = two_models
    labels_a = {"colours": list(range(0, 30))}
    labels_b = {"colours": list(range(10, 50))}  # overlap of matched pairs: features 10..29
    (res,) = compare_concept_subspaces(Wa, Wb, labels_a, labels_b, matching=matching, n_permutations=10,
                                       metrics=("cka",))
    assert res.n_pairs == 20 and res.n_features_a == 30 and res.n_features_b == 40
    assert res.scores["cka"] == pytest.approx(linear_cka(Wa.weights[10:30], Wb.weights[10:30]), abs=1e-12)


def test_results_do_not_depend_on_concept_order(two_models):
    Wa, Wb, matching = two_models
    la = {"x": list(range(0, 15)), "y": list(range(15, 30))}
    forward = compare_concept_subspaces(Wa, Wb, la, la, matching=matching, n_permutations=20, metrics=("rsa",))
    reverse_labels = {"y": la["y"], "x": la["x"]}
    backward = compare_concept_subspaces(Wa, Wb, reverse_labels, reverse_labels, matching=matching,
                                         n_permutations=20, metrics=("rsa",))
    fx = {r.concept: r for r in forward}
    bx = {r.concept: r for r in backward}
    for c in ("x", "y"):
        assert np.array_equal(fx[c].nulls["rsa"], bx[c].nulls["rsa"])
        assert fx[c].seed == bx[c].seed
    assert fx["x"].seed != fx["y"].seed


def test_missing_concepts_and_failing_metrics_are_reported(two_models):
    Wa, Wb, matching = two_models
    labels_a = {"only_a": [1, 2, 3, 4, 5, 6], "both": list(range(50, 58))}
    labels_b = {"only_b": [7, 8, 9, 10, 11], "both": list(range(50, 58))}
    results = compare_concept_subspaces(
        Wa, Wb, labels_a, labels_b, matching=matching, n_permutations=10, metrics=("cka", "knn_jaccard"),
        metric_options={"knn_jaccard": {"k": 10}},
    )
    by = {r.concept: r for r in results}
    assert [r.concept for r in results] == ["only_a", "both", "only_b"]
    assert by["only_a"].skipped == "no features labelled 'only_a' in labels_b"
    assert by["only_b"].skipped == "no features labelled 'only_b' in labels_a"
    both = by["both"]
    assert both.compared and "cka" in both.scores
    assert "knn_jaccard" not in both.scores
    assert "k=10 needs at least k + 1 = 11 rows" in both.metric_errors["knn_jaccard"]
    assert both.to_dict()["metric_errors"] == both.metric_errors


def test_unpaired_mode_uses_principal_angles_with_a_random_subset_null():
    rng = np.random.default_rng(1)
    d = 40
    shared = np.linalg.qr(rng.standard_normal((d, 3)))[0].T  # a 3-dim concept subspace in one coordinate system
    Wa = rng.standard_normal((200, d))
    Wb = rng.standard_normal((180, d))
    Wa[:12] = rng.standard_normal((12, 3)) @ shared + 0.02 * rng.standard_normal((12, d))
    Wb[:9] = rng.standard_normal((9, 3)) @ shared + 0.02 * rng.standard_normal((9, d))
    labels_a = {"planted": list(range(12)), "random": list(range(100, 112))}
    labels_b = {"planted": list(range(9)), "random": list(range(100, 109))}
    results = compare_concept_subspaces(Wa, Wb, labels_a, labels_b, n_permutations=60)
    by = {r.concept: r for r in results}
    planted, random = by["planted"], by["random"]
    assert planted.pairing == "unpaired" and planted.null_kind == "random_subsets"
    assert set(planted.scores) == {"principal_angles"}
    assert planted.p_values["principal_angles"] == pytest.approx(1 / 61)
    assert planted.scores["principal_angles"] > random.scores["principal_angles"]
    assert random.p_values["principal_angles"] > 0.05
    assert planted.nulls["principal_angles"].shape == (60,)


def test_unpaired_mode_skips_sides_of_different_widths(two_models):
    Wa, Wb, _ = two_models
    (res,) = compare_concept_subspaces(Wa, Wb, {"c": list(range(10))}, {"c": list(range(10))})
    assert not res.compared
    assert "different spaces (d=16 vs d=20)" in res.skipped


def test_principal_angles_agree_with_scipy_subspace_angles():
    rng = np.random.default_rng(2)
    A, B = rng.standard_normal((4, 9)), rng.standard_normal((6, 9))
    B[:2] = A[:2]  # share two directions
    angles = scipy.linalg.subspace_angles(A.T, B.T)
    cosines = principal_angle_cosines(A, B)
    assert np.allclose(np.sort(cosines), np.sort(np.cos(angles)), atol=1e-10)
    assert cosines[:2] == pytest.approx([1.0, 1.0], abs=1e-10)
    assert principal_angle_similarity(A, B) == pytest.approx(np.cos(angles).mean(), abs=1e-10)


def test_compare_concept_subspaces_rejects_bad_input(two_models):
    Wa, Wb, matching = two_models
    ok = {"c": [0, 1, 2, 3, 4]}
    with pytest.raises(ValueError, match=r"labels_b\['c'\] has feature indices outside \[0, 150\)"):
        compare_concept_subspaces(Wa, Wb, ok, {"c": [0, 150]}, matching=matching)
    with pytest.raises(ValueError, match=r"labels_a must be a dict concept -> feature indices; got list"):
        compare_concept_subspaces(Wa, Wb, [0, 1], ok, matching=matching)
    with pytest.raises(ValueError, match=r"labels_a\['c'\] must be a 1-D list of integer feature indices"):
        compare_concept_subspaces(Wa, Wb, {"c": [0.5, 1.5]}, ok, matching=matching)
    with pytest.raises(ValueError, match=r"metric must be one of"):
        compare_concept_subspaces(Wa, Wb, ok, ok, matching=matching, metrics=("cca",))
    with pytest.raises(ValueError, match=r"metric_options has options for 'rsa', which is not in metrics"):
        compare_concept_subspaces(Wa, Wb, ok, ok, matching=matching, metrics=("cka",),
                                  metric_options={"rsa": {"rdm": "cosine"}})
    with pytest.raises(ValueError, match=r"min_features must be an integer >= 2; got 1"):
        compare_concept_subspaces(Wa, Wb, ok, ok, matching=matching, min_features=1)
    with pytest.raises(ValueError, match=r"matching.index_b has indices outside \[0, 10\)"):
        compare_concept_subspaces(Wa, FeatureWeights(np.ones((10, 3))), ok, {"c": [1, 2]}, matching=matching)
    with pytest.raises(ValueError, match=r"matching must be a FeatureMatching or None; got dict"):
        compare_concept_subspaces(Wa, Wb, ok, ok, matching={"a": 1})
    with pytest.raises(ValueError, match=r"rdm must be one of"):
        compare_concept_subspaces(Wa, Wb, {"c": list(range(10))}, {"c": list(range(10))}, matching=matching,
                                  metrics=("rsa",), metric_options={"rsa": {"rdm": "l1"}})


def test_subspace_results_serialise_to_plain_json(two_models):
    import json

    Wa, Wb, matching = two_models
    labels = {"c": list(range(12)), "small": [1]}
    results = compare_concept_subspaces(Wa, Wb, labels, labels, matching=matching, n_permutations=5)
    dumped = json.loads(json.dumps([r.to_dict() for r in results], allow_nan=False))
    assert dumped[0]["concept"] == "c" and len(dumped[0]["nulls"]["svcca"]) == 5
    assert dumped[1]["skipped"].startswith("only 1 matched pairs")
