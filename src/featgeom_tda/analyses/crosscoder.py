"""Model diffing with a crosscoder: relative decoder norms, shared / exclusive latents, latent scaling.

Every quantity here is taken in the crosscoder's *normalised* units (each model's activations divided by
their root mean squared norm), where the two models weigh the same; see
:class:`featgeom_tda.sources.crosscoders.Crosscoder`.

- :func:`relative_decoder_norm`: ``r_j = ||d_B,j|| / (||d_A,j|| + ||d_B,j||)`` (Lindsey et al. 2024):
  0 = the latent writes only to model A, 1 = only to B, about 0.5 = to both alike.
- :func:`classify_latents`: exclusive to A when ``r < 0.1``, exclusive to B when ``r > 0.9``, shared when
  ``0.3 <= r <= 0.7``, "partial" in between, "dead" where the latent never fires (or has no decoder).
- :func:`block_cosines`: cosine between a latent's two decoder blocks. It means something only when both
  models' activations live in one basis (e.g. a base model and its fine-tune); for two different models
  the blocks are first aligned by an orthogonal Procrustes map fitted on shared latents (cross-fitted by
  default, so a latent's cosine never uses a map fitted on itself), and the result says which was done.
- :func:`latent_scaling` (Minder et al. 2025): how much of the *other* model's data a latent's activation
  explains. L1 crosscoders shrink a shared feature's decoder block in one model to zero ("complete
  shrinkage") or split it into two one-sided latents ("latent decoupling"); either way the latent looks
  exclusive although the other model's activations still carry the feature along its activation.
  :func:`exclusive_but_shared` flags such latents.
- :func:`crosscoder_vs_matching`: each crosscoder latent's best activation correlation with each
  model's own SAE features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from featgeom_tda.core._validation import (
    as_float_matrix,
    check_choice,
    check_number,
    check_positive_int,
    check_same_rows,
    describe,
    to_numpy,
)

__all__ = [
    "LATENT_CLASSES",
    "EXCLUSIVE_THRESHOLD",
    "SHARED_BAND",
    "relative_decoder_norm",
    "decoder_norm_histogram",
    "classify_latents",
    "class_counts",
    "BlockCosines",
    "block_cosines",
    "LatentScaling",
    "latent_scaling",
    "exclusive_but_shared",
    "CrosscoderSAECorrelations",
    "crosscoder_vs_matching",
]

LATENT_CLASSES = ("shared", "exclusive_a", "exclusive_b", "partial", "dead")
EXCLUSIVE_THRESHOLD = 0.1  # r < 0.1: exclusive to A; r > 0.9: exclusive to B
SHARED_BAND = (0.3, 0.7)  # shared when 0.3 <= r <= 0.7
SCALING_TARGETS = ("error", "reconstruction", "activation")


def _is_crosscoder(x: Any) -> bool:
    return all(hasattr(x, name) for name in ("decoder_blocks", "encode", "d_a", "d_b", "sae"))


def _blocks(crosscoder_or_block_a: Any, block_b: Any) -> tuple[np.ndarray, np.ndarray]:
    if _is_crosscoder(crosscoder_or_block_a):
        if block_b is not None:
            raise ValueError("give a Crosscoder alone, or two decoder blocks (block_a, block_b), not both")
        return crosscoder_or_block_a.decoder_blocks(units="normalized")
    if block_b is None:
        raise ValueError(
            f"block_b is required unless the first argument is a Crosscoder; got {describe(crosscoder_or_block_a)}"
        )
    wa = as_float_matrix(crosscoder_or_block_a, "block_a")
    wb = as_float_matrix(block_b, "block_b")
    check_same_rows(wa, "block_a", wb, "block_b", what="decoder blocks of the same latents")
    return wa, wb


def relative_decoder_norm(crosscoder_or_block_a: Any, block_b: Any = None) -> np.ndarray:
    """float64 (width,) ``||d_B|| / (||d_A|| + ||d_B||)`` of every latent; NaN where both blocks are zero.

    Args:
        crosscoder_or_block_a: a :class:`~featgeom_tda.sources.crosscoders.Crosscoder` (its normalised
            decoder blocks are used), or the (width, d_a) decoder block of model A.
        block_b: the (width, d_b) decoder block of model B, when the first argument is a block.
    """
    wa, wb = _blocks(crosscoder_or_block_a, block_b)
    na, nb = np.linalg.norm(wa, axis=1), np.linalg.norm(wb, axis=1)
    total = na + nb
    return np.divide(nb, total, out=np.full_like(total, np.nan), where=total > 0)


def decoder_norm_histogram(r: Any, *, bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """``(counts int64 (bins,), edges float64 (bins + 1,))`` of relative norms over [0, 1]; NaN left out."""
    values = to_numpy(r, "r", dtype=np.float64).ravel()
    bins = check_positive_int(bins, "bins")
    values = values[np.isfinite(values)]
    if values.size and (values.min() < 0 or values.max() > 1):
        raise ValueError(f"r must lie in [0, 1]; got values in [{values.min():.3g}, {values.max():.3g}]")
    counts, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    return counts.astype(np.int64), edges


def _thresholds(exclusive_threshold: Any, shared_band: Any) -> tuple[float, float, float]:
    t = check_number(exclusive_threshold, "exclusive_threshold", low=0.0, high=0.5, high_open=True)
    try:
        lo, hi = (float(v) for v in shared_band)
    except (TypeError, ValueError):
        raise ValueError(f"shared_band must be a pair (low, high); got {shared_band!r}") from None
    if not (t <= lo <= hi <= 1 - t):
        raise ValueError(
            f"shared_band must satisfy exclusive_threshold={t} <= low <= high <= {1 - t}; got {shared_band!r}"
        )
    return t, lo, hi


def classify_latents(
    r: Any,
    *,
    exclusive_threshold: float = EXCLUSIVE_THRESHOLD,
    shared_band: tuple[float, float] = SHARED_BAND,
    dead: Any = None,
) -> np.ndarray:
    """Class of every latent from its relative decoder norm: an array of strings from :data:`LATENT_CLASSES`.

    ``r < exclusive_threshold``: "exclusive_a"; ``r > 1 - exclusive_threshold``: "exclusive_b";
    ``shared_band[0] <= r <= shared_band[1]``: "shared"; otherwise "partial"; NaN or ``dead`` (bool mask,
    e.g. latents that never fire): "dead". Defaults: 0.1 and (0.3, 0.7).
    """
    t, lo, hi = _thresholds(exclusive_threshold, shared_band)
    values = to_numpy(r, "r", dtype=np.float64).ravel()
    out = np.full(values.shape, "partial", dtype="<U11")
    with np.errstate(invalid="ignore"):
        out[values < t] = "exclusive_a"
        out[values > 1 - t] = "exclusive_b"
        out[(values >= lo) & (values <= hi)] = "shared"
    out[~np.isfinite(values)] = "dead"
    if dead is not None:
        mask = to_numpy(dead, "dead").astype(bool).ravel()
        if mask.shape != values.shape:
            raise ValueError(f"dead has {mask.size} entries but r has {values.size}; one per latent")
        out[mask] = "dead"
    return out


def class_counts(classes: Any) -> dict[str, int]:
    """Number of latents in each class of :data:`LATENT_CLASSES` (all keys present)."""
    labels = np.asarray(classes).ravel()
    unknown = set(labels.tolist()) - set(LATENT_CLASSES)
    if unknown:
        raise ValueError(f"classes holds unknown labels {sorted(unknown)}; expected {LATENT_CLASSES}")
    return {name: int((labels == name).sum()) for name in LATENT_CLASSES}


# --------------------------------------------------------------------------------------------------
# cosine between the two decoder blocks
# --------------------------------------------------------------------------------------------------
@dataclass
class BlockCosines:
    """Cosine between each latent's A block (aligned to B's space when ``alignment == "procrustes"``) and B block.

    Attributes:
        latents: int64 indices of the latents scored.
        cosines: float64 cosines of those latents (NaN where a block is zero).
        alignment: "none" (raw blocks: meaningful only in a shared basis) or "procrustes".
        cross_fitted: each latent's cosine used a map fitted without it (two folds of the fit latents).
        fit_latents: int64 latents the Procrustes map was fitted on (empty without alignment).
        rotation: float64 isometry fitted on all fit latents, from the narrower model's space into the wider
            one's: (d_a, d_b) when ``d_a <= d_b`` (A's blocks are mapped), else (d_b, d_a); None without alignment.
        note: one sentence saying how to read the cosines.
    """

    latents: np.ndarray
    cosines: np.ndarray
    alignment: str
    cross_fitted: bool
    fit_latents: np.ndarray
    rotation: np.ndarray | None
    note: str

    def to_dict(self) -> dict[str, Any]:
        finite = self.cosines[np.isfinite(self.cosines)]
        return {
            "alignment": self.alignment, "cross_fitted": self.cross_fitted, "n_latents": int(self.latents.size),
            "n_fit": int(self.fit_latents.size), "mean_cosine": float(finite.mean()) if finite.size else None,
            "median_cosine": float(np.median(finite)) if finite.size else None, "note": self.note,
        }  # fmt: skip


def _unit_rows(w: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(w, axis=1, keepdims=True)
    return np.divide(w, n, out=np.zeros_like(w), where=n > 0)


def _procrustes_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Isometry ``Q`` (d_a, d_b), orthonormal rows (needs d_a <= d_b), minimising ``||a Q - b||_F``.

    ``Q = U V^T`` from the SVD of ``a^T b``: it maximises ``trace(Q^T a^T b)``, which is the least-squares
    fit because an isometry keeps ``||a Q||`` fixed (mapping the wider space into the narrower one would not).
    """
    u, _, vt = np.linalg.svd(a.T @ b, full_matrices=False)
    return u @ vt


