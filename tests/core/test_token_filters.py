"""Token filters: top activations and their tokens, top-token overlap, token classes of a vocabulary."""

from __future__ import annotations

import numpy as np
import pytest

from featgeom_tda.core.token_filters import (
    excluded_token_mask,
    normalize_token,
    top_activations,
    top_token_ids,
    top_tokens_overlap,
)
from featgeom_tda.core.types import FeatureActivations

from hand_built import TOKENS, VOCAB, acts  # noqa: F401  (acts is a fixture)


def test_top_activations_order_ties_and_padding(acts):
    rows, values = top_activations(acts, k=3)
    assert rows.tolist() == [[2, 4, 8], [7, -1, -1], [5, 0, -1], [-1, -1, -1]]
    np.testing.assert_array_equal(values[0], [3.0, 2.0, 2.0])
    assert np.isnan(values[1, 1:]).all() and np.isnan(values[3]).all()
    rows1, _ = top_activations(acts, k=1)
    assert rows1[:, 0].tolist() == [2, 7, 5, -1]


@pytest.mark.parametrize("k", [4, 40])  # segmented-max passes and the sorting branch
def test_top_activations_matches_a_per_feature_sort(k):
    rng = np.random.default_rng(0)
    m = (rng.uniform(size=(300, 20)) < 0.1) * rng.integers(1, 5, size=(300, 20)).astype(np.float32)
    m[:, 7] = 0
    rows, values = top_activations(m, k=k)
    for f in range(20):
        col = m[:, f]
        order = sorted(np.flatnonzero(col), key=lambda r: (-col[r], r))[:k]
        assert rows[f, : len(order)].tolist() == order
        assert (rows[f, len(order) :] == -1).all()
        np.testing.assert_array_equal(values[f, : len(order)], col[order])


def test_top_token_ids(acts):
    ids = top_token_ids(acts, k=2)
    assert ids.tolist() == [[2, 1], [6, -1], [5, 0], [-1, -1]]
    with pytest.raises(ValueError, match="rows without a token id"):
        top_token_ids(np.ones((3, 2)), k=2)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        top_token_ids(acts, k=0)


def test_top_tokens_overlap():
    a = np.array([[1, 2, -1], [3, -1, -1], [-1, -1, -1], [4, 5, 6]])
    b = np.array([[2, 9, 9], [4, -1, -1], [-1, -1, -1], [7, 8, 4]])
    assert top_tokens_overlap(a, b).tolist() == [True, False, False, True]
    with pytest.raises(ValueError, match="same number of rows"):
        top_tokens_overlap(a, b[:2])


def test_normalize_token():
    assert normalize_token("ĠKing") == "king"
    assert normalize_token("▁Mother") == "mother"
    assert normalize_token("  Queen ") == "queen"


def test_excluded_token_mask():
    vocab = [".", ",", " ", "Ġ", "Ċ", "<|endoftext|>", "<pad>", "Ġthe", "123", "Ġ!?", "▁", "cat", "[CLS]", ""]
    mask = excluded_token_mask(vocab)
    assert mask.tolist() == [True, True, True, True, True, True, True, False, False, True, True, False, True, True]
    custom = excluded_token_mask(["<pad>", "<mine>"], special_tokens=["<mine>"])
    assert custom.tolist() == [False, True]  # "<pad>" is not in this special list and holds letters
