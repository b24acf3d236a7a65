"""Shared helpers of the correlation-matching tests (float64 dense references)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from featgeom_tda.analyses.matching import TopCorrelations, match_features, top_correlations
from featgeom_tda.core.types import FeatureActivations, FeatureMatching, Provenance

METHODS = ["fused", "scipy", "dense"]


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


VOCAB = ["<bos>", ".", ",", "Ġ", "Ġthe", "Ġking", "Ġqueen", "Ġcat", "<|endoftext|>", "Ġdog"]
