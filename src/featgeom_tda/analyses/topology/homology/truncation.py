"""Certified truncation of a Rips filtration (``threshold="auto"``): the threshold search and its cone certificate.

Rows of an SAE decoder are nearly orthogonal, so almost all distances sit close together and a full Rips
run spends most of its time above the scale where anything happens. The filtration is therefore computed
up to a threshold ``t`` and the truncation is accepted only when it provably equals the full diagram
(maxdim <= 1). The first ``t`` is the larger of the longest edge of a minimum spanning tree (below it the
complex is not connected) and the last finite death on a random half of the points (computed the same
way, recursively; a denser cloud usually finishes earlier); further tries go up through quantiles of the
distances. Conditions:

1. at ``t`` the complex is connected (one infinite H0 bar) and has no H1 class alive (no infinite H1 bar);
2. every edge ``uv`` with length ``>= t`` has a cone point ``w`` with ``max(d(u,w), d(v,w)) < d(u,v)``.

Under (2) adding ``uv`` together with the triangle ``uvw`` is an elementary expansion, so no H1 class is
born after ``t``; further triangles can only kill classes and by (1) there are none. Hence every bar of
dimension <= 1 is already finished at ``t``. Condition (2) is checked by a compiled scan over the edges:
a common neighbour in the graph ``d < s`` at the largest of 16 scales ``s <= d(u,v)`` (neighbourhood
bitsets), else an exact search over all ``w``. If the check fails the threshold is raised; the last
resort is the full filtration. The random half that suggests the first ``t`` is not certified: it only
proposes a threshold, and the full cloud's run is the one checked.
"""

from __future__ import annotations

import functools
import logging
import math

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["certified_run", "cone_certificate", "longest_mst_edge"]

AUTO_MIN_POINTS = 300
AUTO_QUANTILES = (0.02, 0.05, 0.1, 0.2, 0.4)


