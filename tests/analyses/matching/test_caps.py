"""top_correlations caps k before allocating: a huge k never asks for more than max(n_features_b, 64) columns."""

from __future__ import annotations

import numpy as np
import pytest

from featgeom_tda.analyses.matching import top_correlations
from featgeom_tda.analyses.matching.top import _MAX_PADDED_K
from analyses.matching.helpers import METHODS, random_sparse


@pytest.fixture(scope="module")
def three_b():
    rng = np.random.default_rng(4)
    return random_sparse(rng, 200, 5, 0.2), random_sparse(rng, 200, 3, 0.2)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("k", [10**9, 10**6, 65])
def test_huge_k_is_capped_and_equals_k_n_features(three_b, method, k):
    a, b = three_b
    capped = top_correlations(a, b, k=k, method=method)
    full = top_correlations(a, b, k=3, method=method)
    assert capped.k == _MAX_PADDED_K  # max(n_features_b=3, 64)
    np.testing.assert_array_equal(capped.values[:, :3], full.values)
    np.testing.assert_array_equal(capped.indices[:, :3], full.indices)
    assert np.isnan(capped.values[:, 3:]).all() and (capped.indices[:, 3:] == -1).all()


def test_k_is_capped_at_n_features_b_when_b_is_wide():
    rng = np.random.default_rng(8)
    a, b = random_sparse(rng, 150, 4, 0.2), random_sparse(rng, 150, 80, 0.1)
    capped = top_correlations(a, b, k=10**9)
    full = top_correlations(a, b, k=80)
    assert capped.k == 80
    np.testing.assert_array_equal(capped.values, full.values)
    np.testing.assert_array_equal(capped.indices, full.indices)


def test_small_k_keeps_its_padding(three_b):
    a, b = three_b
    assert top_correlations(a, b, k=5).k == 5


@pytest.mark.parametrize("k", [0, -1])
def test_k_must_be_positive(three_b, k):
    a, b = three_b
    with pytest.raises(ValueError, match="k"):
        top_correlations(a, b, k=k)
