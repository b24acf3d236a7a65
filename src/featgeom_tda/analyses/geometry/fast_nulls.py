"""Fast permutation nulls of the named metrics: build once, then score(perm) = metric(X, Y[perm]).

Each builder does the expensive work once (SVD bases for SVCCA, centred Gram or feature matrices for CKA, the
ranked RDMs for RSA, normalised matrices for Procrustes, neighbour lists for the kNN scores) and returns a
scorer that only re-indexes by the permutation; its scores equal a plain recomputation to float rounding.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from featgeom_tda.analyses.geometry import similarity as sim

# The CKA fast path keeps two n x n Gram matrices up to this many rows (2 x 268 MB).
_GRAM_MAX_ROWS = 5792
# Rows per block in the blocked permuted sums.
_BLOCK_ROWS = 128


Scorer = Callable[[np.ndarray], float]


def _fast_svcca(
    X: np.ndarray, Y: np.ndarray, *, variance: float = 0.99, n_components: Any = None,
    max_components: Any = sim.AUTO_MAX_COMPONENTS,
) -> Scorer:
    """Canonical correlations of (X, Y[perm]) are the singular values of Qx^T Qy[perm] for the kept bases (a row
    permutation changes neither the singular values nor the kept counts). A saturated choice raises ValueError."""
    nc = sim._check_n_components(n_components)
    parts = sim._svcca_parts(X, Y, float(variance), nc, sim._check_max_components(max_components))
    QxT, Qy = np.ascontiguousarray(parts.Qx.T), parts.Qy

    def score(perm: np.ndarray) -> float:
        return float(sim._singular_values_unit(QxT @ Qy[perm]).mean())

    return score


def _fast_cka(X: np.ndarray, Y: np.ndarray, *, debiased: bool = False) -> Scorer:
    """Only <K, P L P^T> and sum_i k_ii l_p(i)p(i) change with the permutation."""
    n, d1 = X.shape
    d2 = Y.shape[1]
    Xc, Yc = sim._centre(X), sim._centre(Y)
    kx = np.einsum("ij,ij->i", Xc, Xc)
    ly = np.einsum("ij,ij->i", Yc, Yc)
    sum_kx, sum_ly = float(kx.sum()), float(ly.sum())
    hxx = sim._hsic_from_terms(sim._cross_sq_norm(Xc, Xc), sum_kx, sum_kx, float(kx @ kx), n, debiased)
    hyy = sim._hsic_from_terms(sim._cross_sq_norm(Yc, Yc), sum_ly, sum_ly, float(ly @ ly), n, debiased)
    norm = float(np.sqrt(hxx * hyy))

    if n <= _GRAM_MAX_ROWS and 10 * n < d1 * d2:
        K = Xc @ Xc.T
        L = Yc @ Yc.T

        def cross(perm: np.ndarray) -> float:
            total = 0.0
            for a in range(0, n, _BLOCK_ROWS):
                b = min(a + _BLOCK_ROWS, n)
                total += float(np.dot(K[a:b].ravel(), np.take(L[perm[a:b]], perm, axis=1).ravel()))
            return total

    else:
        XcT = np.ascontiguousarray(Xc.T)

        def cross(perm: np.ndarray) -> float:
            return float(np.sum(np.square(XcT @ Yc[perm])))

    def score(perm: np.ndarray) -> float:
        h = sim._hsic_from_terms(cross(perm), sum_kx, sum_ly, float(kx @ ly[perm]), n, debiased)
        return float(h / norm)

    return score


def _square_from_condensed(v: np.ndarray, n: int) -> np.ndarray:
    """Symmetric n x n matrix with zero diagonal from a condensed upper triangle (dtype kept)."""
    M = np.zeros((n, n), dtype=v.dtype)
    offsets = sim._condensed_offsets(n)
    for i in range(n - 1):
        M[i, i + 1 :] = v[offsets[i] : offsets[i] + n - 1 - i]
    for a in range(0, n, _BLOCK_ROWS):
        b = min(a + _BLOCK_ROWS, n)
        M[a:b, :a] = M[:a, a:b].T
        M[a:b, a:b] += M[a:b, a:b].T
    return M


class _PermutedUpperSum:
    """``f(perm) = sum_{i<j} vx[i, j] * VY[perm[i], perm[j]]`` for condensed ``vx`` and a symmetric ``VY``.

    The upper triangle of X is stored once as float64 row blocks (block rows [a, b), columns a..n-1, with the
    diagonal block's lower triangle and diagonal zeroed), so a permutation costs one gather of VY into a reused
    buffer and one dot product per block: about n^2 / 2 multiply-adds and no allocation. Integer VY entries are
    converted to float64 after the gather; products of integers below 2^26 are exact.
    """

    def __init__(self, vx: np.ndarray, VY: np.ndarray) -> None:
        n = VY.shape[0]
        self.n = n
        self.VY = VY
        offsets = sim._condensed_offsets(n)
        self.blocks: list[tuple[int, int, np.ndarray]] = []
        for a in range(0, n, _BLOCK_ROWS):
            b = min(a + _BLOCK_ROWS, n)
            block = np.zeros((b - a, n - a), dtype=np.float64)
            for i in range(a, b):
                block[i - a, i - a + 1 :] = vx[offsets[i] : offsets[i] + n - 1 - i]
            self.blocks.append((a, b, block))
        width = min(_BLOCK_ROWS, n)
        self._rows = np.empty((width, n), dtype=VY.dtype)
        self._gathered = np.empty(width * n, dtype=VY.dtype)
        self._converted = self._gathered if VY.dtype == np.float64 else np.empty(width * n, dtype=np.float64)

    def __call__(self, perm: np.ndarray) -> float:
        total = 0.0
        for a, b, block in self.blocks:
            w, m = b - a, self.n - a
            rows = np.take(self.VY, perm[a:b], axis=0, out=self._rows[:w], mode="clip")
            gathered = self._gathered[: w * m].reshape(w, m)
            np.take(rows, perm[a:], axis=1, out=gathered, mode="clip")
            if self._converted is not self._gathered:
                converted = self._converted[: w * m].reshape(w, m)
                np.copyto(converted, gathered)
            else:
                converted = gathered
            total += float(np.dot(block.ravel(), converted.ravel()))
        return total


def _fast_rsa(X: np.ndarray, Y: np.ndarray, *, rdm: str = "correlation", compare: str = "spearman") -> Scorer:
    """Rank (or centre) each RDM once; the permuted RDM of Y is the ranked RDM of Y indexed by the permutation.

    Memory: X's upper triangle as float64 (4 n^2 bytes) and Y's full matrix (int32 ranks for Spearman: 4 n^2
    bytes; float64 values for Pearson: 8 n^2 bytes); n = 8,000 Spearman: about 0.5 GB.
    """
    n = X.shape[0]
    vy = sim._rsa_vector(Y, rdm, compare, "Y")
    syy = sim._chunked_dot(vy, vy)
    VY = _square_from_condensed(vy, n)
    del vy
    vx = sim._rsa_vector(X, rdm, compare, "X")
    sxx = sim._chunked_dot(vx, vx)
    upper_sum = _PermutedUpperSum(vx, VY)
    del vx
    norm = float(np.sqrt(sxx * syy))

    def score(perm: np.ndarray) -> float:
        return upper_sum(perm) / norm

    return score


def _fast_procrustes(X: np.ndarray, Y: np.ndarray) -> Scorer:
    XnT = np.ascontiguousarray(sim._procrustes_normalised(X, "X").T)
    Yn = sim._procrustes_normalised(Y, "Y")

    def score(perm: np.ndarray) -> float:
        return sim._nuclear_norm(XnT @ Yn[perm])

    return score


def _knn_scorer(X: np.ndarray, Y: np.ndarray, k: int, metric: str, jaccard: bool) -> Scorer:
    """Neighbours of row i in Y[perm] are inv[N_Y(perm[i])] with inv the inverse permutation."""
    n = X.shape[0]
    Nx = sim._knn_indices(X, k, metric, "X")
    Ny = sim._knn_indices(Y, k, metric, "Y")
    positions = np.arange(n, dtype=np.int64)

    def score(perm: np.ndarray) -> float:
        inv = np.empty(n, dtype=np.int64)
        inv[perm] = positions
        overlap = sim._neighbour_overlap(Nx, inv[Ny[perm]])
        return sim._jaccard_from_overlap(overlap, k) if jaccard else float(np.mean(overlap) / k)

    return score


def _fast_knn_jaccard(X: np.ndarray, Y: np.ndarray, *, k: int = 10, metric: str = "cosine") -> Scorer:
    return _knn_scorer(X, Y, k, metric, jaccard=True)


def _fast_mutual_knn(X: np.ndarray, Y: np.ndarray, *, k: int = 10, metric: str = "cosine") -> Scorer:
    return _knn_scorer(X, Y, k, metric, jaccard=False)


