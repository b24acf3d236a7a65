"""Similarity of two paired point clouds.

Every metric takes ``X`` (n x d1) and ``Y`` (n x d2), numpy or torch, where row ``i`` of ``X`` is paired with
row ``i`` of ``Y`` (for example the decoder rows of matched features), and returns a float. Every metric is
invariant to a positive isotropic scaling of either input, and inputs of extreme magnitude (largest |entry|
outside [2^-64, 2^64], e.g. X * 1e160 or X * 1e-200) are first rescaled by an exact power of two, so their value
equals that of the unscaled input to float rounding. Inputs without variance after centring (all rows equal, zero
or not) are refused with a ValueError by SVCCA, CKA and Procrustes. A saturated SVCCA (``k_x + k_y > n - 1``
components, so some canonical correlations are 1 for any pairing) is refused too; by default each side keeps at
most ``max(1, n // 4)`` components, which never saturates (see :func:`svcca_result`).

=============  =======================================================  ==========  ========================
metric         invariant to                                             range       symmetric
=============  =======================================================  ==========  ========================
svcca          invertible linear maps + shifts of the kept subspaces    [0, 1]      yes
linear_cka     orthogonal maps, isotropic scaling, shifts               [0, 1]      yes (debiased: [-1, 1])
rsa            whatever the RDM is invariant to (see :func:`rsa`)       [-1, 1]     yes
procrustes     orthogonal maps, isotropic scaling, shifts               [0, 1]      yes
knn_jaccard    whatever the neighbour metric is invariant to            [0, 1]      yes
mutual_knn     same as knn_jaccard                                      [0, 1]      yes
=============  =======================================================  ==========  ========================

The private helpers (``_centred_svd``, ``_condensed_rdm``, ``_centred_doubled_ranks``, ``_knn_indices``, ...)
are shared with :mod:`featgeom_tda.analyses.geometry.baselines`, whose permutation fast paths reuse the same numerics so
that they equal a plain recomputation to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from featgeom_tda.core._linalg import svd
from featgeom_tda.core._validation import as_float_matrix, check_choice, check_fraction, check_positive_int, check_same_rows

__all__ = [
    "SVCCAResult",
    "svcca",
    "svcca_result",
    "svcca_details",
    "AUTO_MAX_COMPONENTS",
    "auto_max_components",
    "forced_unit_correlations",
    "describe_max_components",
    "linear_cka",
    "rsa",
    "procrustes",
    "knn_jaccard",
    "mutual_knn",
    "RDM_CHOICES",
    "COMPARE_CHOICES",
    "KNN_METRICS",
]

RDM_CHOICES = ("correlation", "cosine", "euclidean")
COMPARE_CHOICES = ("spearman", "pearson")
KNN_METRICS = ("cosine", "euclidean")

# Work arrays of chunked computations hold about this many float64 entries (32 MB).
_CHUNK_ENTRIES = 4_000_000
# Cumulative explained-variance fractions within this of the threshold count as reaching it.
_VARIANCE_TOL = 1e-12
# Inputs whose largest |entry| is outside [2^-64, 2^64] are rescaled by a power of two (see _rescaled).
_SAFE_EXPONENT = 64


def _paired(X: Any, Y: Any, *, min_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate a pair of inputs: 2-D, finite, same number of rows, at least ``min_rows`` rows."""
    Xa = as_float_matrix(X, "X")
    Ya = as_float_matrix(Y, "Y")
    check_same_rows(Xa, "X", Ya, "Y", what="paired metrics")
    if Xa.shape[0] < min_rows:
        raise ValueError(f"X and Y have {Xa.shape[0]} rows; this metric needs at least {min_rows} paired rows")
    return _rescaled(Xa), _rescaled(Ya)


def _rescaled(Z: np.ndarray) -> np.ndarray:
    """``Z`` times a power of two that brings ``max|Z|`` into [0.5, 1) when it lies outside
    [2^-_SAFE_EXPONENT, 2^_SAFE_EXPONENT]; otherwise ``Z`` itself (the same object).

    Every metric here is invariant to a positive isotropic scaling of either input, and multiplying by a power of
    two is exact, so this changes no result; it only keeps the squares and fourth powers the metrics form (CKA's
    ``||X_c^T X_c||_F^2``, the row norms of RSA and Procrustes, ...) from overflowing (X * 1e160) or underflowing
    (X * 1e-200). Inputs of ordinary magnitude are passed through untouched.
    """
    if Z.size == 0:
        return Z
    m = float(np.max(np.abs(Z)))
    if m == 0.0 or 2.0**-_SAFE_EXPONENT <= m <= 2.0**_SAFE_EXPONENT:
        return Z
    _, exponent = np.frexp(m)
    return np.ldexp(Z, -int(exponent))


