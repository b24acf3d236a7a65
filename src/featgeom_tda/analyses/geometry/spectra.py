"""Singular-value spectra of weight matrices (SAE decoders, LLM MLP-out weights) and their random baselines.

Definitions used throughout:

- singular values ``s_1 >= s_2 >= ... >= s_r``, r = min(n_rows, n_cols), of the matrix as given (no centring
  unless ``center=True``);
- normalised spectrum ``p_k = s_k / sum_j s_j`` (a distribution over ranks); ``explained_variance`` is the other
  common normalisation ``s_k^2 / sum_j s_j^2``;
- effective rank (Roy & Vetterli 2007) ``exp(-sum_k p_k log p_k)``: 1 for a rank-1 matrix, r for equal
  singular values;
- power-law slope: least-squares slope of ``log s_k`` against ``log k`` over the tail ranks
  ``k in [ceil(lo * r'), floor(hi * r')]`` (defaults lo = 0.1, hi = 0.9) with r' the number of non-zero singular
  values, so ``s_k ~ k^slope`` there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from featgeom_tda.core._linalg import svd
from featgeom_tda.core._validation import as_float_matrix, check_choice, check_positive_int, check_rank, to_numpy
from featgeom_tda.core.types import FeatureWeights

__all__ = [
    "Spectrum",
    "spectrum",
    "spectrum_distance",
    "random_spectrum",
    "effective_rank",
    "DEFAULT_TAIL",
]

DEFAULT_TAIL = (0.1, 0.9)
DISTANCE_METHODS = ("ks", "l1")


@dataclass
class Spectrum:
    """Singular values of one matrix and the summaries derived from them.

    Attributes:
        singular_values: (r,) float64, descending, r = min(shape).
        shape: shape of the matrix.
        name: label (for plots and reports).
        kind: ``"weights"`` (a given matrix) or ``"random"`` (Gaussian baseline).
        centered: whether columns were centred before the SVD.
        effective_rank: Roy & Vetterli entropy effective rank of ``normalized``.
        slope, intercept: least-squares fit ``log s_k = intercept + slope * log k`` over the tail ranks
            (NaN when the tail holds fewer than 2 non-zero values).
        tail: (lo, hi) fractions defining the tail; tail_ranks: the 1-based ranks (first, last) fitted.
        seed: seed of a random baseline, else None.
    """

    singular_values: np.ndarray
    shape: tuple[int, int]
    name: str | None
    kind: str
    centered: bool
    effective_rank: float
    slope: float
    intercept: float
    tail: tuple[float, float]
    tail_ranks: tuple[int, int]
    seed: int | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def normalized(self) -> np.ndarray:
        """``s / s.sum()``, shape (r,)."""
        return self.singular_values / self.singular_values.sum()

    @property
    def explained_variance(self) -> np.ndarray:
        """``s^2 / sum(s^2)``, shape (r,)."""
        power = self.singular_values**2
        return power / power.sum()

    def __len__(self) -> int:
        return int(self.singular_values.shape[0])

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "shape": list(self.shape),
            "centered": self.centered,
            "singular_values": [float(v) for v in self.singular_values],
            "effective_rank": float(self.effective_rank),
            "slope": None if math.isnan(self.slope) else float(self.slope),
            "intercept": None if math.isnan(self.intercept) else float(self.intercept),
            "tail": list(self.tail),
            "tail_ranks": list(self.tail_ranks),
            "seed": self.seed,
            "provenance": dict(self.provenance),
        }


def effective_rank(singular_values: Any) -> float:
    """Roy & Vetterli (2007) effective rank ``exp(H(p))`` of ``p = s / sum(s)`` (0 log 0 = 0).

    Args:
        singular_values: (r,) non-negative values, not all zero.
    """
    s = _singular_value_vector(singular_values, "singular_values")
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-np.sum(p * np.log(p))))


def _singular_value_vector(values: Any, name: str) -> np.ndarray:
    s = to_numpy(values, name).astype(np.float64, copy=False)
    check_rank(s, name, 1)
    if s.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError(f"{name} must hold finite non-negative values")
    if not s.sum() > 0:
        raise ValueError(f"{name} are all zero; the matrix has no spectrum to normalise")
    return s


def _check_tail(tail: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(t) for t in tail)
    except (TypeError, ValueError):
        raise ValueError(f"tail must be a pair (lo, hi) of fractions; got {tail!r}") from None
    if not (0 <= lo < hi <= 1):
        raise ValueError(f"tail must satisfy 0 <= lo < hi <= 1; got {(lo, hi)}")
    return lo, hi


def _power_law_fit(s: np.ndarray, tail: tuple[float, float]) -> tuple[float, float, tuple[int, int]]:
    """Slope and intercept of log s_k on log k over the tail ranks of the non-zero values."""
    nonzero = int(np.count_nonzero(s > s[0] * max(s.shape[0], 1) * np.finfo(np.float64).eps))
    first = max(1, math.ceil(tail[0] * nonzero))
    last = math.floor(tail[1] * nonzero)
    if last - first + 1 < 2:
        return float("nan"), float("nan"), (first, last)
    ranks = np.arange(first, last + 1, dtype=np.float64)
    slope, intercept = np.polyfit(np.log(ranks), np.log(s[first - 1 : last]), 1)
    return float(slope), float(intercept), (first, last)


def _from_values(
    s: np.ndarray,
    shape: tuple[int, int],
    *,
    name: str | None,
    kind: str,
    centered: bool,
    tail: tuple[float, float],
    seed: int | None = None,
    provenance: dict[str, Any] | None = None,
) -> Spectrum:
    if not s.sum() > 0:
        label = "" if name is None else f" {name!r}"
        raise ValueError(f"W{label} is all zeros; its spectrum cannot be normalised")
    slope, intercept, ranks = _power_law_fit(s, tail)
    return Spectrum(
        singular_values=s,
        shape=shape,
        name=name,
        kind=kind,
        centered=centered,
        effective_rank=effective_rank(s),
        slope=slope,
        intercept=intercept,
        tail=tail,
        tail_ranks=ranks,
        seed=seed,
        provenance=provenance or {},
    )


def spectrum(W: Any, *, name: str | None = None, center: bool = False, tail: Any = DEFAULT_TAIL) -> Spectrum:
    """Singular-value spectrum of a matrix.

    Args:
        W: (n, d) FeatureWeights, numpy or torch array (e.g. SAE decoder rows or an MLP-out weight matrix).
        name: label; defaults to the provenance label of a FeatureWeights.
        center: subtract the column means first (the spectrum of the rows as a point cloud).
        tail: (lo, hi) fractions of the non-zero ranks used for the power-law fit.
    Returns:
        :class:`Spectrum` with min(n, d) singular values.
    """
    provenance: dict[str, Any] = {}
    if isinstance(W, FeatureWeights):
        provenance = W.provenance.to_dict()
        if name is None and W.provenance.label() != "unnamed":
            name = W.provenance.label()
        W = W.weights
    M = as_float_matrix(W, "W")
    tail = _check_tail(tail)
    if center:
        M = M - M.mean(axis=0, keepdims=True)
    s = svd(M, compute_uv=False)
    return _from_values(s, tuple(M.shape), name=name, kind="weights", centered=bool(center), tail=tail,
                        provenance=provenance)


def random_spectrum(
    shape: Any, *, seed: int = 0, name: str | None = None, center: bool = False, tail: Any = DEFAULT_TAIL
) -> Spectrum:
    """Spectrum of a Gaussian random matrix of ``shape`` (entries i.i.d. N(0, 1)): the no-structure baseline.

    Its singular values follow the Marchenko–Pastur law, between about sqrt(n) - sqrt(d) and sqrt(n) + sqrt(d)
    for an n x d matrix with n >= d. Normalised spectra do not depend on the entry scale.
    """
    try:
        n_rows, n_cols = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be a pair (n_rows, n_cols); got {shape!r}") from None
    check_positive_int(n_rows, "shape[0]")
    check_positive_int(n_cols, "shape[1]")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    tail = _check_tail(tail)
    M = np.random.default_rng(seed).standard_normal((n_rows, n_cols))
    if center:
        M -= M.mean(axis=0, keepdims=True)
    s = svd(M, compute_uv=False)
    label = name if name is not None else f"random {n_rows}x{n_cols}"
    return _from_values(s, (n_rows, n_cols), name=label, kind="random", centered=bool(center), tail=tail,
                        seed=int(seed))


def _normalised(x: Any, name: str) -> np.ndarray:
    if isinstance(x, Spectrum):
        return x.normalized
    s = _singular_value_vector(x, name)
    return s / s.sum()


def spectrum_distance(a: Any, b: Any, *, method: str = "ks") -> float:
    """Distance between two normalised spectra of possibly different lengths.

    Each normalised spectrum ``p`` of length r is read as a distribution over relative rank u in (0, 1]: mass
    ``p_k`` spread evenly over ((k - 1)/r, k/r]. Then

    - ``"ks"``: Kolmogorov–Smirnov distance ``sup_u |F_a(u) - F_b(u)|`` of the cumulative distributions
      (in [0, 1]; for equal lengths ``max_k |cumsum(p_a)_k - cumsum(p_b)_k|`` at the grid points);
    - ``"l1"``: ``integral |f_a(u) - f_b(u)| du`` of the piecewise-constant densities (in [0, 2]; for equal
      lengths ``sum_k |p_a,k - p_b,k|``).

    Both are exact (no resampling) and 0 for spectra that differ only by scale or by repeating every value the
    same number of times.

    Args:
        a, b: :class:`Spectrum` or 1-D arrays of singular values.
    """
    check_choice(method, "method", DISTANCE_METHODS)
    pa = _normalised(a, "a")
    pb = _normalised(b, "b")
    ra, rb = pa.shape[0], pb.shape[0]
    # breakpoints k/ra and k/rb on a common integer grid of step 1/(ra*rb)
    grid = np.union1d(np.arange(ra + 1, dtype=np.int64) * rb, np.arange(rb + 1, dtype=np.int64) * ra)
    if method == "ks":
        ca = np.concatenate([[0.0], np.cumsum(pa)])
        cb = np.concatenate([[0.0], np.cumsum(pb)])
        # F at a breakpoint t/(ra*rb) is the cdf over the fully covered cells plus a linear part of the next cell;
        # the sup of a difference of piecewise-linear cdfs is reached at breakpoints.
        fa = _cdf_at(ca, pa, grid, rb)
        fb = _cdf_at(cb, pb, grid, ra)
        return float(np.max(np.abs(fa - fb)))
    mids = (grid[:-1] + grid[1:]) / 2.0
    widths = np.diff(grid) / (ra * rb)
    ia = np.minimum((mids // rb).astype(np.int64), ra - 1)
    ib = np.minimum((mids // ra).astype(np.int64), rb - 1)
    return float(np.sum(np.abs(ra * pa[ia] - rb * pb[ib]) * widths))


def _cdf_at(cum: np.ndarray, p: np.ndarray, grid: np.ndarray, cell: int) -> np.ndarray:
    """Piecewise-linear cdf of mass ``p_k`` spread over cell k (``cell`` grid steps wide), at integer ``grid``."""
    full = grid // cell
    frac = (grid - full * cell) / cell
    nxt = np.minimum(full, p.shape[0] - 1)
    return cum[full] + np.where(full < p.shape[0], frac * p[nxt], 0.0)
