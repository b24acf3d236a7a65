"""Permutation nulls on Ray, sharded by blocks of permutations of the run seed's one stream.

The local :func:`~featgeom_tda.analyses.geometry.baselines.permutation_test` draws permutation ``i`` as the
``i``-th ``rng.permutation(n)`` of ``rng = np.random.default_rng(seed)``. Here the driver walks that same
stream once (drawing a permutation costs O(n), far less than scoring it) and records the generator's state
at the start of every block; each task restores its state and draws its block's permutations, so permutation
``i`` is the local permutation ``i`` whatever the number of blocks or workers, and the null is the local null.
The blocks depend on ``n_blocks`` / ``block_size`` only through which task scores which permutation.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable

import numpy as np

from featgeom_tda.analyses.geometry import baselines as _baselines
from featgeom_tda.analyses.geometry.baselines import PermutationResult
from featgeom_tda.distributed._ray import cluster_cpus, connect, split_blocks, task_options

__all__ = ["ray_permutation_test", "block_states"]

log = logging.getLogger(__name__)


def block_states(seed: int, n: int, blocks: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """The bit-generator state of ``np.random.default_rng(seed)`` at the first permutation of every block
    (blocks contiguous from 0), found by drawing the permutations of range(n) in order."""
    rng = np.random.default_rng(seed)
    states = []
    drawn = 0
    for lo, hi in blocks:
        if lo != drawn:
            raise ValueError(f"blocks must be contiguous from 0; block starting at {lo} follows {drawn}")
        states.append(rng.bit_generator.state)
        for _ in range(hi - lo):
            rng.permutation(n)
        drawn = hi
    return states


def _generator(state: dict[str, Any]) -> np.random.Generator:
    bit = getattr(np.random, state["bit_generator"])()
    bit.state = state
    return np.random.Generator(bit)


def _null_block(
    metric: str | Callable[..., float], X: np.ndarray, Y: np.ndarray, use_fast: bool, options: dict[str, Any],
    state: dict[str, Any], count: int,
) -> np.ndarray:
    """One task: the null scores of ``count`` permutations drawn from ``state`` (X, Y already rescaled)."""
    spec = _baselines._resolve(metric)
    if use_fast:
        evaluate = spec.fast(X, Y, **options)
    else:

        def evaluate(perm: np.ndarray) -> float:
            return float(spec.func(X, Y[perm], **options))

    rng = _generator(state)
    n = X.shape[0]
    out = np.empty(count, dtype=np.float64)
    for i in range(count):
        out[i] = evaluate(rng.permutation(n))
    return out


@functools.lru_cache(maxsize=None)
def _remote_null_block(ray: Any) -> Any:
    return ray.remote(_null_block)


def ray_permutation_test(
    metric: str | Callable[..., float],
    X: Any,
    Y: Any,
    /,
    *,
    n_permutations: int = 1000,
    seed: int = 0,
    method: str = "auto",
    n_blocks: int | None = None,
    block_size: int | None = None,
    address: str | None = None,
    num_cpus_per_task: float = 1,
    max_retries: int = 3,
    **metric_kwargs: Any,
) -> PermutationResult:
    """:func:`~featgeom_tda.analyses.geometry.baselines.permutation_test` with the null scored on Ray.

    Args:
        metric, X, Y, n_permutations, seed, method, **metric_kwargs: as in ``permutation_test``.
        n_blocks: number of tasks (default: one per cluster CPU), or ``block_size`` permutations per task.
        address: Ray address; None uses the running session or starts a local one.
        num_cpus_per_task, max_retries: resources of a task, and Ray retries of a task whose worker died.

    Returns:
        The :class:`PermutationResult` of the local function for the same seed: the same permutations in the
        same order, scored by the same scorer, so the same null (and score, p-value, method, details) for any
        ``n_blocks`` and any number of workers. Each task builds the scorer once (the fast path's one-time
        work, e.g. an SVD or centred Gram matrices) for its block.
    """
    test = _baselines.prepare_permutation_test(metric, X, Y, n_permutations=n_permutations, seed=seed, method=method,
                                               **metric_kwargs)
    n = test.X.shape[0]
    ray = connect(address)
    blocks = split_blocks(test.n_permutations, n_blocks=n_blocks, block_size=block_size,
                          default_blocks=cluster_cpus(ray))
    states = block_states(test.seed, n, blocks)
    remote = _remote_null_block(ray).options(**task_options(num_cpus=num_cpus_per_task, num_gpus=0,
                                                            max_retries=max_retries))
    x_ref, y_ref = ray.put(test.X), ray.put(test.Y)
    # a named metric (or one with a fast path) is resolved again in the task
    key = test.spec.name if isinstance(metric, str) or test.spec.fast is not None else metric
    log.info("permutation null on Ray: %d permutations of %d rows in %d blocks", test.n_permutations, n, len(blocks))
    refs = [remote.remote(key, x_ref, y_ref, test.use_fast, dict(metric_kwargs), st, hi - lo)
            for (lo, hi), st in zip(blocks, states)]
    return test.result(np.concatenate(ray.get(refs)))
