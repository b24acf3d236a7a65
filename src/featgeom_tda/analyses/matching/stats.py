"""Column statistics of activation matrices and the input checks of correlation matching."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from featgeom_tda.core._validation import check_positive_int
from featgeom_tda.core.types import FeatureActivations, as_activations


@dataclass
class Stats:
    """float64 column statistics of one activation matrix (population variance)."""

    mean: np.ndarray
    sd: np.ndarray  # 1.0 where dead, so that divisions stay finite
    dead: np.ndarray
    nonnegative: bool


def column_stats(m: sp.csr_matrix) -> Stats:
    """float64 mean, sd and dead (zero-variance) flags of the columns of an (n, f) CSR matrix."""
    n, f = m.shape
    s1, s2, nnz, dev = _column_sums(m.data, m.indices, n, f)
    mean = s1 / n
    # sum of squared deviations: over the stored entries, plus the implicit zeros
    dev = dev + (n - nnz) * mean**2
    var = dev / n
    dead = var <= 1e-12 * np.maximum(s2 / n, np.finfo(np.float64).tiny)
    sd = np.where(dead, 1.0, np.sqrt(var))
    nonneg = bool(m.data.size == 0 or m.data.min() >= 0)
    return Stats(mean=mean, sd=sd, dead=dead, nonnegative=nonneg)


def _column_sums(data: np.ndarray, cols: np.ndarray, n: int, f: int) -> tuple[np.ndarray, ...]:
    """Per column of an (n, f) matrix's stored entries: sum, sum of squares, count, and sum of squared
    deviations from the column mean over all n rows.

    Two passes over the entries in storage order, in float64: the numba loop and the ``np.bincount`` fallback
    add the same terms in the same order, so they agree bit for bit; numba is several times faster.
    """
    kernel = column_sums_kernel() if data.size else None
    if kernel is not None:
        s1, s2, nnz, dev = (np.zeros(f), np.zeros(f), np.zeros(f, dtype=np.int64), np.zeros(f))
        kernel(data, cols, n, s1, s2, nnz, dev)
        return s1, s2, nnz, dev
    x = data.astype(np.float64)
    s1 = np.bincount(cols, weights=x, minlength=f)
    s2 = np.bincount(cols, weights=x * x, minlength=f)
    nnz = np.bincount(cols, minlength=f)
    return s1, s2, nnz, np.bincount(cols, weights=(x - (s1 / n)[cols]) ** 2, minlength=f)


def _column_sums_loop(data, cols, n, s1, s2, nnz, dev):  # pragma: no cover - compiled by numba
    for i in range(data.size):
        c = cols[i]
        x = np.float64(data[i])
        s1[c] += x
        s2[c] += x * x
        nnz[c] += 1
    for i in range(data.size):
        c = cols[i]
        d = np.float64(data[i]) - s1[c] / n
        dev[c] += d * d


@functools.lru_cache(maxsize=None)
def column_sums_kernel():
    """The compiled column-sums loop of :func:`column_stats` (from numba's cache), or None without numba."""
    try:
        from featgeom_tda.core._numba import configure_numba

        return configure_numba().njit(cache=True, nogil=True)(_column_sums_loop)
    except ImportError:
        return None


def prepared(x: Any, name: str) -> FeatureActivations:
    """``x`` as FeatureActivations, with only finite values."""
    acts = as_activations(x, name)
    if not np.isfinite(acts.matrix.data).all():
        bad = int((~np.isfinite(acts.matrix.data)).sum())
        raise ValueError(f"{name} contains {bad} NaN or inf values; expected only finite numbers")
    return acts


def without_zeros(m: sp.csr_matrix) -> sp.csr_matrix:
    """``m`` without explicitly stored zeros (a copy when there are any)."""
    if m.data.size and not m.data.all():
        m = m.copy()
        m.eliminate_zeros()
    return m


def ratio_order(sb: Stats) -> tuple[np.ndarray, np.ndarray]:
    """Live B features sorted by mu_b / sd_b (ties: lower index first) and the sorted ratios."""
    live = np.flatnonzero(~sb.dead)
    r = sb.mean[live] / sb.sd[live]
    o = np.argsort(r, kind="stable")
    return live[o].astype(np.int64), r[o]


def resolve_jobs(n_jobs: int | None) -> int:
    """Number of threads: ``n_jobs``, or all cores this process may use."""
    if n_jobs is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not on Linux
            return max(1, os.cpu_count() or 1)
    return check_positive_int(n_jobs, "n_jobs")


def progress_bar(total: int, progress: bool, desc: str):
    """A tqdm bar over features (disabled unless ``progress``)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not progress, desc=desc, unit="feat")
