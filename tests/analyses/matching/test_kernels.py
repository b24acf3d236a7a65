"""The fused kernel factory: compiled once per process, exact, and without rebinding module globals."""

from __future__ import annotations

import numpy as np
import pytest

from analyses.matching.helpers import check_against_reference, random_sparse
from featgeom_tda.analyses.matching import kernels, top_correlations

pytest.importorskip("numba")


def test_factory_is_cached_and_leaves_module_globals_alone():
    before = {name: kernels.__dict__[name] for name in ("_prange", "_thread_id", "_prefetch", "_push")}
    first = kernels.fused_kernel()
    assert kernels.fused_kernel() is first
    after = {name: kernels.__dict__[name] for name in before}
    assert after == before  # the plain-Python bindings are untouched by compiling
    assert kernels._prange is range


def test_fused_method_is_exact_after_compiling():
    rng = np.random.default_rng(3)
    a, b = random_sparse(rng, 300, 20, 0.08), random_sparse(rng, 300, 25, 0.08)
    result = top_correlations(a, b, k=4, method="fused")
    assert result.method == "fused"
    check_against_reference(result, a, b, 4)
