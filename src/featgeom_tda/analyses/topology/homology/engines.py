"""Persistence engines (oineus, giotto-ph, ripser) on one float32 distance matrix, and memory estimates.

All engines are fed the same float32 distance matrix, so their diagrams agree exactly up to the order of
bars (:func:`canonical_bars` sorts by dimension, birth, death):

- oineus builds the flag complex explicitly (edges and triangles up to the threshold) and reduces it
  with clearing on ``n_threads`` threads. On the thresholded, high-dimensional clouds of SAE decoders
  it is about 4x faster than giotto-ph (5,000 rows in R^512: 11 s against 34-48 s here), at about
  480 bytes per simplex. Coefficients mod 2 and maxdim <= 1 only.
- giotto-ph (ripser's implicit coboundaries, multi-threaded): any maxdim and prime coefficient, memory
  quadratic in the points only.
- ripser: the reference implementation, kept as a cross-check.

``engine="auto"`` counts the edges and estimates the triangles of every run before it starts and runs
oineus when that complex fits in the budget and holds at most 15% of all edges (above that giotto-ph is
faster: measured crossover 10-20%), giotto-ph otherwise. A run with no threshold is truncated at the
enclosing radius (the smallest largest distance of a point), above which the complex is a cone: that is
the full filtration's diagram, as in ripser.

Memory estimate (bytes, logged before a run; ``n`` = points after landmark selection)::

      4 n^2                          float32 distance matrix
    + 4 n^2                          the engine's copy of it
    + 8 n^2                          working blocks (distance blocks, masks)
    + 8 n(n-1)/2 * max(1, maxdim)    edge filtration of the engine (value + index per edge and dimension)
    + 8 n^2                          auto threshold only (maxdim <= 1): neighbourhood bitsets (16 scales,
                                     2 n^2), the half-size matrices of its recursion, distance samples
    + 64 MB                          fixed

that is 28 n^2 + 64 MB for the default H0-H1 run. Above H1 the simplices dominate: 8 bytes per column of
dimension maxdim, and a time estimate (budget module). Measured here (giotto-ph, extra peak RSS of a run on
decoder-like rows): about 21 n^2 + 60 MB at n = 1,500-3,000 and 31 n^2 at n = 5,000. It is an estimate
of the peak, not a bound. An oineus run needs its explicit complex on top (a float64 copy of the
distances, 8 n^2, and 480 bytes per edge and triangle) and is chosen only when that fits in the budget
left after 8 n^2: the 5,000 rows above peak at 3.8 GB with oineus against 0.8 GB with giotto-ph.
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

import numpy as np

from featgeom_tda.analyses.topology.homology.budget import BYTES_PER_COLUMN
from featgeom_tda.core._validation import check_positive_int

logger = logging.getLogger(__name__)

__all__ = ["estimate_memory_bytes"]

ENGINES = ("auto", "oineus", "giotto", "ripser")
def estimate_memory_bytes(
    n_points: int, *, maxdim: int = 1, auto_threshold: bool = True, n_simplices: float | None = None
) -> int:
    """Estimated peak bytes of ``persistence()`` on ``n_points`` points (formula in the module notes).

    Above H1 the columns of the top dimension are added (8 bytes each, budget module): ``n_simplices``
    maxdim-simplices, by default C(n, maxdim + 1), those of the complete complex (an upper bound;
    ``persistence()`` counts the real complex from the distances when that bound is over budget).
    """
    n = check_positive_int(n_points, "n_points")
    maxdim = check_positive_int(maxdim, "maxdim", minimum=0)
    extra = 0.0
    if maxdim >= 2:
        extra = BYTES_PER_COLUMN * (float(math.comb(n, maxdim + 1)) if n_simplices is None else float(n_simplices))
    return int(quadratic_bytes(n, maxdim, auto_threshold) + extra)


def quadratic_bytes(n: int, maxdim: int, auto_threshold: bool) -> int:
    """The n^2 terms and the fixed part of the estimate (module notes), without the simplices above H1."""
    return int(_bytes_per_n2(maxdim, auto_threshold) * n * n + _FIXED_BYTES)


_FIXED_BYTES = 64 * 2**20


def _bytes_per_n2(maxdim: int, auto_threshold: bool) -> int:
    return 16 + 4 * max(1, maxdim) + (8 if auto_threshold and maxdim <= 1 else 0)


def max_points_for_budget(budget_bytes: float, maxdim: int, auto_threshold: bool) -> int:
    return max(1, int(math.sqrt(max(budget_bytes - _FIXED_BYTES, 0.0) / _bytes_per_n2(maxdim, auto_threshold))))


def engine_runner(engine: str, maxdim: int, coeff: int, n_threads: int, budget_bytes: float):
    """A function ``(float32 distance matrix, threshold) -> (list of (m, 2) diagrams, engine used)``.

    "auto" runs oineus when its explicit complex is sparse and fits in ``budget_bytes`` (maxdim <= 1,
    coefficients mod 2) and giotto-ph otherwise; the choice is made for every run, since it depends on
    the threshold.
    """

    def giotto(dist: np.ndarray, thresh: float) -> list[np.ndarray]:
        from gph import ripser_parallel

        out = ripser_parallel(
            dist, metric="precomputed", maxdim=maxdim, thresh=thresh, coeff=coeff, n_threads=n_threads
        )
        return [np.asarray(d, dtype=np.float64) for d in out["dgms"]]

    def ripser_engine(dist: np.ndarray, thresh: float) -> list[np.ndarray]:
        import ripser

        out = ripser.ripser(dist, distance_matrix=True, maxdim=maxdim, thresh=thresh, coeff=coeff)
        return [np.asarray(d, dtype=np.float64) for d in out["dgms"]]

    def run(dist: np.ndarray, thresh: float) -> tuple[list[np.ndarray], str]:
        if engine == "giotto":
            return giotto(dist, thresh), "giotto"
        if engine == "ripser":
            return ripser_engine(dist, thresh), "ripser"
        if engine == "auto" and not (maxdim <= 1 and coeff == 2):
            return giotto(dist, thresh), "giotto"
        n = dist.shape[0]
        t = _flag_truncation(dist, thresh)
        n_edges, n_triangles = _count_edges_and_triangles(dist, t)
        need = _oineus_memory_bytes(n, n_edges, n_triangles)
        fits = need <= budget_bytes
        if engine == "oineus":
            if not fits:
                raise ValueError(
                    f"engine='oineus' holds the complex in memory: about {need / 1e9:.2f} GB for this run, over "
                    f"memory_budget_gb; use engine='auto' (giotto-ph then), a lower threshold or n_landmarks"
                )
            return _oineus_diagrams(dist, t, maxdim, n_threads), "oineus"
        sparse = n_edges <= _OINEUS_MAX_EDGE_DENSITY * n * (n - 1) / 2
        chosen = "oineus" if fits and sparse else "giotto"
        logger.debug(
            "threshold %.4g: %d edges (%.1f%% of all), about %d triangles; oineus would need %.2f GB -> %s",
            thresh, n_edges, 100.0 * n_edges / max(1, n * (n - 1) // 2), n_triangles, need / 1e9, chosen,
        )
        if chosen == "oineus":
            return _oineus_diagrams(dist, t, maxdim, n_threads), "oineus"
        return giotto(dist, thresh), "giotto"

    return run


# oineus stores the complex explicitly: measured about 420 B per simplex (edges + triangles) at 7 M simplices
_OINEUS_BYTES_PER_SIMPLEX = 480
# above this share of all edges giotto-ph's implicit complex is faster (measured crossover 0.1-0.2)
_OINEUS_MAX_EDGE_DENSITY = 0.15


def _oineus_memory_bytes(n_points: int, n_edges: int, n_triangles: int) -> int:
    """Estimated extra peak bytes of the oineus engine: a float64 copy of the distances plus the complex."""
    return int(8 * n_points * n_points + _OINEUS_BYTES_PER_SIMPLEX * (n_points + n_edges + n_triangles) + _FIXED_BYTES)


def _flag_truncation(dist: np.ndarray, thresh: float) -> float:
    """``thresh``, or for a full run the enclosing radius: above it the complex is a cone (contractible),
    so no bar of the full filtration is alive there and truncating at it changes no finite bar."""
    if math.isfinite(thresh):
        return float(thresh)
    return float(dist.max(axis=1).min()) if dist.shape[0] else 0.0


_EDGE_LIST_MAX = 4_000_000  # above this many edges, triangles are estimated from random pairs


def _count_edges_and_triangles(dist: np.ndarray, t: float, *, seed: int = 0, n_sample: int = 2000) -> tuple[int, int]:
    """Number of edges ``d <= t`` (exact) and of triangles (estimated from up to ``n_sample`` edges).

    Each sampled edge uv contributes its common neighbours; triangles = edges * mean / 3. Edges are listed
    block by block when there are at most 4 M of them (sampled uniformly from the list), else sampled
    as random pairs, which then hit an edge often enough.
    """
    n = dist.shape[0]
    rows = max(1, (64 * 2**20) // max(1, n))
    n_edges = 0
    for b0 in range(0, n, rows):
        n_edges += int(np.count_nonzero(dist[b0 : b0 + rows] <= t))
    n_edges = (n_edges - n) // 2
    if n_edges <= 0:
        return 0, 0
    rng = np.random.default_rng(seed)
    if n_edges <= _EDGE_LIST_MAX:
        us, vs = [], []
        for b0 in range(0, n, rows):
            r, c = np.nonzero(dist[b0 : b0 + rows] <= t)
            r += b0
            upper = c > r
            us.append(r[upper])
            vs.append(c[upper])
        iu, ju = np.concatenate(us), np.concatenate(vs)
        if iu.size > n_sample:
            pick = rng.choice(iu.size, size=n_sample, replace=False)
            iu, ju = iu[pick], ju[pick]
    else:
        density = n_edges / (n * (n - 1) / 2)
        m = int(min(8_000_000, math.ceil(4 * n_sample / density)))
        i = rng.integers(0, n, size=m)
        j = rng.integers(0, n, size=m)
        hit = (i != j) & (dist[i, j] <= t)
        iu, ju = i[hit][:n_sample], j[hit][:n_sample]
    common = np.empty(iu.size)
    for c0 in range(0, iu.size, 256):
        u, v = iu[c0 : c0 + 256], ju[c0 : c0 + 256]
        common[c0 : c0 + 256] = np.count_nonzero((dist[u] <= t) & (dist[v] <= t), axis=1) - 2
    return n_edges, int(math.ceil(n_edges * float(common.mean()) / 3.0))


def _oineus_diagrams(dist: np.ndarray, t: float, maxdim: int, n_threads: int) -> list[np.ndarray]:
    """Diagrams of dimensions 0..maxdim of the flag complex of ``dist`` up to ``t`` (oineus, mod 2)."""
    import oineus

    params = oineus.ReductionParams()
    params.n_threads = n_threads
    diagrams = oineus.compute_diagrams_vr(
        np.ascontiguousarray(dist, dtype=np.float64), from_pwdists=True, max_dim=maxdim + 1,
        max_diameter=float(t), params=params,
    )
    out = []
    for k in range(maxdim + 1):
        try:
            out.append(np.asarray(diagrams.in_dimension(k), dtype=np.float64).reshape(-1, 2))
        except IndexError:  # oineus has no diagram for a dimension without simplices
            out.append(np.zeros((0, 2)))
    return out


def canonical_bars(dgms: Sequence[np.ndarray]) -> np.ndarray:
    parts = []
    for k, d in enumerate(dgms):
        d = np.asarray(d, dtype=np.float64).reshape(-1, 2)
        d = d[d[:, 1] > d[:, 0]]
        parts.append(np.column_stack([d, np.full(d.shape[0], float(k))]))
    bars = np.concatenate(parts) if parts else np.zeros((0, 3))
    order = np.lexsort((bars[:, 1], bars[:, 0], bars[:, 2]))
    return bars[order]