def _centre(Z: np.ndarray) -> np.ndarray:
    return Z - Z.mean(axis=0, keepdims=True)


def _no_variation(Z: np.ndarray, Zc: np.ndarray) -> bool:
    """True when the column-centred ``Zc`` of ``Z`` is zero up to the rounding of the centring itself.

    All-zero rows, and identical non-zero rows (``np.ones((20, 5))``, or ``np.tile(r, (20, 1))`` whose centred
    values are rounding noise of about 1e-17), have no variance after centring: anything within
    ``4 n eps max|Z|`` of zero counts as none.
    """
    if Zc.size == 0:
        return True
    scale = float(np.max(np.abs(Z)))
    return not float(np.max(np.abs(Zc))) > 4.0 * Z.shape[0] * np.finfo(np.float64).eps * scale


# ---------------------------------------------------------------------------------------------------------------
# SVCCA
# ---------------------------------------------------------------------------------------------------------------

# The default cap of the variance-based component count: at most max(1, n // 4) components a side.
AUTO_MAX_COMPONENTS = "auto"


def auto_max_components(n: int) -> int:
    """The ``max_components="auto"`` cap for ``n`` paired rows: ``max(1, n // 4)`` a side, so ``k_x + k_y <= n / 2``."""
    return max(1, int(n) // 4)


def forced_unit_correlations(k_x: int, k_y: int, n: int) -> int:
    """Canonical correlations that are 1 for ANY pairing: ``max(0, k_x + k_y - (n - 1))``.

    Centred data of n rows live in the (n - 1)-dimensional complement of the all-ones vector, and two subspaces of
    dimensions k_x and k_y there share at least ``k_x + k_y - (n - 1)`` dimensions.
    """
    return max(0, int(k_x) + int(k_y) - (int(n) - 1))


def describe_max_components(max_components: Any) -> str:
    """The component cap in words (for report labels), e.g. ``"at most max(1, n // 4) a side (k_x + k_y <= n / 2)"``."""
    cap = _check_max_components(max_components)
    if cap is None:
        return "no cap"
    if cap == AUTO_MAX_COMPONENTS:
        return "at most max(1, n // 4) a side (k_x + k_y <= n / 2)"
    return f"at most {cap} a side"


@dataclass
class SVCCAResult:
    """SVCCA score with what it was computed from.

    Attributes:
        score: mean of the canonical correlations.
        n_components_x, n_components_y: SVD components kept for X and Y (k_x, k_y).
        n_rows: paired rows n.
        n_forced: canonical correlations that are 1 for any pairing, ``max(0, k_x + k_y - (n - 1))``; the result is
            ``saturated`` when this is > 0 (only with ``allow_saturated=True``).
        canonical_correlations: shape (min(k_x, k_y),), descending, in [0, 1].
        explained_variance_x, explained_variance_y: fraction of the centred variance the kept components hold.
        variance: the threshold used, or None when ``n_components`` was given.
        max_components: the cap applied to each side's variance-based count (an int), or None.
        n_components_variance: (k_x, k_y) the variance threshold alone kept (before the cap), or None.
        rule: how the components were chosen, in words.
    """

    score: float
    n_components_x: int
    n_components_y: int
    n_rows: int
    n_forced: int
    canonical_correlations: np.ndarray
    explained_variance_x: float
    explained_variance_y: float
    variance: float | None = None
    max_components: int | None = None
    n_components_variance: tuple[int, int] | None = None
    rule: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def saturated(self) -> bool:
        """True when some canonical correlations are 1 by construction (``n_forced > 0``)."""
        return self.n_forced > 0

    def summary(self) -> dict[str, Any]:
        """The component bookkeeping as plain JSON (no correlations, no options)."""
        kv = self.n_components_variance
        return {
            "n_components_x": int(self.n_components_x),
            "n_components_y": int(self.n_components_y),
            "n_rows": int(self.n_rows),
            "n_forced": int(self.n_forced),
            "saturated": bool(self.saturated),
            "variance": self.variance,
            "max_components": None if self.max_components is None else int(self.max_components),
            "n_components_variance": None if kv is None else [int(kv[0]), int(kv[1])],
            "rule": self.rule,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": float(self.score),
            **self.summary(),
            "canonical_correlations": [float(c) for c in self.canonical_correlations],
            "explained_variance_x": float(self.explained_variance_x),
            "explained_variance_y": float(self.explained_variance_y),
            "options": dict(self.options),
        }


def _centred_svd(Z: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Left singular vectors U (n x r), singular values s (r,) of the column-centred ``Z``, and its numerical rank."""
    Zc = _centre(Z)
    if _no_variation(Z, Zc):
        raise ValueError(f"{name} has zero variance after centring (all rows are equal); SVCCA needs variation")
    U, s, _ = svd(Zc, full_matrices=False)
    if s.size == 0 or s[0] <= 0:
        raise ValueError(f"{name} has zero variance after centring (all rows are equal); SVCCA needs variation")
    tol = s[0] * max(Zc.shape) * np.finfo(np.float64).eps
    rank = int(np.count_nonzero(s > tol))
    return U, s, rank


def _check_n_components(n_components: Any) -> tuple[int, int] | None:
    if n_components is None:
        return None
    if isinstance(n_components, (tuple, list)):
        if len(n_components) != 2:
            raise ValueError(
                "n_components must be an integer or a pair (for X, for Y); "
                f"got a sequence of length {len(n_components)}"
            )
        return (
            check_positive_int(n_components[0], "n_components[0]"),
            check_positive_int(n_components[1], "n_components[1]"),
        )
    k = check_positive_int(n_components, "n_components")
    return k, k


def _check_max_components(max_components: Any) -> int | str | None:
    if max_components is None or (isinstance(max_components, str) and max_components == AUTO_MAX_COMPONENTS):
        return max_components
    if isinstance(max_components, str):
        raise ValueError(f"max_components must be 'auto', a positive integer or None; got {max_components!r}")
    try:
        return check_positive_int(max_components, "max_components")
    except ValueError:
        raise ValueError(f"max_components must be 'auto', a positive integer or None; got {max_components!r}") from None


def _check_allow_saturated(allow_saturated: Any) -> bool:
    if not isinstance(allow_saturated, (bool, np.bool_)):
        raise ValueError(f"allow_saturated must be True or False; got {allow_saturated!r}")
    return bool(allow_saturated)


def _kept_components(s: np.ndarray, rank: int, variance: float, n_components: int | None, name: str) -> int:
    """Number of components to keep: ``n_components`` exactly, or the fewest whose cumulative explained-variance
    FRACTION reaches ``variance`` (never more than the numerical rank)."""
    if n_components is not None:
        if n_components > rank:
            raise ValueError(
                f"n_components={n_components} exceeds the rank of centred {name} ({rank}); "
                f"use at most {rank} components"
            )
        return n_components
    power = s[:rank] ** 2
    fraction = np.cumsum(power) / power.sum()
    k = int(np.searchsorted(fraction, variance - _VARIANCE_TOL, side="left")) + 1
    return min(k, rank)


def _canonical_correlations(Qx: np.ndarray, Qy: np.ndarray) -> np.ndarray:
    """Canonical correlations between the column spaces of two orthonormal bases (n x kx, n x ky)."""
    return _singular_values_unit(Qx.T @ Qy)


def _singular_values_unit(M: np.ndarray) -> np.ndarray:
    """Singular values of ``M`` clipped to [0, 1] (cosines of principal angles)."""
    return np.clip(svd(M, compute_uv=False), 0.0, 1.0)


@dataclass
class _SVCCAParts:
    Qx: np.ndarray  # (n, k_x) orthonormal basis of X's kept components
    Qy: np.ndarray  # (n, k_y)
    ev_x: float
    ev_y: float
    n_forced: int
    cap: int | None  # the cap applied to the variance-based counts
    variance_counts: tuple[int, int] | None  # before the cap


def _saturation_message(kx: int, ky: int, n: int, forced: int) -> str:
    return (
        f"SVCCA is saturated: k_x={kx} and k_y={ky} components on n={n} paired rows (centred: n - 1 = {n - 1} "
        f"dimensions) force max(0, k_x + k_y - (n - 1)) = {forced} canonical correlations to 1 for any pairing, "
        f"so the score cannot measure the pairing; keep fewer components: max_components='auto' keeps at most "
        f"max(1, n // 4) = {auto_max_components(n)} a side, or give n_components with k_x + k_y <= {n - 1} "
        "(svcca_result(..., allow_saturated=True) returns the flagged result for inspection)"
    )


def _svcca_parts(
    X: np.ndarray,
    Y: np.ndarray,
    variance: float,
    n_components: tuple[int, int] | None,
    max_components: int | str | None = AUTO_MAX_COMPONENTS,
    *,
    allow_saturated: bool = False,
) -> _SVCCAParts:
    """Orthonormal bases of the kept subspaces and their bookkeeping; a saturated choice raises ValueError
    unless ``allow_saturated``. ``max_components`` caps the variance-based counts only."""
    n = X.shape[0]
    Ux, sx, rx = _centred_svd(X, "X")
    Uy, sy, ry = _centred_svd(Y, "Y")
    kx = _kept_components(sx, rx, variance, None if n_components is None else n_components[0], "X")
    ky = _kept_components(sy, ry, variance, None if n_components is None else n_components[1], "Y")
    cap = variance_counts = None
    if n_components is None:
        variance_counts = (kx, ky)
        if max_components is not None:
            cap = auto_max_components(n) if max_components == AUTO_MAX_COMPONENTS else int(max_components)
            kx, ky = min(kx, cap), min(ky, cap)
    forced = forced_unit_correlations(kx, ky, n)
    if forced and not allow_saturated:
        raise ValueError(_saturation_message(kx, ky, n, forced))
    ev_x = float((sx[:kx] ** 2).sum() / (sx**2).sum())
    ev_y = float((sy[:ky] ** 2).sum() / (sy**2).sum())
    return _SVCCAParts(
        np.ascontiguousarray(Ux[:, :kx]), np.ascontiguousarray(Uy[:, :ky]), ev_x, ev_y, forced, cap, variance_counts
    )


def _rule(variance: float, n_components: tuple[int, int] | None, max_components: Any) -> str:
    if n_components is not None:
        return f"n_components = ({n_components[0]}, {n_components[1]}) as given"
    return f"fewest components reaching {variance:g} of the variance, {describe_max_components(max_components)}"


def svcca_result(
    X: Any,
    Y: Any,
    *,
    variance: float = 0.99,
    n_components: Any = None,
    max_components: Any = AUTO_MAX_COMPONENTS,
    allow_saturated: bool = False,
) -> SVCCAResult:
    """Singular Vector CCA (Raghu et al. 2017) of paired rows, with the components kept.

    Both inputs are centred per column and reduced by SVD to their top components: the fewest whose cumulative
    explained-variance fraction ``sum_{i<=k} s_i^2 / sum_i s_i^2`` reaches ``variance`` (within 1e-12; never
    more than the numerical rank), capped at ``max_components`` a side, or exactly ``n_components`` (an int for
    both, or a pair ``(k_x, k_y)``; it overrides ``variance`` and the cap). The score is the mean of the
    ``min(k_x, k_y)`` canonical correlations, the singular values of ``U_x^T U_y`` (orthonormal kept bases).

    Saturation: ``max(0, k_x + k_y - (n - 1))`` canonical correlations are 1 for ANY pairing (two subspaces of
    the (n - 1)-dimensional centred row space must intersect). Such a choice is refused with a ValueError unless
    ``allow_saturated=True``, which returns it flagged (``saturated``, ``n_forced``). The default cap
    ``"auto"`` = ``max(1, n // 4)`` a side keeps ``k_x + k_y <= n / 2``: no correlation is forced, and those of a
    random pairing stay below about ``sqrt(3) / 2`` (the Wachter edge for two quarter-dimension subspaces).

    Args:
        X: (n, d1) array; Y: (n, d2) array; row i of X paired with row i of Y. n >= 2.
        max_components: ``"auto"``, a positive int, or None (no cap: the classic definition).
    Returns:
        :class:`SVCCAResult`.
    """
    Xa, Ya = _paired(X, Y, min_rows=2)
    variance = check_fraction(variance, "variance")
    nc = _check_n_components(n_components)
    cap = _check_max_components(max_components)
    allow = _check_allow_saturated(allow_saturated)
    parts = _svcca_parts(Xa, Ya, variance, nc, cap, allow_saturated=allow)
    rho = _canonical_correlations(parts.Qx, parts.Qy)
    return SVCCAResult(
        score=float(rho.mean()),
        n_components_x=parts.Qx.shape[1],
        n_components_y=parts.Qy.shape[1],
        n_rows=Xa.shape[0],
        n_forced=parts.n_forced,
        canonical_correlations=rho,
        explained_variance_x=parts.ev_x,
        explained_variance_y=parts.ev_y,
        variance=None if nc is not None else variance,
        max_components=parts.cap,
        n_components_variance=parts.variance_counts,
        rule=_rule(variance, nc, cap),
        options={"variance": variance, "n_components": None if nc is None else list(nc), "max_components": cap,
                 "allow_saturated": allow},
    )


svcca_details = svcca_result


def svcca(
    X: Any, Y: Any, *, variance: float = 0.99, n_components: Any = None, max_components: Any = AUTO_MAX_COMPONENTS
) -> float:
    """Mean SVCCA canonical correlation of paired rows (X: (n, d1), Y: (n, d2)); see :func:`svcca_result`.

    A saturated choice of components (``k_x + k_y > n - 1``) is refused with a ValueError.
    """
    return svcca_result(X, Y, variance=variance, n_components=n_components, max_components=max_components).score


# ---------------------------------------------------------------------------------------------------------------
# Linear CKA
# ---------------------------------------------------------------------------------------------------------------


def _cross_sq_norm(A: np.ndarray, B: np.ndarray) -> float:
    """||A^T B||_F^2 = <A A^T, B B^T>, through whichever of the feature or the Gram form is cheaper."""
    n, da = A.shape
    db = B.shape[1]
    if n * da * db <= n * n * (da + db + 1):
        return float(np.sum(np.square(A.T @ B)))
    return float(np.sum((A @ A.T) * (B @ B.T)))


def _hsic_from_terms(cross: float, sum_kx: float, sum_ly: float, dot_kl: float, n: int, debiased: bool) -> float:
    """HSIC of column-centred data from ``cross = <K, L>``, the sums of the diagonals and their dot product.

    Biased: ``<K, L> / (n - 1)^2`` (= tr(K H L H) / (n - 1)^2 because the data are centred).
    Debiased (Song et al. 2012): ``[<K~, L~> + (1'K~1)(1'L~1)/((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3))`` with
    ``K~`` = K with a zero diagonal; for centred data K1 = 0, so ``<K~, L~> = <K, L> - sum k_ii l_ii``,
    ``1'K~1 = -sum k_ii`` and ``K~1 = -diag(K)``.
    """
    if not debiased:
        return cross / (n - 1) ** 2
    return (cross + sum_kx * sum_ly / ((n - 1) * (n - 2)) - n / (n - 2) * dot_kl) / (n * (n - 3))


def linear_cka(X: Any, Y: Any, *, debiased: bool = False) -> float:
    """Linear centred kernel alignment (Kornblith et al. 2019) of paired rows.

    ``CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with ``K = X_c X_c^T`` and ``L = Y_c Y_c^T`` (columns
    centred). Computed in feature space: for the biased estimator
    ``CKA = ||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F)``. With ``debiased=True`` the unbiased HSIC
    estimator of Song et al. (2012) replaces the biased one (the value can then be slightly negative, and is in
    [-1, 1]).

    Args:
        X: (n, d1) array; Y: (n, d2) array. n >= 2 (n >= 4 when debiased).
    Returns:
        float in [0, 1] (biased) or [-1, 1] (debiased).
    """
    _check_debiased(debiased)
    Xa, Ya = _paired(X, Y, min_rows=4 if debiased else 2)
    Xc, Yc = _centre(Xa), _centre(Ya)
    for name, Z, Zc in (("X", Xa, Xc), ("Y", Ya, Yc)):
        if _no_variation(Z, Zc):
            raise ValueError(f"{name} has zero variance after centring (constant rows?); CKA is undefined")
    kx = np.einsum("ij,ij->i", Xc, Xc)
    ly = np.einsum("ij,ij->i", Yc, Yc)
    n = Xc.shape[0]
    hxx = _hsic_from_terms(_cross_sq_norm(Xc, Xc), kx.sum(), kx.sum(), float(kx @ kx), n, debiased)
    hyy = _hsic_from_terms(_cross_sq_norm(Yc, Yc), ly.sum(), ly.sum(), float(ly @ ly), n, debiased)
    _check_self_hsic(hxx, hyy, debiased)
    hxy = _hsic_from_terms(_cross_sq_norm(Xc, Yc), kx.sum(), ly.sum(), float(kx @ ly), n, debiased)
    return float(hxy / np.sqrt(hxx * hyy))


def _check_debiased(debiased: Any) -> None:
    if not isinstance(debiased, (bool, np.bool_)):
        raise ValueError(f"debiased must be True or False; got {debiased!r}")


def _check_self_hsic(hxx: float, hyy: float, debiased: bool) -> None:
    what = "unbiased HSIC" if debiased else "variance"
    for name, h in (("X", hxx), ("Y", hyy)):
        if not h > 0:
            raise ValueError(f"{name} has zero {what} after centring (constant rows?); CKA is undefined")


# ---------------------------------------------------------------------------------------------------------------
# RSA
# ---------------------------------------------------------------------------------------------------------------


def _condensed_offsets(n: int) -> np.ndarray:
    """Start of row i's entries (pairs (i, j), j > i) in a condensed upper triangle, shape (n,)."""
    i = np.arange(n, dtype=np.int64)
    return i * n - i * (i + 1) // 2


def _unit_rows(Z: np.ndarray, name: str, *, centre_rows: bool) -> np.ndarray:
    if centre_rows:
        Z = Z - Z.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(Z, axis=1)
    bad = np.flatnonzero(norms <= 0)
    if bad.size:
        what = "constant (zero variance across its columns)" if centre_rows else "all zeros"
        kind = "correlation" if centre_rows else "cosine"
        raise ValueError(f"{name} row {int(bad[0])} is {what}; the {kind} distance needs rows with non-zero norm")
    return Z / norms[:, None]


def _condensed_rdm(Z: np.ndarray, rdm: str, name: str) -> np.ndarray:
    """Condensed upper triangle (pairs i < j, row-major as in ``scipy.spatial.distance.pdist``) of the RDM, float64.

    ``correlation``: 1 - Pearson correlation of the two rows; ``cosine``: 1 - cosine similarity; ``euclidean``:
    Euclidean distance. Computed by row blocks, so the only full-size array is the n(n-1)/2 result.
    """
    n = Z.shape[0]
    if rdm == "euclidean":
        V = Z
        sq = np.einsum("ij,ij->i", Z, Z)
    else:
        V = _unit_rows(Z, name, centre_rows=(rdm == "correlation"))
        sq = None
    out = np.empty(n * (n - 1) // 2, dtype=np.float64)
    offsets = _condensed_offsets(n)
    block = max(1, min(n, _CHUNK_ENTRIES // max(n, 1)))
    for a in range(0, n - 1, block):
        b = min(a + block, n - 1)
        G = V[a:b] @ V[a:].T  # (b - a, n - a); column c is row a + c
        if rdm == "euclidean":
            G *= -2.0
            G += sq[a:b, None]
            G += sq[None, a:]
            np.maximum(G, 0.0, out=G)
            np.sqrt(G, out=G)
        else:
            np.subtract(1.0, G, out=G)
        for i in range(a, b):
            start = offsets[i]
            out[start : start + n - 1 - i] = G[i - a, i - a + 1 :]
    return out


def _rank_dtype(m: int) -> type:
    return np.int32 if 2 * m + 2 < np.iinfo(np.int32).max else np.int64


def _centred_doubled_ranks(values: np.ndarray) -> np.ndarray:
    """Twice the average ranks (ties averaged, 1-based) minus their mean ``m + 1``, as integers.

    Twice an average rank is an integer, so the result is exact in int32 for up to about 10^9 entries.
    ``values`` is sorted in place (pass a temporary): a plain sort is much faster than gathering
    ``values[order]``, and no copy is made, so the peak stays near two float64 copies of the input.
    """
    m = values.shape[0]
    itype = _rank_dtype(m)
    order = np.argsort(values)
    values.sort()
    new_group = np.empty(m, dtype=bool)
    new_group[0] = True
    np.not_equal(values[1:], values[:-1], out=new_group[1:])
    del values
    positions = np.arange(m, dtype=itype)
    if new_group.all():
        doubled = positions
        doubled *= 2
        doubled += 2
    else:
        start = np.where(new_group, positions, 0).astype(itype, copy=False)
        np.maximum.accumulate(start, out=start)
        last = np.empty(m, dtype=bool)
        last[:-1] = new_group[1:]
        last[-1] = True
        end = np.where(last[::-1], positions[::-1], m).astype(itype, copy=False)
        del last, positions
        np.minimum.accumulate(end, out=end)
        doubled = start
        doubled += end[::-1]
        del end
        doubled += 2
    del new_group
    doubled -= m + 1
    ranks = np.empty(m, dtype=itype)
    ranks[order] = doubled
    return ranks


def _centred_values(values: np.ndarray) -> np.ndarray:
    values -= values.mean()
    return values


def _chunked_dot(a: np.ndarray, b: np.ndarray) -> float:
    """sum(a * b) in float64, chunk by chunk (no full-size temporaries for integer inputs)."""
    total = 0.0
    for s in range(0, a.shape[0], _CHUNK_ENTRIES):
        ca = np.asarray(a[s : s + _CHUNK_ENTRIES], dtype=np.float64)
        cb = np.asarray(b[s : s + _CHUNK_ENTRIES], dtype=np.float64)
        total += float(np.dot(ca, cb))
    return total


def _check_rsa_options(rdm: str, compare: str) -> None:
    check_choice(rdm, "rdm", RDM_CHOICES)
    check_choice(compare, "compare", COMPARE_CHOICES)


def _rsa_vector(Z: np.ndarray, rdm: str, compare: str, name: str) -> np.ndarray:
    """Centred condensed RDM (compare='pearson') or centred doubled ranks of it (compare='spearman')."""
    if compare == "spearman":
        return _centred_doubled_ranks(_condensed_rdm(Z, rdm, name))
    return _centred_values(_condensed_rdm(Z, rdm, name))


def rsa(X: Any, Y: Any, *, rdm: str = "correlation", compare: str = "spearman") -> float:
    """Representational similarity analysis of paired rows.

    Builds the representational dissimilarity matrix (RDM) of the rows of X and of Y (``correlation``:
    1 - Pearson correlation of two rows; ``cosine``: 1 - cosine similarity; ``euclidean``: Euclidean distance,
    all as in ``scipy.spatial.distance.pdist``) and correlates their upper triangles (``spearman``: Pearson
    correlation of the average ranks; ``pearson``: of the values).

    Invariances: the cosine and Euclidean RDMs are unchanged by orthogonal maps ``X -> X Q``; the correlation
    RDM is unchanged by per-row affine maps ``x_i -> a_i x_i + b_i`` (a_i > 0) but only by those orthogonal maps
    that fix the all-ones direction, because it centres each row across its columns.

    Tied dissimilarities get average ranks; ties are exact ties of the computed float64 values.

    Memory: about 24 bytes per pair of rows at the peak (n = 10,000: about 1.2 GB), no n x n matrix.

    Args:
        X: (n, d1) array; Y: (n, d2) array. n >= 3.
    Returns:
        float in [-1, 1].
    """
    _check_rsa_options(rdm, compare)
    Xa, Ya = _paired(X, Y, min_rows=3)
    vx = _rsa_vector(Xa, rdm, compare, "X")
    sxx = _chunked_dot(vx, vx)
    if not sxx > 0:
        raise ValueError(f"X has a constant {rdm} RDM (all rows equally far apart); RSA is undefined")
    vy = _rsa_vector(Ya, rdm, compare, "Y")
    syy = _chunked_dot(vy, vy)
    if not syy > 0:
        raise ValueError(f"Y has a constant {rdm} RDM (all rows equally far apart); RSA is undefined")
    return float(_chunked_dot(vx, vy) / np.sqrt(sxx * syy))


# ---------------------------------------------------------------------------------------------------------------
# Procrustes
# ---------------------------------------------------------------------------------------------------------------


def _procrustes_normalised(Z: np.ndarray, name: str) -> np.ndarray:
    Zc = _centre(Z)
    norm = np.linalg.norm(Zc)
    if not norm > 0 or _no_variation(Z, Zc):
        raise ValueError(f"{name} has zero variance after centring (all rows are equal); Procrustes is undefined")
    return Zc / norm


def _nuclear_norm(M: np.ndarray) -> float:
    return float(svd(M, compute_uv=False).sum())


def procrustes(X: Any, Y: Any) -> float:
    """Orthogonal Procrustes similarity of paired rows.

    Definition: centre the columns of X and Y, scale each to unit Frobenius norm (``X_n``, ``Y_n``), and pad
    the narrower one with zero columns so both are n x max(d1, d2). Then

        similarity = max over orthogonal Q of tr(Q^T X_n^T Y_n) = ||X_n^T Y_n||_*  (nuclear norm),

    which equals ``1 - d^2 / 2`` for the Procrustes distance ``d = min_Q ||X_n Q - Y_n||_F`` (in [0, sqrt(2)]).
    Zero padding adds only zero singular values, so the padding is implicit. The similarity is 1 exactly when
    ``Y = a X Q + b`` (a > 0, Q orthogonal in the padded space) and lies in [0, 1].

    Args:
        X: (n, d1) array; Y: (n, d2) array. n >= 2.
    """
    Xa, Ya = _paired(X, Y, min_rows=2)
    return _nuclear_norm(_procrustes_normalised(Xa, "X").T @ _procrustes_normalised(Ya, "Y"))


# ---------------------------------------------------------------------------------------------------------------
# k nearest neighbours
# ---------------------------------------------------------------------------------------------------------------


def _check_k(k: Any, n: int) -> int:
    k = check_positive_int(k, "k")
    if k > n - 1:
        raise ValueError(f"k={k} needs at least k + 1 = {k + 1} rows (self is excluded); X and Y have {n}")
    return k


def _knn_indices(Z: np.ndarray, k: int, metric: str, name: str) -> np.ndarray:
    """Indices (n, k) of each row's k nearest other rows (unordered; ties broken arbitrarily), by row blocks."""
    n = Z.shape[0]
    if metric == "cosine":
        V = _unit_rows(Z, name, centre_rows=False)
        penalty = None
    else:
        V = Z
        penalty = 0.5 * np.einsum("ij,ij->i", Z, Z)  # nearer = larger  x_i.x_j - |x_j|^2 / 2
    out = np.empty((n, k), dtype=np.int64)
    block = max(1, min(n, _CHUNK_ENTRIES // n))
    for a in range(0, n, block):
        b = min(a + block, n)
        S = V[a:b] @ V.T
        if penalty is not None:
            S -= penalty[None, :]
        S[np.arange(b - a), np.arange(a, b)] = -np.inf
        out[a:b] = np.argpartition(-S, k - 1, axis=1)[:, :k]
    return out


def _neighbour_overlap(Nx: np.ndarray, Ny: np.ndarray) -> np.ndarray:
    """Per row, |N_x(i) ∩ N_y(i)| for index sets without repeats, shape (n,)."""
    both = np.sort(np.concatenate([Nx, Ny], axis=1), axis=1)
    return np.count_nonzero(both[:, 1:] == both[:, :-1], axis=1)


def _jaccard_from_overlap(overlap: np.ndarray, k: int) -> float:
    return float(np.mean(overlap / (2 * k - overlap)))


def _knn_inputs(X: Any, Y: Any, k: Any, metric: str) -> tuple[np.ndarray, np.ndarray, int]:
    check_choice(metric, "metric", KNN_METRICS)
    Xa, Ya = _paired(X, Y, min_rows=2)
    return Xa, Ya, _check_k(k, Xa.shape[0])


def knn_jaccard(X: Any, Y: Any, *, k: int = 10, metric: str = "cosine") -> float:
    """Mean over rows of the Jaccard index ``|N_X(i) ∩ N_Y(i)| / |N_X(i) ∪ N_Y(i)|`` of the row's k nearest
    neighbours in X and in Y (self excluded; ``cosine`` or ``euclidean`` distance; ties broken arbitrarily).

    Args:
        X: (n, d1) array; Y: (n, d2) array. n >= k + 1.
    Returns:
        float in [0, 1].
    """
    Xa, Ya, k = _knn_inputs(X, Y, k, metric)
    overlap = _neighbour_overlap(_knn_indices(Xa, k, metric, "X"), _knn_indices(Ya, k, metric, "Y"))
    return _jaccard_from_overlap(overlap, k)


def mutual_knn(X: Any, Y: Any, *, k: int = 10, metric: str = "cosine") -> float:
    """Mean over rows of the fraction ``|N_X(i) ∩ N_Y(i)| / k`` of shared k nearest neighbours (self excluded).

    Args:
        X: (n, d1) array; Y: (n, d2) array. n >= k + 1.
    Returns:
        float in [0, 1]; about k / (n - 1) for unrelated data.
    """
    Xa, Ya, k = _knn_inputs(X, Y, k, metric)
    overlap = _neighbour_overlap(_knn_indices(Xa, k, metric, "X"), _knn_indices(Ya, k, metric, "Y"))
    return float(np.mean(overlap) / k)
