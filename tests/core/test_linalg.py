"""The SVD fallback: gesvd when gesdd does not converge, the same decomposition either way."""

import numpy as np

from featgeom_tda.core import _linalg


def test_svd_retries_with_gesvd_when_gesdd_fails(monkeypatch):
    rng = np.random.default_rng(0)
    M = rng.normal(size=(40, 12)) * np.logspace(0, 12, 12)  # ill-conditioned columns
    U0, s0, Vt0 = np.linalg.svd(M, full_matrices=False)

    def fails(*args, **kwargs):
        raise np.linalg.LinAlgError("SVD did not converge")

    monkeypatch.setattr(_linalg.np.linalg, "svd", fails)
    U, s, Vt = _linalg.svd(M)
    np.testing.assert_allclose(s, s0, rtol=1e-10)
    np.testing.assert_allclose((U * s) @ Vt, M, rtol=1e-9, atol=1e-9 * np.abs(M).max())
    np.testing.assert_allclose(_linalg.svd(M, compute_uv=False), s0, rtol=1e-10)
    assert U.shape == U0.shape and Vt.shape == Vt0.shape
