"""The size of a Vietoris-Rips run above H1 before it starts: simplex counts, memory, time, and the refusal.

A run up to ``maxdim`` reduces, in each dimension ``d <= maxdim``, one column per ``d``-simplex (a clique of
``d + 1`` points) of diameter at most the truncation ``t``: a user threshold, or for a full run the enclosing
radius (the smallest largest distance of a point; above it the complex is a cone and the engines stop
there). Each column's coboundary scans the ``n`` points. On clouds of nearly orthogonal directions almost
every edge is below the enclosing radius, so there are about C(n, maxdim + 1) columns: 300 points at
maxdim 4 have about 10^10, which the n^2 terms of the memory formula (engines module) do not see.

Counts, from the graph ``G`` of edges ``d(u, v) <= t``:

- bound: with the points ordered by degree, a clique is counted at its first point, whose later neighbours
  hold the rest, so N_d <= sum_v C(deg+(v), d). Exact when each later neighbourhood is a clique.
- estimate: that bound times the share of draws (v with weight C(deg+(v), d), then d later neighbours of v
  uniformly) that are cliques of ``G``: unbiased, 4,000 draws.

Cost (one thread), fitted to giotto-ph runs on random unit vectors here (n = 60-1,000, maxdim 2-4)::

    memory  +8 bytes per column of dimension maxdim      (measured 0.8-9.8 bytes per column, fixed pool included)
    time    n * sum_d c_d N_d seconds, c_d = 0.5 ns * 2.5^(d - 2) for d >= 2, 0.5 ns for d = 1

Measured against predicted time: 0.45-1.17 over ten runs of 0.7-76 s (1,000 points at maxdim 2: 76 s
against 81 s). The counts agree with gudhi's explicit complex to within 2% (tests). Runs with maxdim <= 1
are covered by the n^2 formula of the engines module (edges are at most n^2 / 2) and are not checked here.
"""

from __future__ import annotations

import logging
import math

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["simplex_counts", "run_cost", "check_run_cost", "enclosing_radius"]

BYTES_PER_COLUMN = 8
_NS_PER_SCAN = 0.5
_GROWTH_PER_DIM = 2.5
_N_DRAWS = 4000
_BLOCK_BYTES = 64 * 2**20


def enclosing_radius(dist: np.ndarray) -> float:
    """The smallest largest distance of a point: a full Rips run stops there (the complex is a cone above)."""
    return float(dist.max(axis=1).min()) if dist.shape[0] else 0.0


def full_counts(n: int, maxdim: int) -> np.ndarray:
    """float64 (maxdim + 1,): the number of d-simplices of the complete complex on n points, C(n, d + 1)."""
    return np.array([float(math.comb(n, d + 1)) for d in range(maxdim + 1)])


def simplex_counts(dist: np.ndarray, t: float, maxdim: int, *, seed: int = 0, n_draws: int = _N_DRAWS) -> np.ndarray:
    """float64 (maxdim + 1,): estimated number of d-simplices with diameter <= ``t`` (module notes).

    Dimensions 0 and 1 are exact (points, edges); higher ones are the degree-ordered clique bound times the
    clique share of ``n_draws`` weighted draws.
    """
    n = dist.shape[0]
    t32 = np.float32(t) if dist.dtype == np.float32 else t
    rows = max(1, _BLOCK_BYTES // max(1, n))
    degree = np.empty(n, dtype=np.int64)
    for b0 in range(0, n, rows):
        degree[b0 : b0 + rows] = np.count_nonzero(dist[b0 : b0 + rows] <= t32, axis=1) - 1
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort((np.arange(n), degree))] = np.arange(n)
    forward = np.empty(n, dtype=np.int64)
    for b0 in range(0, n, rows):
        blk = (dist[b0 : b0 + rows] <= t32) & (rank[None, :] > rank[b0 : b0 + rows, None])
        forward[b0 : b0 + rows] = np.count_nonzero(blk, axis=1)
    counts = np.zeros(maxdim + 1)
    counts[0] = n
    if maxdim >= 1:
        counts[1] = float(forward.sum())
    rng = np.random.default_rng(seed)
    for d in range(2, maxdim + 1):
        weights = np.array([float(math.comb(int(f), d)) for f in forward])
        bound = float(weights.sum())
        if bound == 0.0:
            break
        picks, times = np.unique(rng.choice(n, size=n_draws, p=weights / bound), return_counts=True)
        hits = 0
        for v, k in zip(picks, times):
            nbrs = np.flatnonzero((dist[v] <= t32) & (rank > rank[v]))
            for _ in range(int(k)):
                s = rng.choice(nbrs, size=d, replace=False)
                hits += bool((dist[np.ix_(s, s)] <= t32).all())
        counts[d] = bound * max(hits, 1) / n_draws  # at least one draw's worth: a zero is never certain
    return counts


