"""The torch path of top_correlations (run on the CPU) against a float64 dense computation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from featgeom_tda.analyses.matching import TopCorrelations, match_features, top_correlations
from featgeom_tda.core.types import FeatureActivations, FeatureMatching, Provenance
from analyses.matching.helpers import METHODS, check_against_reference, dense_reference, random_sparse, with_dead_columns


@pytest.mark.parametrize("k", [1, 4])
def test_torch_path_on_cpu_matches_reference(sparse_pair, k):
    a, b = sparse_pair
    result = top_correlations(a, b, k=k, device="cpu", chunk_size=8)
    check_against_reference(result, a, b, k)
    assert result.method == "torch:cpu"


def test_unavailable_cuda_device_is_a_clear_error(sparse_pair):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is available here")
    a, b = sparse_pair
    with pytest.raises(ValueError, match="torch.cuda.is_available"):
        top_correlations(a, b, device="cuda")
