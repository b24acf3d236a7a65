"""Projection-weighted CCA (Morcos, Raghu & Bengio 2018) of paired rows, never saturated.

Given ``X`` (n x p) and ``Y`` (n x q), row ``i`` of one paired with row ``i`` of the other (matched decoder rows,
or the activations of the same tokens):

1. Each side is centred per column and reduced to its top principal components, exactly as SVCCA does
   (:func:`~featgeom_tda.analyses.geometry.similarity.svcca_result`): the fewest reaching ``variance`` of the
   variance, at most ``max_components`` a side (``"auto"`` = ``max(1, n // 4)``), or exactly ``n_components``. A
   choice with ``k_x + k_y > n - 1`` (some canonical correlations 1 for ANY pairing) is always refused.
2. CCA of the reduced sides: with ``Q_x`` (n x k_x), ``Q_y`` (n x k_y) orthonormal bases of the kept
   components, ``Q_x^T Q_y = A diag(rho) B^T``; ``rho_1 >= ... >= rho_m`` (m = min(k_x, k_y)) are the canonical
   correlations and ``h_i = Q_x a_i`` (unit norm) the canonical variates of X.
3. Projection weights on the weighted side (X by default, as in the paper's ``compute_pwcca(acts1, acts2)``):
   ``alpha_i ∝ sum_j |<h_i, z_j>|`` over the columns ``z_j`` of that side's representation, normalised to sum 1,
   and ``PWCCA = sum_i alpha_i rho_i``.

Which columns ``z_j`` (``weight_basis``):

- ``"components"`` (default): the principal-component scores ``z_l = s_l u_l`` (l <= k_x) of the reduced
  representation, so ``alpha_i ∝ sum_l s_l |A_li|``. A rotation ``X -> X Q`` changes no score (up to sign), so the
  metric is invariant to orthogonal maps and isotropic scaling of either side, like the other metrics here.
- ``"columns"``: the centred original columns of X (the paper's "neurons"), ``alpha_i ∝ ||V_k S_k a_i||_1``. This
  is the literal definition on raw coordinates; it depends on the coordinate basis (it is invariant to
  permutations and sign flips of the columns, not to general rotations), which is why it is not the default.

Unlike the paper's reference code, the dot products use the centred columns (CCA is defined on centred data).
``side="mean"`` returns the symmetric average ``(PWCCA_x + PWCCA_y) / 2``. Weights are defined only up to the
choice of canonical directions inside a repeated canonical correlation (or a repeated singular value with
``"components"``); for data in general position neither occurs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from featgeom_tda.core._linalg import svd
from featgeom_tda.analyses.geometry import similarity as sim
from featgeom_tda.core._validation import check_choice, check_fraction

__all__ = ["PWCCAResult", "pwcca", "pwcca_result", "PWCCA_SIDES", "PWCCA_WEIGHT_BASES"]

PWCCA_SIDES = ("x", "y", "mean")
PWCCA_WEIGHT_BASES = ("components", "columns")


@dataclass
class PWCCAResult:
    """PWCCA score with what it was computed from.

    Attributes:
        score: ``sum_i alpha_i rho_i`` on the weighted side (the average of both sides when ``side="mean"``).
        n_components_x, n_components_y: principal components kept for X and Y (k_x, k_y).
        n_rows: paired rows n.
        canonical_correlations: shape (m,), m = min(k_x, k_y), descending, in [0, 1].
        weights_x, weights_y: shape (m,), the projection weights of X's and of Y's canonical variates (each sums
            to 1), aligned with ``canonical_correlations``.
        score_x, score_y: PWCCA weighted by X and by Y.
        mean_cca: the unweighted mean of the canonical correlations (the SVCCA score of the same components).
        side: which side weights the score ("x", "y" or "mean").
        weight_basis: "components" or "columns" (see the module docstring).
        explained_variance_x, explained_variance_y: fraction of the centred variance the kept components hold.
        max_components: the cap applied to the variance-based counts (an int), or None.
        n_components_variance: (k_x, k_y) the variance threshold alone kept (before the cap), or None.
        rule: how the components were chosen, in words.
    """

    score: float
    n_components_x: int
    n_components_y: int
    n_rows: int
    canonical_correlations: np.ndarray
    weights_x: np.ndarray
    weights_y: np.ndarray
    score_x: float
    score_y: float
    mean_cca: float
    side: str
    weight_basis: str
    explained_variance_x: float
    explained_variance_y: float
    max_components: int | None = None
    n_components_variance: tuple[int, int] | None = None
    rule: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def k_x(self) -> int:
        return self.n_components_x

    @property
    def k_y(self) -> int:
        return self.n_components_y

    @property
    def n(self) -> int:
        return self.n_rows

    def summary(self) -> dict[str, Any]:
        """The bookkeeping as plain JSON (no per-correlation arrays, no options)."""
        kv = self.n_components_variance
        return {
            "n_components_x": int(self.n_components_x),
            "n_components_y": int(self.n_components_y),
            "n_rows": int(self.n_rows),
            "n_forced": 0,
            "saturated": False,
            "side": self.side,
            "weight_basis": self.weight_basis,
            "score_x": float(self.score_x),
            "score_y": float(self.score_y),
            "mean_cca": float(self.mean_cca),
            "max_components": None if self.max_components is None else int(self.max_components),
            "n_components_variance": None if kv is None else [int(kv[0]), int(kv[1])],
            "rule": self.rule,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": float(self.score),
            **self.summary(),
            "canonical_correlations": [float(c) for c in self.canonical_correlations],
            "weights_x": [float(w) for w in self.weights_x],
            "weights_y": [float(w) for w in self.weights_y],
            "explained_variance_x": float(self.explained_variance_x),
            "explained_variance_y": float(self.explained_variance_y),
            "options": dict(self.options),
        }


@dataclass
class _Parts:
    Qx: np.ndarray  # (n, k_x) orthonormal basis of X's kept components (left singular vectors)
    Qy: np.ndarray  # (n, k_y)
    Zx: np.ndarray  # (c_x, k_x): <u_l, z_j> for the weighting columns z_j of X, one row per column
    Zy: np.ndarray  # (c_y, k_y)
    ev_x: float
    ev_y: float
    cap: int | None
    variance_counts: tuple[int, int] | None


def _check_side(side: Any) -> str:
    check_choice(side, "side", PWCCA_SIDES)
    return str(side)


def _check_weight_basis(weight_basis: Any) -> str:
    check_choice(weight_basis, "weight_basis", PWCCA_WEIGHT_BASES)
    return str(weight_basis)


def _check_pwcca_options(
    variance: Any = 0.99, n_components: Any = None, max_components: Any = sim.AUTO_MAX_COMPONENTS,
    side: Any = "x", weight_basis: Any = "components",
) -> None:
    """Validate the options of :func:`pwcca` (used by the permutation-test registry before any work)."""
    check_fraction(variance, "variance")
    sim._check_n_components(n_components)
    sim._check_max_components(max_components)
    _check_side(side)
    _check_weight_basis(weight_basis)


def _saturation_message(kx: int, ky: int, n: int, forced: int) -> str:
    return (
        f"PWCCA would be saturated: k_x={kx} and k_y={ky} components on n={n} paired rows (centred: n - 1 = "
        f"{n - 1} dimensions) force max(0, k_x + k_y - (n - 1)) = {forced} canonical correlations to 1 for any "
        f"pairing; keep fewer components: max_components='auto' keeps at most max(1, n // 4) = "
        f"{sim.auto_max_components(n)} a side, or give n_components with k_x + k_y <= {n - 1}"
    )


def _pwcca_parts(
    X: np.ndarray, Y: np.ndarray, variance: float, n_components: tuple[int, int] | None,
    max_components: int | str | None, weight_basis: str,
) -> _Parts:
    """Kept bases (SVCCA's own component rule, :func:`~.similarity._svcca_parts`) and weighting columns; a
    saturated choice raises ValueError."""
    for name, Z in (("X", X), ("Y", Y)):
        if sim._no_variation(Z, sim._centre(Z)):
            raise ValueError(f"{name} has zero variance after centring (all rows are equal); PWCCA needs variation")
    parts = sim._svcca_parts(X, Y, variance, n_components, max_components, allow_saturated=True)
    n = X.shape[0]
    kx, ky = parts.Qx.shape[1], parts.Qy.shape[1]
    if parts.n_forced:
        raise ValueError(_saturation_message(kx, ky, n, parts.n_forced))

    def columns(Z: np.ndarray, Q: np.ndarray) -> np.ndarray:
        # <u_l, z_j> for the weighting columns z_j. The centred original columns: Z_c^T U_k = V_k S_k (p, k).
        # The principal-component scores z_l = s_l u_l: diag(s_l), with s_l = ||Z_c^T u_l||.
        P = sim._centre(Z).T @ Q
        if weight_basis == "components":
            return np.diag(np.linalg.norm(P, axis=0))
        return np.ascontiguousarray(P)

    return _Parts(
        Qx=parts.Qx, Qy=parts.Qy, Zx=columns(X, parts.Qx), Zy=columns(Y, parts.Qy), ev_x=parts.ev_x,
        ev_y=parts.ev_y, cap=parts.cap, variance_counts=parts.variance_counts,
    )


def _projection_weights(Z: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """``alpha_i ∝ sum_j |<h_i, z_j>|`` with ``h_i = Q a_i``: ``Z`` (c, k) holds ``<u_l, z_j>``, ``directions``
    (k, m) the ``a_i``; normalised to sum 1."""
    w = np.abs(Z @ directions).sum(axis=0)
    return w / w.sum()


def _cca(Qx: np.ndarray, Qy: np.ndarray, Zx: np.ndarray, Zy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rho, weights of X's canonical variates, weights of Y's), each of shape (min(k_x, k_y),)."""
    A, rho, Bt = svd(Qx.T @ Qy, full_matrices=False)
    rho = np.clip(rho, 0.0, 1.0)
    return rho, _projection_weights(Zx, A), _projection_weights(Zy, Bt.T)


def _score(rho: np.ndarray, wx: np.ndarray, wy: np.ndarray, side: str) -> tuple[float, float, float]:
    sx, sy = float(wx @ rho), float(wy @ rho)
    score = sx if side == "x" else sy if side == "y" else 0.5 * (sx + sy)
    return score, sx, sy


def pwcca_result(
    X: Any,
    Y: Any,
    *,
    variance: float = 0.99,
    n_components: Any = None,
    max_components: Any = sim.AUTO_MAX_COMPONENTS,
    side: Literal["x", "y", "mean"] = "x",
    weight_basis: Literal["components", "columns"] = "components",
) -> PWCCAResult:
    """Projection-weighted CCA of paired rows, with the components, correlations and weights.

    Args:
        X: (n, p) array; Y: (n, q) array; row i of X paired with row i of Y. n >= 2.
        variance: explained-variance fraction each side's kept components reach (as in SVCCA).
        n_components: an int for both sides or a pair ``(k_x, k_y)``; overrides ``variance`` and the cap.
        max_components: ``"auto"`` (``max(1, n // 4)`` a side, never saturated), a positive int, or None.
        side: whose canonical variates weight the correlations: ``"x"`` (the paper's convention: the first
            argument), ``"y"``, or ``"mean"`` (average of both weightings: symmetric in X and Y).
        weight_basis: ``"components"`` (rotation invariant; default) or ``"columns"`` (the original columns).
    Returns:
        :class:`PWCCAResult`; ``score`` is in [0, 1].
    Raises:
        ValueError: bad arguments, inputs without variance, or a saturated choice (``k_x + k_y > n - 1``).
    """
    Xa, Ya = sim._paired(X, Y, min_rows=2)
    variance = check_fraction(variance, "variance")
    nc = sim._check_n_components(n_components)
    cap = sim._check_max_components(max_components)
    side = _check_side(side)
    weight_basis = _check_weight_basis(weight_basis)
    parts = _pwcca_parts(Xa, Ya, variance, nc, cap, weight_basis)
    rho, wx, wy = _cca(parts.Qx, parts.Qy, parts.Zx, parts.Zy)
    score, score_x, score_y = _score(rho, wx, wy, side)
    return PWCCAResult(
        score=score,
        n_components_x=parts.Qx.shape[1],
        n_components_y=parts.Qy.shape[1],
        n_rows=Xa.shape[0],
        canonical_correlations=rho,
        weights_x=wx,
        weights_y=wy,
        score_x=score_x,
        score_y=score_y,
        mean_cca=float(rho.mean()),
        side=side,
        weight_basis=weight_basis,
        explained_variance_x=parts.ev_x,
        explained_variance_y=parts.ev_y,
        max_components=parts.cap,
        n_components_variance=parts.variance_counts,
        rule=sim._rule(variance, nc, cap),
        options={"variance": variance, "n_components": None if nc is None else list(nc), "max_components": cap,
                 "side": side, "weight_basis": weight_basis},
    )


def pwcca(
    X: Any,
    Y: Any,
    *,
    variance: float = 0.99,
    n_components: Any = None,
    max_components: Any = sim.AUTO_MAX_COMPONENTS,
    side: Literal["x", "y", "mean"] = "x",
    weight_basis: Literal["components", "columns"] = "components",
) -> float:
    """PWCCA score of paired rows (X: (n, p), Y: (n, q)), weighted by ``side``; see :func:`pwcca_result`."""
    return pwcca_result(
        X, Y, variance=variance, n_components=n_components, max_components=max_components, side=side,
        weight_basis=weight_basis,
    ).score


def _observe_pwcca(X: np.ndarray, Y: np.ndarray, **options: Any) -> tuple[float, dict[str, Any]]:
    """(score, details) of the observed pairing, for the permutation-test registry."""
    res = pwcca_result(X, Y, **options)
    return res.score, res.summary()


def _fast_pwcca(X: np.ndarray, Y: np.ndarray, **options: Any) -> Any:
    """Permutation scorer: a row permutation of Y permutes the rows of its kept basis and changes neither its
    singular values, its right singular vectors nor the kept counts, so only ``Q_x^T Q_y[perm]`` is redone."""
    both = _fast_pwcca_and_svcca(X, Y, **options)
    return lambda perm: both(perm)[0]


def shares_svcca_bases(svcca_options: dict[str, Any], pwcca_options: dict[str, Any]) -> bool:
    """Whether SVCCA with ``svcca_options`` keeps the same components as PWCCA with ``pwcca_options`` (the same
    variance, n_components and max_components), so that one CCA of the kept bases gives both scores."""

    def rule(opts: dict[str, Any]) -> tuple[Any, ...]:
        nc = opts.get("n_components")
        return (float(opts.get("variance", 0.99)), None if nc is None else sim._check_n_components(nc),
                opts.get("max_components", sim.AUTO_MAX_COMPONENTS))

    return rule(svcca_options) == rule(pwcca_options)


def pwcca_and_svcca(X: np.ndarray, Y: np.ndarray, **options: Any) -> tuple[float, float]:
    """(PWCCA, SVCCA) of paired float64 rows from one CCA of the kept bases, for PWCCA ``options`` whose component
    rule SVCCA shares (:func:`shares_svcca_bases`)."""
    return _fast_pwcca_and_svcca(X, Y, **options)(np.arange(X.shape[0]))


def _fast_pwcca_and_svcca(
    X: np.ndarray, Y: np.ndarray, *, variance: float = 0.99, n_components: Any = None,
    max_components: Any = sim.AUTO_MAX_COMPONENTS, side: str = "x", weight_basis: str = "components",
) -> Any:
    """Permutation scorer of both: ``score(perm) -> (PWCCA, SVCCA)`` from one SVD of ``Q_x^T Q_y[perm]``."""
    parts = _pwcca_parts(
        X, Y, check_fraction(variance, "variance"), sim._check_n_components(n_components),
        sim._check_max_components(max_components), _check_weight_basis(weight_basis),
    )
    side = _check_side(side)
    Qx, Qy, Zx, Zy = parts.Qx, parts.Qy, parts.Zx, parts.Zy

    def score(perm: np.ndarray) -> tuple[float, float]:
        rho, wx, wy = _cca(Qx, Qy[perm], Zx, Zy)
        return _score(rho, wx, wy, side)[0], float(rho.mean())

    return score