def certified_run(dist: np.ndarray, run, *, maxdim: int, seed: int, certify: bool = True):
    """Truncated runs at increasing distance quantiles until one is certified exact (module notes).

    ``certify=False`` (the random half that only suggests the first threshold) stops at the first run
    with no class alive, without the cone condition.
    """
    n = dist.shape[0]
    rng = np.random.default_rng(seed)
    m = min(400_000, n * (n - 1) // 2)
    i = rng.integers(0, n, size=m)
    j = rng.integers(0, n, size=m)
    keep = i != j
    sample = dist[i[keep], j[keep]]
    # below the longest minimum-spanning-tree edge the complex is disconnected: start there, or higher at
    # the last death of a random half of the points (denser clouds finish earlier, so this is usually enough)
    first = longest_mst_edge(dist)
    if n > 2 * AUTO_MIN_POINTS:
        half = np.sort(rng.choice(n, size=n // 2, replace=False))
        (sub, _), _, _ = certified_run(dist[np.ix_(half, half)], run, maxdim=maxdim, seed=seed + 1, certify=False)
        deaths = np.concatenate([d[np.isfinite(d[:, 1]), 1] for d in sub])
        if deaths.size:
            first = max(first, float(np.float32(deaths.max())))
    levels = [first] + [float(v) for v in np.unique(np.quantile(sample, AUTO_QUANTILES).astype(np.float32)) if v > first]
    for t in levels:
        dgms, engine_used = run(dist, t)
        n_inf = [int(np.isinf(d[:, 1]).sum()) for d in dgms]
        if n_inf[0] != 1 or (maxdim >= 1 and n_inf[1] != 0):
            logger.debug("auto threshold %.4g: %s classes alive, raising the threshold", t, n_inf)
            continue
        if not certify:
            return (dgms, engine_used), t, False
        if maxdim == 0 or cone_certificate(dist, t, seed=seed):
            logger.debug("auto threshold %.4g certified exact", t)
            return (dgms, engine_used), t, True
        logger.debug("auto threshold %.4g: cone condition not certified, raising the threshold", t)
    logger.debug("auto threshold: running the full filtration")
    return run(dist, math.inf), math.inf, True


def longest_mst_edge(dist: np.ndarray) -> float:
    """Longest edge of a minimum spanning tree (Prim, O(n^2)): the last H0 death."""
    n = dist.shape[0]
    best = dist[0].astype(np.float64)
    in_tree = np.zeros(n, dtype=bool)
    in_tree[0] = True
    best[0] = np.inf
    longest = 0.0
    for _ in range(n - 1):
        j = int(np.argmin(best))
        longest = max(longest, float(best[j]))
        in_tree[j] = True
        np.minimum(best, dist[j], out=best)
        best[in_tree] = np.inf
    return float(np.float32(longest))


def cone_certificate(dist: np.ndarray, t: float, *, n_scales: int = 16, seed: int = 0) -> bool:
    """True if every edge uv with d(u,v) >= t has a w with max(d(u,w), d(v,w)) < d(u,v).

    Each edge of length L is first tested for a common neighbour in the graph {d < s}, s the largest of
    ``n_scales`` scales (t and quantiles of the distances above it) with s <= L: bitsets of the
    neighbourhoods, one AND per 64 points. An edge without one gets the exact search over all w. The scan
    stops at the first edge that has no cone point.
    """
    n = dist.shape[0]
    t32 = np.float32(t)
    rng = np.random.default_rng(seed)
    m = min(400_000, n * n)
    sample = dist[rng.integers(0, n, size=m), rng.integers(0, n, size=m)]
    above = sample[sample >= t32]
    inner = np.quantile(above, np.linspace(0, 1, n_scales)[1:-1]) if above.size else []
    scales = np.unique(np.append(np.asarray(inner, dtype=np.float32), t32))
    scales = scales[scales >= t32]
    bits = _neighbourhood_bits(dist, scales)
    kernel = _cone_kernel()
    return bool(kernel(dist, t32, scales, bits))


def _neighbourhood_bits(dist: np.ndarray, scales: np.ndarray, *, block: int = 1024) -> np.ndarray:
    """uint64 (n_scales, n, ceil(n / 64)): bit w of row u at scale s is set when d(u, w) < s and w != u."""
    n = dist.shape[0]
    words = (n + 63) // 64
    out = np.zeros((scales.size, n, words * 8), dtype=np.uint8)
    for k, s in enumerate(scales):
        for b0 in range(0, n, block):
            blk = dist[b0 : b0 + block] < s
            rows = np.arange(b0, b0 + blk.shape[0])
            blk[rows - b0, rows] = False
            out[k, b0 : b0 + blk.shape[0], : (n + 7) // 8] = np.packbits(blk, axis=1, bitorder="little")
    return out.view(np.uint64)


@functools.lru_cache(maxsize=1)
def _cone_kernel():
    """The compiled cone-point scan ``(dist, t, scales, bits) -> bool`` (numba, parallel over rows).

    Built once per process; numba's on-disk cache keeps the machine code between processes.
    """
    from featgeom_tda.core._numba import configure_numba

    numba = configure_numba()
    prange = numba.prange

    def cone_scan(dist, t, scales, bits):  # pragma: no cover - compiled by numba
        n = dist.shape[0]
        n_scales = scales.shape[0]
        words = bits.shape[2]
        failed = np.zeros(1, dtype=np.bool_)
        for u in prange(n):
            if failed[0]:
                continue
            for v in range(u + 1, n):
                length = dist[u, v]
                if length < t:
                    continue
                k = n_scales - 1
                while k > 0 and scales[k] > length:
                    k -= 1
                found = False
                for w in range(words):
                    if bits[k, u, w] & bits[k, v, w]:
                        found = True
                        break
                if not found:
                    for w in range(n):
                        if w != u and w != v and dist[u, w] < length and dist[v, w] < length:
                            found = True
                            break
                if not found:
                    failed[0] = True
                    break
        return not failed[0]

    return numba.njit(parallel=True, cache=True, nogil=True)(cone_scan)
