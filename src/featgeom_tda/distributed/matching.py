"""Correlation matching on Ray, sharded by blocks of A's features.

Every task gets A and B whole (each put into the object store once per direction, shared zero-copy by the
workers of a node), cuts its own contiguous block of A's columns out of A (so the driver does no per-block
work and sends no per-block copies), and runs the package's own :func:`~featgeom_tda.analyses.matching.top.top_from_stats` on it with the
column statistics of the FULL matrices (sliced to the block), so that a block's correlations are the global
ones: the mean, sd and dead flag of a column depend on that column alone, and the choice of method
(``nonnegative``) is made on the whole matrices, as locally. Each A feature's top-k is computed from its own
column and B only, so the merged rows are the local rows, value for value. :func:`ray_match_features` then
runs the pairing of :func:`~featgeom_tda.analyses.matching.match_features` on the merged candidates.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection, Sequence
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from featgeom_tda.analyses.matching.assignment import match_with_top
from featgeom_tda.analyses.matching.stats import Stats, column_stats, prepared
from featgeom_tda.analyses.matching.top import CORRELATION_METHODS, TopCorrelations, top_from_stats
from featgeom_tda.core._validation import (
    check_choice,
    check_number,
    check_positive_int,
    check_same_rows,
)
from featgeom_tda.core.types import FeatureMatching
from featgeom_tda.distributed._ray import cluster_cpus, connect, split_blocks, task_options

__all__ = ["ray_top_correlations", "ray_match_features"]

log = logging.getLogger(__name__)


def _block_stats(s: Stats, lo: int, hi: int) -> Stats:
    """The statistics of columns [lo, hi) of the full matrix (``nonnegative`` stays the full matrix's)."""
    return Stats(mean=s.mean[lo:hi], sd=s.sd[lo:hi], dead=s.dead[lo:hi], nonnegative=s.nonnegative)


def _top_block(
    ma: sp.csr_matrix, lo: int, hi: int, mb: sp.csr_matrix, sa_block: Stats, sb: Stats, options: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, str]:
    """One task: top-k of A's columns [lo, hi) against all of B (values float32, indices, method)."""
    top = top_from_stats(ma[:, lo:hi], mb, sa_block, sb, progress=False, **options)
    return top.values, top.indices, top.method


@functools.lru_cache(maxsize=None)
def _remote_top_block(ray: Any) -> Any:
    return ray.remote(_top_block)


def _distributed_top(
    ma: sp.csr_matrix,
    mb: sp.csr_matrix,
    sa: Stats,
    sb: Stats,
    *,
    k: int,
    n_blocks: int | None,
    block_size: int | None,
    address: str | None,
    chunk_size: int | None,
    device: Any,
    method: str,
    num_cpus_per_task: float,
    num_gpus_per_task: float,
    max_retries: int,
) -> TopCorrelations:
    """Top correlations of checked CSR matrices with their full column stats, by blocks of A's columns."""
    na = ma.shape[1]
    ray = connect(address)
    workers = max(1, int(cluster_cpus(ray) // max(num_cpus_per_task, 1e-9)))
    blocks = split_blocks(na, n_blocks=n_blocks, block_size=block_size, default_blocks=workers)
    options = dict(k=k, chunk_size=chunk_size, device=device, n_jobs=max(1, int(num_cpus_per_task)), method=method)
    if na == 0:  # nothing to shard; the local function gives the (empty) result and its checks
        return top_from_stats(ma, mb, sa, sb, progress=False, **options)
    remote = _remote_top_block(ray).options(
        **task_options(num_cpus=num_cpus_per_task, num_gpus=num_gpus_per_task, max_retries=max_retries)
    )
    ma_ref, mb_ref, sb_ref = ray.put(ma), ray.put(mb), ray.put(sb)
    log.info("top correlations on Ray: %d x %d features in %d blocks over %d workers", na, mb.shape[1],
             len(blocks), workers)
    refs = [remote.remote(ma_ref, lo, hi, mb_ref, _block_stats(sa, lo, hi), sb_ref, options) for lo, hi in blocks]
    parts = ray.get(refs)
    values = np.concatenate([p[0] for p in parts], axis=0)
    indices = np.concatenate([p[1] for p in parts], axis=0)
    return TopCorrelations(values=values, indices=indices, dead_a=sa.dead, dead_b=sb.dead, n_rows=ma.shape[0],
                           method=parts[0][2])


def _checked_engine(num_cpus_per_task: Any, num_gpus_per_task: Any) -> tuple[float, float]:
    cpus = check_number(num_cpus_per_task, "num_cpus_per_task", low=0.0)
    gpus = check_number(num_gpus_per_task, "num_gpus_per_task", low=0.0)
    if cpus <= 0 and gpus <= 0:
        raise ValueError("num_cpus_per_task and num_gpus_per_task are both 0; a task needs some resource")
    return float(cpus), float(gpus)


def ray_top_correlations(
    acts_a: Any,
    acts_b: Any,
    *,
    k: int = 1,
    n_blocks: int | None = None,
    block_size: int | None = None,
    address: str | None = None,
    chunk_size: int | None = None,
    device: Any = None,
    method: Literal["auto", "fused", "scipy", "dense"] = "auto",
    num_cpus_per_task: float = 1,
    num_gpus_per_task: float = 0,
    max_retries: int = 3,
) -> TopCorrelations:
    """:func:`~featgeom_tda.analyses.matching.top_correlations` on a Ray cluster, by blocks of A's features.

    Args:
        acts_a, acts_b, k, chunk_size, device, method: as in ``top_correlations`` (``device`` is the device of
            each task, e.g. "cuda" with ``num_gpus_per_task=1``).
        n_blocks: number of tasks (default: one per worker, i.e. cluster CPUs / ``num_cpus_per_task``);
            or ``block_size``: A features per task. Not both.
        address: Ray address (``"auto"``, ``"ray://host:10001"``); None uses the running session or starts a
            local one.
        num_cpus_per_task, num_gpus_per_task: resources of each task; a task runs ``int(num_cpus_per_task)``
            threads (at least 1).
        max_retries: Ray retries of a task whose worker died.

    Returns:
        The :class:`TopCorrelations` of the local path: same indices, same float32 values, same dead flags.
        Memory per task: A and B (CSR, shared through the object store) + its block of A (as a CSR slice and as
        CSC inside the kernel) + the block's (n_block, k) result + O(threads x n_b) scratch.
    """
    k = check_positive_int(k, "k")
    if chunk_size is not None:
        chunk_size = check_positive_int(chunk_size, "chunk_size")
    check_choice(method, "method", CORRELATION_METHODS)
    cpus, gpus = _checked_engine(num_cpus_per_task, num_gpus_per_task)
    a = prepared(acts_a, "acts_a")
    b = prepared(acts_b, "acts_b")
    check_same_rows(a.matrix, "acts_a", b.matrix, "acts_b", what="the two activation sets")
    sa, sb = column_stats(a.matrix), column_stats(b.matrix)
    return _distributed_top(
        a.matrix, b.matrix, sa, sb, k=k, n_blocks=n_blocks, block_size=block_size, address=address,
        chunk_size=chunk_size, device=device, method=method, num_cpus_per_task=cpus, num_gpus_per_task=gpus,
        max_retries=max_retries,
    )


def ray_match_features(
    acts_a: Any,
    acts_b: Any,
    *,
    mode: Literal["one-to-one", "many-to-one", "mutual", "optimal"] = "one-to-one",
    threshold: float | None = None,
    top_k: int = 5,
    exclude_tokens: str | Collection[int] | Collection[str] | None = None,
    token_strings: Sequence[str] | None = None,
    require_same_token: bool = False,
    n_top_tokens: int = 5,
    n_blocks: int | None = None,
    block_size: int | None = None,
    address: str | None = None,
    chunk_size: int | None = None,
    device: Any = None,
    method: Literal["auto", "fused", "scipy", "dense"] = "auto",
    num_cpus_per_task: float = 1,
    num_gpus_per_task: float = 0,
    max_retries: int = 3,
) -> FeatureMatching:
    """:func:`~featgeom_tda.analyses.matching.match_features` with the top correlations of both directions
    computed on Ray (:func:`ray_top_correlations`); the pairing, filters and ``filtered`` counts are those of
    the local function, on the same candidates, so the matching is the same pair for pair.

    Options as in ``match_features`` and :func:`ray_top_correlations` (``n_blocks`` / ``block_size`` count
    features of the direction being computed).
    """
    if chunk_size is not None:
        chunk_size = check_positive_int(chunk_size, "chunk_size")
    check_choice(method, "method", CORRELATION_METHODS)
    cpus, gpus = _checked_engine(num_cpus_per_task, num_gpus_per_task)
    common = dict(n_blocks=n_blocks, block_size=block_size, address=address, chunk_size=chunk_size, device=device,
                  method=method, num_cpus_per_task=cpus, num_gpus_per_task=gpus, max_retries=max_retries)

    def top(x: Any, y: Any, sx: Any, sy: Any, k: int) -> Any:
        return _distributed_top(x, y, sx, sy, k=k, **common)

    return match_with_top(
        top, acts_a, acts_b, mode=mode, threshold=threshold, top_k=top_k, exclude_tokens=exclude_tokens,
        token_strings=token_strings, require_same_token=require_same_token, n_top_tokens=n_top_tokens,
    )
