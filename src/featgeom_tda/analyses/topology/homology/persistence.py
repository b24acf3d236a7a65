"""The :func:`persistence` entry point (Vietoris-Rips diagrams of rows), distance matrices and landmarks.

``threshold="auto"`` (the default) computes a truncated filtration certified equal to the full one
(:mod:`~featgeom_tda.analyses.topology.homology.truncation`); ``threshold=None`` runs the full filtration;
a user ``threshold`` marks classes still alive there with ``death = inf`` (``exact`` is then False).
A run whose memory estimate (:func:`estimate_memory_bytes`) exceeds ``memory_budget_gb`` is refused with a
``ValueError`` suggesting ``n_landmarks``; above H1 the simplices are counted from the distances first
(budget module) and a run over ``memory_budget_gb`` or ``time_budget_s`` is refused before the engine starts.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from featgeom_tda.analyses.topology.homology.diagrams import PersistenceDiagrams
from featgeom_tda.analyses.topology.homology.engines import (
    ENGINES,
    canonical_bars,
    engine_runner,
    max_points_for_budget,
    quadratic_bytes,
)
from featgeom_tda.analyses.topology.homology.budget import check_run_cost
from featgeom_tda.analyses.topology.homology import truncation
from featgeom_tda.analyses.topology.homology.truncation import certified_run
from featgeom_tda.core._validation import check_choice, check_number, check_positive_int
from featgeom_tda.core.types import as_points, unit_rows

logger = logging.getLogger(__name__)

__all__ = ["persistence", "landmarks", "pairwise_distances"]

_METRICS = ("euclidean", "cosine")

# ---------------------------------------------------------------------------------------------------
# distances, landmarks, memory
# ---------------------------------------------------------------------------------------------------
def pairwise_distances(points: Any, *, metric: str = "euclidean") -> np.ndarray:
    """Dense float64 (n, n) distance matrix, symmetric with a zero diagonal.

    ``cosine`` is ``1 - cos(x, y)`` clipped to [0, 2]; it needs non-zero rows.
    """
    check_choice(metric, "metric", _METRICS)
    return distance_matrix(as_points(points, "points"), metric, np.float64)


def distance_matrix(x: np.ndarray, metric: str, dtype: Any, *, block: int = 2048) -> np.ndarray:
    """Symmetric (n, n) distances in ``dtype``, computed in float64 blocks of the upper triangle and mirrored,
    so that no n x n float64 temporary is needed for a float32 result."""
    if metric == "cosine":
        x = unit_rows(x, "points")
    n = x.shape[0]
    sq = np.einsum("ij,ij->i", x, x)
    out = np.empty((n, n), dtype=dtype)
    for i0 in range(0, n, block):
        i1 = min(n, i0 + block)
        for j0 in range(i0, n, block):
            j1 = min(n, j0 + block)
            g = x[i0:i1] @ x[j0:j1].T
            if metric == "cosine":
                d = np.clip(1.0 - g, 0.0, 2.0)
            else:
                d = np.sqrt(np.maximum(sq[i0:i1, None] + sq[None, j0:j1] - 2.0 * g, 0.0))
            if j0 == i0:
                d = 0.5 * (d + d.T)
            out[i0:i1, j0:j1] = d
            if j0 != i0:
                out[j0:j1, i0:i1] = d.T
    np.fill_diagonal(out, 0.0)
    return out


def landmarks(points: Any, n: int, *, metric: str = "euclidean", seed: int = 0) -> np.ndarray:
    """Max-min (farthest point) landmarks: int64 (n,) row indices.

    The first landmark is a seeded random row; each next one is the row farthest from all landmarks so far
    (ties to the lowest index). Distances are computed in float32 (``cosine`` as ``1 - cos``).
    """
    check_choice(metric, "metric", _METRICS)
    x = as_points(points, "points", dtype=np.float32)
    n_rows = x.shape[0]
    n = check_positive_int(n, "n")
    if n > n_rows:
        raise ValueError(f"n must be at most the number of points ({n_rows}); got {n}")
    if metric == "cosine":
        x = unit_rows(x, "points").astype(np.float32, copy=False)
    rng = np.random.default_rng(seed)
    chosen = np.empty(n, dtype=np.int64)
    chosen[0] = int(rng.integers(n_rows))
    sq = np.einsum("ij,ij->i", x, x)

    def dist_to(i: int) -> np.ndarray:
        dot = x @ x[i]
        if metric == "cosine":
            return np.clip(1.0 - dot, 0.0, 2.0)
        return np.sqrt(np.maximum(sq + sq[i] - 2.0 * dot, 0.0))

    mind = dist_to(int(chosen[0]))
    mind[chosen[0]] = -1.0
    for k in range(1, n):
        nxt = int(np.argmax(mind))
        chosen[k] = nxt
        np.minimum(mind, dist_to(nxt), out=mind)
        mind[chosen[: k + 1]] = -1.0
    return chosen


# ---------------------------------------------------------------------------------------------------
# persistence
# ---------------------------------------------------------------------------------------------------
def persistence(
    points: Any,
    *,
    maxdim: int = 1,
    metric: str = "euclidean",
    n_landmarks: int | None = None,
    seed: int = 0,
    memory_budget_gb: float = 4.0,
    time_budget_s: float | None = 600.0,
    engine: str = "auto",
    threshold: float | str | None = "auto",
    n_threads: int = 2,
    coeff: int = 2,
) -> PersistenceDiagrams:
    """Vietoris-Rips persistence diagrams of the rows of ``points`` (n, d).

    Args:
        points: numpy / torch (n, d) or FeatureWeights.
        maxdim: highest homology dimension (0, 1, 2, ...).
        metric: "euclidean" or "cosine" (1 - cos).
        n_landmarks: if set and smaller than the number of rows, compute on this many max-min landmarks
            (see :func:`landmarks`); otherwise on all rows.
        seed: seed of the landmark start and of the distance sample of the auto threshold.
        memory_budget_gb: refuse (ValueError) a run whose memory estimate exceeds this.
        time_budget_s: above H1, refuse a run whose estimated time on one thread exceeds this (None: no limit).
        engine: "auto" (oineus when its explicit complex is sparse and fits the budget, else giotto-ph;
            notes of the engines module), "oineus", "giotto" (giotto-ph) or "ripser".
        threshold: "auto" (certified exact truncation, notes of the truncation module), None (full filtration) or a
            float: stop at that scale, classes alive there get ``death = inf`` and ``exact`` is False.
        n_threads: threads of oineus and giotto-ph.
        coeff: prime field of coefficients.
    """
    x = as_points(points, "points")
    maxdim = check_positive_int(maxdim, "maxdim", minimum=0)
    check_choice(metric, "metric", _METRICS)
    check_choice(engine, "engine", ENGINES)
    n_threads = check_positive_int(n_threads, "n_threads")
    coeff = _check_coeff(coeff, engine=engine, maxdim=maxdim)
    budget = check_number(memory_budget_gb, "memory_budget_gb", low=0.0, low_open=True)
    if time_budget_s is not None:
        time_budget_s = check_number(time_budget_s, "time_budget_s", low=0.0, low_open=True, allow_inf=True)
    threshold = _check_threshold(threshold)
    n_input = x.shape[0]
    if n_landmarks is not None:
        n_landmarks = check_positive_int(n_landmarks, "n_landmarks", minimum=2)  # one point has no shape
    n_landmarks = None if n_landmarks is None or n_landmarks >= n_input else n_landmarks  # a cap: all rows when fewer
    n_eff = n_input if n_landmarks is None else n_landmarks
    auto = threshold == "auto"
    _check_memory(n_eff, maxdim=maxdim, auto=auto, budget_gb=budget, metric=metric, engine=engine)
    if metric == "cosine":
        unit_rows(x, "points")  # refuse zero rows before any work

    landmark_idx = None
    if n_landmarks is not None and n_landmarks < n_input:
        landmark_idx = landmarks(x, n_landmarks, metric=metric, seed=seed)
        x = x[landmark_idx]

    start = time.perf_counter()
    dist = distance_matrix(x, metric, np.float32)
    check_run_cost(
        dist, maxdim=maxdim, threshold=float(threshold) if isinstance(threshold, float) else None,
        memory_left_bytes=budget * 1e9 - quadratic_bytes(n_eff, maxdim, auto), memory_budget_gb=budget,
        time_budget_s=time_budget_s, seed=seed,
    )
    run = engine_runner(engine, maxdim, coeff, n_threads, budget * 1e9 - 8.0 * n_eff * n_eff)
    if auto and maxdim <= 1 and x.shape[0] > truncation.AUTO_MIN_POINTS:
        (dgms, engine_used), used, exact = certified_run(dist, run, maxdim=maxdim, seed=seed)
    elif auto or threshold is None:
        (dgms, engine_used), used, exact = run(dist, math.inf), math.inf, True
    else:
        (dgms, engine_used), used, exact = run(dist, float(threshold)), float(threshold), False
    seconds = time.perf_counter() - start
    bars = canonical_bars(dgms)
    if not exact and used >= float(dist.max()):
        exact = True  # a threshold at or above every distance is the full filtration
    logger.debug("persistence: %d bars in %.2f s (threshold %s, exact %s)", bars.shape[0], seconds, used, exact)
    return PersistenceDiagrams(
        bars=bars,
        maxdim=maxdim,
        metric=metric,
        engine=engine_used,
        n_points=int(x.shape[0]),
        n_input=int(n_input),
        landmark_indices=landmark_idx,
        threshold=float(used),
        exact=bool(exact),
        seconds=float(seconds),
        config={
            "maxdim": maxdim,
            "metric": metric,
            "n_landmarks": n_landmarks,
            "seed": seed,
            "engine": engine,
            "threshold": threshold if isinstance(threshold, str) or threshold is None else float(threshold),
            "coeff": coeff,
            "n_threads": n_threads,
        },
    )



def _check_coeff(coeff: Any, *, engine: str, maxdim: int) -> int:
    """A prime coefficient field that ``engine`` can compute with."""
    coeff = check_positive_int(coeff, "coeff", minimum=2)
    if any(coeff % p == 0 for p in range(2, int(math.isqrt(coeff)) + 1)):
        raise ValueError(f"coeff must be a prime number; got {coeff}")
    if engine == "oineus" and (maxdim > 1 or coeff != 2):
        raise ValueError(
            f"engine='oineus' computes maxdim <= 1 with coeff=2 only; got maxdim={maxdim}, coeff={coeff} "
            f"(use engine='auto' or 'giotto')"
        )
    return coeff


def _check_threshold(threshold: Any) -> str | float | None:
    """The threshold as 'auto', None (also for inf) or a positive float."""
    if isinstance(threshold, str):
        check_choice(threshold, "threshold", ("auto",))
        return threshold
    if threshold is None:
        return None
    try:
        value = check_number(threshold, "threshold", low=0.0, low_open=True, allow_inf=True)
    except ValueError:
        raise ValueError(f"threshold must be 'auto', None or a positive number; got {threshold!r}") from None
    return None if math.isinf(value) else value


def _check_memory(n_eff: int, *, maxdim: int, auto: bool, budget_gb: float, metric: str, engine: str) -> None:
    """Log the n^2 memory estimate of a run and refuse it (ValueError naming ``n_landmarks``) over the budget."""
    estimate = quadratic_bytes(n_eff, maxdim, auto)
    logger.debug(
        "persistence: %d points, maxdim %d, %s metric, %s engine; memory %.2f GB without the simplices above H1 "
        "(budget %.2f GB)",
        n_eff, maxdim, metric, engine, estimate / 1e9, budget_gb,
    )
    if estimate > budget_gb * 1e9:
        fit = max_points_for_budget(budget_gb * 1e9, maxdim, auto)
        raise ValueError(
            f"persistence on {n_eff} points with maxdim={maxdim} needs about {estimate / 1e9:.2f} GB, over "
            f"memory_budget_gb={budget_gb:g}; pass n_landmarks=<= {fit} (max-min landmarks) or raise memory_budget_gb"
        )