def run_cost(n: int, counts: np.ndarray) -> tuple[float, float]:
    """(extra bytes, seconds on one thread) of a run with ``counts[d]`` d-simplices (module notes)."""
    maxdim = len(counts) - 1
    extra = BYTES_PER_COLUMN * float(counts[maxdim]) if maxdim >= 2 else 0.0
    ns = sum(_NS_PER_SCAN * _GROWTH_PER_DIM ** max(0, d - 2) * float(counts[d]) for d in range(1, maxdim + 1))
    return extra, n * ns * 1e-9


def check_run_cost(
    dist: np.ndarray,
    *,
    maxdim: int,
    threshold: float | None,
    memory_left_bytes: float,
    memory_budget_gb: float,
    time_budget_s: float | None,
    seed: int = 0,
) -> tuple[float, float]:
    """Refuse (ValueError) a run above H1 whose simplex count breaks ``memory_left_bytes`` or ``time_budget_s``.

    ``threshold``: the user's truncation, or None for a full run (truncated at the enclosing radius).
    The cheap worst case (every clique present) is tried first; the distances are counted only when it
    does not fit. Returns (extra bytes, seconds) of the estimate used. The message names maxdim, the number
    of points, the estimate and what would fit: fewer points, a lower maxdim, a threshold.
    """
    n = dist.shape[0]
    if maxdim < 2:
        return 0.0, 0.0
    limit_s = math.inf if time_budget_s is None else float(time_budget_s)

    def fits(cost: tuple[float, float]) -> bool:
        return cost[0] <= memory_left_bytes and cost[1] <= limit_s

    cost = run_cost(n, full_counts(n, maxdim))
    if fits(cost):
        return cost
    t = enclosing_radius(dist) if threshold is None else float(threshold)
    counts = simplex_counts(dist, t, maxdim, seed=seed)
    cost = run_cost(n, counts)
    logger.debug(
        "persistence: %d points, maxdim %d, threshold %.4g: about %s simplices by dimension, %.2f GB, %.0f s",
        n, maxdim, t, [f"{c:.3g}" for c in counts], cost[0] / 1e9, cost[1],
    )
    if fits(cost):
        return cost
    where = "the enclosing radius" if threshold is None else "the threshold"
    budget_s = "no time_budget_s" if time_budget_s is None else f"time_budget_s={time_budget_s:g}"
    raise ValueError(
        f"persistence on {n} points with maxdim={maxdim} is too large: about {counts[maxdim]:.3g} "
        f"{maxdim}-simplices up to {where} {t:.4g}, about {cost[0] / 1e9:.3g} GB (memory_budget_gb="
        f"{memory_budget_gb:g}) and about {_duration(cost[1])} on one thread ({budget_s}). Reduce it: "
        + ", ".join(_remedies(dist, counts, t, maxdim, fits, seed))
        + "; or raise memory_budget_gb / time_budget_s"
    )


def _remedies(dist, counts, t, maxdim, fits, seed) -> list[str]:
    """What would fit: the largest n_landmarks, the largest maxdim, the largest threshold among quantiles."""
    n = dist.shape[0]
    out = []
    lo, hi = 1, n  # the same clique density on fewer points: counts scale like C(m, d + 1) / C(n, d + 1)
    while lo < hi:
        m = (lo + hi + 1) // 2
        scaled = counts * full_counts(m, maxdim) / np.maximum(full_counts(n, maxdim), 1.0)
        lo, hi = (m, hi) if fits(run_cost(m, scaled)) else (lo, m - 1)
    out.append(f"subsample (n_landmarks=<= {lo})")
    lower = [d for d in range(maxdim - 1, 1, -1) if fits(run_cost(n, counts[: d + 1]))]
    out.append(f"lower maxdim (maxdim={lower[0] if lower else 1})")
    rng = np.random.default_rng(seed)
    sample = dist[rng.integers(0, n, size=20_000), rng.integers(0, n, size=20_000)]
    for q in (0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01):
        cand = float(np.quantile(sample, q))
        if cand < t and fits(run_cost(n, simplex_counts(dist, cand, maxdim, seed=seed))):
            out.append(f"or set threshold=<= {cand:.4g} (the {q:g} quantile of the distances; classes alive "
                       "there get death inf)")
            break
    else:
        out.append("or set a small threshold")
    return out


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.3g} days"
