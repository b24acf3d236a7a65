"""Tests for the interpretation helpers on small hand-built examples."""

from __future__ import annotations

import numpy as np
import pytest

from featgeom_tda.analyses.interpret import (
    Example,
    concept_labels,
    feature_concepts,
    same_token_score,
    top_examples,
)
from featgeom_tda.core.types import FeatureActivations, FeatureMatching

from hand_built import TOKENS, VOCAB, acts  # noqa: F401  (acts is a fixture)


def test_top_examples_from_rows_with_token_strings(acts):
    ex = top_examples(acts, [0, 3, 1], k=2, window=2, token_strings=VOCAB)
    assert [len(e) for e in ex] == [2, 0, 1]
    first = ex[0][0]
    assert isinstance(first, Example)
    assert (first.feature, first.row, first.doc, first.position, first.token_id) == (0, 2, 0, 2, 2)
    assert first.activation == 3.0 and first.token == " king"
    assert first.context == "<bos> the[[ king]] sat the"
    assert ex[0][1].context == " king sat[[ the]]."
    # window stops at the document boundary
    assert ex[2][0].context == "<bos>[[ Mother]] queen ran"
    assert ex[2][0].to_dict()["doc"] == 1


def test_top_examples_from_token_array_and_decode(acts):
    calls = []

    def decode(ids):
        calls.append(list(ids))
        return "|".join(f"t{i}" for i in ids)

    ex = top_examples(acts, [2], k=2, window=1, tokens=TOKENS, decode=decode)
    assert ex[0][0].context == "t1[[t5]]"
    assert ex[0][1].context == "[[t0]]t1"
    ids_only = top_examples(acts, np.array([2]), k=1, window=1)
    assert ids_only[0][0].context == "1[[5]]"


def test_top_examples_errors(acts):
    with pytest.raises(ValueError, match=r"features must lie in \[0, 4\)"):
        top_examples(acts, [4])
    with pytest.raises(ValueError, match="decode must be callable"):
        top_examples(acts, [0], decode="not callable")
    with pytest.raises(ValueError, match="tokens holds 1 documents"):
        top_examples(acts, [1], tokens=TOKENS[:1])


def test_same_token_score_known_value_and_seeded_baseline(acts):
    b = FeatureActivations(acts.matrix[:, [1, 0, 2, 3]], token_ids=acts.token_ids)  # B = A with 0 and 1 swapped
    matching = FeatureMatching(np.array([0, 1, 2]), np.array([1, 0, 2]), np.array([1.0, 1.0, 1.0]))
    result = same_token_score(matching, acts, b, k=2, n_baseline=50, seed=3)
    assert result.score == 1.0
    # independent recomputation of the baseline with the same generator
    rng = np.random.default_rng(3)
    sets_a = [{2, 1}, {6}, {5, 0}]
    sets_b = [{2, 1}, {6}, {5, 0}]  # top tokens of the paired B features 1, 0, 2
    null = []
    for _ in range(50):
        perm = rng.permutation(3)
        null.append(np.mean([bool(sets_a[i] & sets_b[perm[i]]) for i in range(3)]))
    assert result.baseline_mean == pytest.approx(np.mean(null))
    assert result.baseline_std == pytest.approx(np.std(null))
    assert result.p_value == pytest.approx((1 + sum(x >= 1.0 for x in null)) / 51)
    again = same_token_score(matching, acts, b, k=2, n_baseline=50, seed=3)
    assert again == result
    assert result.to_dict()["n_pairs"] == 3


def test_same_token_score_baseline_depends_on_seed():
    rng = np.random.default_rng(1)
    n, f = 400, 30
    tokens = rng.integers(0, 50, n)
    m = (rng.uniform(size=(n, f)) < 0.05) * rng.uniform(1, 2, (n, f))
    a = FeatureActivations(m.astype(np.float32), token_ids=tokens)
    matching = FeatureMatching(np.arange(f), np.arange(f), np.ones(f))
    r0 = same_token_score(matching, a, a, k=3, n_baseline=40, seed=0)
    r1 = same_token_score(matching, a, a, k=3, n_baseline=40, seed=1)
    assert r0.score == 1.0
    assert r0 == same_token_score(matching, a, a, k=3, n_baseline=40, seed=0)
    assert r0.baseline_mean != r1.baseline_mean
    assert r0.p_value == pytest.approx(1 / 41)


def test_same_token_score_errors(acts):
    empty = FeatureMatching(np.zeros(0), np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError, match="at least one pair"):
        same_token_score(empty, acts, acts)
    too_far = FeatureMatching(np.array([0]), np.array([9]), np.array([1.0]))
    with pytest.raises(ValueError, match="acts_b has 4 features"):
        same_token_score(too_far, acts, acts)
    with pytest.raises(ValueError, match="matching must be a FeatureMatching"):
        same_token_score([(0, 1)], acts, acts)


def test_concept_labels_and_feature_concepts(acts):
    groups = {"royalty": ["King", "queen"], "family": ["mother", "father"], "months": ["may", "june"]}
    labels = concept_labels(acts, VOCAB, groups)
    assert labels["royalty"].tolist() == [0]
    assert labels["family"].tolist() == [1]
    assert labels["months"].tolist() == []
    per_feature = feature_concepts(acts, VOCAB, groups)
    assert per_feature.tolist() == ["royalty", "family", "", ""]
    # k=3: feature 0's top tokens are king, the, queen -> 2/3 royalty
    assert concept_labels(acts, VOCAB, groups, k=3)["royalty"].tolist() == [0]
    assert concept_labels(acts, VOCAB, groups, k=3, min_fraction=0.9)["royalty"].tolist() == []
    with pytest.raises(ValueError, match="concept_groups must be a non-empty mapping"):
        concept_labels(acts, VOCAB, {})
    with pytest.raises(ValueError, match="must be a non-empty list of words"):
        concept_labels(acts, VOCAB, {"royalty": "king"})
    with pytest.raises(ValueError, match="token_strings has 3 entries"):
        concept_labels(acts, VOCAB[:3], groups)


def test_concept_labels_with_repository_groups():
    from featgeom_tda.sources.concepts import load_concept_groups

    groups = load_concept_groups()
    vocab = ["<bos>", "Ġking", "Ġjanuary", "Ġthe"]
    m = np.eye(4, dtype=np.float32)
    a = FeatureActivations(m, token_ids=np.arange(4))
    labels = concept_labels(a, vocab, groups)
    assert 1 in labels["royalty"] and 2 in labels["months"]


def test_token_helpers_stay_importable_from_interpret():
    from featgeom_tda.analyses import interpret
    from featgeom_tda.core import token_filters

    for name in ("top_activations", "top_token_ids", "top_tokens_overlap", "normalize_token", "excluded_token_mask"):
        assert getattr(interpret, name) is getattr(token_filters, name)
