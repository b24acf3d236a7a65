"""Column statistics against numpy's float64 mean and population standard deviation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from featgeom_tda.analyses.matching.stats import column_stats, prepared, ratio_order


def test_column_stats_match_numpy():
    rng = np.random.default_rng(0)
    dense = rng.random((200, 6)) * (rng.random((200, 6)) < 0.3)
    dense[:, 2] = 0.0
    dense[:, 4] = 1.5  # constant column: dead
    st = column_stats(sp.csr_matrix(dense.astype(np.float32)))
    ref = dense.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(st.mean, ref.mean(axis=0), rtol=1e-12, atol=1e-15)
    live = ~st.dead
    np.testing.assert_allclose(st.sd[live], ref.std(axis=0)[live], rtol=1e-10)
    np.testing.assert_array_equal(st.dead, [False, False, True, False, True, False])
    assert np.all(st.sd[st.dead] == 1.0) and st.nonnegative


def test_ratio_order_sorts_live_features_by_mean_over_sd():
    rng = np.random.default_rng(1)
    dense = rng.random((100, 5)) * (rng.random((100, 5)) < 0.5)
    dense[:, 1] = 0.0
    st = column_stats(sp.csr_matrix(dense))
    order, ratio = ratio_order(st)
    live = np.flatnonzero(dense.std(axis=0) > 0)
    expected = live[np.argsort(dense.mean(axis=0)[live] / dense.std(axis=0)[live], kind="stable")]
    np.testing.assert_array_equal(order, expected)
    assert np.all(np.diff(ratio) >= 0)


def test_prepared_refuses_non_finite_values():
    m = sp.csr_matrix(np.array([[1.0, np.nan], [0.0, 2.0]]))
    with pytest.raises(ValueError, match="1 NaN or inf values"):
        prepared(m, "acts_a")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_stats_numba_equals_numpy_fallback_bit_for_bit(monkeypatch, dtype):
    rng = np.random.default_rng(3)
    dense = rng.exponential(size=(400, 37)) * (rng.random((400, 37)) < 0.1)
    dense[:, 5] = 0.0  # an all-zero (dead) column
    dense[:, 6] = 2.5  # a constant (dead) column
    m = sp.csr_matrix(dense.astype(dtype))
    m.data[::17] = 0.0  # explicitly stored zeros count as entries of value 0
    fast = column_stats(m)
    import featgeom_tda.analyses.matching.stats as stats

    monkeypatch.setattr(stats, "column_sums_kernel", lambda: None)
    slow = column_stats(m)
    for field in ("mean", "sd", "dead"):
        np.testing.assert_array_equal(getattr(fast, field), getattr(slow, field))
    ref = m.toarray().astype(np.float64)
    np.testing.assert_allclose(fast.mean, ref.mean(axis=0), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(fast.dead, ref.std(axis=0) == 0)
