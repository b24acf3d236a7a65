"""Top correlations: for every feature of A, the k features of B with the highest Pearson correlation."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from featgeom_tda.analyses.matching.chunks import run_chunks, run_torch
from featgeom_tda.analyses.matching.kernels import numba_available, run_fused
from featgeom_tda.analyses.matching.stats import Stats, column_stats, prepared, resolve_jobs
from featgeom_tda.core._validation import check_choice, check_positive_int, check_same_rows

__all__ = ["CORRELATION_METHODS", "TopCorrelations", "top_correlations", "top_from_stats"]

logger = logging.getLogger(__name__)

CORRELATION_METHODS = ("auto", "fused", "scipy", "dense")
# k is capped at max(n_features_b, this): small k keep their documented NaN / -1 padding, a huge k never
# allocates more than n_features_b columns (k=10**9 on 3 features would otherwise ask for 24 GB).
_MAX_PADDED_K = 64


@dataclass
class TopCorrelations:
    """The ``k`` most correlated B features of every A feature.

    Attributes:
        values: float32 (n_features_a, k), decreasing along each row; NaN where there is no candidate.
        indices: int64 (n_features_a, k), the B features; -1 where there is no candidate.
        dead_a: bool (n_features_a,), A features with zero variance (their rows are all NaN / -1).
        dead_b: bool (n_features_b,), B features with zero variance (never returned).
        n_rows: number of token rows the correlations are taken over.
        method: the method that computed them ("fused", "scipy", "dense" or "torch:<device>").
    """

    values: np.ndarray
    indices: np.ndarray
    dead_a: np.ndarray
    dead_b: np.ndarray
    n_rows: int
    method: str = ""

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float32)
        self.indices = np.asarray(self.indices, dtype=np.int64)
        self.dead_a = np.asarray(self.dead_a, dtype=bool).ravel()
        self.dead_b = np.asarray(self.dead_b, dtype=bool).ravel()
        if self.values.ndim != 2 or self.values.shape != self.indices.shape:
            raise ValueError(
                f"values and indices must be 2-D of the same shape, got {self.values.shape} and {self.indices.shape}"
            )
        if self.values.shape[0] != self.dead_a.shape[0]:
            raise ValueError(
                f"values has {self.values.shape[0]} rows but dead_a has {self.dead_a.shape[0]} entries"
            )

    @property
    def k(self) -> int:
        return int(self.values.shape[1])

    @property
    def n_features_a(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_features_b(self) -> int:
        return int(self.dead_b.shape[0])

    def best(self) -> tuple[np.ndarray, np.ndarray]:
        """(indices, values) of the best B feature of each A feature, shapes (n_features_a,)."""
        return self.indices[:, 0], self.values[:, 0]

    def __repr__(self) -> str:
        return (
            f"TopCorrelations(n_features_a={self.n_features_a}, n_features_b={self.n_features_b}, k={self.k}, "
            f"n_rows={self.n_rows}, dead_a={int(self.dead_a.sum())}, dead_b={int(self.dead_b.sum())}, "
            f"method={self.method!r})"
        )


def top_correlations(
    acts_a: Any,
    acts_b: Any,
    *,
    k: int = 1,
    chunk_size: int | None = None,
    device: Any = None,
    n_jobs: int | None = None,
    method: Literal["auto", "fused", "scipy", "dense"] = "auto",
    progress: bool = False,
) -> TopCorrelations:
    """For every feature of A, the ``k`` features of B with the highest Pearson correlation.

    Args:
        acts_a: (n_tokens, n_features_a) activations: FeatureActivations, scipy sparse, torch or numpy.
        acts_b: (n_tokens, n_features_b) activations over the same token rows.
        k: number of B features kept per A feature (>= 1). It is capped at ``max(n_features_b, 64)`` before
            anything is allocated: up to 64 columns are padded as described below, but no row is ever wider
            than the number of B features when k exceeds 64.
        chunk_size: A features per work unit; bounds memory of the "scipy" / "dense" / torch methods
            (default: chosen from the sizes).
        device: run the dense scan with torch on this device (e.g. "cuda"); None keeps to numpy/scipy.
        n_jobs: threads (default: all available cores).
        method: "auto" (fused kernel for non-negative data when numba is importable, else "scipy";
            "dense" when any value is negative), or one of "fused", "scipy", "dense".
        progress: show a progress bar over chunks.

    Returns:
        :class:`TopCorrelations` with values (n_features_a, k) float32 sorted decreasingly (ties: lower B
        index first) and indices (n_features_a, k) int64. Dead (zero-variance) A features get NaN / -1;
        dead B features are never returned; rows are padded with NaN / -1 when B has fewer than k live
        features.
    """
    k = check_positive_int(k, "k")
    if chunk_size is not None:
        chunk_size = check_positive_int(chunk_size, "chunk_size")
    n_jobs = resolve_jobs(n_jobs)
    check_choice(method, "method", CORRELATION_METHODS)
    a = prepared(acts_a, "acts_a")
    b = prepared(acts_b, "acts_b")
    check_same_rows(a.matrix, "acts_a", b.matrix, "acts_b", what="the two activation sets")
    ma, mb = a.matrix, b.matrix
    sa, sb = column_stats(ma), column_stats(mb)
    return top_from_stats(
        ma, mb, sa, sb, k=k, chunk_size=chunk_size, device=device, n_jobs=n_jobs, method=method, progress=progress
    )


def top_from_stats(
    ma: sp.csr_matrix,
    mb: sp.csr_matrix,
    sa: Stats,
    sb: Stats,
    *,
    k: int,
    chunk_size: int | None,
    device: Any,
    n_jobs: int,
    method: str,
    progress: bool,
) -> TopCorrelations:
    """:func:`top_correlations` of checked CSR matrices (n, n_a) and (n, n_b) with their column stats.

    ``k`` (>= 1) is capped at ``max(n_b, 64)`` before anything is allocated, as in :func:`top_correlations`.
    """
    n = ma.shape[0]
    na, nb = ma.shape[1], mb.shape[1]
    k = min(check_positive_int(k, "k"), max(nb, _MAX_PADDED_K))
    nonneg = sa.nonnegative and sb.nonnegative
    if device is not None:
        if method not in ("auto", "dense"):
            raise ValueError(
                f"method={method!r} cannot run on a device; with device={str(device)!r} the dense scan runs "
                "in torch, so method must be 'auto' or 'dense'"
            )
        chosen = "torch"
    elif method == "auto":
        chosen = ("fused" if numba_available() else "scipy") if nonneg else "dense"
    else:
        chosen = method
        if chosen in ("fused", "scipy") and not nonneg:
            which = "acts_a" if not sa.nonnegative else "acts_b"
            raise ValueError(
                f"method={chosen!r} needs non-negative activations, but {which} has negative values; "
                "use method='dense' (or 'auto')"
            )

    values = np.full((na, k), np.nan, dtype=np.float64)
    indices = np.full((na, k), -1, dtype=np.int64)
    live_a = np.flatnonzero(~sa.dead)
    if live_a.size and (~sb.dead).any():
        if chosen == "fused":
            run_fused(ma, mb, sa, sb, live_a, k, chunk_size, n_jobs, progress, values, indices)
        elif chosen == "torch":
            run_torch(ma, mb, sa, sb, live_a, k, chunk_size, device, progress, values, indices)
        else:
            run_chunks(ma, mb, sa, sb, live_a, k, chunk_size, n_jobs, progress, values, indices, chosen)
    label = f"torch:{device}" if chosen == "torch" else chosen
    logger.debug("top correlations: %d x %d features over %d rows with %s", na, nb, n, label)
    return TopCorrelations(
        values=values.astype(np.float32), indices=indices, dead_a=sa.dead, dead_b=sb.dead, n_rows=n, method=label
    )