def _aligned_cosines(ua: np.ndarray, ub: np.ndarray, fit: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosines of ``rows`` after mapping the narrower model's blocks into the wider one's space (fitted on ``fit``)."""
    if ua.shape[1] <= ub.shape[1]:
        q = _procrustes_map(ua[fit], ub[fit])
        return _row_cosines(ua[rows] @ q, ub[rows]), q
    q = _procrustes_map(ub[fit], ua[fit])
    return _row_cosines(ua[rows], ub[rows] @ q), q


def _row_cosines(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
    denom = nx * ny
    return np.divide((x * y).sum(axis=1), denom, out=np.full(denom.shape, np.nan), where=denom > 0)


def block_cosines(
    crosscoder: Any,
    *,
    latents: Any = None,
    alignment: Literal["auto", "none", "procrustes"] = "auto",
    fit_latents: Any = None,
    cross_fit: bool = True,
    seed: int = 0,
) -> BlockCosines:
    """Cosine between the A and B decoder blocks of latents (default: the "shared" ones by :func:`classify_latents`).

    Args:
        crosscoder: a :class:`~featgeom_tda.sources.crosscoders.Crosscoder`.
        latents: indices (or a bool mask) of the latents to score.
        alignment: "none" compares the raw blocks (needs ``d_a == d_b``, and is meaningful only when both
            models' activations share a basis); "procrustes" maps the narrower model's blocks (A's at equal
            widths) isometrically into the other's space with the orthogonal map fitted on ``fit_latents``; "auto" is "none" when ``d_a == d_b`` and "procrustes"
            otherwise. Two different models have no common basis even at equal widths: ask for "procrustes".
        fit_latents: latents the map is fitted on (default: the shared latents); needs at least 2.
        cross_fit: split the fit latents into two seeded folds and score each fit latent with the map of
            the other fold (a map fitted on fewer latents than dimensions matches any blocks); latents
            outside the fit set use the map fitted on all of them.
    """
    if not _is_crosscoder(crosscoder):
        raise ValueError(f"crosscoder must be a Crosscoder; got {type(crosscoder).__name__}")
    check_choice(alignment, "alignment", ("auto", "none", "procrustes"))
    seed = check_positive_int(seed, "seed", minimum=0)
    wa, wb = crosscoder.decoder_blocks(units="normalized")
    width = wa.shape[0]
    shared = np.flatnonzero(classify_latents(relative_decoder_norm(wa, wb)) == "shared")
    chosen = shared if latents is None else _latent_indices(latents, width, "latents")
    if alignment == "auto":
        alignment = "none" if crosscoder.d_a == crosscoder.d_b else "procrustes"
    if alignment == "none":
        if crosscoder.d_a != crosscoder.d_b:
            raise ValueError(f"alignment='none' needs d_a == d_b; got d_a={crosscoder.d_a}, d_b={crosscoder.d_b}")
        return BlockCosines(
            latents=chosen, cosines=_row_cosines(wa[chosen], wb[chosen]), alignment="none", cross_fitted=False,
            fit_latents=np.zeros(0, dtype=np.int64), rotation=None,
            note="raw cosines between the two decoder blocks: meaningful only if both models share one basis",
        )  # fmt: skip
    fit = shared if fit_latents is None else _latent_indices(fit_latents, width, "fit_latents")
    if fit.size < 2:
        raise ValueError(f"the Procrustes alignment needs at least 2 fit latents; got {fit.size}")
    ua, ub = _unit_rows(wa), _unit_rows(wb)
    cos, q_all = _aligned_cosines(ua, ub, fit, chosen)
    cross_fitted = bool(cross_fit) and fit.size >= 4
    if cross_fitted:
        rng = np.random.default_rng(seed)
        folds = np.array_split(rng.permutation(fit), 2)
        for held, train in ((folds[0], folds[1]), (folds[1], folds[0])):
            pos = np.flatnonzero(np.isin(chosen, held))
            cos[pos] = _aligned_cosines(ua, ub, train, chosen[pos])[0]
    mapped = "A's blocks into B's space" if crosscoder.d_a <= crosscoder.d_b else "B's blocks into A's space"
    note = (f"cosines after an orthogonal Procrustes map of {mapped} fitted on {fit.size} "
            f"latents ({'cross-fitted in 2 folds' if cross_fitted else 'not cross-fitted: fit latents score themselves'}); "
            f"with fewer fit latents than min(d_a, d_b) = {min(crosscoder.d_a, crosscoder.d_b)} the map can match "
            "unrelated blocks")  # fmt: skip
    return BlockCosines(latents=chosen, cosines=cos, alignment="procrustes", cross_fitted=cross_fitted,
                        fit_latents=fit, rotation=q_all, note=note)  # fmt: skip


def _latent_indices(latents: Any, width: int, name: str) -> np.ndarray:
    arr = to_numpy(latents, name).ravel()
    if arr.dtype == bool:
        if arr.size != width:
            raise ValueError(f"{name} as a mask must have one entry per latent ({width}); got {arr.size}")
        return np.flatnonzero(arr).astype(np.int64)
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integer latent indices or a bool mask; got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= width):
        raise ValueError(f"{name} must be latent indices in [0, {width}); got values in [{arr.min()}, {arr.max()}]")
    return arr


# --------------------------------------------------------------------------------------------------
# latent scaling
# --------------------------------------------------------------------------------------------------
@dataclass
class LatentScaling:
    """Latent scaling (Minder et al. 2025) of every latent in both models, in normalised units.

    For latent j with activation ``f_j(x)`` and model M, the least-squares fit of ``f_j(x) v + c`` to a
    target ``y_M(x)`` over the rows gives a vector ``v_M,j`` (with an intercept ``c`` when ``center``;
    through the origin otherwise, as in the paper). Targets, all with latent j's own contribution
    ``f_j d_M,j`` taken out of the reconstruction:

    - "error": ``x_M - xhat_M + f_j d_M,j``, what the rest of the crosscoder leaves for latent j;
    - "reconstruction": ``xhat_M - f_j d_M,j``, what the other latents already write along with j;
    - "activation": ``x_M``, their sum.

    ``beta[target][M]`` is ``||v_M,j||`` when ``direction == "fitted"`` (no common basis needed: the best
    direction in M's own space), or the scalar ``<u_j, v_M,j>`` along the latent's dominant decoder
    direction ``u_j`` (its larger block, unit) when ``direction == "decoder"``, Minder et al.'s form, which
    needs both models in one basis. ``nu[target] = beta[target][other] / beta["activation"][own]``, where
    ``own`` is the model of the larger decoder block (``r <= 0.5``: A): the other model's share measured
    against how much of its own model's activations the latent explains (the own model's "reconstruction"
    scale is about 0 for a latent that nothing else co-writes, so it would make an unstable denominator).
    Near 0: the other model's data carries nothing along the latent's activation; near 1: as much as the
    latent's own model. A shared feature split into two one-sided latents (latent decoupling) shows a high
    "activation" and "reconstruction" ratio but a low "error" ratio (the partner latent explains it); a
    shared feature whose block in one model shrank to 0 (complete shrinkage) shows a high "error" ratio.

    Attributes:
        latents: int64 latents scored.
        beta: target -> {"a": (n,), "b": (n,)} float64 (NaN for a latent that fires on no row or at a constant value).
        nu: target -> (n,) float64 ratio other / own ("activation" target in the denominator).
        own: (n,) "a" or "b".
        r: (n,) relative decoder norms of the latents.
        direction, center, n_rows: how it was computed.
    """

    latents: np.ndarray
    beta: dict[str, dict[str, np.ndarray]]
    nu: dict[str, np.ndarray]
    own: np.ndarray
    r: np.ndarray
    direction: str
    center: bool
    n_rows: int
    vectors: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        def clean(a: np.ndarray) -> list[Any]:
            return [None if not math.isfinite(float(v)) else float(v) for v in a]

        return {
            "latents": self.latents.tolist(), "own": self.own.tolist(), "r": clean(self.r),
            "beta": {t: {m: clean(v) for m, v in by.items()} for t, by in self.beta.items()},
            "nu": {t: clean(v) for t, v in self.nu.items()}, "direction": self.direction, "center": self.center,
            "n_rows": self.n_rows,
        }  # fmt: skip


def _dense(z: Any) -> np.ndarray:
    return z.toarray() if sp.issparse(z) else np.asarray(z)


def latent_scaling(
    crosscoder: Any,
    acts_a: Any,
    acts_b: Any,
    *,
    latents: Any = None,
    direction: Literal["fitted", "decoder"] = "fitted",
    center: bool = True,
    batch_size: int = 4096,
) -> LatentScaling:
    """Per-latent least-squares scales of both models (closed form, vectorised over latents); see :class:`LatentScaling`.

    With ``F`` (n, width) the latent activations, ``X``, ``Xhat``, ``E = X - Xhat`` a model's normalised
    activations, reconstruction and error, ``s1 = F^T 1``, ``s2 = (F * F)^T 1`` and ``D`` its decoder
    block, the fits are (with intercept; ``var = s2 - s1^2 / n``):

        v_error = (F^T E - s1 Ebar^T) / var + D,   v_recon = (F^T Xhat - s1 Xhatbar^T) / var - D,
        v_activation = (F^T X - s1 Xbar^T) / var,

    and through the origin the same with ``s2`` for ``var`` and no mean terms. Only sums over rows are
    kept, in float64, over row batches of ``batch_size``.
    """
    if not _is_crosscoder(crosscoder):
        raise ValueError(f"crosscoder must be a Crosscoder; got {type(crosscoder).__name__}")
    check_choice(direction, "direction", ("fitted", "decoder"))
    if not isinstance(center, (bool, np.bool_)):
        raise ValueError(f"center must be True or False; got {center!r}")
    batch_size = check_positive_int(batch_size, "batch_size")
    xa, xb = crosscoder.normalize(acts_a, acts_b)
    n = xa.shape[0]
    if n < 2:
        raise ValueError(f"acts_a and acts_b need at least 2 rows; got {n}")
    wa, wb = crosscoder.decoder_blocks(units="normalized")
    width = wa.shape[0]
    chosen = np.arange(width) if latents is None else _latent_indices(latents, width, "latents")
    if direction == "decoder" and crosscoder.d_a != crosscoder.d_b:
        raise ValueError(
            f"direction='decoder' applies one decoder direction to both models and needs d_a == d_b (a shared "
            f"basis); got d_a={crosscoder.d_a}, d_b={crosscoder.d_b}: use direction='fitted'"
        )
    ba, bb = crosscoder.decoder_bias(units="normalized")
    blocks = {"a": (xa, wa, ba), "b": (xb, wb, bb)}
    s1 = np.zeros(width)
    s2 = np.zeros(width)
    sums = {(m, t): np.zeros((width, w.shape[1])) for m, (_, w, _) in blocks.items() for t in ("x", "xhat")}
    means = {(m, t): np.zeros(w.shape[1]) for m, (_, w, _) in blocks.items() for t in ("x", "xhat")}
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        z = _dense(crosscoder.encode(xa[start:stop] * crosscoder.scale_a, xb[start:stop] * crosscoder.scale_b))
        z = z.astype(np.float64)
        s1 += z.sum(axis=0)
        s2 += (z * z).sum(axis=0)
        for m, (x, w, bias) in blocks.items():
            x64 = x[start:stop].astype(np.float64)
            xhat = z @ w + bias
            sums[m, "x"] += z.T @ x64
            sums[m, "xhat"] += z.T @ xhat
            means[m, "x"] += x64.sum(axis=0)
            means[m, "xhat"] += xhat.sum(axis=0)
    for key in means:
        means[key] /= n
    var = s2 - s1 * s1 / n if center else s2.copy()
    live = var > 1e-12 * np.maximum(s2, 1e-300)
    inv = np.divide(1.0, var, out=np.full(width, np.nan), where=live)

    vectors: dict[str, dict[str, np.ndarray]] = {t: {} for t in SCALING_TARGETS}
    for m, (_, w, _) in blocks.items():
        fx = sums[m, "x"] - (np.outer(s1, means[m, "x"]) if center else 0.0)
        fxhat = sums[m, "xhat"] - (np.outer(s1, means[m, "xhat"]) if center else 0.0)
        v_act = fx * inv[:, None]
        v_rec = fxhat * inv[:, None] - w
        vectors["activation"][m] = v_act[chosen]
        vectors["reconstruction"][m] = v_rec[chosen]
        vectors["error"][m] = (v_act - v_rec)[chosen]  # (F^T (X - Xhat) - ...) / var + D
    r = relative_decoder_norm(wa, wb)[chosen]
    own = np.where(np.nan_to_num(r, nan=0.0) <= 0.5, "a", "b")
    if direction == "decoder":
        u = _unit_rows(np.where((own == "a")[:, None], wa[chosen], wb[chosen]))
    beta: dict[str, dict[str, np.ndarray]] = {}
    nu: dict[str, np.ndarray] = {}
    dead = ~live[chosen]
    for t in SCALING_TARGETS:
        if direction == "fitted":
            beta[t] = {m: np.linalg.norm(vectors[t][m], axis=1) for m in ("a", "b")}
        else:
            beta[t] = {m: (vectors[t][m] * u).sum(axis=1) for m in ("a", "b")}
        for m in ("a", "b"):
            beta[t][m][dead] = np.nan
    own_beta = np.where(own == "a", beta["activation"]["a"], beta["activation"]["b"])
    for t in SCALING_TARGETS:
        other_beta = np.where(own == "a", beta[t]["b"], beta[t]["a"])
        with np.errstate(divide="ignore", invalid="ignore"):
            nu[t] = np.where(own_beta != 0, other_beta / own_beta, np.nan)
    return LatentScaling(latents=chosen, beta=beta, nu=nu, own=own, r=r, direction=direction, center=bool(center),
                         n_rows=int(n), vectors=vectors)  # fmt: skip


def exclusive_but_shared(
    scaling: LatentScaling,
    *,
    target: Literal["error", "reconstruction", "activation"] = "activation",
    nu_threshold: float = 0.5,
    exclusive_threshold: float = EXCLUSIVE_THRESHOLD,
) -> np.ndarray:
    """Bool (n_latents of ``scaling``,): latents that look exclusive (``r < t`` or ``r > 1 - t``) but whose
    latent-scaling ratio ``nu[target] >= nu_threshold`` says the other model's data carries them too."""
    if not isinstance(scaling, LatentScaling):
        raise ValueError(f"scaling must be a LatentScaling; got {type(scaling).__name__}")
    check_choice(target, "target", SCALING_TARGETS)
    nu_threshold = check_number(nu_threshold, "nu_threshold", low=0.0, low_open=True)
    t = check_number(exclusive_threshold, "exclusive_threshold", low=0.0, high=0.5, high_open=True)
    r = scaling.r
    with np.errstate(invalid="ignore"):
        looks_exclusive = (r < t) | (r > 1 - t)
        return looks_exclusive & (scaling.nu[target] >= nu_threshold)


# --------------------------------------------------------------------------------------------------
# crosscoder latents vs the two models' own SAEs
# --------------------------------------------------------------------------------------------------
@dataclass
class CrosscoderSAECorrelations:
    """Each crosscoder latent's best activation correlation with each model's SAE features.

    Attributes:
        corr_a, corr_b: float32 (width,) best Pearson correlation with any feature of SAE A / B (NaN for a
            latent that never varies).
        index_a, index_b: int64 (width,) that feature (-1 where none).
    """

    corr_a: np.ndarray
    index_a: np.ndarray
    corr_b: np.ndarray
    index_b: np.ndarray

    def summary(self, classes: Any = None) -> dict[str, dict[str, float]]:
        """Mean best correlations with A and B per latent class (or over all latents)."""
        groups = {"all": np.ones(self.corr_a.shape, dtype=bool)}
        if classes is not None:
            labels = np.asarray(classes).ravel()
            if labels.shape != self.corr_a.shape:
                raise ValueError(f"classes has {labels.size} entries but there are {self.corr_a.size} latents")
            groups.update({name: labels == name for name in LATENT_CLASSES})

        def mean(v: np.ndarray) -> float:
            v = v[np.isfinite(v)]
            return float(v.mean()) if v.size else float("nan")

        return {name: {"n": int(m.sum()), "mean_corr_a": mean(self.corr_a[m]), "mean_corr_b": mean(self.corr_b[m])}
                for name, m in groups.items()}  # fmt: skip


def crosscoder_vs_matching(
    cc_latent_acts: Any,
    sae_acts_a: Any,
    sae_acts_b: Any,
    *,
    method: Literal["auto", "fused", "scipy", "dense"] = "scipy",
) -> CrosscoderSAECorrelations:
    """Best correlation of every crosscoder latent with the features of each model's SAE, over the same rows.

    Args:
        cc_latent_acts: (n_rows, width) crosscoder latent activations (``Crosscoder.encode``).
        sae_acts_a, sae_acts_b: (n_rows, n_features) SAE feature activations of each model on those rows
            (FeatureActivations, scipy sparse, torch or numpy).
        method: of :func:`featgeom_tda.analyses.matching.top_correlations` (default "scipy", which leaves no
            OpenMP threads spinning next to torch training).
    """
    from featgeom_tda.analyses.matching import top_correlations

    top_a = top_correlations(cc_latent_acts, sae_acts_a, k=1, method=method)
    top_b = top_correlations(cc_latent_acts, sae_acts_b, k=1, method=method)
    ia, ca = top_a.best()
    ib, cb = top_b.best()
    return CrosscoderSAECorrelations(corr_a=ca.astype(np.float32), index_a=ia.astype(np.int64),
                                     corr_b=cb.astype(np.float32), index_b=ib.astype(np.int64))  # fmt: skip
