"""The Ray engine against the local path: same matching, same nulls, bitwise-equal stores, retried workers.

One local Ray cluster (2 CPUs) for the module. Every distributed result is compared with the local function on
the same inputs (indices equal, values equal to 1e-12 or bitwise), for several block counts, so that the
result is seen not to depend on how the work is split.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

ray = pytest.importorskip("ray")

from conftest import TINY_HOOK_1L, TINY_HOOK_2L  # noqa: E402

from featgeom_tda.analyses.geometry.baselines import permutation_test  # noqa: E402
from featgeom_tda.analyses.matching import match_features, top_correlations  # noqa: E402
from featgeom_tda.core.types import FeatureActivations  # noqa: E402
from featgeom_tda.distributed import (  # noqa: E402
    ray_extract_activations,
    ray_match_features,
    ray_permutation_test,
    ray_top_correlations,
)
from featgeom_tda.distributed.nulls import block_states  # noqa: E402
from featgeom_tda.extraction.activations import (  # noqa: E402
    ActivationSource,
    extract_activations,
    tokenize_documents,
)


@pytest.fixture(scope="module", autouse=True)
def local_cluster():
    if ray.is_initialized():
        ray.shutdown()
    # functions of this module (the fault hook) travel by value: workers cannot import the test module
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"OMP_WAIT_POLICY": "passive"}})
    yield
    ray.shutdown()
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _sparse_pair(n=1500, na=120, nb=90, seed=0, negative=False):
    """Sparse SAE-like activations with shared structure, a few dead columns and exact ties."""
    rng = np.random.default_rng(seed)
    a = sp.random(n, na, density=0.05, random_state=rng, data_rvs=lambda size: rng.exponential(size=size), format="csr")
    mix = sp.random(na, nb, density=0.03, random_state=rng, format="csr")
    b = (a @ mix + sp.random(n, nb, density=0.04, random_state=rng, data_rvs=lambda size: rng.exponential(size=size))).tocsr()
    a, b = a.tolil(), b.tolil()
    a[:, 3] = 0  # dead columns
    b[:, 5] = 0
    b[:, 7] = b[:, 8]  # a tie: two identical B columns
    a, b = a.tocsr(), b.tocsr()
    if negative:
        a.data[::7] *= -1
    return a, b


def _same_top(dist, local):
    np.testing.assert_array_equal(dist.indices, local.indices)
    np.testing.assert_allclose(dist.values, local.values, rtol=0, atol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(dist.dead_a, local.dead_a)
    np.testing.assert_array_equal(dist.dead_b, local.dead_b)
    assert (dist.n_rows, dist.method) == (local.n_rows, local.method)


# ---------------------------------------------------------------------------------------------------- matching
@pytest.mark.parametrize("method", ["fused", "scipy", "dense"])
def test_top_correlations_equal_the_local_path_for_any_blocks(method):
    a, b = _sparse_pair(negative=method == "dense")
    local = top_correlations(a, b, k=4, method=method)
    for split in ({"n_blocks": 1}, {"n_blocks": 3}, {"block_size": 17}):
        _same_top(ray_top_correlations(a, b, k=4, method=method, **split), local)


def test_block_correlations_are_the_global_ones():
    """A block whose columns alone would have other stats (here: all of A's negative values lie outside it)
    still gets the global method and the global correlations."""
    a, b = _sparse_pair(negative=True)
    a = a.tolil()
    a[:, 60:] = abs(a[:, 60:].toarray())  # columns 60.. non-negative: per-block stats would pick "fused"
    a = a.tocsr()
    local = top_correlations(a, b, k=3)
    dist = ray_top_correlations(a, b, k=3, block_size=60)
    _same_top(dist, local)
    assert dist.method == "dense"
    # and against an independent float64 computation of the best partner
    da, db = a.toarray(), b.toarray()
    za = (da - da.mean(0)) / np.where(da.std(0) > 0, da.std(0), 1)
    zb = (db - db.mean(0)) / np.where(db.std(0) > 0, db.std(0), 1)
    corr = za.T @ zb / da.shape[0]
    corr[:, db.std(0) == 0] = -np.inf
    live = da.std(0) > 0
    np.testing.assert_allclose(dist.values[live, 0], corr[live].max(1), atol=1e-6)


@pytest.mark.parametrize("mode", ["one-to-one", "many-to-one", "mutual", "optimal"])
def test_match_features_equal_the_local_path(mode):
    a, b = _sparse_pair(seed=1)
    tokens = np.random.default_rng(2).integers(0, 12, size=a.shape[0])
    fa, fb = FeatureActivations(a, token_ids=tokens), FeatureActivations(b, token_ids=tokens)
    options = dict(mode=mode, top_k=4, threshold=0.05, exclude_tokens=[0, 1], require_same_token=True)
    local = match_features(fa, fb, **options)
    dist = ray_match_features(fa, fb, n_blocks=3, **options)
    np.testing.assert_array_equal(dist.index_a, local.index_a)
    np.testing.assert_array_equal(dist.index_b, local.index_b)
    np.testing.assert_allclose(dist.correlation, local.correlation, rtol=0, atol=1e-12)
    assert dist.filtered == local.filtered
    assert dist.config == local.config
    assert len(local.index_a) > 5


# ---------------------------------------------------------------------------------------------------- nulls
def test_block_states_continue_the_one_stream():
    rng = np.random.default_rng(7)
    want = [rng.permutation(11) for _ in range(10)]
    blocks = [(0, 3), (3, 4), (4, 10)]
    got = []
    for (lo, hi), state in zip(blocks, block_states(7, 11, blocks)):
        g = np.random.Generator(np.random.PCG64())
        g.bit_generator.state = state
        got += [g.permutation(11) for _ in range(hi - lo)]
    np.testing.assert_array_equal(np.array(got), np.array(want))


def _corr_metric(X, Y):
    return float(np.corrcoef(X[:, 0], Y[:, 0])[0, 1])


@pytest.mark.parametrize(
    "metric, options",
    [("cka", {}), ("svcca", {"n_components": 3}), ("knn_jaccard", {"k": 4}), (_corr_metric, {})],
)
def test_permutation_nulls_equal_the_local_null_for_any_blocks(metric, options):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 6))
    Y = X @ rng.normal(size=(6, 5)) + 0.5 * rng.normal(size=(40, 5))
    local = permutation_test(metric, X, Y, n_permutations=23, seed=11, **options)
    for split in ({"n_blocks": 1}, {"n_blocks": 2}, {"block_size": 5}):
        dist = ray_permutation_test(metric, X, Y, n_permutations=23, seed=11, **split, **options)
        np.testing.assert_array_equal(dist.null, local.null)
        assert dist.to_dict() == local.to_dict()


# ---------------------------------------------------------------------------------------------------- extraction
@pytest.fixture(scope="module")
def dataset(tiny_tokenizer, tiny_texts):
    return tokenize_documents(tiny_tokenizer, tiny_texts, max_length=12, dataset_name="tiny")


@pytest.fixture(scope="module")
def sources(tiny_model_1l, tiny_sae_1l, tiny_model_2l, tiny_sae_2l):
    return [
        ActivationSource("one", tiny_model_1l, TINY_HOOK_1L, tiny_sae_1l),
        ActivationSource("two", tiny_model_2l, TINY_HOOK_2L, tiny_sae_2l),
    ]


@contextlib.contextmanager
def torch_threads(n):
    """CPU float sums depend on the number of torch threads; the local runs use the actors' one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, sources, dataset):
    out = tmp_path_factory.mktemp("reference")
    with torch_threads(1):
        extract_activations(sources, dataset, out, batch_size=3, progress=False)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def _fault(marker: str):
    """A forward hook that kills its process the first time it runs (the marker file records that)."""

    def hook(module, inputs, output):
        if not os.path.exists(marker):
            Path(marker).touch()
            os._exit(1)

    return hook


def test_extraction_stores_are_bitwise_equal_and_a_killed_worker_is_retried(tmp_path, sources, dataset, reference):
    marker = tmp_path / "killed-once"
    sae = copy.deepcopy(sources[0].sae)  # the same weights (same fingerprint); its copy dies once
    sae.hook_sae_acts_post.register_forward_hook(_fault(str(marker)))
    faulty = [ActivationSource("one", sources[0].model, TINY_HOOK_1L, sae), sources[1]]
    out = tmp_path / "ray"
    stores = ray_extract_activations(faulty, dataset, out, batch_size=3, n_workers=2, max_retries=2)
    assert marker.exists()  # a worker did die in the middle of a batch
    assert all(s.complete for s in stores.values())
    ref = _files(reference)
    assert len(ref) > 6 and _files(out) == ref


def test_extraction_resumes_a_partial_local_store_per_shard(tmp_path, sources, dataset, reference):
    out = tmp_path / "resumed"
    with torch_threads(1):
        extract_activations(sources, dataset, out, batch_size=3, max_batches=1, progress=False)
    written = []
    ray_extract_activations(sources, dataset, out, batch_size=3, n_workers=1,
                            on_shard=lambda name, b: written.append((name, b)))
    assert written[:2] == [("one", 1), ("two", 1)]  # continues after the last complete shard
    assert _files(out) == _files(reference)
